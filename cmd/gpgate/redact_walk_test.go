package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/adapters/gp2gp"
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
	b.Logf("%d resources", len(rec.Resources))
	b.ReportAllocs()
	for b.Loop() {
		consent.Redact(rec, fhir.Decision{Permit: true, Areas: fhir.AllAreas}, time.Now(), consent.DefaultExclusions())
	}
}

// codedObjects counts the coded objects of a resource's JSON: every object
// with a string "code" (Codings, coded Quantities). It knows nothing of the
// redactor's allowlist.
func codedObjects(tb testing.TB, raw []byte) int {
	tb.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatal(err)
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["code"].(string); ok {
				n++
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return n
}

// redactKeepsCodes redacts rec and checks that no resource lost a coded
// object and that nothing was withheld but sensitive or confidential
// entries. A resource shared as it is (same pointer, same bytes) lost
// nothing; the others are compared. It returns the counts for the log
// (codings: the coded objects of the re-rendered resources).
func redactKeepsCodes(t *testing.T, rec *fhir.Record, excl *consent.Exclusions) (resources, rerendered, withheld, codings int) {
	t.Helper()
	out, _ := consent.Redact(rec, fhir.Decision{Permit: true, Areas: fhir.AllAreas}, time.Now(), excl)
	byRef := map[string]*fhir.Resource{}
	for _, r := range out.Resources {
		byRef[r.Reference()] = r
	}
	for _, r := range rec.Resources {
		resources++
		got := byRef[r.Reference()]
		if got == nil {
			if r.Ix.Area == 0 {
				continue // outside every area: never shared
			}
			if !r.Ix.Confidential && !excl.Sensitive(r) {
				paths, _ := consent.FreeTextPaths(r)
				t.Fatalf("%s withheld though neither sensitive nor confidential: %v", r.Reference(), paths)
			}
			withheld++
			continue
		}
		if got == r {
			continue // shared as it is: nothing lost
		}
		rerendered++
		before, after := codedObjects(t, r.JSON), codedObjects(t, got.JSON)
		if before != after {
			paths, _ := consent.FreeTextPaths(r)
			t.Fatalf("%s lost coded data: %d coded objects, %d after redaction (dropped %v)", r.Reference(), before, after, paths)
		}
		codings += after
	}
	return
}

// TestRedactWalkDemoRegion redacts every record of the default demo region
// (1000 patients, encoding/json bytes) and of a small validated region
// (jsonformat bytes, as served): no demo resource loses a coded object, none
// is withheld for being uncoded, and none needs re-rendering (the demo emits
// coded data only).
func TestRedactWalkDemoRegion(t *testing.T) {
	for _, o := range []demo.Options{{Patients: 1000, SkipValidation: true}, {Patients: 20}} {
		var resources, rerendered, withheld, codings int
		_, err := demo.Generate(o, func(p demo.Practice, rec *fhir.Record) error {
			r, rr, w, c := redactKeepsCodes(t, rec, consent.DefaultExclusions())
			resources, rerendered, withheld, codings = resources+r, rerendered+rr, withheld+w, codings+c
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rerendered != 0 {
			t.Errorf("%d demo resources re-rendered: the demo emits something off the allowlist", rerendered)
		}
		t.Logf("%d patients (validated %v): %d resources, %d withheld (sensitive/confidential), %d re-rendered (%d coded objects in them, all kept)",
			o.Patients, !o.SkipValidation, resources, withheld, rerendered, codings)
	}
}

// TestRedactWalkGP2GPExtracts does the same over the real EMIS extracts
// mapped by adapters/gp2gp with their PDS demographics.
func TestRedactWalkGP2GPExtracts(t *testing.T) {
	td := sharedTestdata(t)
	for f, nhs := range gp2gpBindings {
		b, err := os.ReadFile(filepath.Join(td, "gp2gp", "extracts", f))
		if err != nil {
			t.Fatal(err)
		}
		x, err := gp2gp.ParseExtract(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		pds, err := os.ReadFile(filepath.Join(td, "pds", "patient_"+string(nhs)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := x.Map(gp2gp.MapOptions{NHS: nhs, Practice: "A20047", Patient: pds})
		if err != nil {
			t.Fatal(err)
		}
		rec := &fhir.Record{NHS: nhs, PatientID: fhir.PatientID(nhs), Practice: "A20047", Resources: m.Resources}
		r, rr, w, c := redactKeepsCodes(t, rec, consent.DefaultExclusions())
		t.Logf("%s: %d resources, %d withheld (sensitive/confidential), %d re-rendered (%d coded objects in them, all kept)", f, r, w, rr, c)
	}
}
