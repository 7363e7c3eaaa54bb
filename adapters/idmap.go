package adapters

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// MemIDMap is an in-memory IDMap: for tests and a single node whose id map
// may be forgotten at restart (the Patient?identifier= search fills it again).
type MemIDMap struct {
	mu sync.RWMutex
	m  map[string]fhir.NHSNumber
}

// NewMemIDMap returns an empty in-memory id map.
func NewMemIDMap() *MemIDMap { return &MemIDMap{m: map[string]fhir.NHSNumber{}} }

// Put records that id stands for nhs.
func (m *MemIDMap) Put(_ context.Context, id string, nhs fhir.NHSNumber) error {
	m.mu.Lock()
	m.m[id] = nhs
	m.mu.Unlock()
	return nil
}

// Get returns the NHS number of id, or "" when id is unknown.
func (m *MemIDMap) Get(_ context.Context, id string) (fhir.NHSNumber, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.m[id], nil
}

// BatchPutter is the optional batch form of IDMap.Put: many entries in one
// durable write (one transaction, one fsync). adapters/idmap implements it.
type BatchPutter interface {
	PutBatch(ctx context.Context, entries map[string]fhir.NHSNumber) error
}

// WriteBehindOptions configures a WriteBehind. Zero fields take the defaults.
type WriteBehindOptions struct {
	// Every is the longest an entry waits before it is written (default 1s);
	// entries that arrive meanwhile go in the same write.
	Every time.Duration
	// MaxMemory bounds the entries kept in memory for Get (default 100,000);
	// beyond it the oldest knowledge is dropped and Get asks the durable map.
	MaxMemory int
	Logger    *slog.Logger
}

// WriteBehind is an IDMap whose Put never waits on storage: it records the
// entry in memory (Get sees it at once) and a background goroutine writes
// what has accumulated to the durable map in one batch (BatchPutter) or
// entry by entry. An entry already known is not written again. A failed
// write is kept and tried again on the next round. Close writes what is
// pending.
//
// It keeps the cost of a request independent of the id map's storage: no
// caller ever waits for an fsync.
type WriteBehind struct {
	durable IDMap
	opt     WriteBehindOptions

	mu      sync.Mutex
	known   map[string]fhir.NHSNumber // written or pending
	pending map[string]fhir.NHSNumber
	flushMu sync.Mutex // one write at a time

	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// NewWriteBehind starts a write-behind map over durable.
func NewWriteBehind(durable IDMap, o WriteBehindOptions) *WriteBehind {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.MaxMemory <= 0 {
		o.MaxMemory = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &WriteBehind{durable: durable, opt: o, known: map[string]fhir.NHSNumber{}, pending: map[string]fhir.NHSNumber{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	return w
}

// Put records the entry in memory and queues it for the durable map; it
// does no I/O.
func (w *WriteBehind) Put(_ context.Context, id string, nhs fhir.NHSNumber) error {
	if id == "" || !fhir.ValidNHSNumber(string(nhs)) {
		return fmt.Errorf("id map: an id and a valid NHS number are required")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.known[id] == nhs {
		return nil
	}
	if len(w.known) >= w.opt.MaxMemory {
		w.known = maps.Clone(w.pending) // forget what is durable already
	}
	w.known[id] = nhs
	w.pending[id] = nhs
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}

// Get answers from memory, then from the durable map.
func (w *WriteBehind) Get(ctx context.Context, id string) (fhir.NHSNumber, error) {
	w.mu.Lock()
	n, ok := w.known[id]
	w.mu.Unlock()
	if ok {
		return n, nil
	}
	n, err := w.durable.Get(ctx, id)
	if err == nil && n != "" {
		w.mu.Lock()
		if len(w.known) < w.opt.MaxMemory {
			w.known[id] = n
		}
		w.mu.Unlock()
	}
	return n, err
}

// Pending is the number of entries not yet written.
func (w *WriteBehind) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

func (w *WriteBehind) loop() {
	defer close(w.stopped)
	t := time.NewTicker(w.opt.Every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
			// Let more entries gather before the write (at most Every).
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		case <-t.C:
		}
		if err := w.Flush(context.Background()); err != nil {
			w.opt.Logger.Warn("id map write failed; will retry", "err", err)
		}
	}
}

// Flush writes what is pending now.
func (w *WriteBehind) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.pending
	w.pending = map[string]fhir.NHSNumber{}
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := w.write(ctx, batch)
	if err != nil {
		w.mu.Lock()
		for id, n := range batch {
			if _, newer := w.pending[id]; !newer {
				w.pending[id] = n
			}
		}
		w.mu.Unlock()
	}
	return err
}

func (w *WriteBehind) write(ctx context.Context, batch map[string]fhir.NHSNumber) error {
	if bp, ok := w.durable.(BatchPutter); ok {
		return bp.PutBatch(ctx, batch)
	}
	for id, n := range batch {
		if err := w.durable.Put(ctx, id, n); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the background writer and writes what is pending.
func (w *WriteBehind) Close() error {
	w.once.Do(func() { close(w.stop) })
	<-w.stopped
	return w.Flush(context.Background())
}
