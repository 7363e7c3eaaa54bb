// Package audit is gpgate's audit trail: every token issued, every consent
// recorded and every read or search, granted or denied, is appended to a
// hash-chained, sequence-numbered log in bbolt before any data goes out.
//
// Writes go through one group-commit goroutine: Record enqueues the entry and
// waits; the writer takes everything queued, commits it in one bbolt Update
// (one fsync for the batch) and releases every waiter. Entries render as R4
// AuditEvents (UK Core profile, IHE BALP shapes) with Render.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// Bucket names. Every bucket the package owns starts with "audit_".
var (
	bucketLog     = []byte("audit_log")        // seq (big-endian uint64) -> hash(32) || canonical record
	bucketMeta    = []byte("audit_meta")       // "head" -> seq(8) || hash(32) || recorded unix nanos(8)
	bucketPatient = []byte("audit_by_patient") // patient id 0x00 seq -> nil
	bucketAgent   = []byte("audit_by_agent")   // client id | practitioner | ODS 0x00 seq -> nil
	keyHead       = []byte("head")
)

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: store closed")

// Sink receives committed audit events, e.g. a forwarder to a regional SIEM
// or a national audit service. A forwarder keeps its own cursor and reads
// with Store.Scan from the last sequence it delivered, so a slow or failed
// sink never holds up Record.
type Sink interface {
	Send(ctx context.Context, seq uint64, event []byte) error
}

// Options configures a Store. The zero value is usable.
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
}

// Store is the audit log. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	ownDB  bool
	now    func() time.Time
	log    *slog.Logger
	node   string
	max    int
	queue  chan *pending
	mu     sync.RWMutex // held shared by Record while enqueueing, exclusively by Close
	closed bool
	done   chan struct{}

	// writer state, owned by the writer goroutine after New returns
	head     uint64
	headHash [32]byte
	headTime time.Time
}

type pending struct {
	payload []byte
	pid     string
	agents  []string
	seq     uint64
	err     error
	done    chan struct{}
}

// Open opens (creating if needed) the bbolt file at path and returns a Store
// that closes it on Close.
func Open(path string, opt Options) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
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
// audit_ buckets. The caller keeps ownership of db and closes it after Close.
// db must not be opened with NoSync.
func New(db *bbolt.DB, opt Options) (*Store, error) {
	if db.NoSync {
		return nil, errors.New("audit: refusing a bbolt database opened with NoSync")
	}
	s := &Store{db: db, now: opt.Now, log: opt.Logger, node: opt.Node, max: opt.MaxBatch, done: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = 4096
	}
	qs := opt.QueueSize
	if qs <= 0 {
		qs = 4096
	}
	s.queue = make(chan *pending, qs)
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketLog, bucketMeta, bucketPatient, bucketAgent} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: create buckets: %w", err)
	}
	if err := s.loadHead(); err != nil {
		return nil, err
	}
	go s.writer()
	return s, nil
}

// loadHead reads the chain head from the meta bucket.
func (s *Store) loadHead() error {
	return s.db.View(func(tx *bbolt.Tx) error {
		h := tx.Bucket(bucketMeta).Get(keyHead)
		s.head, s.headHash, s.headTime = 0, [32]byte{}, time.Time{}
		if h == nil {
			if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
				return errors.New("audit: log has entries but no head record")
			}
			return nil
		}
		if len(h) != 48 {
			return fmt.Errorf("audit: head record is %d bytes", len(h))
		}
		s.head = binary.BigEndian.Uint64(h[:8])
		copy(s.headHash[:], h[8:40])
		s.headTime = time.Unix(0, int64(binary.BigEndian.Uint64(h[40:]))).UTC()
		return nil
	})
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
	p := &pending{payload: payload, pid: n.PatientID, done: make(chan struct{})}
	for _, a := range []string{n.ClientID, n.Practitioner, n.ConsumerODS} {
		if a != "" && !contains(p.agents, a) {
			p.agents = append(p.agents, a)
		}
	}

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

// Close stops accepting entries, commits everything already queued and, if
// the Store opened the database, closes it.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	<-s.done
	if s.ownDB {
		return s.db.Close()
	}
	return nil
}

// writer is the one group-commit goroutine.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*pending, 0, 64)
	for p := range s.queue {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < s.max {
			select {
			case q, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		err := s.commit(batch)
		for _, q := range batch {
			q.err = err
			close(q.done)
		}
		clear(batch)
	}
}

// commit writes batch in one transaction. On failure nothing is written and
// the in-memory head is reloaded from disk.
func (s *Store) commit(batch []*pending) error {
	now := s.now().UTC()
	if now.Before(s.headTime) {
		now = s.headTime // recorded never goes backwards along the log
	}
	seq, prev := s.head, s.headHash
	buf := make([]byte, 0, 1024)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		lb, ib, ab, mb := tx.Bucket(bucketLog), tx.Bucket(bucketPatient), tx.Bucket(bucketAgent), tx.Bucket(bucketMeta)
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
			if p.pid != "" {
				if err := ib.Put(indexKey(p.pid, seq), nil); err != nil {
					return err
				}
			}
			for _, a := range p.agents {
				if err := ab.Put(indexKey(a, seq), nil); err != nil {
					return err
				}
			}
			p.seq, prev = seq, h
		}
		head := make([]byte, 48)
		binary.BigEndian.PutUint64(head, seq)
		copy(head[8:], prev[:])
		binary.BigEndian.PutUint64(head[40:], uint64(now.UnixNano()))
		return mb.Put(keyHead, head)
	})
	if err != nil {
		s.log.Error("audit commit failed", "entries", len(batch), "err", err)
		if lerr := s.loadHead(); lerr != nil {
			s.log.Error("audit head reload failed", "err", lerr)
		}
		return fmt.Errorf("audit: commit: %w", err)
	}
	s.head, s.headHash, s.headTime = seq, prev, now
	return nil
}

// indexKey is id 0x00 seq: ids never contain NUL, so one id's keys are
// contiguous and in log order.
func indexKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}
