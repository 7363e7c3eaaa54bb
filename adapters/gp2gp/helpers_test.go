package gp2gp

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// sharedDir finds ../shared beside the repository (the directory holding
// go.mod), or skips the test.
func sharedDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("go.mod not found above the package: cannot locate ../shared")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared", "testdata", "gp2gp")
	if _, err := os.Stat(shared); err != nil {
		tb.Skipf("shared test data absent (%s): skipping", shared)
	}
	return filepath.Join(dir, "..", "shared", "testdata")
}

// testBindings is the manifest used over the shared test data (see doc.go).
var testBindings = map[string]fhir.NHSNumber{
	"PWTP2.xml":  "9000000009",
	"PWTP3.xml":  "9000000025",
	"PWTP5.xml":  "9000000033",
	"PWTP6.xml":  "9693632109",
	"PWTP10.xml": "9732110317",
}

func mapFile(tb testing.TB, path string, nhs fhir.NHSNumber) *Mapped {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	x, err := ParseExtract(b, 0)
	if err != nil {
		tb.Fatalf("%s: parse: %v", filepath.Base(path), err)
	}
	m, err := x.Map(MapOptions{NHS: nhs, Practice: "A12345"})
	if err != nil {
		tb.Fatalf("%s: map: %v", filepath.Base(path), err)
	}
	return m
}

// checkResources asserts the invariants every mapped record must meet.
func checkResources(t *testing.T, name string, nhs fhir.NHSNumber, rs []*fhir.Resource) {
	t.Helper()
	pid := fhir.PatientID(nhs)
	ids := map[string]bool{}
	for _, r := range rs {
		ids[r.Reference()] = true
	}
	if len(rs) == 0 || rs[0].Type != "Patient" || rs[0].ID != pid {
		t.Errorf("%s: the Patient must come first with id %s", name, pid)
	}
	for _, r := range rs {
		if _, err := fhir.Parse(r.JSON); err != nil {
			t.Errorf("%s: %s does not validate: %v", name, r.Reference(), err)
		}
		if r.Type != "Patient" && !strings.HasPrefix(r.ID, pid+"-") {
			t.Errorf("%s: %s id is not under the patient id", name, r.Reference())
		}
		if len(r.ID) > 64 {
			t.Errorf("%s: %s id longer than 64", name, r.Reference())
		}
		var doc map[string]any
		if err := json.Unmarshal(r.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		want := fhir.ProfileFor(r.Type)
		if r.Type == "Observation" && fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
			want = fhir.ProfileBloodPressure
		}
		meta, _ := doc["meta"].(map[string]any)
		if prof, _ := meta["profile"].([]any); len(prof) != 1 || prof[0] != want {
			t.Errorf("%s: %s profile %v, want %s", name, r.Reference(), meta["profile"], want)
		}
		if r.Type != "Patient" && r.Type != "Organization" && r.Type != "Practitioner" && r.Type != "Medication" && r.Ix.Patient != pid {
			t.Errorf("%s: %s subject is not Patient/%s", name, r.Reference(), pid)
		}
		walkJSON(doc, "", func(path string, key string, v any) {
			switch key {
			case "text":
				if s, ok := v.(string); ok && fhir.IsProfileFixedText(s) && strings.Contains(path, ".code") {
					break // a label UK Core fixes (BP components), not free text
				}
				if !strings.Contains(path, "dosage") { // dosage instructions are part of a prescription
					t.Errorf("%s: %s carries free text at %s", name, r.Reference(), path)
				}
			case "note", "comment", "originalText", "contained":
				t.Errorf("%s: %s carries %s", name, r.Reference(), path)
			case "coding":
				if l, _ := v.([]any); len(l) == 0 {
					t.Errorf("%s: %s has a CodeableConcept without coding at %s", name, r.Reference(), path)
				}
			case "reference":
				if s, _ := v.(string); !ids[s] {
					t.Errorf("%s: %s reference %s at %s does not resolve in the record", name, r.Reference(), s, path)
				}
			}
		})
	}
}

func walkJSON(v any, path string, f func(path, key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			p := path + "." + k
			f(p, k, c)
			walkJSON(c, p, f)
		}
	case []any:
		for _, c := range x {
			walkJSON(c, path, f)
		}
	}
}

func countTypes(rs []*fhir.Resource) map[string]int {
	c := map[string]int{}
	for _, r := range rs {
		c[r.Type]++
	}
	return c
}

func jsonNoEscape(v any) []byte {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(v)
	return []byte(b.String())
}

func attrs(kv ...string) []xml.Attr {
	var out []xml.Attr
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, xml.Attr{Name: xml.Name{Local: kv[i]}, Value: kv[i+1]})
	}
	return out
}

// checkSignals asserts that what the mapper withheld or labelled is
// signalled: labelled resources are confidential to the index (redaction
// withholds them and warns), uncoded entries and attachments carry their
// warning, and the mapper never warns of confidential items itself.
func checkSignals(t *testing.T, m *Mapped) {
	t.Helper()
	conf := 0
	for _, r := range m.Resources {
		if r.Ix.Confidential && r.Type != "Medication" {
			conf++
		}
	}
	if conf != m.Confidential {
		t.Errorf("%d resources labelled confidential, mapper counted %d", conf, m.Confidential)
	}
	has := map[fhir.Code]int{}
	for _, w := range m.Warnings {
		has[w.Code]++
		if w.Severity != "warning" && w.Severity != "information" {
			t.Errorf("warning %s with severity %q", w.Code, w.Severity)
		}
	}
	if has[fhir.WarnConfidentialItems] > 0 {
		t.Error("the mapper warns of confidential items itself: redaction does, for the areas it withholds from")
	}
	if (m.Uncoded > 0) != (has[fhir.WarnUncodedItems] == 1) {
		t.Errorf("%d uncoded entries, %d uncoded-items warnings", m.Uncoded, has[fhir.WarnUncodedItems])
	}
	if (m.Attachments > 0) != (has[fhir.WarnAttachmentsWithheld] == 1) {
		t.Errorf("%d attachments, %d attachments warnings", m.Attachments, has[fhir.WarnAttachmentsWithheld])
	}
}
