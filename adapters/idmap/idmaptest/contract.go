// Package idmaptest is the contract of a persistent adapters.IDMap, run
// against the bbolt (adapters/idmap) and PostgreSQL (adapters/idmap/pgidmap)
// implementations.
package idmaptest

import (
	"context"
	"testing"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/fhir"
)

// Run runs the contract on a fresh, empty map from newMap.
func Run(t *testing.T, newMap func(t *testing.T) adapters.IDMap) {
	ctx := context.Background()
	m := newMap(t)
	nhs := fhir.NHSNumber("9000000009")
	id := fhir.PatientID(nhs)
	for _, tc := range []struct {
		name    string
		id      string
		nhs     fhir.NHSNumber
		wantErr bool
	}{
		{"valid", id, nhs, false},
		{"again (idempotent)", id, nhs, false},
		{"invalid NHS number", "p1", "9000000000", true},
		{"not ten digits", "p2", "123", true},
		{"empty id", "", nhs, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Put(ctx, tc.id, tc.nhs); (err != nil) != tc.wantErr {
				t.Fatalf("Put: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		id   string
		want fhir.NHSNumber
	}{
		{id, nhs},
		{"p1", ""},
		{"punknown", ""},
	} {
		t.Run("Get/"+tc.id, func(t *testing.T) {
			if got, err := m.Get(ctx, tc.id); err != nil || got != tc.want {
				t.Fatalf("%q %v, want %q", got, err, tc.want)
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := m.Put(cctx, fhir.PatientID("9990000018"), "9990000018"); err == nil {
			t.Fatal("Put on a canceled context succeeded")
		}
	})
}
