package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/gp2gp"
	"github.com/gpgate/gpgate/fhir"
)

// sharedTestdata finds ../shared/testdata beside the repository, or skips.
func sharedTestdata(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			td := filepath.Join(filepath.Dir(d), "shared", "testdata")
			if _, err := os.Stat(td); err != nil {
				t.Skipf("../shared/testdata is absent beside the repository (%s): skipping tests over shared NHS test data", td)
			}
			return td
		}
	}
	t.Skip("repository root not found")
	return ""
}

// gp2gpBindings binds the shared harness extracts to PDS sandbox patients.
var gp2gpBindings = map[string]fhir.NHSNumber{
	"PWTP2.xml": "9000000009", "PWTP3.xml": "9000000025", "PWTP5.xml": "9000000033",
	"PWTP6.xml": "9693632109", "PWTP10.xml": "9732110317",
}

// TestServeGP2GPPractice serves the real EMIS extracts through `gpgate serve`
// with a --practices file, over HTTP, and picks up a new extract without a
// restart.
func TestServeGP2GPPractice(t *testing.T) {
	td := sharedTestdata(t)
	dir := t.TempDir()
	extracts := filepath.Join(dir, "extracts")
	if err := os.Mkdir(extracts, 0o700); err != nil {
		t.Fatal(err)
	}
	bind := map[string]fhir.NHSNumber{}
	for f, n := range gp2gpBindings {
		if f == "PWTP10.xml" {
			continue // added later, while serving
		}
		bind[filepath.Join(td, "gp2gp", "extracts", f)] = n
	}
	if err := gp2gp.WriteManifest(filepath.Join(extracts, "manifest.json"), bind); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"practices":[{"ods":"A20047","name":"Extract Practice","kind":"gp2gp","dir":%q,"pds":%q}]}`,
		extracts, filepath.Join(td, "pds"))
	cfgPath := filepath.Join(dir, "practices.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"agreements", "add", "--data", data, "--provider", "A20047", "--consumers", demoClientODS, "--areas", "all", "--purposes", "TREAT"}, &out, &errb); code != 0 {
		t.Fatalf("agreements add: %s %s", out.String(), errb.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := startOn(t, ctx, serveOpts{data: data, practices: cfgPath})

	counts := map[string]int{}
	coded := codedTally{}
	for f, nhs := range bind {
		b := decodeBundle(t, s.get(t, patientSearch(string(nhs))))
		if *b.Total != 1 {
			t.Fatalf("%s: Patient search total %d", filepath.Base(f), *b.Total)
		}
		var p resourceHead
		_ = json.Unmarshal(b.Entry[0].Resource, &p)
		next := "/Patient/" + p.ID + "/$everything?_count=1000"
		for next != "" {
			r := s.get(t, next)
			eb := decodeBundle(t, r)
			if err := parseAll(eb); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			coded.page(r.body, eb)
			for _, e := range eb.Entry {
				var h resourceHead
				_ = json.Unmarshal(e.Resource, &h)
				counts[h.ResourceType]++
			}
			next = eb.link("next")
		}
		cond := decodeBundle(t, s.get(t, "/Condition?patient="+p.ID+"&category=problem-list-item&_count=0"))
		if *cond.Total == 0 && !strings.HasSuffix(f, "PWTP6.xml") {
			t.Errorf("%s: no problems served", filepath.Base(f))
		}
	}
	for _, typ := range []string{"Patient", "Condition", "MedicationRequest", "MedicationStatement", "AllergyIntolerance", "Observation", "Encounter"} {
		if counts[typ] == 0 {
			t.Errorf("no %s served from the extracts", typ)
		}
	}
	t.Logf("served from GP2GP extracts: %v", counts)
	coded.check(t)

	// A new extract is picked up without a restart.
	bind[filepath.Join(td, "gp2gp", "extracts", "PWTP10.xml")] = gp2gpBindings["PWTP10.xml"]
	if err := gp2gp.WriteManifest(filepath.Join(extracts, "manifest.json"), bind); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if r := s.get(t, patientSearch("9732110317")); r.status == http.StatusOK {
			if b := decodeBundle(t, r); *b.Total == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("new extract not picked up without restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := s.get(t, "/Patient?identifier="+fhir.NHSNumberSystem+"|9732110317"); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
}
