package fhir

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestIncludeParamsAreServed(t *testing.T) {
	for _, p := range IncludeParams {
		if _, ok := SearchParams[p.Source]; !ok {
			t.Errorf("%s: %s is not searchable", p.Key(), p.Source)
		}
		for _, tgt := range p.Targets {
			if !IsReadable(tgt) {
				t.Errorf("%s points at %s, which gpgate does not serve", p.Key(), tgt)
			}
		}
		if len(p.Path) == 0 {
			t.Errorf("%s has no path", p.Key())
		}
	}
	for _, want := range []string{"MedicationRequest:medication", "MedicationStatement:medication", "DiagnosticReport:result",
		"DiagnosticReport:specimen", "Observation:has-member", "Condition:encounter", "Encounter:diagnosis", "Condition:patient"} {
		found := false
		for _, p := range IncludeParams {
			found = found || p.Key() == want
		}
		if !found {
			t.Errorf("%s is not served", want)
		}
	}
	if got := RevIncludesOf("Medication"); !reflect.DeepEqual(got, []string{"MedicationRequest:medication", "MedicationStatement:medication"}) {
		t.Errorf("RevIncludesOf(Medication) = %q", got)
	}
}

func includeRecord(t *testing.T) []*Resource {
	t.Helper()
	rs := []*Resource{
		mustResource(t, `{"resourceType":"Patient","id":"p1"}`),
		mustResource(t, `{"resourceType":"DiagnosticReport","id":"p1-dr1","subject":{"reference":"Patient/p1"},"result":[{"reference":"Observation/p1-o1"},{"reference":"Observation/p1-o2"}],"specimen":[{"reference":"Specimen/p1-s1"}]}`),
		mustResource(t, `{"resourceType":"Observation","id":"p1-o1","subject":{"reference":"Patient/p1"},"hasMember":[{"reference":"Observation/p1-o3"}],"specimen":{"reference":"Specimen/p1-s1"}}`),
		mustResource(t, `{"resourceType":"Observation","id":"p1-o2","subject":{"reference":"Patient/p1"}}`),
		mustResource(t, `{"resourceType":"Observation","id":"p1-o3","subject":{"reference":"Patient/p1"},"hasMember":[{"reference":"Observation/p1-o4"}]}`),
		mustResource(t, `{"resourceType":"Observation","id":"p1-o4","subject":{"reference":"Patient/p1"}}`),
		mustResource(t, `{"resourceType":"Specimen","id":"p1-s1","subject":{"reference":"Patient/p1"}}`),
		mustResource(t, `{"resourceType":"Encounter","id":"p1-e1","subject":{"reference":"Patient/p1"},"diagnosis":[{"condition":{"reference":"Condition/p1-c1"}},{"condition":{"reference":"Condition/p1-gone"}}]}`),
		mustResource(t, `{"resourceType":"Condition","id":"p1-c1","subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/p1-e1"}}`),
		mustResource(t, `{"resourceType":"MedicationRequest","id":"p1-mr1","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Medication/p1-m1"}}`),
		mustResource(t, `{"resourceType":"MedicationRequest","id":"p1-mr2","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Medication/p1-m1"}}`),
		mustResource(t, `{"resourceType":"Medication","id":"p1-m1"}`),
	}
	return rs
}

func ids(rs []*Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Type+"/"+r.ID)
	}
	return out
}

func TestIncluded(t *testing.T) {
	all := includeRecord(t)
	find := func(key string) *Resource {
		for _, r := range all {
			if r.Type+"/"+r.ID == key {
				return r
			}
		}
		t.Fatalf("no %s", key)
		return nil
	}
	for _, tc := range []struct {
		name     string
		typ      string
		page     []string
		includes url.Values
		want     []string
	}{
		{"result and specimen", "DiagnosticReport", []string{"DiagnosticReport/p1-dr1"},
			url.Values{"_include": {"DiagnosticReport:result", "DiagnosticReport:specimen"}},
			[]string{"Observation/p1-o1", "Observation/p1-o2", "Specimen/p1-s1"}},
		{"target type narrows", "DiagnosticReport", []string{"DiagnosticReport/p1-dr1"},
			url.Values{"_include": {"DiagnosticReport:result:Observation"}},
			[]string{"Observation/p1-o1", "Observation/p1-o2"}},
		{"has-member once", "Observation", []string{"Observation/p1-o1"},
			url.Values{"_include": {"Observation:has-member"}}, []string{"Observation/p1-o3"}},
		{"has-member iterated", "Observation", []string{"Observation/p1-o1"},
			url.Values{"_include:iterate": {"Observation:has-member"}}, []string{"Observation/p1-o3", "Observation/p1-o4"}},
		{"an entry of the page is not included again", "Observation", []string{"Observation/p1-o1", "Observation/p1-o3"},
			url.Values{"_include": {"Observation:has-member"}}, []string{"Observation/p1-o4"}},
		{"a reference to what is not in the record is skipped", "Encounter", []string{"Encounter/p1-e1"},
			url.Values{"_include": {"Encounter:diagnosis"}}, []string{"Condition/p1-c1"}},
		{"medication once for two requests", "MedicationRequest", []string{"MedicationRequest/p1-mr1", "MedicationRequest/p1-mr2"},
			url.Values{"_include": {"MedicationRequest:medication"}}, []string{"Medication/p1-m1"}},
		{"revinclude", "Observation", []string{"Observation/p1-o2"},
			url.Values{"_revinclude": {"DiagnosticReport:result"}}, []string{"DiagnosticReport/p1-dr1"}},
		{"revinclude then iterate include", "Observation", []string{"Observation/p1-o2"},
			url.Values{"_revinclude": {"DiagnosticReport:result"}, "_include:iterate": {"DiagnosticReport:specimen"}},
			[]string{"DiagnosticReport/p1-dr1", "Specimen/p1-s1"}},
		{"revinclude of the patient", "Patient", []string{"Patient/p1"},
			url.Values{"_revinclude": {"Specimen:patient"}}, []string{"Specimen/p1-s1"}},
		{"no match, no include", "Condition", nil, url.Values{"_include": {"Condition:encounter"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := url.Values{}
			for k, vals := range tc.includes {
				v[k] = vals
			}
			if tc.typ == "Patient" {
				v.Set("_id", "p1")
			} else {
				v.Set("patient", "p1")
			}
			q, err := ParseQuery(tc.typ, v, true)
			if err != nil {
				t.Fatal(err)
			}
			var page []*Resource
			for _, k := range tc.page {
				page = append(page, find(k))
			}
			got := ids(Included(all, page, q.Includes))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("included %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIncludeParse(t *testing.T) {
	q, err := ParseQuery("Condition", url.Values{"patient": {"p1"}, "_include": {"Condition:encounter,Condition:patient"}, "_revinclude": {"Encounter:diagnosis:Condition"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, inc := range q.Includes {
		got = append(got, inc.String()+map[bool]string{true: " rev", false: ""}[inc.Rev])
	}
	want := []string{"Condition:encounter", "Condition:patient", "Encounter:diagnosis:Condition rev"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	_, err = ParseQuery("Condition", url.Values{"patient": {"p1"}, "_include": {"Condition:asserter"}}, false)
	if fe := AsError(err); fe.Code != CodeNotImplemented || !strings.Contains(fe.Diagnostics, "Condition:encounter") {
		t.Fatalf("an include not served: %v (it should name what is)", err)
	}
}

func BenchmarkIncludedRevinclude(b *testing.B) {
	t := &testing.T{}
	base := includeRecord(t)
	var all []*Resource
	for i := 0; i < 300; i++ {
		all = append(all, base...)
	}
	page := []*Resource{base[3]}
	q, _ := ParseQuery("Observation", url.Values{"patient": {"p1"}, "_revinclude": {"DiagnosticReport:result"}}, true)
	b.ReportAllocs()
	for b.Loop() {
		Included(all, page, q.Includes)
	}
}
