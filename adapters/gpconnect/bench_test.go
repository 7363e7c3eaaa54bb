package gpconnect_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/fhir"
)

// largest is the largest shared record.
func largest(b *testing.B) []byte {
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "testdata", "gpconnect-stu3", "*.json"))
	var best []byte
	for _, f := range files {
		if body, err := os.ReadFile(f); err == nil && len(body) > len(best) {
			best = body
		}
	}
	if best == nil {
		b.Skip("../shared/testdata/gpconnect-stu3 is absent")
	}
	return best
}

// BenchmarkConvertLargest: STU3 -> UK Core R4 of the largest shared
// record (1.27 MB, 502 entries), canonical JSON included.
func BenchmarkConvertLargest(b *testing.B) {
	body := largest(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gpconnect.Convert(body, gpconnect.Options{NHS: "9000000009", Practice: "A12345"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchEmulator: one whole-record fetch through the emulator on
// loopback over mutual TLS (JWT, Parameters, the provider's filtering and
// encoding, transfer, parse, conversion).
func BenchmarkFetchEmulator(b *testing.B) {
	dir, nhs := folder(b)
	p := newPKI(b)
	_, srv := provider(b, p, dir)
	c := client(b, p, srv.URL, p.caFile)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Record(ctx, nhs, fhir.AllAreas); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchEmulatorFanOut: the same fetch fanned out in the default
// section groups (four calls in parallel, answers merged, converted once).
func BenchmarkFetchEmulatorFanOut(b *testing.B) {
	dir, nhs := folder(b)
	p := newPKI(b)
	_, srv := provider(b, p, dir)
	c := fanOutClient(b, p, srv.URL+"/B82617/STU3/1/gpconnect/structured/fhir", time.Minute)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Record(ctx, nhs, fhir.AllAreas); err != nil {
			b.Fatal(err)
		}
	}
}
