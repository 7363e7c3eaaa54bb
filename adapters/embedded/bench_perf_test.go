package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// BenchmarkPatientSearchFetch: what a Patient search by NHS number fetches
// from the store for a record not in the cache: the demographics index
// (docs/performance.md compares it with the whole record it fetched
// before, ~500 resources).
func BenchmarkPatientSearchFetch(b *testing.B) {
	src, nhs, _ := benchRecord(b, WithCacheBytes(0), WithSharing(func(*fhir.Record) fhir.SharingConsent { return fhir.SharingUnknown }))
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, ok, err := src.Demographics(context.Background(), nhs); err != nil || !ok {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTrailAccess: practice-trail accesses recorded by 1 and by 64
// callers, made durable (Flush) before the timer stops.
func BenchmarkTrailAccess(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers-%d", par), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "gp.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.PutPractice("Y99001", "p")
			s.PutRecord("Y99001", record(b, nhsA))
			src := s.Source("Y99001")
			e := &fhir.AuditEntry{Outcome: fhir.OutcomeGranted, ClientID: "c", ConsumerODS: "RXX01"}
			b.ReportAllocs()
			b.ResetTimer()
			if par == 1 {
				for i := 0; i < b.N; i++ {
					if err := src.RecordAccess(context.Background(), nhsA, e); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(par / 2)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := src.RecordAccess(context.Background(), nhsA, e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}
