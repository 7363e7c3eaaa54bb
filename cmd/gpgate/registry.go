package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
)

// liveRegistry is the registry the server answers from, replaced whole on
// SIGHUP (practices file re-read): requests in flight finish on the
// registry they started with, new ones use the new one. The id map is
// shared by every generation.
type liveRegistry struct {
	p atomic.Pointer[adapters.Registry]
}

func (l *liveRegistry) get() *adapters.Registry  { return l.p.Load() }
func (l *liveRegistry) set(r *adapters.Registry) { l.p.Store(r) }

func (l *liveRegistry) Resolve(ctx context.Context, id string) (fhir.NHSNumber, error) {
	return l.get().Resolve(ctx, id)
}

func (l *liveRegistry) Locate(ctx context.Context, nhs fhir.NHSNumber) (*adapters.Practice, error) {
	return l.get().Locate(ctx, nhs)
}

func (l *liveRegistry) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	return l.get().Record(ctx, nhs, areas)
}

func (l *liveRegistry) RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error {
	return l.get().RecordAccess(ctx, nhs, e)
}

// Demographics passes the source's demographics fast path on
// (access.DemographicRecords), measured like a record fetch.
func (t timedSource) Demographics(ctx context.Context, nhs fhir.NHSNumber) (*fhir.Record, bool, error) {
	d, ok := t.inner.(access.DemographicRecords)
	if !ok {
		return nil, false, nil
	}
	start := time.Now()
	rec, vouched, err := d.Demographics(ctx, nhs)
	code := ""
	if err != nil {
		code = string(fhir.AsError(err).Code)
	}
	t.obs.SourceFetched(t.ods, time.Since(start), code)
	return rec, vouched, err
}

// circuitStater is a source that reports its circuit breaker's state
// (adapters.Guarded, and what wraps one).
type circuitStater interface{ State() string }

// circuits is each practice's circuit state, for /readyz and /metrics;
// sources without a breaker (embedded, extract folders) are "closed".
func (l *liveRegistry) circuits() map[string]string {
	out := map[string]string{}
	for _, p := range l.get().Practices() {
		state := "closed"
		if cs, ok := p.Source.(circuitStater); ok {
			if s := cs.State(); s != "" {
				state = s
			}
		}
		out[p.ODS] = state
	}
	return out
}

// sourceObserver is told of every record fetch (metrics).
type sourceObserver interface {
	SourceFetched(practice string, elapsed time.Duration, code string)
}

// timedSource measures a practice source: latency and errors per practice.
// It passes on what the registry asks of a source (patient lists, the
// practice trail) and its breaker state.
type timedSource struct {
	ods   string
	inner adapters.Source
	obs   sourceObserver
}

func (t timedSource) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	start := time.Now()
	rec, err := t.inner.Record(ctx, nhs, areas)
	code := ""
	if err != nil {
		code = string(fhir.AsError(err).Code)
	}
	t.obs.SourceFetched(t.ods, time.Since(start), code)
	return rec, err
}

func (t timedSource) Patients(ctx context.Context) ([]fhir.NHSNumber, error) {
	if en, ok := t.inner.(adapters.Enumerator); ok {
		return en.Patients(ctx)
	}
	return nil, nil
}

func (t timedSource) RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error {
	if ar, ok := t.inner.(adapters.AccessRecorder); ok {
		return ar.RecordAccess(ctx, nhs, e)
	}
	return nil
}

func (t timedSource) State() string {
	if cs, ok := t.inner.(circuitStater); ok {
		return cs.State()
	}
	return ""
}
