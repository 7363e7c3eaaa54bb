package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// accessWriter writes the practice trail behind its callers, in groups:
// RecordAccess checks the patient, queues the access and returns; one
// goroutine writes everything queued in one transaction with one fsync,
// then everything queued during that commit in the next, and so on. Woken
// by a first access, it lingers (accessLinger, 250 ms) before writing, so a
// group gathers what arrives meanwhile (a patient looked at again within it
// costs no page of its own): nobody waits on the trail (it is off the
// request path), and each fsync of records.db is CPU the requests lack. The caller
// of RecordAccess, the practice trail, hands accesses over one at a time,
// so only a queue lets them share an fsync: one per access cost ~a third
// of the server's CPU under load and could not keep up.
//
// What it guarantees: an access RecordAccess accepted is written before
// Close returns, or by Flush; while a write fails, the group is retried
// and RecordAccess refuses new accesses with the error (so the caller
// retries them); the queue is bounded (RecordAccess waits for room).
type accessWriter struct {
	s *Store

	mu        sync.Mutex
	cond      *sync.Cond // queue, committed, err or closed changed
	queue     []*pendingAccess
	queued    uint64 // accesses ever queued
	committed uint64 // accesses ever written (or dropped at Close)
	commits   uint64 // transactions that wrote accesses
	err       error  // the last write's failure, until one succeeds
	closed    bool
	wake      chan struct{}
	stopped   chan struct{}
	retry     time.Duration
	linger    time.Duration
}

type pendingAccess struct {
	ods string
	nhs fhir.NHSNumber
	v   []byte
}

const (
	accessLinger    = 250 * time.Millisecond
	maxAccessBatch  = 4096  // accesses per transaction
	maxAccessQueued = 65536 // accesses waiting
)

var errStoreClosed = errors.New("the store is closed")

func newAccessWriter(s *Store) *accessWriter {
	w := &accessWriter{s: s, wake: make(chan struct{}, 1), stopped: make(chan struct{}), retry: 100 * time.Millisecond, linger: accessLinger}
	w.cond = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// write queues one access (the patient is checked by the caller).
func (w *accessWriter) write(ctx context.Context, ods string, nhs fhir.NHSNumber, v []byte) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.closed && w.err == nil && len(w.queue) >= maxAccessQueued && ctx.Err() == nil {
		w.cond.Wait()
	}
	switch {
	case w.closed:
		return errStoreClosed
	case w.err != nil:
		return w.err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	w.queue = append(w.queue, &pendingAccess{ods: ods, nhs: nhs, v: v})
	w.queued++
	select { // under mu: close cannot have closed wake
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// flush waits until every access queued before the call is written.
func (w *accessWriter) flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	target := w.queued
	for w.committed < target && ctx.Err() == nil && !w.closed {
		if w.err != nil {
			return w.err
		}
		w.cond.Wait()
	}
	if w.committed < target {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errStoreClosed
	}
	return nil
}

func (w *accessWriter) run() {
	defer close(w.stopped)
	for range w.wake {
		w.mu.Lock()
		closed := w.closed
		w.mu.Unlock()
		if !closed && w.linger > 0 {
			time.Sleep(w.linger) // Close waits at most this long
		}
		for {
			w.mu.Lock()
			n := min(len(w.queue), maxAccessBatch)
			batch := w.queue[:n:n]
			closed := w.closed
			w.mu.Unlock()
			if n == 0 {
				if closed {
					return
				}
				break
			}
			err := w.commit(batch)
			w.mu.Lock()
			if err == nil {
				w.commits++
			}
			if err == nil || closed {
				// Written; or, at Close, the one last try failed: dropped.
				w.queue = w.queue[n:]
				w.committed += uint64(n)
			}
			w.err = err
			w.cond.Broadcast()
			w.mu.Unlock()
			if err != nil && !closed {
				time.Sleep(w.retry)
			}
		}
	}
}

// commit writes a batch in one transaction.
func (w *accessWriter) commit(batch []*pendingAccess) error {
	return w.s.db.Update(func(tx *bolt.Tx) error {
		pats, acc := tx.Bucket(bucketPatients), tx.Bucket(bucketAccess)
		for _, p := range batch {
			// Checked when queued; a patient moved since is not written.
			pv := pats.Get([]byte(p.nhs))
			if ods, _, ok := parsePatientValue(pv); pv == nil || !ok || ods != p.ods {
				continue
			}
			b, err := acc.CreateBucketIfNotExists([]byte(p.nhs))
			if err != nil {
				return err
			}
			// A patient's trail only appends (sequence keys): its pages
			// split full, not half full.
			b.FillPercent = 1.0
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
}

// close writes what is queued (one try) and stops the writer.
func (w *accessWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	close(w.wake)
	<-w.stopped
}
