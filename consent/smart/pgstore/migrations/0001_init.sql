-- consent/smart/pgstore: registered clients, gpgate's signing keys and the
-- client-assertion replay cache. Bodies are kept as json (verbatim text):
-- a client's JWKS comes back byte for byte.
CREATE TABLE smart_clients (
    id   text PRIMARY KEY,
    body json NOT NULL
);

-- One row: the whole key set, replaced atomically under its row lock.
CREATE TABLE smart_keys (
    id   integer PRIMARY KEY CHECK (id = 1),
    ring json NOT NULL
);

-- A client assertion's jti, remembered until the assertion expires.
CREATE TABLE smart_replay (
    client_id text NOT NULL,
    jti       text NOT NULL,
    exp       timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX smart_replay_exp ON smart_replay (exp);
