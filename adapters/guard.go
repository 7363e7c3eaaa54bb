package adapters

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/gpgate/gpgate/fhir"
)

// GuardOptions bounds what one practice system may cost gpgate's callers and
// what gpgate may cost the practice system. Zero fields take the defaults.
type GuardOptions struct {
	// Deadline is the most one record fetch from the practice may take
	// (default 15s). A source that fans out per area (fhirapi) should give
	// each area less, so a slow area is left out rather than the whole answer.
	Deadline time.Duration
	// MaxConcurrent is how many fetches may be in flight to the practice at
	// once (default 8). Excess callers wait, within their deadline, and are
	// then refused with SERVICE_UNAVAILABLE.
	MaxConcurrent int
	// Failures is how many consecutive failed fetches open the circuit
	// (default 5). While open every call is refused at once.
	Failures uint32
	// OpenFor is how long the circuit stays open before one probe is let
	// through (half-open; default 30s). A good probe closes it.
	OpenFor time.Duration
	// Probes is how many calls are let through while half-open (default 1).
	Probes uint32
	Logger *slog.Logger
}

func (o *GuardOptions) defaults() {
	if o.Deadline <= 0 {
		o.Deadline = 15 * time.Second
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 8
	}
	if o.Failures == 0 {
		o.Failures = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 30 * time.Second
	}
	if o.Probes == 0 {
		o.Probes = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Guarded is a practice source behind a deadline, a bounded number of
// concurrent calls and a circuit breaker. It implements Source and
// AccessRecorder (forwarded when the inner source has it); it does not list
// patients (guard live sources only).
type Guarded struct {
	ods   string
	inner Source
	opt   GuardOptions
	sem   chan struct{}
	cb    *gobreaker.CircuitBreaker[*fhir.Record]
}

// errBusy marks a call refused because the practice's concurrency bound was
// full for the whole deadline: the practice did not fail, gpgate held back.
var errBusy = errors.New("practice concurrency bound full")

func busy() error {
	return &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the practice system is busy; try again shortly", Cause: errBusy}
}

// Guard wraps the source of practice ods.
func Guard(ods string, inner Source, opt GuardOptions) *Guarded {
	opt.defaults()
	g := &Guarded{ods: ods, inner: inner, opt: opt, sem: make(chan struct{}, opt.MaxConcurrent)}
	lg := opt.Logger
	g.cb = gobreaker.NewCircuitBreaker[*fhir.Record](gobreaker.Settings{
		Name:        ods,
		MaxRequests: opt.Probes,
		Timeout:     opt.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= opt.Failures },
		OnStateChange: func(name string, from, to gobreaker.State) {
			lg.Warn("practice circuit", "practice", name, "from", from.String(), "to", to.String())
		},
		IsSuccessful: practiceAnswered,
		IsExcluded:   notPracticeFault,
	})
	return g
}

// practiceAnswered reports whether err shows the practice system working: no
// error, or a coded answer about the request or the patient (not found,
// invalid, denied). Timeouts, unavailability and internal errors do not.
func practiceAnswered(err error) bool {
	if err == nil {
		return true
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		return false
	}
	switch fe.Code {
	case fhir.CodeTimeout, fhir.CodeInternal, fhir.CodeNotImplemented:
		return false
	}
	return true
}

// notPracticeFault excludes from the breaker's counts the failures that say
// nothing about the practice: the caller gave up, or gpgate's own
// concurrency bound refused the call.
func notPracticeFault(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, errBusy)
}

// State is the circuit state ("closed", "open", "half-open"), for status pages.
func (g *Guarded) State() string { return g.cb.State().String() }

// Record fetches through the breaker, the concurrency bound and the deadline.
func (g *Guarded) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, g.opt.Deadline)
	defer cancel()
	rec, err := g.cb.Execute(func() (*fhir.Record, error) {
		if err := g.acquire(ctx); err != nil {
			return nil, err
		}
		defer g.release()
		rec, err := g.inner.Record(ctx, nhs, areas)
		if err != nil {
			return nil, g.mapErr(ctx, err)
		}
		return rec, nil
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, fhir.Errorf(fhir.CodeTimeout, "the practice system is unavailable; try again later")
	}
	return rec, err
}

// RecordAccess forwards an access to the practice's own audit trail, within
// the same concurrency bound and deadline; the breaker is not consulted (the
// hook is best effort and must not open the circuit for reads).
func (g *Guarded) RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error {
	ar, ok := g.inner.(AccessRecorder)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.opt.Deadline)
	defer cancel()
	if err := g.acquire(ctx); err != nil {
		return err
	}
	defer g.release()
	return ar.RecordAccess(ctx, nhs, e)
}

func (g *Guarded) acquire(ctx context.Context) error {
	select {
	case g.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case g.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		g.opt.Logger.Warn("practice concurrency bound full", "practice", g.ods)
		return busy()
	}
}

func (g *Guarded) release() { <-g.sem }

// mapErr turns a deadline into SERVICE_UNAVAILABLE (the breaker counts it);
// the caller's own cancellation stays context.Canceled (excluded).
func (g *Guarded) mapErr(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || (ctx.Err() == context.DeadlineExceeded && !practiceAnswered(err)) {
		g.opt.Logger.Warn("practice fetch past its deadline", "practice", g.ods)
		return &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the practice system did not answer in time", Cause: err}
	}
	return err
}

// Versioner returns the inner source's record-level version check behind
// the guard's concurrency bound and deadline (answering "" while the circuit
// is open), or nil when the inner source has none.
func (g *Guarded) Versioner() Versioner {
	v := versionerOf(g.inner)
	if v == nil {
		return nil
	}
	return guardedVersioner{g, v}
}

type guardedVersioner struct {
	g *Guarded
	v Versioner
}

func (gv guardedVersioner) Version(ctx context.Context, nhs fhir.NHSNumber) (string, error) {
	if gv.g.cb.State() == gobreaker.StateOpen {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, gv.g.opt.Deadline)
	defer cancel()
	if err := gv.g.acquire(ctx); err != nil {
		return "", err
	}
	defer gv.g.release()
	return gv.v.Version(ctx, nhs)
}
