// Package audit is gpgate's audit trail: every token issued, every consent
// recorded and every read or search, granted or denied, is appended to a
// hash-chained, sequence-numbered log in bbolt before any data goes out.
//
// Writes go through one group-commit goroutine: Record enqueues the entry and
// waits; the writer takes everything queued, commits it in one bbolt Update
// (one fsync for the batch) and releases every waiter. Entries render as R4
// AuditEvents (UK Core profile, IHE BALP shapes) with Render.
//
// # Tamper evidence
//
// Three layers, each closing what the one before leaves open:
//
//  1. The hash chain. Each entry stores SHA-256(previous hash || its
//     canonical bytes) and names its own sequence number, so Verify finds an
//     edited entry (hash mismatch), a deleted one (gap) and two swapped or
//     moved ones (an entry holding another's record). It is unkeyed: anyone
//     who can write audit.db can rewrite an entry and recompute every hash
//     after it ("re-chaining"), or cut the tail off together with the head
//     record.
//  2. Signed checkpoints (Options.Key, Ed25519 from crypto/ed25519). Every
//     Options.CheckpointEvery entries or Options.CheckpointInterval, on Open
//     and on Close, the writer signs {seq, chain hash, time, node, key id}
//     and stores it in the log in the same transaction as the batch (no
//     extra fsync on the request path). A re-chained log no longer matches
//     the checkpoints signed before the rewrite; forging new ones needs the
//     key, which lives outside the data directory (Options.KeyFile refuses a
//     key beside the log and one group or others can read). Checkpoints are
//     publicly verifiable: an auditor needs only the public key.
//  3. The exported head (Options.HeadFile, Options.HeadSink). The newest
//     signed checkpoint is also written, after it is durable, to a file
//     outside the log (atomically) and handed to a sink (syslog, a SIEM).
//     A log cut back to before its exported head — tail truncation, or a
//     restored backup — is caught: the log is shorter than the head, or its
//     entry at the head's sequence differs.
//
// What remains: entries after the newest exported head (at most
// CheckpointEvery entries or CheckpointInterval of activity) are protected
// only by the unkeyed chain; an attacker who holds the key can sign anything;
// one who can replace both the log and the head file with older copies is
// caught only by a head copy held elsewhere (HeadSink). Open checks the
// chain from the newest checkpoint (fast start: at most one checkpoint
// interval of entries) and refuses a log that does not verify or is behind
// its exported head, unless Options.AcceptUnverified — then it records that
// decision in the log itself. Verify walks everything.
//
// Why checkpoints rather than a keyed (HMAC) chain: an HMAC chain detects a
// rewrite at every entry, but verifying it needs the secret, so everyone who
// verifies could also forge, and the key would have to sit with every
// auditor; signatures let anyone with the public key verify and keep the
// signing key on the one node that writes. The price is the unanchored tail
// described above, which the cadence bounds.
//
// # Forwarders
//
// A Forwarder (Store.Forward) delivers committed entries to another system —
// the practice's own trail, a SIEM — from a durable named cursor, off the
// request path, at least once, in log order, retrying with backoff; see
// forward.go.
package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/internal/boltmem"
)

// Bucket names. Every bucket the package owns starts with "audit_".
var (
	bucketLog        = []byte("audit_log")        // seq (big-endian uint64) -> hash(32) || canonical record
	bucketMeta       = []byte("audit_meta")       // "head" -> seq(8) || hash(32) || recorded unix nanos(8); "cursor/<name>" -> seq(8)
	bucketPatient    = []byte("audit_by_patient") // patient id 0x00 seq -> nil
	bucketAgent      = []byte("audit_by_agent")   // client id | practitioner | ODS 0x00 seq -> nil
	bucketCheckpoint = []byte("audit_checkpoint") // seq -> signed head line (Head.MarshalText)
	// checkpoints beyond the log's end when an operator overrode a failed
	// check (AcceptUnverified): kept as evidence, no longer verified
	bucketSuperseded = []byte("audit_checkpoint_superseded")
	keyHead          = []byte("head")
	// keyIndexed -> seq(8): the patient and agent indexes cover the log up
	// to seq; the entries after it are indexed later (deferredIndex).
	keyIndexed = []byte("indexed")
)

// The patient and agent indexes are written behind the log (deferred
// index): a commit writes its entries and the head, and the index keys of
// the entries since the last index write wait in memory until
// indexEvery has passed or indexMaxKeys are waiting, then go in with that
// commit, sorted, in the same transaction as the "indexed" mark. The
// index keys of a patient are spread over the whole index, so writing
// them per commit cost a leaf page per entry (copied, materialised and
// written, most of a commit's work); written in groups, entries of the
// same leaves share it. Nothing is lost or hidden meanwhile: a query by
// patient or agent reads the log after the mark itself (at most one
// group), and Open indexes whatever a crash left after the mark.
const (
	indexEvery   = 250 * time.Millisecond
	indexMaxKeys = 4096
)

// idxKey is one index key waiting to be written.
type idxKey struct {
	agent bool // the agent index; else the patient index
	key   []byte
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: store closed")

// ErrReadOnly is returned by Record on a Store opened with Options.ReadOnly.
var ErrReadOnly = errors.New("audit: store is read-only")

// Sink receives committed audit events.
//
// Deprecated: nothing calls it. Use a Forwarder (Store.Forward), which keeps
// a durable cursor and delivers Entries.
type Sink interface {
	Send(ctx context.Context, seq uint64, event []byte) error
}

// Checkpoint cadence defaults.
const (
	DefaultCheckpointEvery    = 1024
	DefaultCheckpointInterval = time.Second
)

// Options configures a Store. The zero value is usable (an unanchored log:
// chain only).
type Options struct {
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Logger receives write failures (never entry contents); defaults to slog.Default().
	Logger *slog.Logger
	// Node names this gpgate node in each entry (AuditEvent.source.site).
	Node string
	// MaxBatch caps entries per transaction; defaults to 4096.
	MaxBatch int
	// QueueSize is the depth of the commit queue; defaults to 4096.
	QueueSize int

	// Key signs checkpoints. Give Key or KeyFile, not both; with neither,
	// no checkpoints are written and Open checks only the chain's head.
	Key ed25519.PrivateKey
	// KeyFile is the audit key's file (LoadOrCreateKey: created 0600 on first
	// use, refused when group or others may read it). It must not be inside
	// the log's directory. With ReadOnly it is only read, and may be the
	// public key (PEM "PUBLIC KEY").
	KeyFile string
	// TrustedKeys are further public keys whose checkpoints verify (keys
	// used before a rotation). The current key is always trusted.
	TrustedKeys []ed25519.PublicKey
	// HeadFile is where the newest signed head is exported, atomically,
	// after each checkpoint is durable; Open refuses a log behind it.
	// Needs a key. Put it outside the data directory (e.g. beside the key).
	HeadFile string
	// HeadSink, when set, receives every signed head (syslog, SIEM).
	HeadSink HeadSink
	// CheckpointEvery is the number of entries between checkpoints;
	// defaults to DefaultCheckpointEvery. 1 signs every commit.
	CheckpointEvery int
	// CheckpointInterval bounds the time an entry waits for a checkpoint;
	// defaults to DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// AcceptUnverified opens a log that fails the open-time check (broken
	// chain, bad checkpoint, behind its exported head) instead of refusing.
	// For an operator who has investigated: the failure is logged, recorded
	// as an entry (action "audit-override", the reason in its rule), and a
	// new checkpoint and head are signed over the log as it is. Checkpoints
	// beyond a truncated end are set aside (Verify warns of them); a broken
	// chain stays broken for Verify.
	AcceptUnverified bool
	// ReadOnly opens the file read-only (Open only): no writer, no
	// open-time check, Record fails with ErrReadOnly. For verify and export.
	ReadOnly bool
}

// Stats are counters for metrics and tests.
type Stats struct {
	Commits          uint64 // transactions that appended entries: one fsync'd batch each
	Entries          uint64 // entries appended through this Store
	LastBatch        int    // entries in the newest commit
	QueueDepth       int    // entries waiting for the writer
	Head             uint64 // sequence number of the newest entry
	Checkpoints      uint64 // checkpoints signed by this Store
	CheckpointOnly   uint64 // of which in a transaction of their own (idle timer, Open, Close)
	LastCheckpoint   uint64 // sequence number the newest checkpoint covers
	HeadExported     uint64 // sequence number of the newest head exported without error
	HeadExportErrors uint64
}

// Store is the audit log. It is safe for concurrent use.
type Store struct {
	db       *bbolt.DB
	ownDB    bool
	readOnly bool
	now      func() time.Time
	log      *slog.Logger
	node     string
	max      int
	queue    chan *pending
	mu       sync.RWMutex // held shared by Record while enqueueing, exclusively by Close
	closed   bool
	done     chan struct{} // closed when the writer has stopped

	closeOnce sync.Once
	closeErr  error

	key        ed25519.PrivateKey
	keys       []ed25519.PublicKey // trusted for verification; keys[0] is the current key's when there is one
	headFile   string
	headSink   HeadSink
	cpEvery    uint64
	cpInterval time.Duration
	exportCh   chan Head // newest head to export; capacity 1, newest wins
	exportDone chan struct{}

	subMu sync.Mutex
	subs  map[chan struct{}]struct{} // woken after each entry commit
	fwds  map[*Forwarder]struct{}
	// recent holds the newest committed entries, decoded, so forwarders
	// keeping up with the log read them from memory, not back from the file.
	recent recentRing

	// writer state, owned by the writer goroutine after New returns
	head     uint64
	headHash [32]byte
	headTime time.Time
	cpSeq    uint64    // sequence number the newest checkpoint covers
	cpDue    bool      // the interval timer fired: checkpoint with the next commit
	idx      []idxKey  // index keys of the entries after the "indexed" mark
	idxAt    time.Time // when the indexes were last written

	st       Counters
	dequeued atomic.Uint64 // entries the writer has taken (tests)
}

// Gather is group commit's batching, shared by the stores: to batch
// (holding the entry the writer woke for) it adds whatever else is already
// queued, without waiting, up to max entries in all.
func Gather[T any](batch []T, queue <-chan T, max int) []T {
	for len(batch) < max {
		select {
		case q, ok := <-queue:
			if !ok {
				return batch
			}
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// Counters are a log store's running counts, for Stats (both stores keep
// the same ones).
type Counters struct {
	Commits, Entries, Checkpoints, CheckpointOnly, ExportErrors atomic.Uint64
	Head, LastCheckpoint, Exported                              atomic.Uint64
	LastBatch                                                   atomic.Int64
}

// Stats reads the counters, with the store's queue depth.
func (c *Counters) Stats(queueDepth int) Stats {
	return Stats{
		Commits: c.Commits.Load(), Entries: c.Entries.Load(), LastBatch: int(c.LastBatch.Load()),
		QueueDepth: queueDepth, Head: c.Head.Load(),
		Checkpoints: c.Checkpoints.Load(), CheckpointOnly: c.CheckpointOnly.Load(), LastCheckpoint: c.LastCheckpoint.Load(),
		HeadExported: c.Exported.Load(), HeadExportErrors: c.ExportErrors.Load(),
	}
}

type pending struct { // an entry waiting for the writer
	payload []byte
	// entry is the entry as decodeRecord reads it back from payload (nil:
	// decode payload when it is needed), for the recent ring.
	entry  *fhir.AuditEntry
	pid    string
	agents []string
	seq    uint64
	hash   [32]byte
	err    error
	done   chan struct{}
}

// Open opens (creating if needed) the bbolt file at path and returns a Store
// that closes it on Close.
func Open(path string, opt Options) (*Store, error) {
	bo := &bbolt.Options{Timeout: 5 * time.Second, ReadOnly: opt.ReadOnly}
	db, err := bbolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	s, err := New(db, opt)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.ownDB = true
	return s, nil
}

// New returns a Store over an already-open bbolt database, creating the
// audit_ buckets, and checks the log (see the package doc): it refuses one
// that does not verify unless Options.AcceptUnverified. The caller keeps
// ownership of db and closes it after Close. db must not be opened with
// NoSync. A read-only db gives a read-only Store.
func New(db *bbolt.DB, opt Options) (*Store, error) {
	if db.NoSync {
		return nil, errors.New("audit: refusing a bbolt database opened with NoSync")
	}
	s := &Store{db: db, now: opt.Now, log: opt.Logger, node: opt.Node, max: opt.MaxBatch,
		done: make(chan struct{}), readOnly: db.IsReadOnly(), headFile: opt.HeadFile, headSink: opt.HeadSink,
		subs: map[chan struct{}]struct{}{}, fwds: map[*Forwarder]struct{}{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = 4096
	}
	s.cpEvery = uint64(max(opt.CheckpointEvery, 0))
	if s.cpEvery == 0 {
		s.cpEvery = DefaultCheckpointEvery
	}
	s.cpInterval = opt.CheckpointInterval
	if s.cpInterval <= 0 {
		s.cpInterval = DefaultCheckpointInterval
	}
	if opt.KeyFile != "" && !s.readOnly && within(opt.KeyFile, filepath.Dir(db.Path())) {
		return nil, fmt.Errorf("audit: the audit key %s is in the log's directory: keep it elsewhere (whoever can rewrite the log must not be able to read the key)", opt.KeyFile)
	}
	var err error
	if s.key, s.keys, err = SigningKeys(opt.Key, opt.KeyFile, opt.TrustedKeys, s.readOnly); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if s.headFile != "" && s.key == nil && !s.readOnly {
		return nil, errors.New("audit: Options.HeadFile needs an audit key (Key or KeyFile)")
	}
	if s.headFile != "" && !s.readOnly && within(s.headFile, filepath.Dir(db.Path())) {
		s.log.Warn("the exported audit head is in the log's directory: whoever can cut back the log can also remove or roll back the head there; keep it elsewhere")
	}
	if s.readOnly {
		close(s.done)
		return s, nil
	}
	qs := opt.QueueSize
	if qs <= 0 {
		qs = 4096
	}
	s.queue = make(chan *pending, qs)
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketLog, bucketMeta, bucketPatient, bucketAgent, bucketCheckpoint} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: create buckets: %w", err)
	}
	if err := s.openCheck(context.Background()); err != nil {
		if !opt.AcceptUnverified {
			return nil, fmt.Errorf("audit: refusing to open %s: %w (investigate with `gpgate audit verify`; an operator who has may open it anyway with the override, which records that it did)", db.Path(), err)
		}
		s.log.Error("audit log failed its open-time check; opening it anyway as the operator asked (AcceptUnverified)", "err", err)
		if err := s.override(err); err != nil {
			return nil, err
		}
	}
	if s.key != nil {
		if err := s.anchorAtOpen(); err != nil {
			return nil, err
		}
	}
	if err := s.indexTail(); err != nil {
		return nil, fmt.Errorf("audit: index the log: %w", err)
	}
	s.st.Head.Store(s.head)
	s.exportCh = make(chan Head, 1)
	s.exportDone = make(chan struct{})
	go s.exporter()
	go s.writer()
	return s, nil
}

// loadHead reads the chain head from the meta bucket.
func (s *Store) loadHead(tx *bbolt.Tx) error {
	h := tx.Bucket(bucketMeta).Get(keyHead)
	s.head, s.headHash, s.headTime = 0, [32]byte{}, time.Time{}
	if h == nil {
		if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
			return errors.New("the log has entries but no head record")
		}
		return nil
	}
	if len(h) != 48 {
		return fmt.Errorf("the head record is %d bytes, want 48", len(h))
	}
	s.head = binary.BigEndian.Uint64(h[:8])
	copy(s.headHash[:], h[8:40])
	s.headTime = time.Unix(0, int64(binary.BigEndian.Uint64(h[40:]))).UTC()
	return nil
}

// override resynchronises the writer with the log as it is (the last
// entry present, whatever the head record says), then records the
// operator's decision as an entry; commit signs a checkpoint with it.
func (s *Store) override(cause error) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		s.head, s.headHash, s.headTime = 0, [32]byte{}, time.Time{}
		k, v := tx.Bucket(bucketLog).Cursor().Last()
		if k != nil && len(k) == 8 {
			s.head = binary.BigEndian.Uint64(k)
			if len(v) >= 32 {
				copy(s.headHash[:], v[:32])
			}
			if len(v) > 32 {
				if _, rec, err := recordHead(v[32:]); err == nil {
					s.headTime = rec
				}
			}
		}
		// checkpoints beyond the end would refuse every later open
		cb := tx.Bucket(bucketCheckpoint)
		type kv struct{ k, v []byte }
		var beyond []kv
		c := cb.Cursor()
		for k, v := c.Seek(seqKey(s.head + 1)); k != nil; k, v = c.Next() {
			beyond = append(beyond, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		if len(beyond) > 0 {
			sb, err := tx.CreateBucketIfNotExists(bucketSuperseded)
			if err != nil {
				return err
			}
			for _, e := range beyond {
				if err := sb.Put(e.k, e.v); err != nil {
					return err
				}
				if err := cb.Delete(e.k); err != nil {
					return err
				}
			}
		}
		if ck, _ := cb.Cursor().Last(); len(ck) == 8 {
			s.cpSeq = binary.BigEndian.Uint64(ck)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: override: %w", err)
	}
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	payload, err := encodePayload(&fhir.AuditEntry{Time: s.now().UTC(), Action: "audit-override",
		Outcome: fhir.OutcomeError, Rule: "audit log opened despite a failed check: " + msg})
	if err != nil {
		return err
	}
	s.cpDue = true
	if err := s.commit([]*pending{{payload: payload}}); err != nil {
		return err
	}
	return nil
}

// anchorAtOpen signs a checkpoint over the log as found when it has none
// for its newest entry (a new log: seq 0; after a crash: the tail), and
// exports the newest head, so the head file exists and is current before
// the first Record.
func (s *Store) anchorAtOpen() error {
	var last Head
	var haveCP bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		if k, v := tx.Bucket(bucketCheckpoint).Cursor().Last(); k != nil {
			h, err := ParseHead(v)
			if err == nil && h.Seq == s.head && h.Hash == s.headHash {
				last, haveCP = h, true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveCP {
		h, err := s.checkpointNow()
		if err != nil {
			return err
		}
		last = h
	}
	s.cpSeq = last.Seq
	s.st.LastCheckpoint.Store(last.Seq)
	if s.headFile != "" {
		if err := WriteHeadFile(s.headFile, last); err != nil {
			return fmt.Errorf("audit: export head: %w", err)
		}
	}
	s.st.Exported.Store(last.Seq)
	if s.headSink != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.headSink.PublishHead(ctx, last); err != nil {
			s.st.ExportErrors.Add(1)
			s.log.Error("audit head sink failed", "seq", last.Seq, "err", err)
		}
	}
	return nil
}

// Record appends e to the log and returns once it is durable (committed and
// fsynced), or with an error: then the caller must fail closed. If ctx ends
// while Record waits it returns ctx.Err(); the entry may still be committed,
// and an entry once committed stays. Record does not modify e.
func (s *Store) Record(ctx context.Context, e *fhir.AuditEntry) error {
	_, err := s.Append(ctx, e)
	return err
}

// Append is Record returning the committed entry's sequence number (its
// AuditEvent id is EventID(seq)).
func (s *Store) Append(ctx context.Context, e *fhir.AuditEntry) (uint64, error) {
	if e == nil {
		return 0, errors.New("audit: nil entry")
	}
	if s.readOnly {
		return 0, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := *e
	if n.PatientID == "" && n.NHS != "" {
		n.PatientID = fhir.PatientID(n.NHS)
	}
	payload, err := encodePayload(&n)
	if err != nil {
		return 0, fmt.Errorf("audit: encode entry: %w", err)
	}
	p := &pending{payload: payload, entry: asStored(&n), pid: n.PatientID, agents: agentsOf(&n), done: make(chan struct{})}

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case s.queue <- p:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return 0, ctx.Err()
	}
	select {
	case <-p.done:
		return p.seq, p.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Stats returns the Store's counters.
func (s *Store) Stats() Stats { return s.st.Stats(len(s.queue)) }

// ReleaseMapped drops the log's pages read through bbolt's memory map
// from the process (they stay in the page cache): the log only grows, and
// its forwarders and queries read it, so without this the process's
// resident set grows with the log (boltmem).
func (s *Store) ReleaseMapped() error { return boltmem.Release(s.db) }

// Close stops accepting entries, commits everything already queued, signs a
// final checkpoint and exports it, stops the forwarders (their cursors are
// saved) and, if the Store opened the database, closes it. Close is
// idempotent; every call returns once all of that is done.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.queue != nil {
			close(s.queue)
		}
		s.mu.Unlock()
		<-s.done
		if s.exportCh != nil {
			close(s.exportCh)
			<-s.exportDone
		}
		s.subMu.Lock()
		fwds := make([]*Forwarder, 0, len(s.fwds))
		for f := range s.fwds {
			fwds = append(fwds, f)
		}
		s.subMu.Unlock()
		for _, f := range fwds {
			f.Close()
		}
		if s.ownDB {
			s.closeErr = s.db.Close()
		}
	})
	return s.closeErr
}

// subscribe returns a channel that receives (without blocking the writer)
// after entry commits, and its cancel function.
func (s *Store) subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	s.subMu.Lock()
	s.subs[c] = struct{}{}
	s.subMu.Unlock()
	return c, func() {
		s.subMu.Lock()
		delete(s.subs, c)
		s.subMu.Unlock()
	}
}

func (s *Store) notify() {
	s.subMu.Lock()
	for c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	s.subMu.Unlock()
}

// writer is the one group-commit goroutine. With a key it also keeps the
// checkpoint cadence: a checkpoint rides in the commit that reaches
// CheckpointEvery entries, or in the first commit after the interval timer
// fires; an idle log gets one in a transaction of its own.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*pending, 0, 64)
	var tick *time.Timer
	var tickC <-chan time.Time
	for {
		select {
		case p, ok := <-s.queue:
			if !ok {
				if tick != nil {
					tick.Stop()
				}
				s.flushIndex() // logged; Open indexes what is left
				if s.key != nil && s.head > s.cpSeq {
					s.checkpointNow() //nolint:errcheck // logged; Close must finish
				}
				return
			}
			batch = Gather(append(batch[:0], p), s.queue, s.max)
			s.dequeued.Add(uint64(len(batch)))
			err := s.commit(batch)
			for _, q := range batch {
				q.err = err
				close(q.done)
			}
			if err == nil {
				s.recent.add(batch, s.headTime, s.node) // after the callers are released
				s.notify()
			}
			clear(batch)
		case <-tickC:
			tickC = nil
			if s.head > s.cpSeq {
				s.cpDue = true
				if len(s.queue) == 0 {
					s.checkpointNow() //nolint:errcheck // logged; retried on the next commit
				}
			}
		}
		if s.key != nil && tickC == nil && s.head > s.cpSeq {
			if tick == nil {
				tick = time.NewTimer(s.cpInterval)
			} else {
				tick.Reset(s.cpInterval)
			}
			tickC = tick.C
		}
	}
}

// commit writes batch in one transaction, with a signed checkpoint when one
// is due. On failure nothing is written and the in-memory head is reloaded
// from disk.
func (s *Store) commit(batch []*pending) error {
	now := s.clock()
	seq, prev := s.head, s.headHash
	buf := make([]byte, 0, 1024)
	var cp *Head
	var added []idxKey // this batch's index keys
	flush := false     // write the waiting index keys with this commit
	err := s.db.Update(func(tx *bbolt.Tx) error {
		lb, mb := tx.Bucket(bucketLog), tx.Bucket(bucketMeta)
		// The log only appends: pages split full, not half full (bbolt's
		// default, for random inserts, left the log's pages half empty:
		// twice the file, the page cache and the pages written).
		lb.FillPercent = 1.0
		added = added[:0]
		for _, p := range batch {
			seq++
			buf = frame(append(buf[:0], prev[:]...), seq, now, s.node, p.payload)
			h := sha256.Sum256(buf)       // prev || canonical bytes
			val := make([]byte, len(buf)) // hash || canonical bytes; bbolt keeps it until commit
			copy(val, h[:])
			copy(val[32:], buf[32:])
			if err := lb.Put(seqKey(seq), val); err != nil {
				return err
			}
			added = appendIndexKeys(added, p.pid, p.agents, seq)
			p.seq, p.hash, prev = seq, h, h
		}
		flush = len(s.idx)+len(added) >= indexMaxKeys || now.Sub(s.idxAt) >= indexEvery
		if flush {
			if err := writeIndex(tx, seq, s.idx, added); err != nil {
				return err
			}
		}
		head := make([]byte, 48)
		binary.BigEndian.PutUint64(head, seq)
		copy(head[8:], prev[:])
		binary.BigEndian.PutUint64(head[40:], uint64(now.UnixNano()))
		if err := mb.Put(keyHead, head); err != nil {
			return err
		}
		if s.key != nil && (s.cpDue || seq-s.cpSeq >= s.cpEvery) {
			h := signHead(s.key, seq, prev, now, s.node)
			cp = &h
			line, _ := h.MarshalText()
			return tx.Bucket(bucketCheckpoint).Put(seqKey(seq), line)
		}
		return nil
	})
	if err != nil {
		s.log.Error("audit commit failed", "entries", len(batch), "err", err)
		if lerr := s.db.View(s.loadHead); lerr != nil {
			s.log.Error("audit head reload failed", "err", lerr)
		}
		return fmt.Errorf("audit: commit: %w", err)
	}
	s.head, s.headHash, s.headTime = seq, prev, now
	if flush {
		s.idx, s.idxAt = s.idx[:0], now
	} else {
		s.idx = append(s.idx, added...)
	}
	s.st.Commits.Add(1)
	s.st.Entries.Add(uint64(len(batch)))
	s.st.LastBatch.Store(int64(len(batch)))
	s.st.Head.Store(seq)
	if cp != nil {
		s.checkpointed(*cp)
	}
	return nil
}

// clock is now, never before the newest entry: recorded times never go
// backwards along the log.
func (s *Store) clock() time.Time {
	now := s.now().UTC()
	if now.Before(s.headTime) {
		now = s.headTime
	}
	return now
}

// checkpointNow signs the current head in a transaction of its own.
func (s *Store) checkpointNow() (Head, error) {
	h := signHead(s.key, s.head, s.headHash, s.clock(), s.node)
	line, _ := h.MarshalText()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCheckpoint).Put(seqKey(h.Seq), line)
	})
	if err != nil {
		s.log.Error("audit checkpoint failed", "seq", h.Seq, "err", err)
		return Head{}, fmt.Errorf("audit: checkpoint: %w", err)
	}
	s.st.CheckpointOnly.Add(1)
	s.checkpointed(h)
	return h, nil
}

// checkpointed notes a durable checkpoint and hands it to the exporter,
// replacing any head still waiting there (the newest wins).
func (s *Store) checkpointed(h Head) {
	s.cpSeq, s.cpDue = h.Seq, false
	s.st.Checkpoints.Add(1)
	s.st.LastCheckpoint.Store(h.Seq)
	if s.exportCh == nil { // at Open: anchorAtOpen exports
		return
	}
	select {
	case s.exportCh <- h:
	default:
		select {
		case <-s.exportCh:
		default:
		}
		s.exportCh <- h // the writer is the only sender: there is room now
	}
}

// exporter writes each signed head to HeadFile and HeadSink, off the
// writer goroutine: a slow disk or sink never holds up a commit.
func (s *Store) exporter() {
	defer close(s.exportDone)
	for h := range s.exportCh {
		ok := true
		if s.headFile != "" {
			if err := WriteHeadFile(s.headFile, h); err != nil {
				ok = false
				s.st.ExportErrors.Add(1)
				s.log.Error("audit head export failed", "seq", h.Seq, "err", err)
			}
		}
		if s.headSink != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.headSink.PublishHead(ctx, h); err != nil {
				ok = false
				s.st.ExportErrors.Add(1)
				s.log.Error("audit head sink failed", "seq", h.Seq, "err", err)
			}
			cancel()
		}
		if ok {
			s.st.Exported.Store(h.Seq)
		}
	}
}

// indexKey is id 0x00 seq: ids never contain NUL, so one id's keys are
// contiguous and in log order.
// agentsOf is who an entry indexes under: the client, the clinician and
// the organisation, each once.
func agentsOf(e *fhir.AuditEntry) []string {
	var out []string
	for _, a := range []string{e.ClientID, e.Practitioner, e.ConsumerODS} {
		if a != "" && !contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func appendIndexKeys(dst []idxKey, pid string, agents []string, seq uint64) []idxKey {
	if pid != "" {
		dst = append(dst, idxKey{key: indexKey(pid, seq)})
	}
	for _, a := range agents {
		dst = append(dst, idxKey{agent: true, key: indexKey(a, seq)})
	}
	return dst
}

// writeIndex writes index keys (sorted: neighbours share leaf pages) and
// marks the indexes complete through seq, in tx.
func writeIndex(tx *bbolt.Tx, through uint64, lists ...[]idxKey) error {
	var all []idxKey
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortFunc(all, func(a, b idxKey) int {
		if a.agent != b.agent {
			if a.agent {
				return 1
			}
			return -1
		}
		return bytes.Compare(a.key, b.key)
	})
	ib, ab := tx.Bucket(bucketPatient), tx.Bucket(bucketAgent)
	for _, k := range all {
		b := ib
		if k.agent {
			b = ab
		}
		if err := b.Put(k.key, nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyIndexed, seqKey(through))
}

// flushIndex writes the waiting index keys in a transaction of their own
// (at Close).
func (s *Store) flushIndex() {
	if len(s.idx) == 0 {
		return
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error { return writeIndex(tx, s.head, s.idx) }); err != nil {
		s.log.Error("audit index write failed; the next open indexes the entries", "err", err)
		return
	}
	s.idx = s.idx[:0]
}

// indexedThrough is the log's "indexed" mark in tx: the indexes cover the
// entries up to it. A log without the mark (written before the indexes
// were deferred) was indexed entry by entry: all of it.
func indexedThrough(tx *bbolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyIndexed); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	if k, _ := tx.Bucket(bucketLog).Cursor().Last(); len(k) == 8 {
		return binary.BigEndian.Uint64(k)
	}
	return 0
}

// indexTail indexes the entries after the "indexed" mark (what a crash
// left unindexed) and sets the mark to the head, at Open.
func (s *Store) indexTail() error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		through := indexedThrough(tx)
		lb := tx.Bucket(bucketLog)
		var keys []idxKey
		c := lb.Cursor()
		for k, v := c.Seek(seqKey(through + 1)); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			e, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			keys = appendIndexKeys(keys, e.PatientID, agentsOf(&e.AuditEntry), binary.BigEndian.Uint64(k))
		}
		last := through
		if k, _ := c.Last(); len(k) == 8 {
			last = max(last, binary.BigEndian.Uint64(k))
		}
		if len(keys) > 0 {
			s.log.Info("audit: indexing the entries a stop left unindexed", "after", through, "keys", len(keys))
		}
		return writeIndex(tx, last, keys)
	})
}

func indexKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}
