-- audit/pgaudit: the hash-chained audit log of every node.
--
-- One chain for the whole cluster: audit_head is one row holding the
-- newest sequence number, its chain hash and commit time; every commit
-- (one transaction per batch of one node's requests) locks it
-- (SELECT ... FOR UPDATE), appends the batch after it and moves it on. So
-- sequence numbers have no gaps, the chain has one order, and recorded
-- times never go backwards, whichever node commits.
CREATE TABLE audit_head (
    id          integer PRIMARY KEY CHECK (id = 1),
    seq         bigint NOT NULL,
    hash        bytea NOT NULL,
    recorded_ns bigint NOT NULL, -- unix nanoseconds, as the records say
    cp_seq      bigint NOT NULL, -- newest signed checkpoint
    cp_ns       bigint NOT NULL
);
INSERT INTO audit_head VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', 0, 0, 0);

-- record is the canonical bytes the chain hash covers (audit.Frame); the
-- other columns are copied out of it for search and are checked against
-- it by verify.
CREATE TABLE audit_log (
    seq          bigint PRIMARY KEY,
    hash         bytea NOT NULL,
    record       bytea NOT NULL,
    recorded_ns  bigint NOT NULL,
    patient_id   text,
    client_id    text,
    practitioner text,
    consumer_ods text,
    outcome      text,
    action       text,
    break_glass  boolean NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log (patient_id, seq) WHERE patient_id IS NOT NULL;
CREATE INDEX audit_log_client ON audit_log (client_id, seq) WHERE client_id IS NOT NULL;
CREATE INDEX audit_log_practitioner ON audit_log (practitioner, seq) WHERE practitioner IS NOT NULL;
CREATE INDEX audit_log_consumer ON audit_log (consumer_ods, seq) WHERE consumer_ods IS NOT NULL;
CREATE INDEX audit_log_recorded ON audit_log (recorded_ns);
CREATE INDEX audit_log_break_glass ON audit_log (seq) WHERE break_glass;

-- Signed checkpoints (audit.Head lines), written in the commit they cover.
CREATE TABLE audit_checkpoint (
    seq  bigint PRIMARY KEY,
    line text NOT NULL
);
-- Checkpoints beyond a truncated end, set aside by an operator override.
CREATE TABLE audit_checkpoint_superseded (
    seq      bigint NOT NULL,
    line     text NOT NULL,
    set_aside timestamptz NOT NULL DEFAULT now()
);

-- Forwarders' durable cursors (the practice trail's outbox position).
CREATE TABLE audit_cursor (
    name text PRIMARY KEY,
    seq  bigint NOT NULL
);
