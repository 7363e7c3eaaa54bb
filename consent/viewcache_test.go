package consent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

func TestBoltStoreConsentCache(t *testing.T) {
	ctx := context.Background()
	s, err := NewBoltStore(openDB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, status string) {
		t.Helper()
		c := &ViewConsent{ID: id, PatientID: "p", Clinician: "555", Organisation: "RXX01", Status: status,
			Start: t0, End: t0.Add(time.Hour), Resource: []byte(`{"resourceType":"Consent"}`)}
		if err := s.PutConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	get := func(id string) *ViewConsent {
		t.Helper()
		c, err := s.GetConsent(ctx, id)
		if err != nil {
			t.Fatalf("GetConsent(%s): %v", id, err)
		}
		return c
	}
	put("c1", "active")
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a revocation is seen by the next read", func(t *testing.T) {
			get("c1") // cached
			put("c1", StatusRevoked)
			if got := get("c1").Status; got != StatusRevoked {
				t.Fatalf("after revocation the store answers %q", got)
			}
			put("c1", "active")
		}},
		{"what a caller changes is not what is cached", func(t *testing.T) {
			c := get("c1")
			c.Status, c.Clinician = StatusRevoked, "someone else"
			if again := get("c1"); again.Status != "active" || again.Clinician != "555" {
				t.Fatalf("a caller's change reached the cache: %+v", again)
			}
		}},
		{"a read that began before a write is not cached", func(t *testing.T) {
			// The interleaving GetConsent must survive: a reader takes the
			// generation and reads the old value; the write lands and
			// invalidates; then the reader puts what it read.
			gen := s.views.generation()
			stale := get("c1") // as read before the write
			put("c1", StatusRevoked)
			s.views.put(gen, stale)
			if got := get("c1").Status; got != StatusRevoked {
				t.Fatalf("a read from before the revocation was cached: %q", got)
			}
			put("c1", "active")
		}},
		{"an unknown consent is not found, and not cached as anything", func(t *testing.T) {
			if _, err := s.GetConsent(ctx, "nope"); codeOf(err) != fhir.CodeReferenceNotFound {
				t.Fatalf("unknown consent: %v", err)
			}
			put("nope", "active")
			if get("nope").Status != "active" {
				t.Fatal("a consent recorded after a miss is not found")
			}
		}},
		{"bounded by bytes", func(t *testing.T) {
			small := &BoltStore{db: s.db, now: s.now, views: viewCache{max: 16 << 10}}
			for i := 0; i < 200; i++ {
				id := fmt.Sprintf("b%d", i)
				if err := small.PutConsent(ctx, &ViewConsent{ID: id, Status: "active", Resource: make([]byte, 500)}); err != nil {
					t.Fatal(err)
				}
				if _, err := small.GetConsent(ctx, id); err != nil {
					t.Fatal(err)
				}
				if small.views.bytes > small.views.max {
					t.Fatalf("after %d consents the cache holds %d bytes (bound %d)", i+1, small.views.bytes, small.views.max)
				}
			}
			if len(small.views.m) == 0 {
				t.Fatal("nothing cached")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
