// Package pgaudit is gpgate's audit log on PostgreSQL, for a deployment of
// several stateless nodes (`gpgate serve --database URL`). It keeps every
// promise the bbolt log (package audit) keeps, in the same storage format
// (audit.Frame: the same canonical record bytes, chain hash and signed
// heads), behind the same methods:
//
//   - Durable before the answer. Record enqueues the entry and waits; one
//     writer goroutine per node takes everything queued and commits it in
//     one transaction (one WAL flush for the batch: group commit across the
//     node's concurrent requests). The database must keep PostgreSQL's
//     default synchronous_commit = on (Open refuses "off"); with a
//     synchronous standby, "remote_apply" or "on" with synchronous_standby_names
//     makes the entry survive the loss of the primary too.
//   - One hash chain, no gaps, across all nodes. The chain head is one row
//     (audit_head); each commit takes its row lock (SELECT ... FOR UPDATE),
//     numbers its batch after it, chains it and moves it on, in the same
//     transaction. Commits of different nodes are therefore serialised on
//     that lock — held for one INSERT and the commit's WAL flush — and a
//     reader never sees entry N+1 without entry N. The alternative (per-node
//     chains merged by signed checkpoints) was not taken: it makes
//     verification and paging per node, and gap-freedom a property of the
//     merge rather than of the log. The price is that the lock bounds the
//     cluster's audit commit rate (docs/scale.md measures it); batching
//     amortises it over every entry a node has queued.
//   - Recorded times never go backwards: a commit's time is the later of the
//     node's clock and the head's, read under the lock.
//   - Signed checkpoints and the exported head, as in package audit: every
//     CheckpointEvery entries or CheckpointInterval the committing node signs
//     the head in the same transaction (nodes share the audit key, or trust
//     each other's public keys with TrustedKeys) and exports it to its own
//     HeadFile/HeadSink. Open checks the chain from the newest checkpoint and
//     against the node's exported head; Verify walks everything, and also
//     checks that every search column agrees with the record it came from.
//   - Fail closed. When the database is unreachable Record returns an error
//     (the request is answered 500 and no data leaves); a commit whose
//     outcome is unknown (the connection died during COMMIT) is also an
//     error — the entry may be in the log, never the data without it.
//   - Forwarders (the practice trail) run on audit.NewForwarder over this
//     log: durable cursors in audit_cursor, and a PostgreSQL advisory lock
//     per forwarder name, so exactly one node delivers at a time; when it
//     dies another takes over from the cursor within audit.LeaseRetry.
package pgaudit

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are this log's schema changes, for `gpgate migrate`.
var Migrations = postgres.Migrations{Component: "audit", FS: must(fs.Sub(migrationFiles, "migrations"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}

// Channel is notified (payload: the newest sequence number) by every
// commit, so forwarders on other nodes wake.
const Channel = "gpgate_audit"

// Options configure a Log. They mirror audit.Options.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Node names this node in each entry it records.
	Node string
	// MaxBatch caps entries per transaction (default 4096); QueueSize is
	// the commit queue's depth (default 4096).
	MaxBatch, QueueSize int
	// CommitTimeout bounds one commit (default 10 s): past it the waiting
	// requests fail closed.
	CommitTimeout time.Duration

	// Key or KeyFile signs checkpoints (see audit.Options); TrustedKeys are
	// the other nodes' (and earlier keys') public keys.
	Key         ed25519.PrivateKey
	KeyFile     string
	TrustedKeys []ed25519.PublicKey
	// HeadFile and HeadSink receive the checkpoints this node signs.
	HeadFile string
	HeadSink audit.HeadSink
	// Checkpoint cadence; defaults as in package audit.
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// AcceptUnverified opens a log that fails the open-time check, and
	// records that it did (see audit.Options).
	AcceptUnverified bool
	// ReadOnly: no writer (verify, export, search).
	ReadOnly bool
	// Hub, when set, wakes this node's forwarders on other nodes' commits
	// (they also poll every PollEvery).
	Hub       *postgres.Hub
	PollEvery time.Duration
}

// Log is the PostgreSQL audit log. It is safe for concurrent use.
type Log struct {
	pool     *pgxpool.Pool
	readOnly bool
	now      func() time.Time
	log      *slog.Logger
	node     string
	max      int
	timeout  time.Duration
	queue    chan *pending
	mu       sync.RWMutex
	closed   bool
	done     chan struct{}
	stopPoll chan struct{}

	closeOnce sync.Once

	key        ed25519.PrivateKey
	keys       []ed25519.PublicKey
	headFile   string
	headSink   audit.HeadSink
	cpEvery    uint64
	cpInterval time.Duration
	exportCh   chan audit.Head
	exportDone chan struct{}

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
	fwds  map[*audit.Forwarder]string

	st audit.Counters
}

type pending struct {
	enc  audit.Encoded
	e    fhir.AuditEntry
	seq  uint64
	err  error
	done chan struct{}
}

// Open returns the log over pool (migrated by Migrations), after the same
// open-time check as the bbolt log: it refuses a log that does not verify
// from its newest checkpoint, or is behind this node's exported head,
// unless AcceptUnverified.
func Open(ctx context.Context, pool *pgxpool.Pool, opt Options) (*Log, error) {
	if err := postgres.CheckSchema(ctx, pool, Migrations); err != nil {
		return nil, err
	}
	l := &Log{pool: pool, readOnly: opt.ReadOnly, now: opt.Now, log: opt.Logger, node: opt.Node, max: opt.MaxBatch,
		timeout: opt.CommitTimeout, done: make(chan struct{}), stopPoll: make(chan struct{}), headFile: opt.HeadFile, headSink: opt.HeadSink,
		subs: map[chan struct{}]struct{}{}, fwds: map[*audit.Forwarder]string{}}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.max <= 0 {
		l.max = 4096
	}
	if l.timeout <= 0 {
		l.timeout = 10 * time.Second
	}
	l.cpEvery = uint64(max(opt.CheckpointEvery, 0))
	if l.cpEvery == 0 {
		l.cpEvery = audit.DefaultCheckpointEvery
	}
	l.cpInterval = opt.CheckpointInterval
	if l.cpInterval <= 0 {
		l.cpInterval = audit.DefaultCheckpointInterval
	}
	var err error
	if l.key, l.keys, err = audit.SigningKeys(opt.Key, opt.KeyFile, opt.TrustedKeys, l.readOnly); err != nil {
		return nil, fmt.Errorf("pgaudit: %w", err)
	}
	if l.headFile != "" && l.key == nil && !l.readOnly {
		return nil, errors.New("pgaudit: Options.HeadFile needs an audit key (Key or KeyFile)")
	}
	if l.headFile != "" {
		l.headFile = filepath.Clean(l.headFile)
	}
	if l.readOnly {
		close(l.done)
		return l, nil
	}
	var sc string
	if err := pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil {
		return nil, fmt.Errorf("pgaudit: %w", err)
	}
	if sc == "off" {
		return nil, errors.New("pgaudit: the database runs with synchronous_commit = off: an acknowledged commit could be lost, and audit must be durable before the answer")
	}
	if err := l.openCheck(ctx); err != nil {
		if !opt.AcceptUnverified {
			return nil, fmt.Errorf("pgaudit: refusing to open the audit log: %w (investigate with `gpgate audit verify --database`; an operator who has may open it anyway with the override, which records that it did)", err)
		}
		l.log.Error("audit log failed its open-time check; opening it anyway as the operator asked (AcceptUnverified)", "err", err)
		if err := l.override(ctx, err); err != nil {
			return nil, err
		}
	}
	if l.key != nil {
		if err := l.anchorAtOpen(ctx); err != nil {
			return nil, err
		}
	}
	qs := opt.QueueSize
	if qs <= 0 {
		qs = 4096
	}
	l.queue = make(chan *pending, qs)
	l.exportCh = make(chan audit.Head, 1)
	l.exportDone = make(chan struct{})
	if opt.Hub != nil {
		opt.Hub.Subscribe(Channel, func(string) { l.notify() })
	}
	poll := opt.PollEvery
	if poll <= 0 {
		poll = time.Second
	}
	go l.poller(poll)
	go l.exporter()
	go l.writer()
	return l, nil
}

// Record appends e and returns once it is durable, or with an error: then
// the caller must fail closed.
func (l *Log) Record(ctx context.Context, e *fhir.AuditEntry) error {
	_, err := l.Append(ctx, e)
	return err
}

// Append is Record returning the entry's sequence number.
func (l *Log) Append(ctx context.Context, e *fhir.AuditEntry) (uint64, error) {
	if l.readOnly {
		return 0, audit.ErrReadOnly
	}
	enc, err := audit.Encode(e)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p := &pending{enc: enc, e: *e, done: make(chan struct{})}
	p.e.PatientID = enc.PatientID
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, audit.ErrClosed
	}
	select {
	case l.queue <- p:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return 0, ctx.Err()
	}
	select {
	case <-p.done:
		return p.seq, p.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Stats returns this node's counters (Head: the newest entry this node has
// seen committed, by any node).
func (l *Log) Stats() audit.Stats { return l.st.Stats(len(l.queue)) }

// Close stops accepting entries, commits what is queued, signs a final
// checkpoint when this node's entries are not yet covered by one, and stops
// the forwarders. It does not close the pool.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		if l.queue != nil {
			close(l.queue)
		}
		l.mu.Unlock()
		<-l.done
		if l.exportCh != nil {
			close(l.exportCh)
			<-l.exportDone
		}
		if !l.readOnly {
			close(l.stopPoll)
		}
		l.subMu.Lock()
		fwds := make([]*audit.Forwarder, 0, len(l.fwds))
		for f := range l.fwds {
			fwds = append(fwds, f)
		}
		l.subMu.Unlock()
		for _, f := range fwds {
			f.Close()
		}
	})
	return nil
}

// writer is the node's one group-commit goroutine.
func (l *Log) writer() {
	defer close(l.done)
	batch := make([]*pending, 0, 64)
	tick := time.NewTimer(l.cpInterval)
	defer tick.Stop()
	for {
		select {
		case p, ok := <-l.queue:
			if !ok {
				if l.key != nil {
					l.checkpointIdle(context.Background()) //nolint:errcheck // logged; Close must finish
				}
				return
			}
			batch = audit.Gather(append(batch[:0], p), l.queue, l.max)
			ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
			err := l.commit(ctx, batch)
			cancel()
			for _, q := range batch {
				q.err = err
				close(q.done)
			}
			clear(batch)
			if err == nil {
				l.notify()
			}
		case <-tick.C:
			if l.key != nil {
				ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
				l.checkpointIdle(ctx) //nolint:errcheck // logged; retried next tick
				cancel()
			}
			tick.Reset(l.cpInterval)
		}
	}
}

type headRow struct {
	seq        uint64
	hash       [32]byte
	recordedNS int64
	cpSeq      uint64
	cpNS       int64
}

func lockHead(ctx context.Context, tx pgx.Tx) (headRow, error) {
	var h headRow
	var hash []byte
	var seq, cp int64
	err := tx.QueryRow(ctx, "SELECT seq, hash, recorded_ns, cp_seq, cp_ns FROM audit_head WHERE id = 1 FOR UPDATE").Scan(&seq, &hash, &h.recordedNS, &cp, &h.cpNS)
	if err != nil {
		return h, err
	}
	if len(hash) != 32 {
		return h, fmt.Errorf("the chain head's hash is %d bytes", len(hash))
	}
	h.seq, h.cpSeq = uint64(seq), uint64(cp)
	copy(h.hash[:], hash)
	return h, nil
}

// clock is now, never before the head's time.
func (l *Log) clock(h headRow) time.Time {
	now := l.now().UTC()
	if hr := time.Unix(0, h.recordedNS).UTC(); now.Before(hr) {
		now = hr
	}
	return now
}

func nullIf(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// commit appends batch after the chain head in one transaction.
func (l *Log) commit(ctx context.Context, batch []*pending) error {
	var cp *audit.Head
	var seq uint64
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		h, err := lockHead(ctx, tx)
		if err != nil {
			return err
		}
		now := l.clock(h)
		seq = h.seq
		prev := h.hash
		n := len(batch)
		seqs, recNS := make([]int64, n), make([]int64, n)
		hashes, records := make([][]byte, n), make([][]byte, n)
		pids, clients, practs, ods, outcomes, actions := make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		bgs := make([]bool, n)
		for i, p := range batch {
			seq++
			rec, sum := audit.Frame(nil, prev, seq, now, l.node, p.enc.Payload)
			seqs[i], recNS[i], hashes[i], records[i] = int64(seq), now.UnixNano(), append([]byte(nil), sum[:]...), rec
			e := &p.e
			pids[i], clients[i], practs[i], ods[i] = nullIf(e.PatientID), nullIf(e.ClientID), nullIf(e.Practitioner), nullIf(e.ConsumerODS)
			outcomes[i], actions[i], bgs[i] = nullIf(e.Outcome), nullIf(e.Action), e.BreakGlass
			p.seq, prev = seq, sum
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO audit_log (seq, hash, record, recorded_ns, patient_id, client_id, practitioner, consumer_ods, outcome, action, break_glass)
			SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::boolean[])`,
			seqs, hashes, records, recNS, pids, clients, practs, ods, outcomes, actions, bgs)
		cpSeq, cpNS := h.cpSeq, h.cpNS
		if l.key != nil && (seq-h.cpSeq >= l.cpEvery || now.Sub(time.Unix(0, h.cpNS)) >= l.cpInterval) {
			hd := audit.SignHead(l.key, seq, prev, now, l.node)
			line, _ := hd.MarshalText()
			b.Queue("INSERT INTO audit_checkpoint (seq, line) VALUES ($1, $2)", int64(seq), string(line))
			cp, cpSeq, cpNS = &hd, seq, now.UnixNano()
		}
		b.Queue("UPDATE audit_head SET seq = $1, hash = $2, recorded_ns = $3, cp_seq = $4, cp_ns = $5 WHERE id = 1",
			int64(seq), prev[:], now.UnixNano(), int64(cpSeq), cpNS)
		b.Queue("SELECT pg_notify($1, $2)", Channel, strconv.FormatUint(seq, 10))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		l.log.Error("audit commit failed", "entries", len(batch), "err", err)
		return fmt.Errorf("pgaudit: commit: %w", err)
	}
	l.st.Commits.Add(1)
	l.st.Entries.Add(uint64(len(batch)))
	l.st.LastBatch.Store(int64(len(batch)))
	storeMax(&l.st.Head, seq)
	if cp != nil {
		l.checkpointed(*cp)
	}
	return nil
}

func storeMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// checkpointIdle signs the head in a transaction of its own when entries
// are past the newest checkpoint and the interval has passed (whichever
// node gets there first; the others find it done under the lock).
func (l *Log) checkpointIdle(ctx context.Context) error {
	var cp *audit.Head
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		h, err := lockHead(ctx, tx)
		if err != nil {
			return err
		}
		now := l.clock(h)
		if h.seq <= h.cpSeq && !(h.seq == 0 && h.cpNS == 0) {
			return nil
		}
		if h.seq > h.cpSeq && now.Sub(time.Unix(0, h.cpNS)) < l.cpInterval {
			return nil
		}
		hd := audit.SignHead(l.key, h.seq, h.hash, now, l.node)
		line, _ := hd.MarshalText()
		if _, err := tx.Exec(ctx, "INSERT INTO audit_checkpoint (seq, line) VALUES ($1, $2) ON CONFLICT (seq) DO UPDATE SET line = EXCLUDED.line", int64(h.seq), string(line)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE audit_head SET cp_seq = $1, cp_ns = $2 WHERE id = 1", int64(h.seq), now.UnixNano()); err != nil {
			return err
		}
		cp = &hd
		return nil
	})
	if err != nil {
		l.log.Error("audit checkpoint failed", "err", err)
		return fmt.Errorf("pgaudit: checkpoint: %w", err)
	}
	if cp != nil {
		l.st.CheckpointOnly.Add(1)
		l.checkpointed(*cp)
	}
	return nil
}

func (l *Log) checkpointed(h audit.Head) {
	l.st.Checkpoints.Add(1)
	storeMax(&l.st.LastCheckpoint, h.Seq)
	if l.exportCh == nil {
		return
	}
	select {
	case l.exportCh <- h:
	default:
		select {
		case <-l.exportCh:
		default:
		}
		select {
		case l.exportCh <- h:
		default:
		}
	}
}

func (l *Log) exporter() {
	defer close(l.exportDone)
	for h := range l.exportCh {
		if err := l.export(h); err == nil {
			storeMax(&l.st.Exported, h.Seq)
		}
	}
}

func (l *Log) export(h audit.Head) error {
	var failed error
	if l.headFile != "" {
		if err := audit.WriteHeadFile(l.headFile, h); err != nil {
			failed = err
			l.st.ExportErrors.Add(1)
			l.log.Error("audit head export failed", "seq", h.Seq, "err", err)
		}
	}
	if l.headSink != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := l.headSink.PublishHead(ctx, h); err != nil {
			failed = err
			l.st.ExportErrors.Add(1)
			l.log.Error("audit head sink failed", "seq", h.Seq, "err", err)
		}
		cancel()
	}
	return failed
}

// anchorAtOpen signs a checkpoint over the log as found unless its newest
// entry has one, and exports the newest, before the first Record.
func (l *Log) anchorAtOpen(ctx context.Context) error {
	var last audit.Head
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		h, err := lockHead(ctx, tx)
		if err != nil {
			return err
		}
		var line string
		err = tx.QueryRow(ctx, "SELECT line FROM audit_checkpoint WHERE seq = $1", int64(h.seq)).Scan(&line)
		if err == nil {
			if hd, perr := audit.ParseHead([]byte(line)); perr == nil && hd.Hash == h.hash {
				last = hd
				return nil
			}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		now := l.clock(h)
		last = audit.SignHead(l.key, h.seq, h.hash, now, l.node)
		b, _ := last.MarshalText()
		if _, err := tx.Exec(ctx, "INSERT INTO audit_checkpoint (seq, line) VALUES ($1, $2) ON CONFLICT (seq) DO UPDATE SET line = EXCLUDED.line", int64(h.seq), string(b)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE audit_head SET cp_seq = $1, cp_ns = $2 WHERE id = 1", int64(h.seq), now.UnixNano())
		if err == nil {
			l.st.CheckpointOnly.Add(1)
			l.st.Checkpoints.Add(1)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pgaudit: anchor at open: %w", err)
	}
	l.st.Head.Store(last.Seq)
	l.st.LastCheckpoint.Store(last.Seq)
	if l.headFile != "" {
		if err := audit.WriteHeadFile(l.headFile, last); err != nil {
			return fmt.Errorf("pgaudit: export head: %w", err)
		}
	}
	l.st.Exported.Store(last.Seq)
	if l.headSink != nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := l.headSink.PublishHead(sctx, last); err != nil {
			l.st.ExportErrors.Add(1)
			l.log.Error("audit head sink failed", "seq", last.Seq, "err", err)
		}
	}
	return nil
}

// override resynchronises the head with the log as it is, sets aside
// checkpoints beyond its end and records the operator's decision.
func (l *Log) override(ctx context.Context, cause error) error {
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := lockHead(ctx, tx); err != nil {
			return err
		}
		var seq int64
		var hash []byte
		var rec int64
		err := tx.QueryRow(ctx, "SELECT seq, hash, recorded_ns FROM audit_log ORDER BY seq DESC LIMIT 1").Scan(&seq, &hash, &rec)
		if errors.Is(err, pgx.ErrNoRows) {
			seq, hash, rec = 0, make([]byte, 32), 0
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO audit_checkpoint_superseded (seq, line) SELECT seq, line FROM audit_checkpoint WHERE seq > $1", seq); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM audit_checkpoint WHERE seq > $1", seq); err != nil {
			return err
		}
		var cp int64
		_ = tx.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM audit_checkpoint").Scan(&cp)
		_, err = tx.Exec(ctx, "UPDATE audit_head SET seq = $1, hash = $2, recorded_ns = $3, cp_seq = $4, cp_ns = 0 WHERE id = 1", seq, hash, rec, cp)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgaudit: override: %w", err)
	}
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	e := &fhir.AuditEntry{Time: l.now().UTC(), Action: "audit-override", Outcome: fhir.OutcomeError, Rule: "audit log opened despite a failed check: " + msg}
	enc, err := audit.Encode(e)
	if err != nil {
		return err
	}
	return l.commit(ctx, []*pending{{enc: enc, e: *e}})
}

// notify wakes local subscribers (forwarders).
func (l *Log) notify() {
	l.subMu.Lock()
	for c := range l.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	l.subMu.Unlock()
}

// poller wakes forwarders regularly, for commits of other nodes when no
// Hub is wired (or its connection is down).
func (l *Log) poller(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stopPoll:
			return
		case <-t.C:
			l.notify()
		}
	}
}

// Forward starts a forwarder over this log (see the package doc: one node
// delivers for each name at a time).
func (l *Log) Forward(opt audit.ForwardOptions) (*audit.Forwarder, error) {
	if l.readOnly {
		return nil, audit.ErrReadOnly
	}
	if opt.Logger == nil {
		opt.Logger = l.log
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, audit.ErrClosed
	}
	l.subMu.Lock()
	for g, name := range l.fwds {
		select {
		case <-g.Done():
			delete(l.fwds, g) // closed
			continue
		default:
		}
		if name == opt.Name {
			l.subMu.Unlock()
			return nil, fmt.Errorf("pgaudit: a forwarder named %q is already running on this node", opt.Name)
		}
	}
	l.subMu.Unlock()
	f, err := audit.NewForwarder(feed{l}, opt)
	if err != nil {
		return nil, err
	}
	l.subMu.Lock()
	l.fwds[f] = opt.Name
	l.subMu.Unlock()
	return f, nil
}

// Cursor returns the durable cursor of the forwarder named name.
func (l *Log) Cursor(ctx context.Context, name string) (uint64, error) {
	return feed{l}.LoadCursor(ctx, name)
}

// feed is the Log as an audit.Feed.
type feed struct{ l *Log }

func (f feed) ReadAfter(ctx context.Context, after uint64, limit int) ([]audit.Entry, bool, error) {
	rows, err := f.l.pool.Query(ctx, "SELECT hash, record FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", int64(after), limit+1)
	if err != nil {
		return nil, false, err
	}
	out, err := scanEntries(rows)
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func (f feed) Head(ctx context.Context) (uint64, error) {
	var seq int64
	err := f.l.pool.QueryRow(ctx, "SELECT seq FROM audit_head WHERE id = 1").Scan(&seq)
	return uint64(seq), err
}

func (f feed) LoadCursor(ctx context.Context, name string) (uint64, error) {
	var seq int64
	err := f.l.pool.QueryRow(ctx, "SELECT seq FROM audit_cursor WHERE name = $1", name).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(seq), err
}

// SaveCursor never moves a cursor back: a node that lost its lease late
// cannot undo what the next one recorded.
func (f feed) SaveCursor(ctx context.Context, name string, seq uint64) error {
	_, err := f.l.pool.Exec(ctx, `INSERT INTO audit_cursor (name, seq) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET seq = greatest(audit_cursor.seq, EXCLUDED.seq)`, name, int64(seq))
	return err
}

func (f feed) Subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	f.l.subMu.Lock()
	f.l.subs[c] = struct{}{}
	f.l.subMu.Unlock()
	return c, func() {
		f.l.subMu.Lock()
		delete(f.l.subs, c)
		f.l.subMu.Unlock()
	}
}

// leaseKey is the advisory lock key of a forwarder name.
func leaseKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("gpgate-audit-forwarder/" + name))
	return int64(h.Sum64())
}

// TryLease takes the forwarder's advisory lock on a connection of its own,
// held (and checked every second) for as long as the lease lasts: when
// that connection dies the lock is gone and lost is closed.
func (f feed) TryLease(ctx context.Context, name string) (<-chan struct{}, func(), bool, error) {
	conn, err := f.l.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", leaseKey(name)).Scan(&ok); err != nil {
		conn.Release()
		return nil, nil, false, err
	}
	if !ok {
		conn.Release()
		return nil, nil, false, nil
	}
	lost := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					close(lost)
					return
				}
			}
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			select {
			case <-lost:
				// the session (and its lock) is gone: never reuse it
				conn.Conn().Close(context.Background()) //nolint:errcheck
			default:
				uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", leaseKey(name)); err != nil {
					conn.Conn().Close(context.Background()) //nolint:errcheck
				}
				cancel()
			}
			conn.Release()
		})
	}
	return lost, release, true, nil
}

func scanEntries(rows pgx.Rows) ([]audit.Entry, error) {
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var hash, record []byte
		if err := rows.Scan(&hash, &record); err != nil {
			return nil, err
		}
		e, err := decode(hash, record)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func decode(hash, record []byte) (audit.Entry, error) {
	var h [32]byte
	if len(hash) != 32 {
		return audit.Entry{}, errors.New("pgaudit: stored hash is not 32 bytes")
	}
	copy(h[:], hash)
	return audit.Decode(h, record)
}
