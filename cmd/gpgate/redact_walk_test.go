package main

import (
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// demoRecordNear generates a small validated demo region and returns the
// record whose size is closest to n resources.
func demoRecordNear(tb testing.TB, n int) *fhir.Record {
	tb.Helper()
	var best *fhir.Record
	_, err := demo.Generate(demo.Options{Patients: 40}, func(p demo.Practice, rec *fhir.Record) error {
		if best == nil || abs(len(rec.Resources)-n) < abs(len(best.Resources)-n) {
			best = rec
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return best
}

// BenchmarkRedactDemoRecord is the cold redaction of a ~500-resource demo
// record (jsonformat bytes, as served): what the Redactor does once per
// record version.
func BenchmarkRedactDemoRecord(b *testing.B) {
	rec := demoRecordNear(b, 500)
	b.ReportMetric(float64(len(rec.Resources)), "resources")
	b.ReportAllocs()
	for b.Loop() {
		consent.Redact(rec, fhir.AllAreas, consent.DefaultExclusions())
	}
}
