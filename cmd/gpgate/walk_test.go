package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// TestEveryDemoPatientEverything walks every demo patient's $everything and
// checks that every resource and Bundle gpgate emits parses back with
// google/fhir jsonformat under R4 validation, carries its UK Core profile and
// no free text.
func TestEveryDemoPatientEverything(t *testing.T) {
	s := startServer(t)
	if len(s.patients) < demoPatients-10 {
		t.Fatalf("only %d patients indexed", len(s.patients))
	}
	resources, dissenting := 0, 0
	dissent := s.notable(t, "dissent")
	sawNotableDissent := false
	for i, nhs := range s.patients {
		next := "/Patient/" + fhir.PatientID(nhs) + "/$everything?_count=" + itoa(fhir.MaxCount)
		for page := 0; next != ""; page++ {
			r := s.get(t, next)
			if r.status == http.StatusForbidden && page == 0 && strings.Contains(string(r.body), `"patient-dissent"`) {
				dissenting++ // the patient dissents from sharing: refused, and nothing leaks
				if string(nhs) == dissent.NHS {
					sawNotableDissent = true
				}
				if strings.Contains(string(r.body), string(nhs)) || strings.Contains(string(r.body), fhir.PatientID(nhs)) {
					t.Fatalf("patient %d: the dissent refusal names the patient", i)
				}
				break
			}
			if r.status != http.StatusOK {
				t.Fatalf("patient %d: status %d", i, r.status)
			}
			if i%50 == 0 && page == 0 { // the whole Bundle through jsonformat, for a sample
				if _, err := fhir.Parse(r.body); err != nil {
					t.Fatalf("patient %d: Bundle is not valid R4: %v", i, err)
				}
			}
			b := decodeBundle(t, r)
			if err := parseAll(b); err != nil {
				t.Fatalf("patient %d: %v", i, err)
			}
			for _, e := range b.Entry {
				resources++
				var h resourceHead
				_ = json.Unmarshal(e.Resource, &h)
				if len(h.Meta.Profile) == 0 || h.Meta.Profile[0] == "" {
					t.Fatalf("%s has no UK Core profile", e.FullURL)
				}
				if key := freeTextKey(e.Resource); key != "" {
					t.Fatalf("%s carries free text in %q", e.FullURL, key)
				}
			}
			next = b.link("next")
		}
	}
	if dissenting == 0 || !sawNotableDissent {
		t.Fatalf("%d dissenting patients refused; the notable dissent patient refused: %v", dissenting, sawNotableDissent)
	}
	t.Logf("walked %d patients with consent-bound tokens: %d resources, %d dissenting patients refused", len(s.patients), resources, dissenting)
}

// freeTextKey returns the first free-text element found ("text" narrative,
// "note", "comment", or a CodeableConcept "text"), or "".
func freeTextKey(raw []byte) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "unparseable"
	}
	var walk func(v any) string
	walk = func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				switch k {
				case "text":
					_, coded := x["coding"]
					if s, ok := c.(string); ok && coded && fhir.IsProfileFixedText(s) {
						continue // the BP component labels UK Core fixes
					}
					return k
				case "note", "comment", "comments":
					return k
				}
				if got := walk(c); got != "" {
					return got
				}
			}
		case []any:
			for _, c := range x {
				if got := walk(c); got != "" {
					return got
				}
			}
		}
		return ""
	}
	return walk(v)
}

// parseAll puts every entry through jsonformat's R4 validation, on every core.
func parseAll(b *bundle) error {
	workers := runtime.GOMAXPROCS(0)
	errc := make(chan error, workers)
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(b.Entry) {
					errc <- nil
					return
				}
				if _, err := fhir.Parse(b.Entry[i].Resource); err != nil {
					errc <- fmt.Errorf("%s is not valid R4: %w", b.Entry[i].FullURL, err)
					return
				}
			}
		}()
	}
	var first error
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
