package main

import (
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// patientNear returns the id of the demo patient whose record size is
// closest to n resources.
func patientNear(b *testing.B, s *testServer, n int) (string, int) {
	b.Helper()
	best, bestSize := "", -1
	for _, nhs := range s.patients {
		id := fhir.PatientID(nhs)
		r := s.get(b, "/Patient/"+id+"/$everything?_count=0")
		if r.status != 200 {
			continue // dissenting patients are refused
		}
		bd := decodeBundle(b, r)
		if d, bd2 := abs(*bd.Total-n), abs(bestSize-n); bestSize < 0 || d < bd2 {
			best, bestSize = id, *bd.Total
		}
	}
	return best, bestSize
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// BenchmarkEverything500 serves a ~500-resource $everything end to end over
// loopback: HTTP, token verification (cached), agreement and consent
// decision, record fetch (cached), redaction (cached per record version),
// Bundle splice, durable audit (group commit, fsync) and write.
// It reports p50 and p99 latency alongside ns/op.
func BenchmarkEverything500(b *testing.B) {
	s := startServer(b)
	id, size := patientNear(b, s, 500)
	url := s.base + "/Patient/" + id + "/$everything?_count=1000"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	auth := "Bearer " + s.patientToken(b, id)
	fetch := func() int64 {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("status %d", res.StatusCode)
		}
		return n
	}
	n := fetch() // warm the record cache
	b.SetBytes(n)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		fetch()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(size), "resources")
}
