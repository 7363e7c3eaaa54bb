package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// BenchmarkLiveGPConnectEverything: one `$everything` (one page of up to
// 1,000) over HTTP through gpgate for a GP Connect patient read live at
// every request (the snapshot cache lives 1 ns): token (cached
// verification), PDS (cached), the agreement and consent decisions, the
// practice guard, the fetch from the provider emulator over mutual TLS on
// loopback (fanned out in four calls), STU3 -> R4 conversion,
// redaction, the durable audit entry, the Bundle. Sub-benchmarks: the
// largest shared record and a median one.
func BenchmarkLiveGPConnectEverything(b *testing.B) {
	gpcDir := findSharedGPConnect()
	if gpcDir == "" {
		b.Skip("../shared/testdata/gpconnect-stu3 is absent")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	pki := filepath.Join(data, demoPKIDir)
	if err := demoPKI(pki, time.Now()); err != nil {
		b.Fatal(err)
	}
	em, u, err := startProvider(gpcDir, "Y98011", pki)
	if err != nil {
		b.Fatal(err)
	}
	pats, err := em.Patients(ctx)
	if err != nil || len(pats) < 3 {
		b.Fatalf("patients: %v", err)
	}
	// Largest and median records by size of their recorded files.
	size := map[fhir.NHSNumber]int64{}
	for _, n := range pats {
		files, _ := filepath.Glob(filepath.Join(gpcDir, string(n)+"_*.json"))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() > size[n] {
				size[n] = fi.Size()
			}
		}
	}
	sort.Slice(pats, func(i, j int) bool { return size[pats[i]] > size[pats[j]] })
	largest, median := pats[0], pats[len(pats)/2]
	tls := fmt.Sprintf(`"cert":%q,"key":%q,"ca":%q,"from_asid":"1","to_asid":"2","url":%q`,
		filepath.Join(pki, "client.pem"), filepath.Join(pki, "client.key"), filepath.Join(pki, "ca.pem"), u)
	cfg := `{"pds":{"recorded":"pds"},"snapshots":{"ttl":"1ns"},"practices":[{"ods":"Y98011","kind":"gpconnect",` + tls + `}]}`
	if err := os.MkdirAll(filepath.Join(data, demoPDSDir), 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, practicesFile), []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	place := func(ods string, n fhir.NHSNumber) {
		if err := writePDSPatients(filepath.Join(data, demoPDSDir), ods, []fhir.NHSNumber{n}); err != nil {
			b.Fatal(err)
		}
	}
	place("Y98011", largest)
	place("Y98011", median)
	st, err := openState(data)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range consent.DemoAgreements([]string{"Y98011"}, time.Now()) {
		if _, err := st.consent.Add(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	s, _ := startOn(b, ctx, serveOpts{data: data})
	s.knownIDs = nil
	for _, tc := range []struct {
		name string
		nhs  fhir.NHSNumber
	}{{"largest/fan-out", largest}, {"median/fan-out", median}} {
		b.Run(tc.name, func(b *testing.B) {
			pid := fhir.PatientID(tc.nhs)
			if r := s.get(b, patientSearch(string(tc.nhs))); r.status != http.StatusOK {
				b.Fatalf("search: %d %s", r.status, truncateBody(r.body))
			}
			path := "/Patient/" + pid + "/$everything?_count=1000"
			r := s.get(b, path)
			if r.status != http.StatusOK {
				b.Fatalf("$everything: %d %s", r.status, truncateBody(r.body))
			}
			before := em.Requests()
			b.SetBytes(int64(len(r.body)))
			b.ResetTimer()
			for b.Loop() {
				if r := s.get(b, path); r.status != http.StatusOK {
					b.Fatalf("$everything: %d", r.status)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(em.Requests()-before)/float64(b.N), "provider-calls/op")
		})
	}
}
