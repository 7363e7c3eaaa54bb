package idmap

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/fhir"
)

var _ adapters.IDMap = (*Store)(nil)

func TestPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ids.db")
	ctx := context.Background()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	nhs := fhir.NHSNumber("9000000009")
	id := fhir.PatientID(nhs)
	tests := []struct {
		name    string
		id      string
		nhs     fhir.NHSNumber
		wantErr bool
	}{
		{"valid", id, nhs, false},
		{"invalid NHS number", "p1", "9000000000", true},
		{"empty id", "", nhs, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Put(ctx, tc.id, tc.nhs); (err != nil) != tc.wantErr {
				t.Fatalf("Put: %v", err)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Get(ctx, id); err != nil || got != nhs {
		t.Fatalf("after reopen: %q, %v", got, err)
	}
	if got, err := s.Get(ctx, "punknown"); err != nil || got != "" {
		t.Fatalf("unknown id: %q, %v", got, err)
	}
}

func TestRegistryResolvesThroughStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ids.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	nhs := fhir.NHSNumber("9000000009")
	reg := adapters.NewRegistryWith(adapters.RegistryOptions{IDMap: s})
	if _, err := reg.Resolve(ctx, fhir.PatientID(nhs)); fhir.AsError(err).Code != fhir.CodePatientNotFound {
		t.Fatalf("before: %v", err)
	}
	if err := reg.Remember(ctx, nhs); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.Resolve(ctx, fhir.PatientID(nhs)); err != nil || got != nhs {
		t.Fatalf("after: %q, %v", got, err)
	}
}

var _ adapters.BatchPutter = (*Store)(nil)

func TestPutBatch(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ids.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	a, b := fhir.NHSNumber("9000000009"), fhir.NHSNumber("9000000025")
	tests := []struct {
		name    string
		batch   map[string]fhir.NHSNumber
		wantErr bool
	}{
		{"valid entries", map[string]fhir.NHSNumber{fhir.PatientID(a): a, fhir.PatientID(b): b}, false},
		{"one invalid entry fails the batch", map[string]fhir.NHSNumber{"p1": a, "p2": "9000000000"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutBatch(ctx, tc.batch); (err != nil) != tc.wantErr {
				t.Fatalf("PutBatch: %v", err)
			}
		})
	}
	for _, n := range []fhir.NHSNumber{a, b} {
		if got, _ := s.Get(ctx, fhir.PatientID(n)); got != n {
			t.Fatalf("%s: got %q", n, got)
		}
	}
	if got, _ := s.Get(ctx, "p1"); got != "" {
		t.Fatal("a failed batch was partly written")
	}
}
