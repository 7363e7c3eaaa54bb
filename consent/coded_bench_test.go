package consent

import "testing"

// BenchmarkCodedPass is the per-resource coded-only pass alone over a
// 500-resource record (cold: what the Redactor does once per record version).
func BenchmarkCodedPass(b *testing.B) {
	rec := bigRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range rec.Resources {
			if _, _, err := keepCoded(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
