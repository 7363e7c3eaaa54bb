package fhirapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/fhirapi"
	"github.com/gpgate/gpgate/fhir"
)

// TestWiredAsServed puts the source behind what serve wires around a live
// practice: retries of idempotent reads, the guard, the snapshot cache.
func TestWiredAsServed(t *testing.T) {
	u := newUpstream(t, 25)
	rt := adapters.NewRetryTransport(nil, adapters.RetryOptions{Attempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }})
	src := newSource(t, u, func(o *fhirapi.Options) { o.HTTPClient = &http.Client{Transport: rt} })
	g := adapters.Guard("A12345", src, adapters.GuardOptions{Failures: 2, OpenFor: time.Hour})
	s := adapters.NewSnapshots(adapters.SnapshotOptions{TTL: time.Minute}).Wrap("A12345", g)
	ctx := context.Background()

	t.Run("paging through one answer fetches once", func(t *testing.T) {
		for page := 0; page < 5; page++ {
			rec, err := s.Record(ctx, nhs, fhir.AreaProblems|fhir.AreaDemographics)
			if err != nil || len(rec.Resources) != 22 {
				t.Fatalf("page %d: %v, %d resources", page, err, len(rec.Resources))
			}
		}
		if n := u.count("/fhir/Patient"); n != 1 {
			t.Fatalf("patient searches = %d, want 1", n)
		}
	})
	t.Run("a dead practice opens the circuit", func(t *testing.T) {
		u.down["Patient"] = true
		for i := 0; i < 10; i++ {
			_, err := s.Record(ctx, nhs, fhir.AreaAllergies)
			if fhir.AsError(err).Code != fhir.CodeTimeout {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		// two failing records, each a GET tried twice (503 is retried), then nothing
		if n := u.count("/fhir/Patient"); n != 1+4 {
			t.Fatalf("patient searches = %d, want 5", n)
		}
		if g.State() != "open" {
			t.Fatalf("state %s", g.State())
		}
	})
}
