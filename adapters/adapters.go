// Package adapters holds the registry of practice source systems, keyed by
// practice ODS code, and finds which practice holds a patient's record: the
// patient index of sources that list their patients (embedded, gp2gp), then
// a Locator (PDS, adapters/pds) for live sources that cannot. Each kind of
// source lives in its own sub-package (embedded, gp2gp, gpconnect, fhirapi)
// and never imports this one: it only has to satisfy the small interfaces
// below.
//
// It also holds what every live source is wrapped in (Live): a Guard per
// practice (deadline, circuit breaker, bounded concurrency), a
// RetryTransport for idempotent reads, and the Snapshots cache so paging
// through one answer reads the practice once; and the IDMap through which
// a Patient id first seen by NHS number resolves later (adapters/idmap is
// the durable one, behind a WriteBehind so that no request waits on its
// writes; Locate writes nothing, Record remembers).
package adapters

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/gpgate/gpgate/fhir"
)

// Source is one practice system: it returns a patient's record, live.
// Resources outside areas may be left out; the Patient is always returned.
// A patient it does not hold is a fhir PATIENT_NOT_FOUND error.
type Source interface {
	Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error)
}

// Enumerator lists the patients a source holds, for the patient index.
type Enumerator interface {
	Patients(ctx context.Context) ([]fhir.NHSNumber, error)
}

// AccessRecorder is the optional hook through which a source writes an access
// into the GP system's own audit trail (as the MIG does).
type AccessRecorder interface {
	RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error
}

// Practice is a registered practice and its source.
type Practice struct {
	ODS    string
	Name   string
	Kind   string // embedded | gp2gp | gpconnect | fhirapi
	Source Source
}

// Locator names the practice a patient is registered with, for sources that
// cannot list their patients (live GP systems). pds.Client implements it.
// A patient it cannot place is a fhir PATIENT_NOT_FOUND error.
type Locator interface {
	Lookup(ctx context.Context, nhs fhir.NHSNumber) (ods string, err error)
}

// IDMap remembers which NHS number a Patient logical id stands for, so a
// Patient first found by NHS number can later be read by id without listing
// every patient. Get returns "" and no error for an id it has never seen.
// Implementations: NewMemIDMap (tests, single node) and adapters/idmap (bbolt).
type IDMap interface {
	Put(ctx context.Context, id string, nhs fhir.NHSNumber) error
	Get(ctx context.Context, id string) (fhir.NHSNumber, error)
}

// Registry maps practices to sources and patients to practices: first the
// patient index of the sources that list their patients (embedded store,
// extract folders), then the Locator (PDS) for everyone else.
type Registry struct {
	mu        sync.RWMutex
	practices map[string]*Practice
	byNHS     map[fhir.NHSNumber]string // NHS number -> practice ODS
	byID      map[string]fhir.NHSNumber // Patient logical id -> NHS number
	located   map[string]fhir.NHSNumber // Patient id -> NHS number placed by the Locator (memory only)
	locator   Locator
	ids       IDMap
	log       *slog.Logger
}

// RegistryOptions configures a Registry; the zero value is an index-only
// registry with an in-memory id map.
type RegistryOptions struct {
	Locator Locator // PDS; nil: only listed patients are found
	IDMap   IDMap   // nil: NewMemIDMap()
	Logger  *slog.Logger
}

// NewRegistry returns an empty registry that finds patients only through the
// patient index.
func NewRegistry() *Registry { return NewRegistryWith(RegistryOptions{}) }

// NewRegistryWith returns an empty registry with a locator and an id map.
func NewRegistryWith(o RegistryOptions) *Registry {
	if o.IDMap == nil {
		o.IDMap = NewMemIDMap()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		practices: map[string]*Practice{},
		byNHS:     map[fhir.NHSNumber]string{},
		byID:      map[string]fhir.NHSNumber{},
		located:   map[string]fhir.NHSNumber{},
		locator:   o.Locator,
		ids:       o.IDMap,
		log:       o.Logger,
	}
}

// Register adds a practice and indexes its patients when its source can list
// them. A patient listed by two practices is an error: the index must be
// unambiguous.
func (r *Registry) Register(ctx context.Context, p Practice) error {
	if p.ODS == "" || p.Source == nil {
		return fmt.Errorf("register practice: ODS code and source are required")
	}
	var patients []fhir.NHSNumber
	if en, ok := p.Source.(Enumerator); ok {
		var err error
		if patients, err = en.Patients(ctx); err != nil {
			return fmt.Errorf("register practice %s: list patients: %w", p.ODS, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.practices[p.ODS]; dup {
		return fmt.Errorf("register practice %s: already registered", p.ODS)
	}
	for _, n := range patients {
		if other, ok := r.byNHS[n]; ok && other != p.ODS {
			return fmt.Errorf("register practice %s: a patient is already registered at %s", p.ODS, other)
		}
	}
	pp := p
	r.practices[p.ODS] = &pp
	for _, n := range patients {
		r.byNHS[n] = p.ODS
		r.byID[fhir.PatientID(n)] = n
	}
	return nil
}

// Reindex replaces the patient list of a registered practice (a source that
// picks up new files calls it through its owner).
func (r *Registry) Reindex(ctx context.Context, ods string) error {
	r.mu.RLock()
	p, ok := r.practices[ods]
	r.mu.RUnlock()
	if !ok {
		return fmt.Errorf("reindex: practice %s not registered", ods)
	}
	en, ok := p.Source.(Enumerator)
	if !ok {
		return nil
	}
	patients, err := en.Patients(ctx)
	if err != nil {
		return fmt.Errorf("reindex %s: %w", ods, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, o := range r.byNHS {
		if o == ods {
			delete(r.byNHS, n)
			delete(r.byID, fhir.PatientID(n))
		}
	}
	for _, n := range patients {
		r.byNHS[n] = ods
		r.byID[fhir.PatientID(n)] = n
	}
	return nil
}

// Practices lists the registered practices in ODS order.
func (r *Registry) Practices() []Practice {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Practice, 0, len(r.practices))
	for _, p := range r.practices {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ODS < out[j].ODS })
	return out
}

func notRegistered() error {
	return fhir.Errorf(fhir.CodePatientNotFound, "no patient with that NHS number is registered at a connected practice")
}

// maxLocated bounds the in-memory placements kept for Resolve.
const maxLocated = 100_000

// Locate returns the practice that holds the patient's record: the patient
// index first, then the Locator (PDS). A patient registered at a practice
// gpgate has no source for is PATIENT_NOT_FOUND, exactly as an unknown one.
//
// Locate runs before the sharing decision, so it writes nothing durable: a
// patient placed through the Locator is remembered in memory only (a read
// by id in this process resolves), and goes into the id map when its record
// is fetched (Record), which the record-access core does only once the
// agreement permits. A refusal therefore costs the same, and writes the
// same (nothing), whether or not the patient exists.
func (r *Registry) Locate(ctx context.Context, nhs fhir.NHSNumber) (*Practice, error) {
	r.mu.RLock()
	ods, ok := r.byNHS[nhs]
	p := r.practices[ods]
	loc := r.locator
	r.mu.RUnlock()
	if ok && p != nil {
		return p, nil
	}
	if loc == nil {
		return nil, notRegistered()
	}
	ods, err := loc.Lookup(ctx, nhs)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	p = r.practices[ods]
	r.mu.RUnlock()
	if p == nil {
		r.log.Info("patient registered at a practice with no source", "practice", ods)
		return nil, notRegistered()
	}
	r.mu.Lock()
	if len(r.located) >= maxLocated {
		clear(r.located) // the id map keeps those whose records were fetched
	}
	r.located[fhir.PatientID(nhs)] = nhs
	r.mu.Unlock()
	return p, nil
}

// remember records the patient's id in the id map unless it is there.
func (r *Registry) remember(ctx context.Context, nhs fhir.NHSNumber) error {
	id := fhir.PatientID(nhs)
	have, err := r.ids.Get(ctx, id)
	if err != nil {
		return err
	}
	if have == nhs {
		return nil
	}
	return r.ids.Put(ctx, id, nhs)
}

// Remember records that Patient id PatientID(nhs) stands for nhs. The
// Patient?identifier= search calls it (through Locate) so that a Patient
// first seen by NHS number can be read by id later.
func (r *Registry) Remember(ctx context.Context, nhs fhir.NHSNumber) error {
	return r.remember(ctx, nhs)
}

// Resolve maps a Patient logical id to the NHS number: the patient index
// first, then the id map.
func (r *Registry) Resolve(ctx context.Context, patientID string) (fhir.NHSNumber, error) {
	r.mu.RLock()
	n, ok := r.byID[patientID]
	if !ok {
		n, ok = r.located[patientID]
	}
	r.mu.RUnlock()
	if ok {
		return n, nil
	}
	n, err := r.ids.Get(ctx, patientID)
	if err != nil {
		return "", fhir.Internal(fmt.Errorf("id map: %w", err))
	}
	if n == "" || fhir.PatientID(n) != patientID {
		return "", fhir.Errorf(fhir.CodePatientNotFound, "no patient with that id")
	}
	return n, nil
}

// Record fetches the record from the patient's practice. A patient placed
// by the Locator whose record was fetched goes into the id map (through a
// WriteBehind in serve, so the write is off the request path).
func (r *Registry) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	p, err := r.Locate(ctx, nhs)
	if err != nil {
		return nil, err
	}
	rec, err := p.Source.Record(ctx, nhs, areas|fhir.AreaDemographics)
	if err != nil {
		return nil, err
	}
	if rec.Practice == "" {
		rec.Practice = p.ODS
	}
	r.mu.RLock()
	_, indexed := r.byNHS[nhs]
	r.mu.RUnlock()
	if !indexed {
		if err := r.remember(ctx, nhs); err != nil {
			// The answer is still right; only a later read by id may miss.
			r.log.Warn("id map write failed", "err", err)
		}
	}
	return rec, nil
}

// RecordAccess forwards an audit entry to the practice's own audit trail when
// its source supports it.
func (r *Registry) RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error {
	p, err := r.Locate(ctx, nhs)
	if err != nil {
		return nil // nothing to tell a practice that does not hold the patient
	}
	if ar, ok := p.Source.(AccessRecorder); ok {
		return ar.RecordAccess(ctx, nhs, e)
	}
	return nil
}

// Live wraps a live practice source as serve should: the guard (deadline,
// breaker, concurrency bound) around the source, the snapshot cache around
// the guard, so a snapshot hit never waits on the practice.
func Live(ods string, src Source, snaps *Snapshots, g GuardOptions) Source {
	return snaps.Wrap(ods, Guard(ods, src, g))
}
