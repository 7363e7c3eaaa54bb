package fhirapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestParsePage(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		entries int
		next    string
		wantErr bool
	}{
		{"searchset with next", `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"a"},{"relation":"next","url":"b"}],"entry":[{"resource":{"resourceType":"Condition","id":"1"},"search":{"mode":"match"}}]}`, 1, "b", false},
		{"entries without resource or id skipped", `{"resourceType":"Bundle","type":"searchset","entry":[{},{"resource":{"resourceType":"Condition"}},{"resource":"x"},{"resource":{"id":"2"}}]}`, 0, "", false},
		{"empty", `{"resourceType":"Bundle","type":"searchset"}`, 0, "", false},
		{"not a searchset", `{"resourceType":"Bundle","type":"collection"}`, 0, "", true},
		{"not a Bundle", `{"resourceType":"OperationOutcome"}`, 0, "", true},
		{"trailing data", `{"resourceType":"Bundle","type":"searchset"} {}`, 0, "", true},
		{"not JSON", `<html>`, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePage([]byte(tc.raw))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (len(p.Entries) != tc.entries || p.Next != tc.next) {
				t.Fatalf("page = %+v", p)
			}
		})
	}
}

func TestFollow(t *testing.T) {
	s, err := New(Options{BaseURL: "https://gp.example/fhir/R4", Practice: "A1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		link, want string
		wantErr    bool
	}{
		{"", "", false},
		{"https://gp.example/fhir/R4/Condition?page=2", "https://gp.example/fhir/R4/Condition?page=2", false},
		{"Condition?page=2", "https://gp.example/fhir/Condition?page=2", false},
		{"/fhir/R4?_getpages=x", "https://gp.example/fhir/R4?_getpages=x", false},
		{"https://evil.example/fhir/R4/Condition", "", true},
		{"http://gp.example/fhir/R4/Condition", "", true},
		{"//evil.example/x", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.link, func(t *testing.T) {
			got, err := s.follow(tc.link)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("follow = %q, %v", got, err)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	w := &rewriter{base: "https://gp.example/fhir", refs: map[string]string{
		"Patient/u1": "Patient/pX", "Encounter/e1": "Encounter/pX-enc-e1", "urn:uuid:abc": "Organization/pX-org-o1"}}
	tests := []struct {
		name, in string
		want     []string // substrings of the output
		not      []string
	}{
		{"relative, absolute, history and urn references", `{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/u1"},"encounter":{"reference":"https://gp.example/fhir/Encounter/e1/_history/3"},"asserter":{"reference":"urn:uuid:abc"}}`,
			[]string{`"subject":{"reference":"Patient/pX"}`, `"encounter":{"reference":"Encounter/pX-enc-e1"}`, `"asserter":{"reference":"Organization/pX-org-o1"}`, `"id":"new"`}, nil},
		{"unknown reference dropped, identifier kept", `{"resourceType":"Patient","id":"u1","generalPractitioner":[{"reference":"Organization/zz","display":"Dr X","identifier":{"system":"s","value":"A1"}},{"reference":"Practitioner/zz"}]}`,
			[]string{`"generalPractitioner":[{"identifier":{"system":"s","value":"A1"}}]`}, []string{"zz", "Dr X"}},
		{"a backbone element loses its required reference", `{"resourceType":"Patient","id":"u1","link":[{"other":{"reference":"Patient/zz"},"type":"seealso"}]}`,
			nil, []string{"link", "seealso"}},
		{"an element left empty goes", `{"resourceType":"Condition","id":"c1","evidence":[{"detail":[{"reference":"Observation/zz"}]}]}`,
			nil, []string{"evidence"}},
		{"another server's absolute reference dropped", `{"resourceType":"Condition","id":"c1","encounter":{"reference":"https://other.example/fhir/Encounter/e1"}}`,
			nil, []string{"encounter"}},
		{"contained reference kept; narrative and upstream meta go", `{"resourceType":"Condition","id":"c1","text":{"div":"x"},"meta":{"versionId":"3","source":"s","lastUpdated":"2024-01-01T00:00:00Z"},"recorder":{"reference":"#p1"}}`,
			[]string{`"recorder":{"reference":"#p1"}`, `"lastUpdated":"2024-01-01T00:00:00Z"`, `"profile":["P"]`}, []string{"versionId", `"text"`, `"source"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := w.Rewrite([]byte(tc.in), "new", "P")
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.want {
				if !strings.Contains(string(out), s) {
					t.Errorf("missing %s in %s", s, out)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(string(out), s) {
					t.Errorf("%s left in %s", s, out)
				}
			}
		})
	}
}

func TestLocalID(t *testing.T) {
	long := strings.Repeat("a", 60)
	tests := []struct{ typ, id, want string }{
		{"Condition", "123", "cond-123"},
		{"Observation", "a.b-C", "obs-a.b-C"},
		{"Condition", long, ""},
		{"Condition", "bad/id", ""},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			got := localID(tc.typ, tc.id)
			if tc.want != "" && got != tc.want {
				t.Fatalf("localID = %q", got)
			}
			full := fhir.ResourceID(fhir.PatientID("9000000009"), got)
			if len(full) > 64 || !fhir.ValidID(full) {
				t.Fatalf("id %q", full)
			}
		})
	}
	if localID("Condition", long) == localID("Condition", long+"b") {
		t.Fatal("hashed ids collide")
	}
}

func FuzzParsePage(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"https://gp.example/fhir/R4/Condition?page=2"}],"entry":[{"fullUrl":"x","resource":{"resourceType":"Condition","id":"1"},"search":{"mode":"match"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"searchset","entry":[{"resource":null},{"resource":[]}]}`))
	s, _ := New(Options{BaseURL: "https://gp.example/fhir/R4", Practice: "A1"})
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParsePage(raw)
		if err != nil {
			return
		}
		for _, e := range p.Entries {
			if e.Type == "" || (e.ID == "" && e.Type != "OperationOutcome") || !json.Valid(e.JSON) {
				t.Fatalf("entry %+v", e)
			}
		}
		if next, err := s.follow(p.Next); err == nil && next != "" && !strings.HasPrefix(next, "https://gp.example/") {
			t.Fatalf("followed %q off the upstream", next)
		}
	})
}

func FuzzRewrite(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","id":"u1","link":[{"other":{"reference":"Patient/zz"}}],"generalPractitioner":[{"reference":"Organization/o"}]}`))
	f.Add([]byte(`{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/u1"},"x":[{"y":[{"reference":"#a"}]}]}`))
	w := &rewriter{base: "https://gp.example/fhir", refs: map[string]string{"Patient/u1": "Patient/pX"}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := w.Rewrite(raw, "new", "P")
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatal("invalid JSON out")
		}
		for _, r := range fhir.References(out) {
			if r != "Patient/pX" && !strings.HasPrefix(r, "#") {
				t.Fatalf("reference %q survived", r)
			}
		}
	})
}
