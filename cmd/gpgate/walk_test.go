package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// TestEveryDemoPatientEverything walks every demo patient's $everything and
// checks that every resource and Bundle gpgate emits parses back with
// google/fhir jsonformat under R4 validation, carries its UK Core profile and
// no free text (profiles.CodedOnly).
func TestEveryDemoPatientEverything(t *testing.T) {
	s := startServer(t)
	if len(s.patients) < demoPatients-10 {
		t.Fatalf("only %d patients indexed", len(s.patients))
	}
	resources, dissenting := 0, 0
	coded := codedTally{}
	defer coded.check(t)
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
			coded.page(r.body, b)
			for _, e := range b.Entry {
				resources++
				var h resourceHead
				_ = json.Unmarshal(e.Resource, &h)
				if len(h.Meta.Profile) == 0 || h.Meta.Profile[0] == "" {
					t.Fatalf("%s has no UK Core profile", e.FullURL)
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

// codedTally counts the coded-only problems (profiles.CodedOnly, which
// decides every string by its R4 type) of the responses a test walks, by
// rule and element with indexes dropped ("gpgate-coded-only
// Condition.note.text"), so that one run names every kind of free text
// emitted rather than the first.
type codedTally map[string]int

// page adds the problems of one Bundle page; b is the page decoded.
func (c codedTally) page(body []byte, b *bundle) {
	for _, p := range profiles.CodedOnly(body) {
		where := p.Path
		if rest, ok := strings.CutPrefix(where, "Bundle.entry["); ok {
			n, tail, _ := strings.Cut(rest, "]")
			var h resourceHead
			if i, err := strconv.Atoi(n); err == nil && i < len(b.Entry) {
				_ = json.Unmarshal(b.Entry[i].Resource, &h)
			}
			where = h.ResourceType + strings.TrimPrefix(tail, ".resource")
		}
		c[p.Rule+" "+dropIndexes(where)]++
	}
}

func dropIndexes(path string) string {
	var out strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			out.WriteRune(r)
		}
	}
	return out.String()
}

// check fails t with every element counted, most frequent first.
func (c codedTally) check(t *testing.T) {
	t.Helper()
	if len(c) == 0 {
		return
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c[keys[i]] != c[keys[j]] {
			return c[keys[i]] > c[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %6d  %s", c[k], k)
	}
	t.Errorf("emitted resources carry free text or elements R4 does not define (count, rule, element):%s", b.String())
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
