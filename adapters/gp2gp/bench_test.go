package gp2gp

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// BenchmarkParseMap parses and maps the largest extracts (the 0.5-0.8 MB
// class; the shared data has none of 1.2 MB) including R4 validation and
// canonical rendering of every resource.
func BenchmarkParseMap(b *testing.B) {
	shared := sharedDir(b)
	for _, f := range []string{"extracts/PWTP2.xml", "features/RCMRIN030000UK06/structuredRecord.xml"} {
		data, err := os.ReadFile(filepath.Join(shared, "gp2gp", f))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(f), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				x, err := ParseExtract(data, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := x.Map(MapOptions{NHS: "9000000009", Practice: "A12345"}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(filepath.Base(f)+"/parse-only", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				if _, err := ParseExtract(data, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordCached is the hot path: a Record for an unchanged extract
// (folder re-scan + cache hit + area filter).
func BenchmarkRecordCached(b *testing.B) {
	shared := sharedDir(b)
	dir := b.TempDir()
	if err := WriteManifest(filepath.Join(dir, "manifest.json"), map[string]fhir.NHSNumber{
		filepath.Join(shared, "gp2gp", "extracts", "PWTP2.xml"): "9000000009",
	}); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Dir: dir, PDSDir: filepath.Join(shared, "pds"), Practice: "A12345"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Record(ctx, "9000000009", fhir.AllAreas); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Record(ctx, "9000000009", fhir.AllAreas); err != nil {
			b.Fatal(err)
		}
	}
}
