package fhir

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestParseSubset(t *testing.T) {
	for _, tc := range []struct {
		name              string
		summary, elements []string
		want              Subset
		code              Code
	}{
		{name: "none", want: Subset{}},
		{name: "count", summary: []string{"count"}, want: Subset{Summary: SummaryCount}},
		{name: "true", summary: []string{"true"}, want: Subset{Summary: SummaryTrue}},
		{name: "last wins", summary: []string{"true", "data"}, want: Subset{Summary: SummaryData}},
		{name: "text has no narrative to give", summary: []string{"text"}, code: CodeNotImplemented},
		{name: "unknown", summary: []string{"brief"}, code: CodeInvalidParameter},
		{name: "elements", elements: []string{"code,status", "subject"}, want: Subset{Elements: []string{"code", "status", "subject"}}},
		{name: "typed elements", elements: []string{"Condition.code,Observation.value[x]"}, want: Subset{Elements: []string{"code"}}},
		{name: "choice", elements: []string{"onset[x]"}, want: Subset{Elements: []string{"onset[x]"}}},
		{name: "not a name", elements: []string{"code,Code"}, code: CodeInvalidParameter},
		{name: "path", elements: []string{"code.coding"}, code: CodeInvalidParameter},
		{name: "empty", elements: []string{""}, code: CodeInvalidParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSubset("Condition", tc.summary, tc.elements)
			if tc.code != "" {
				wantCodedError(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

const subsetCondition = `{"resourceType":"Condition","id":"p1-c1","meta":{"lastUpdated":"2024-01-01T00:00:00Z","profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Condition"]},` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],` +
	`"clinicalStatus":{"coding":[{"code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},` +
	`"encounter":{"reference":"Encounter/p1-e1"},"evidence":[{"code":[{"coding":[{"code":"x"}]}]}],"onsetDateTime":"2020-01-01","_onsetDateTime":{"extension":[{"url":"u","valueCode":"c"}]},"subject":{"reference":"Patient/p1"}}`

func TestSubsetApply(t *testing.T) {
	r := mustResource(t, subsetCondition)
	for _, tc := range []struct {
		name string
		sub  Subset
		keys []string // top-level keys of the answer; nil: the resource unchanged
	}{
		{name: "whole", sub: Subset{}},
		{name: "false", sub: Subset{Summary: SummaryFalse}},
		{name: "data (no text to remove)", sub: Subset{Summary: SummaryData}},
		{name: "summary", sub: Subset{Summary: SummaryTrue},
			keys: []string{"_onsetDateTime", "category", "clinicalStatus", "code", "encounter", "id", "meta", "onsetDateTime", "resourceType", "subject"}},
		{name: "elements keep mandatory and invariant ones", sub: Subset{Elements: []string{"code"}},
			keys: []string{"category", "clinicalStatus", "code", "id", "meta", "resourceType", "subject"}},
		{name: "choice element", sub: Subset{Elements: []string{"onset[x]"}},
			keys: []string{"_onsetDateTime", "category", "clinicalStatus", "id", "meta", "onsetDateTime", "resourceType", "subject"}},
		{name: "typed choice name", sub: Subset{Elements: []string{"onsetDateTime"}},
			keys: []string{"_onsetDateTime", "category", "clinicalStatus", "id", "meta", "onsetDateTime", "resourceType", "subject"}},
		{name: "everything asked", sub: Subset{Elements: []string{"category", "clinicalStatus", "code", "encounter", "evidence", "onset[x]"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.sub.Apply(r)
			if tc.keys == nil {
				if got != r {
					t.Fatalf("changed: %s", got.JSON)
				}
				return
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(got.JSON, &m); err != nil {
				t.Fatalf("%v: %s", err, got.JSON)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if !reflect.DeepEqual(keys, tc.keys) {
				t.Fatalf("keys %q, want %q", keys, tc.keys)
			}
			if !strings.Contains(string(m["meta"]), `"code":"SUBSETTED"`) || !strings.Contains(string(m["meta"]), `"profile"`) {
				t.Fatalf("meta %s", m["meta"])
			}
			if _, err := Canonicalize(got.JSON); err != nil {
				t.Fatalf("a subset is not valid R4: %v\n%s", err, got.JSON)
			}
			if got.ID != r.ID || got.Type != r.Type || got.Ix.Area != r.Ix.Area {
				t.Fatal("identity or index lost")
			}
			// Subsetting twice tags once.
			if again := tc.sub.Apply(got); strings.Count(string(again.JSON), "SUBSETTED") != 1 {
				t.Fatalf("tagged twice: %s", again.JSON)
			}
		})
	}
}

func TestSubsetMetaTag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"resourceType":"Flag","id":"f","status":"active","code":{},"subject":{"reference":"Patient/p"},"period":{}}`,
			`{"resourceType":"Flag","id":"f","meta":{"tag":[{"system":"` + SubsettedSystem + `","code":"SUBSETTED"}]},"status":"active","code":{},"subject":{"reference":"Patient/p"}}`},
		{`{"resourceType":"Flag","id":"f","meta":{"tag":[{"code":"x"}]},"status":"active","code":{},"subject":{"reference":"Patient/p"},"period":{}}`,
			`{"resourceType":"Flag","id":"f","meta":{"tag":[{"code":"x"},{"system":"` + SubsettedSystem + `","code":"SUBSETTED"}]},"status":"active","code":{},"subject":{"reference":"Patient/p"}}`},
		{`{"resourceType":"Flag","id":"f","meta":{"tag":[]},"status":"active","code":{},"subject":{"reference":"Patient/p"},"period":{}}`,
			`{"resourceType":"Flag","id":"f","meta":{"tag":[{"system":"` + SubsettedSystem + `","code":"SUBSETTED"}]},"status":"active","code":{},"subject":{"reference":"Patient/p"}}`},
	} {
		got := Subset{Elements: []string{"status"}}.Apply(mustResource(t, tc.in))
		if string(got.JSON) != tc.want {
			t.Errorf("\n got %s\nwant %s", got.JSON, tc.want)
		}
	}
}

// The summary and mandatory tables are the R4 isSummary flags and the UK
// Core minimum cardinalities of the profiles gpgate claims.
func TestSubsetTablesMatchUKCore(t *testing.T) {
	dir := sharedUKCore(t)
	profiles := map[string][]string{"Observation": {"UKCore-Observation", "UKCore-Observation-Lab", "UKCore-Observation-VitalSigns-BloodPressure"}}
	for typ := range summaryElements {
		names := profiles[typ]
		if names == nil {
			names = []string{"UKCore-" + typ}
		}
		summary, mandatory := map[string]bool{}, map[string]bool{}
		for _, name := range names {
			b, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			var sd struct {
				Snapshot struct {
					Element []struct {
						Path      string `json:"path"`
						Min       int    `json:"min"`
						IsSummary bool   `json:"isSummary"`
					} `json:"element"`
				} `json:"snapshot"`
			}
			if err := json.Unmarshal(b, &sd); err != nil {
				t.Fatal(err)
			}
			for _, e := range sd.Snapshot.Element {
				parts := strings.Split(e.Path, ".")
				if len(parts) != 2 {
					continue
				}
				switch parts[1] {
				case "id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension":
					continue
				}
				if e.IsSummary {
					summary[parts[1]] = true
				}
				if e.Min >= 1 {
					mandatory[parts[1]] = true
				}
			}
		}
		if got, want := set(summaryElements[typ]), summary; !reflect.DeepEqual(got, want) {
			t.Errorf("%s summary elements %v, UK Core says %v", typ, keysOf(got), keysOf(want))
		}
		if got, want := set(mandatoryElements[typ]), mandatory; !reflect.DeepEqual(got, want) {
			t.Errorf("%s mandatory elements %v, UK Core says %v", typ, keysOf(got), keysOf(want))
		}
	}
}

func set(l []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range l {
		m[s] = true
	}
	return m
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sharedUKCore finds ../shared/ukcore beside the checkout, or skips.
func sharedUKCore(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the package; cannot locate ../shared")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "ukcore")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is absent (shared test data lives beside the checkout); skipping the UK Core cross-check", p)
	}
	return p
}

func FuzzSubsetApply(f *testing.F) {
	f.Add(subsetCondition, "true", "code")
	f.Add(`{"resourceType":"Flag","id":"f","meta":{"tag":[{"code":"x"}]},"status":"active"}`, "", "status,period")
	f.Add(`{"resourceType":"Observation","id":"o","meta":{"tag":"x"}}`, "data", "")
	f.Fuzz(func(t *testing.T, raw, summary, elements string) {
		r, err := NewResource([]byte(raw))
		if err != nil {
			return
		}
		sub, err := ParseSubset(r.Type, []string{summary}, []string{elements})
		if err != nil {
			return
		}
		got := sub.Apply(r)
		if got == r {
			return
		}
		var before, after map[string]json.RawMessage
		if json.Unmarshal(r.JSON, &before) != nil {
			return
		}
		if err := json.Unmarshal(got.JSON, &after); err != nil {
			t.Fatalf("subset is not JSON: %v\n%s", err, got.JSON)
		}
		for k, v := range after {
			if k == "meta" {
				continue
			}
			if string(before[k]) != string(v) {
				t.Fatalf("element %s changed or added", k)
			}
		}
	})
}

func BenchmarkSubsetApply(b *testing.B) {
	r, err := NewResource([]byte(subsetCondition))
	if err != nil {
		b.Fatal(err)
	}
	sub := Subset{Summary: SummaryTrue}
	b.ReportAllocs()
	for b.Loop() {
		sub.Apply(r)
	}
}

// objectProps splits what encoding/json reads, member for member.
func FuzzObjectProps(f *testing.F) {
	f.Add([]byte(subsetCondition))
	f.Add([]byte(`{ "a" : [1, {"b": "}]\""}], "c\"d": null ,"e":-1.5e3, "f":{}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":"x\\"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		props, err := objectProps(raw)
		var want map[string]json.RawMessage
		werr := json.Unmarshal(raw, &want)
		if err != nil || werr != nil {
			if err == nil && werr != nil && json.Valid(raw) {
				t.Fatalf("accepted what is not an object: %q", raw)
			}
			return
		}
		if len(props) < len(want) {
			t.Fatalf("%d members, encoding/json %d", len(props), len(want))
		}
		for _, p := range props {
			w, ok := want[p.name]
			if !ok {
				t.Fatalf("member %q unknown to encoding/json", p.name)
			}
			if !json.Valid(p.value) {
				t.Fatalf("member %q: %q is not a JSON value", p.name, p.value)
			}
			_ = w
		}
	})
}
