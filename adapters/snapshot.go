package adapters

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Versioner is the optional cheap check of a source's current record
// version ("" when it cannot tell). A source that has one promises that its
// Record.Version is record-level (the same whatever areas are asked). The
// snapshot cache asks it before serving a snapshot.
type Versioner interface {
	Version(ctx context.Context, nhs fhir.NHSNumber) (string, error)
}

// versionProvider is a wrapper that passes on the Versioner behind it (nil
// when there is none), so wrapping never invents or hides one.
type versionProvider interface {
	Versioner() Versioner
}

func versionerOf(src Source) Versioner {
	if vp, ok := src.(versionProvider); ok {
		return vp.Versioner()
	}
	if v, ok := src.(Versioner); ok {
		return v
	}
	return nil
}

// SnapshotOptions configures a snapshot cache. Zero fields take the defaults.
type SnapshotOptions struct {
	MaxBytes int64         // bound on the sum of cached resources' JSON sizes (default 64 MiB)
	TTL      time.Duration // how long a snapshot answers (default 30s)
	// PartialTTL is how long a partial answer (a record with an area left
	// out: a WarnAreaUnavailable warning) answers: long enough to page
	// through it, short enough that the next look tries the practice again
	// (default 5s, at most TTL).
	PartialTTL time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Snapshots keeps short-lived snapshots of records fetched from live
// practices, so paging through one answer ($everything, a search) reads the
// practice once. A snapshot is keyed by practice, NHS number and the areas
// asked (the areas already reflect the caller's decision), lives TTL, and
// the whole cache is bounded by the bytes of the resources it holds (least
// recently used first out). A snapshot is never served across a version
// change gpgate knows about: a source that is a Versioner (its versions are
// record-level) is asked before a snapshot is served, and a fetch that
// returns another version drops the patient's older snapshots of any areas;
// without one, a refetch of the same key replaces its snapshot and TTL
// bounds the staleness. Concurrent identical
// fetches share one call to the practice.
type Snapshots struct {
	opt SnapshotOptions

	mu       sync.Mutex
	lru      *list.List // of *snapEntry, front = most recent
	entries  map[snapKey]*list.Element
	patients map[patKey]map[fhir.Areas]*list.Element // the same elements, by patient
	bytes    int64
	inflight map[snapKey]*snapCall
}

type snapKey struct {
	ods   string
	nhs   fhir.NHSNumber
	areas fhir.Areas
}

type patKey struct {
	ods string
	nhs fhir.NHSNumber
}

type snapEntry struct {
	key     snapKey
	rec     *fhir.Record
	size    int64
	expires time.Time
}

type snapCall struct {
	done chan struct{}
	rec  *fhir.Record
	err  error
}

// NewSnapshots returns an empty cache.
func NewSnapshots(o SnapshotOptions) *Snapshots {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.TTL <= 0 {
		o.TTL = 30 * time.Second
	}
	if o.PartialTTL <= 0 {
		o.PartialTTL = 5 * time.Second
	}
	o.PartialTTL = min(o.PartialTTL, o.TTL)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Snapshots{opt: o, lru: list.New(), entries: map[snapKey]*list.Element{}, patients: map[patKey]map[fhir.Areas]*list.Element{}, inflight: map[snapKey]*snapCall{}}
}

// Wrap returns the source of practice ods behind the cache.
func (s *Snapshots) Wrap(ods string, src Source) *SnapshotSource {
	return &SnapshotSource{s: s, ods: ods, src: src}
}

// Stats reports the number of snapshots and the bytes they hold.
func (s *Snapshots) Stats() (entries int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len(), s.bytes
}

// Invalidate drops every snapshot of the patient at the practice (a source
// that learns of a change out of band calls it).
func (s *Snapshots) Invalidate(ods string, nhs fhir.NHSNumber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropPatient(ods, nhs, "")
}

// dropPatient removes the patient's snapshots whose version is not keep
// (all of them when keep is ""). Callers hold mu.
func (s *Snapshots) dropPatient(ods string, nhs fhir.NHSNumber, keep string) {
	for _, el := range s.patients[patKey{ods, nhs}] {
		if keep != "" && el.Value.(*snapEntry).rec.Version == keep {
			continue
		}
		s.remove(el)
	}
}

func (s *Snapshots) remove(el *list.Element) {
	e := el.Value.(*snapEntry)
	s.lru.Remove(el)
	delete(s.entries, e.key)
	pk := patKey{e.key.ods, e.key.nhs}
	delete(s.patients[pk], e.key.areas)
	if len(s.patients[pk]) == 0 {
		delete(s.patients, pk)
	}
	s.bytes -= e.size
}

// get returns a live snapshot, or nil.
func (s *Snapshots) get(k snapKey) *fhir.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.entries[k]
	if !ok {
		return nil
	}
	e := el.Value.(*snapEntry)
	if !s.opt.Now().Before(e.expires) {
		s.remove(el)
		return nil
	}
	s.lru.MoveToFront(el)
	return e.rec
}

func recordBytes(r *fhir.Record) int64 {
	var n int64
	for _, x := range r.Resources {
		n += int64(len(x.JSON))
	}
	return n
}

// put stores a snapshot, dropping the least recently used ones beyond the
// byte bound. When the source's versions are record-level (it is a
// Versioner), the patient's snapshots of other versions go too, whatever
// areas they hold; otherwise a version may depend on the areas asked, and
// only the snapshot of the same key is replaced.
func (s *Snapshots) put(k snapKey, rec *fhir.Record, recordLevel bool) {
	size := recordBytes(rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if recordLevel && rec.Version != "" {
		s.dropPatient(k.ods, k.nhs, rec.Version)
	}
	if el, ok := s.entries[k]; ok {
		s.remove(el)
	}
	if size > s.opt.MaxBytes {
		return // larger than the whole cache: never held
	}
	for s.bytes+size > s.opt.MaxBytes && s.lru.Len() > 0 {
		s.remove(s.lru.Back())
	}
	ttl := s.opt.TTL
	if partial(rec) {
		ttl = s.opt.PartialTTL
	}
	e := &snapEntry{key: k, rec: rec, size: size, expires: s.opt.Now().Add(ttl)}
	el := s.lru.PushFront(e)
	s.entries[k] = el
	pk := patKey{k.ods, k.nhs}
	if s.patients[pk] == nil {
		s.patients[pk] = map[fhir.Areas]*list.Element{}
	}
	s.patients[pk][k.areas] = el
	s.bytes += size
}

// partial reports whether a source left an area out of the record.
func partial(r *fhir.Record) bool {
	for _, w := range r.Warnings {
		if w.Code == fhir.WarnAreaUnavailable {
			return true
		}
	}
	return false
}

// share returns a copy of the Record whose slices the caller may change
// (the Resources themselves are immutable and shared).
func share(r *fhir.Record) *fhir.Record {
	cp := *r
	cp.Resources = slices.Clone(r.Resources)
	cp.Warnings = slices.Clone(r.Warnings)
	return &cp
}

// SnapshotSource is one practice's source behind the snapshot cache.
type SnapshotSource struct {
	s   *Snapshots
	ods string
	src Source
}

// Record serves a live snapshot or fetches (once for concurrent callers).
func (c *SnapshotSource) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	k := snapKey{c.ods, nhs, areas}
	if rec := c.s.get(k); rec != nil {
		if c.fresh(ctx, nhs, rec) {
			return share(rec), nil
		}
		c.s.Invalidate(c.ods, nhs)
	}
	for {
		c.s.mu.Lock()
		call, waiting := c.s.inflight[k]
		if !waiting {
			call = &snapCall{done: make(chan struct{})}
			c.s.inflight[k] = call
		}
		c.s.mu.Unlock()
		if !waiting {
			return c.lead(ctx, k, call)
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if call.err == nil {
			return share(call.rec), nil
		}
		// The leader's own caller went away: that says nothing about ours.
		if errors.Is(call.err, context.Canceled) && ctx.Err() == nil {
			continue
		}
		return nil, call.err
	}
}

func (c *SnapshotSource) lead(ctx context.Context, k snapKey, call *snapCall) (*fhir.Record, error) {
	defer func() {
		c.s.mu.Lock()
		delete(c.s.inflight, k)
		c.s.mu.Unlock()
		close(call.done)
	}()
	rec, err := c.src.Record(ctx, k.nhs, k.areas)
	if err != nil {
		call.err = err
		return nil, err
	}
	c.s.put(k, rec, versionerOf(c.src) != nil)
	call.rec = rec
	return share(rec), nil
}

// fresh asks a Versioner source whether the snapshot is still current; a
// failing check serves the snapshot (its TTL bounds the staleness).
func (c *SnapshotSource) fresh(ctx context.Context, nhs fhir.NHSNumber, rec *fhir.Record) bool {
	v := versionerOf(c.src)
	if v == nil || rec.Version == "" {
		return true
	}
	cur, err := v.Version(ctx, nhs)
	if err != nil || cur == "" {
		return true
	}
	return cur == rec.Version
}

// Versioner passes on the inner source's version check, or nil.
func (c *SnapshotSource) Versioner() Versioner { return versionerOf(c.src) }

// RecordAccess forwards to the inner source when it records accesses.
func (c *SnapshotSource) RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error {
	if ar, ok := c.src.(AccessRecorder); ok {
		return ar.RecordAccess(ctx, nhs, e)
	}
	return nil
}
