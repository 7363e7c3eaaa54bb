package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// accessWriter group-commits practice-trail accesses: one goroutine writes
// every access queued while the previous transaction was committing in one
// transaction, with one fsync, and then tells each caller. A lone caller
// pays one fsync, as before; N concurrent callers pay one between them. No
// timer: a batch is whatever queued during the last commit.
type accessWriter struct {
	s *Store

	mu      sync.Mutex
	queue   []*pendingAccess
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

type pendingAccess struct {
	ods  string
	nhs  fhir.NHSNumber
	v    []byte
	done chan error
}

// maxAccessBatch bounds one transaction.
const maxAccessBatch = 1024

var errStoreClosed = errors.New("the store is closed")

func newAccessWriter(s *Store) *accessWriter {
	w := &accessWriter{s: s, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go w.run()
	return w
}

// write queues one access and waits until it is durable (or refused: a
// patient the practice does not hold is PATIENT_NOT_FOUND). If ctx ends
// first, write returns ctx's error; the access may still be written.
func (w *accessWriter) write(ctx context.Context, ods string, nhs fhir.NHSNumber, v []byte) error {
	p := &pendingAccess{ods: ods, nhs: nhs, v: v, done: make(chan error, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errStoreClosed
	}
	w.queue = append(w.queue, p)
	select { // under mu: close cannot have closed wake
	case w.wake <- struct{}{}:
	default:
	}
	w.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *accessWriter) run() {
	defer close(w.stopped)
	for range w.wake {
		for {
			w.mu.Lock()
			n := min(len(w.queue), maxAccessBatch)
			batch := w.queue[:n:n]
			w.queue = w.queue[n:]
			closed := w.closed
			w.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			w.commit(batch)
		}
	}
}

// commit writes a batch in one transaction. An access to a patient the
// practice does not hold is refused alone; a failed transaction fails
// every access of the batch.
func (w *accessWriter) commit(batch []*pendingAccess) {
	errs := make([]error, len(batch))
	err := w.s.db.Update(func(tx *bolt.Tx) error {
		pats, acc := tx.Bucket(bucketPatients), tx.Bucket(bucketAccess)
		for i, p := range batch {
			errs[i] = nil
			pv := pats.Get([]byte(p.nhs))
			if ods, _, ok := parsePatientValue(pv); pv == nil || !ok || ods != p.ods {
				errs[i] = notFound()
				continue
			}
			b, err := acc.CreateBucketIfNotExists([]byte(p.nhs))
			if err != nil {
				return err
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], seq)
			if err := b.Put(k[:], p.v); err != nil {
				return err
			}
		}
		return nil
	})
	for i, p := range batch {
		if err != nil {
			p.done <- err
		} else {
			p.done <- errs[i]
		}
	}
}

// close writes what is queued and stops the writer.
func (w *accessWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.wake)
	<-w.stopped
}
