package conformance

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

func TestOperationDefinitionsAgreeWithCapabilityStatement(t *testing.T) {
	o := Options{BaseURL: "https://gpgate.example/fhir", Version: "test", Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	defs := OperationDefinitions(o)
	if len(defs) != len(fhir.Operations) {
		t.Fatalf("%d definitions for %d operations", len(defs), len(fhir.Operations))
	}
	var cs capStatement
	if err := json.Unmarshal(CapabilityStatement(o), &cs); err != nil {
		t.Fatal(err)
	}
	for _, op := range fhir.Operations {
		t.Run(op.Name, func(t *testing.T) {
			canon := Canonical(o.BaseURL, op)
			body := defs[strings.TrimPrefix(canon, o.BaseURL)]
			if body == nil {
				t.Fatalf("no definition served at %s", canon)
			}
			if _, err := fhir.Parse(body); err != nil {
				t.Fatalf("not valid R4: %v", err)
			}
			if ps := profiles.CheckJSON(body); profiles.HasErrors(ps) {
				t.Fatalf("%v", profiles.Errors(ps))
			}
			var d struct {
				URL, Code string
				Instance  bool
				Parameter []opParam
			}
			_ = json.Unmarshal(body, &d)
			if d.URL != canon || d.Code != op.Name || d.Instance != op.Instance {
				t.Fatalf("url %q code %q instance %v", d.URL, d.Code, d.Instance)
			}
			for _, p := range d.Parameter {
				if p.Type == "" && len(p.Part) == 0 {
					t.Errorf("parameter %s has neither type nor parts (opd-1)", p.Name)
				}
			}
			declared := false
			for _, r := range cs.resources() {
				for _, x := range r.Operation {
					declared = declared || (r.Type == op.Type && x.Name == op.Name && x.Definition == canon)
				}
			}
			if !declared {
				t.Fatalf("the CapabilityStatement does not name %s for $%s", canon, op.Name)
			}
		})
	}
}

func TestStructuredSectionsDeclared(t *testing.T) {
	body := OperationDefinition(Options{BaseURL: "http://x"}, fhir.Operations[1])
	for _, s := range fhir.Sections {
		if !strings.Contains(string(body), `"name":"`+s.Param+`"`) {
			t.Errorf("section %s not declared", s.Param)
		}
		for _, p := range s.Parts {
			if !strings.Contains(string(body), `"name":"`+p.Name+`"`) {
				t.Errorf("part %s.%s not declared", s.Param, p.Name)
			}
		}
	}
}

func TestValuesAndTokens(t *testing.T) {
	var o map[string]any
	_ = json.Unmarshal([]byte(`{"resourceType":"Observation","id":"o1","status":"final",
		"category":[{"coding":[{"system":"s","code":"vital-signs"}]}],
		"effectivePeriod":{"start":"2020-01-02","end":"2020-01-03"},
		"subject":{"reference":"Patient/p1"},"meta":{"lastUpdated":"2021-05-06T07:08:09Z"}}`), &o)
	cases := []struct {
		path string
		want int
	}{
		{"status", 1}, {"category", 1}, {"effective[x]", 1}, {"subject", 1}, {"meta.lastUpdated", 1},
		{"code", 0}, {"effect[x]", 0}, {"subject.reference", 1},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			if got := len(values(o, c.path, nil)); got != c.want {
				t.Fatalf("values(%s) = %d, want %d", c.path, got, c.want)
			}
		})
	}
	if tk := tokensOf(values(o, "category", nil)[0]); len(tk) != 1 || tk[0] != (token{"s", "vital-signs"}) {
		t.Fatalf("tokens %v", tk)
	}
	if sp := spansOf(values(o, "effective[x]", nil)[0]); len(sp) != 1 || sp[0].lo.Day() != 2 || sp[0].hi.Day() != 4 {
		t.Fatalf("spans %v", sp)
	}
	if !tokenMatch(token{"", "vital-signs"}, []token{{"s", "vital-signs"}}) || tokenMatch(token{"t", "vital-signs"}, []token{{"s", "vital-signs"}}) {
		t.Fatal("tokenMatch")
	}
}

func TestDemoNHSNumbersAreValid(t *testing.T) {
	ns := demoNHSNumbers(0, 20)
	if len(ns) != 20 || ns[0] != "9990000018" {
		t.Fatalf("%v", ns)
	}
	for _, n := range ns {
		if _, err := fhir.ParseNHSNumber(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// FuzzValues: the element walker never panics on any JSON object.
func FuzzValues(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[{"c":1}]}}`), "a.b.c")
	f.Add([]byte(`{"effectiveDateTime":"2020"}`), "effective[x]")
	f.Fuzz(func(t *testing.T, raw []byte, path string) {
		var o map[string]any
		if json.Unmarshal(raw, &o) != nil {
			return
		}
		for _, v := range values(o, path, map[string]map[string]any{}) {
			_ = tokensOf(v)
			_ = spansOf(v)
			_ = refsOf(v)
		}
	})
}

func TestCapabilityStatementSaysWhatIsServed(t *testing.T) {
	var cs struct {
		Rest []struct {
			Documentation string `json:"documentation"`
			Security      struct {
				Cors bool `json:"cors"`
			} `json:"security"`
			Resource []struct {
				Type             string   `json:"type"`
				SearchInclude    []string `json:"searchInclude"`
				SearchRevInclude []string `json:"searchRevInclude"`
				Interaction      []struct{ Code string }
			} `json:"resource"`
		} `json:"rest"`
	}
	for _, cors := range []bool{false, true} {
		b := CapabilityStatement(Options{BaseURL: "http://gp.test", OAuthURIs: map[string]string{"token": "http://gp.test/auth/token"}, Consent: true, CORS: cors})
		if err := json.Unmarshal(b, &cs); err != nil {
			t.Fatal(err)
		}
		r := cs.Rest[0]
		if r.Security.Cors != cors {
			t.Errorf("security.cors %v with CORS %v", r.Security.Cors, cors)
		}
		if !strings.Contains(r.Documentation, "Unknown search parameters are ignored") || !strings.Contains(r.Documentation, "handling=strict") {
			t.Errorf("rest.documentation does not state the lenient handling: %q", r.Documentation)
		}
		incs := map[string][]string{}
		revs := map[string][]string{}
		for _, rs := range r.Resource {
			incs[rs.Type], revs[rs.Type] = rs.SearchInclude, rs.SearchRevInclude
			if rs.Type == "Consent" && len(rs.Interaction) != 3 {
				t.Errorf("Consent interactions %v (create, read, delete)", rs.Interaction)
			}
		}
		for typ, want := range map[string]string{"MedicationRequest": "MedicationRequest:medication", "DiagnosticReport": "DiagnosticReport:result",
			"Observation": "Observation:has-member", "Condition": "Condition:encounter", "Encounter": "Encounter:diagnosis"} {
			if !slices.Contains(incs[typ], want) {
				t.Errorf("%s searchInclude %v lacks %s", typ, incs[typ], want)
			}
		}
		if !slices.Contains(revs["Observation"], "DiagnosticReport:result") {
			t.Errorf("Observation searchRevInclude %v", revs["Observation"])
		}
	}
}
