package adapters

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// fakeSource answers from a function and counts calls and concurrency.
type fakeSource struct {
	calls    atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	fn       func(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error)
	patients []fhir.NHSNumber
}

func (f *fakeSource) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	f.calls.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	return f.fn(ctx, nhs, areas)
}

type listing struct {
	*fakeSource
}

func (l listing) Patients(context.Context) ([]fhir.NHSNumber, error) { return l.patients, nil }

func okRecord(nhs fhir.NHSNumber, version string, sizes ...int) *fhir.Record {
	rec := &fhir.Record{NHS: nhs, PatientID: fhir.PatientID(nhs), Version: version}
	for i, n := range sizes {
		rec.Resources = append(rec.Resources, &fhir.Resource{Type: "Condition", ID: fmt.Sprint(i), JSON: make([]byte, n)})
	}
	return rec
}

func answer(version string, sizes ...int) func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error) {
	return func(_ context.Context, nhs fhir.NHSNumber, _ fhir.Areas) (*fhir.Record, error) {
		return okRecord(nhs, version, sizes...), nil
	}
}

type mapLocator map[fhir.NHSNumber]string

func (m mapLocator) Lookup(_ context.Context, nhs fhir.NHSNumber) (string, error) {
	if ods, ok := m[nhs]; ok {
		return ods, nil
	}
	return "", fhir.Errorf(fhir.CodePatientNotFound, "not found")
}

const (
	nhsA fhir.NHSNumber = "9000000009"
	nhsB fhir.NHSNumber = "9000000025"
	nhsC fhir.NHSNumber = "9000000033"
)

func TestRegistryLocate(t *testing.T) {
	ctx := context.Background()
	ids := NewMemIDMap()
	reg := NewRegistryWith(RegistryOptions{Locator: mapLocator{nhsB: "LIVE1", nhsC: "ELSEWHERE"}, IDMap: ids})
	listed := listing{&fakeSource{fn: answer("v1"), patients: []fhir.NHSNumber{nhsA}}}
	if err := reg.Register(ctx, Practice{ODS: "IDX1", Kind: "embedded", Source: listed}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, Practice{ODS: "LIVE1", Kind: "fhirapi", Source: &fakeSource{fn: answer("v1")}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		nhs  fhir.NHSNumber
		ods  string
		code fhir.Code
	}{
		{"listed by the index", nhsA, "IDX1", ""},
		{"placed by PDS", nhsB, "LIVE1", ""},
		{"PDS practice has no source", nhsC, "", fhir.CodePatientNotFound},
		{"unknown everywhere", "9876543210", "", fhir.CodePatientNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := reg.Locate(ctx, tc.nhs)
			if tc.code != "" {
				if err == nil || fhir.AsError(err).Code != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || p.ODS != tc.ods {
				t.Fatalf("Locate = %v, %v; want %s", p, err, tc.ods)
			}
		})
	}
	t.Run("a patient placed by PDS resolves by id afterwards", func(t *testing.T) {
		n, err := reg.Resolve(ctx, fhir.PatientID(nhsB))
		if err != nil || n != nhsB {
			t.Fatalf("Resolve = %q, %v", n, err)
		}
		if n, err := reg.Resolve(ctx, fhir.PatientID(nhsA)); err != nil || n != nhsA {
			t.Fatalf("Resolve listed = %q, %v", n, err)
		}
		if _, err := reg.Resolve(ctx, fhir.PatientID(nhsC)); fhir.AsError(err).Code != fhir.CodePatientNotFound {
			t.Fatalf("unplaced patient resolved: %v", err)
		}
	})
	t.Run("an id map entry that does not hash to its id is refused", func(t *testing.T) {
		_ = ids.Put(ctx, "pforged", nhsB)
		if _, err := reg.Resolve(ctx, "pforged"); fhir.AsError(err).Code != fhir.CodePatientNotFound {
			t.Fatalf("forged id resolved: %v", err)
		}
	})
	t.Run("Record sets the practice", func(t *testing.T) {
		rec, err := reg.Record(ctx, nhsB, fhir.AreaProblems)
		if err != nil || rec.Practice != "LIVE1" {
			t.Fatalf("Record = %+v, %v", rec, err)
		}
	})
}

func TestRegistryWithoutLocator(t *testing.T) {
	reg := NewRegistry()
	if _, err := reg.Locate(context.Background(), nhsA); fhir.AsError(err).Code != fhir.CodePatientNotFound {
		t.Fatalf("err = %v", err)
	}
}

// --- guard ---------------------------------------------------------------

func failing(code fhir.Code) func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error) {
	return func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error) {
		return nil, fhir.Errorf(code, "upstream")
	}
}

func TestBreakerOpensAndRefusesWithoutCalling(t *testing.T) {
	src := &fakeSource{fn: failing(fhir.CodeTimeout)}
	g := Guard("P1", src, GuardOptions{Failures: 3, OpenFor: time.Hour})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := g.Record(ctx, nhsA, fhir.AreaProblems); fhir.AsError(err).Code != fhir.CodeTimeout {
			t.Fatalf("call %d: err = %v", i, err)
		}
	}
	if g.State() != "open" {
		t.Fatalf("state = %s after 3 failures", g.State())
	}
	for i := 0; i < 100; i++ {
		_, err := g.Record(ctx, nhsA, fhir.AreaProblems)
		if fhir.AsError(err).Code != fhir.CodeTimeout {
			t.Fatalf("open circuit: err = %v", err)
		}
	}
	if n := src.calls.Load(); n != 3 {
		t.Fatalf("upstream calls = %d, want 3 (an open circuit must not call the practice)", n)
	}
}

func TestBreakerIgnoresPatientAnswersAndCallerCancel(t *testing.T) {
	tests := []struct {
		name string
		fn   func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error)
	}{
		{"not found is an answer", failing(fhir.CodePatientNotFound)},
		{"caller went away", func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error) {
			return nil, context.Canceled
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{fn: tc.fn}
			g := Guard("P1", src, GuardOptions{Failures: 2, OpenFor: time.Hour})
			for i := 0; i < 5; i++ {
				_, _ = g.Record(context.Background(), nhsA, fhir.AreaProblems)
			}
			if g.State() != "closed" || src.calls.Load() != 5 {
				t.Fatalf("state %s, calls %d", g.State(), src.calls.Load())
			}
		})
	}
}

func TestBreakerHalfOpenRecovers(t *testing.T) {
	var healthy atomic.Bool
	src := &fakeSource{fn: func(ctx context.Context, nhs fhir.NHSNumber, a fhir.Areas) (*fhir.Record, error) {
		if healthy.Load() {
			return okRecord(nhs, "v"), nil
		}
		return nil, errors.New("connection refused")
	}}
	g := Guard("P1", src, GuardOptions{Failures: 2, OpenFor: 20 * time.Millisecond})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		_, _ = g.Record(ctx, nhsA, fhir.AreaProblems)
	}
	if g.State() != "open" {
		t.Fatalf("state = %s", g.State())
	}
	healthy.Store(true)
	// Wait out the open period (a wait, not a timing assertion).
	for g.State() == "open" {
		time.Sleep(5 * time.Millisecond)
	}
	if g.State() != "half-open" {
		t.Fatalf("state = %s, want half-open", g.State())
	}
	if _, err := g.Record(ctx, nhsA, fhir.AreaProblems); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if g.State() != "closed" || src.calls.Load() != 3 {
		t.Fatalf("after a good probe: state %s, calls %d", g.State(), src.calls.Load())
	}
}

func TestConcurrencyBound(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	src := &fakeSource{fn: func(ctx context.Context, nhs fhir.NHSNumber, a fhir.Areas) (*fhir.Record, error) {
		started.Done()
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return okRecord(nhs, "v"), nil
	}}
	g := Guard("P1", src, GuardOptions{MaxConcurrent: 3, Deadline: time.Hour})
	ctx := context.Background()
	started.Add(3)
	var done sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			_, err := g.Record(ctx, nhsA, fhir.AreaProblems)
			errs <- err
		}()
	}
	started.Wait() // three are in the practice; seven wait
	if n := src.inFlight.Load(); n != 3 {
		t.Fatalf("in flight = %d, want 3", n)
	}
	started.Add(7)
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := src.maxSeen.Load(); m != 3 {
		t.Fatalf("most concurrent calls = %d, want 3", m)
	}
	if c := src.calls.Load(); c != 10 {
		t.Fatalf("calls = %d, want 10", c)
	}
}

func TestConcurrencyBoundRefusesPastDeadline(t *testing.T) {
	release := make(chan struct{})
	holding := make(chan struct{})
	src := &fakeSource{fn: func(ctx context.Context, nhs fhir.NHSNumber, a fhir.Areas) (*fhir.Record, error) {
		close(holding)
		<-release
		return okRecord(nhs, "v"), nil
	}}
	g := Guard("P1", src, GuardOptions{MaxConcurrent: 1, Deadline: time.Hour, Failures: 1})
	go func() { _, _ = g.Record(context.Background(), nhsA, fhir.AreaProblems) }()
	<-holding
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := g.Record(ctx, nhsA, fhir.AreaProblems)
	close(release)
	fe := fhir.AsError(err)
	if fe.Code != "SERVICE_UNAVAILABLE" {
		t.Fatalf("err = %v", err)
	}
	if g.State() != "closed" {
		t.Fatalf("a refusal by the bound opened the circuit (state %s)", g.State())
	}
	if src.calls.Load() != 1 {
		t.Fatalf("calls = %d", src.calls.Load())
	}
}

func TestGuardDeadlineIsServiceUnavailable(t *testing.T) {
	src := &fakeSource{fn: func(ctx context.Context, nhs fhir.NHSNumber, a fhir.Areas) (*fhir.Record, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	g := Guard("P1", src, GuardOptions{Deadline: time.Millisecond, Failures: 1, OpenFor: time.Hour})
	_, err := g.Record(context.Background(), nhsA, fhir.AreaProblems)
	if fhir.AsError(err).Code != fhir.CodeTimeout {
		t.Fatalf("err = %v", err)
	}
	if g.State() != "open" {
		t.Fatalf("a deadline did not count as a failure (state %s)", g.State())
	}
}
