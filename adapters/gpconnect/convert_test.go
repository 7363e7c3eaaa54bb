package gpconnect

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// sourceCounts counts a structured record's entries by walking its STU3
// JSON (independently of the converter): the entries of each counted kind
// that carry a code (an uncoded entry is free text and is not shared).
func sourceCounts(t *testing.T, body []byte) map[string]int {
	t.Helper()
	var b struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	coded := func(v any) bool {
		m, _ := v.(map[string]any)
		cs, _ := m["coding"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			if s, _ := cm["system"].(string); s != "" {
				if k, _ := cm["code"].(string); k != "" {
					return true
				}
			}
		}
		return false
	}
	meds := map[string]bool{}
	for _, e := range b.Entry {
		if e.Resource["resourceType"] == "Medication" && coded(e.Resource["code"]) {
			meds["Medication/"+e.Resource["id"].(string)] = true
		}
	}
	drug := func(r map[string]any) bool {
		if m, ok := r["medicationReference"].(map[string]any); ok {
			return meds[m["reference"].(string)]
		}
		return coded(r["medicationCodeableConcept"])
	}
	n := map[string]int{}
	for _, e := range b.Entry {
		r := e.Resource
		switch r["resourceType"] {
		case "AllergyIntolerance":
			if coded(r["code"]) {
				n["allergies"]++
			}
		case "MedicationStatement":
			if drug(r) {
				n["medication statements"]++
			}
		case "MedicationRequest":
			if drug(r) {
				n["medication requests"]++
			}
		case "Condition":
			n["problems"]++
		case "Observation":
			if coded(r["code"]) {
				n["observations"]++
			}
		case "Encounter":
			n["encounters"]++
		case "Immunization":
			n["immunisations"]++
		case "ReferralRequest":
			n["referrals"]++
		case "ProcedureRequest":
			if coded(r["code"]) {
				n["diary entries"]++
			}
		}
	}
	return n
}

// resultCounts counts the converted record the same way.
func resultCounts(rs []*fhir.Resource) map[string]int {
	n := map[string]int{}
	for _, r := range rs {
		switch r.Type {
		case "AllergyIntolerance":
			n["allergies"]++
		case "MedicationStatement":
			n["medication statements"]++
		case "MedicationRequest":
			n["medication requests"]++
		case "Condition":
			if fhir.HasCoding(r.Ix.Category, fhir.ConditionCategorySystem, "problem-list-item") {
				n["problems"]++
			}
		case "Observation":
			n["observations"]++
		case "Encounter":
			n["encounters"]++
		case "Immunization":
			n["immunisations"]++
		case "ServiceRequest":
			if fhir.HasCoding(r.Ix.Category, fhir.SNOMED, "3457005") {
				n["referrals"]++
			} else if r.Ix.Intent == "plan" {
				n["diary entries"]++
			}
		}
	}
	return n
}

func TestConvertSharedRecords(t *testing.T) {
	for _, f := range sharedFiles(t) {
		t.Run(filepath.Base(f)[:10], func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Convert(body, Options{NHS: testNHS, Practice: "A12345"})
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			want, got := sourceCounts(t, body), resultCounts(res.Resources)
			for _, k := range []string{"allergies", "medication statements", "medication requests", "problems",
				"observations", "encounters", "immunisations", "referrals", "diary entries"} {
				if want[k] != got[k] {
					t.Errorf("%s: converted %d, source has %d", k, got[k], want[k])
				}
			}
			if res.Dropped != 0 {
				t.Errorf("dropped %d entries", res.Dropped)
			}
			checkRecord(t, res.Resources)
		})
	}
}

// checkRecord checks what every converted record must satisfy.
func checkRecord(t *testing.T, rs []*fhir.Resource) {
	t.Helper()
	pid := fhir.PatientID(testNHS)
	if len(rs) == 0 || rs[0].Type != "Patient" || rs[0].ID != pid {
		t.Fatalf("the Patient %s is not first", pid)
	}
	ids := map[string]bool{}
	for _, r := range rs {
		ref := r.Reference()
		if ids[ref] {
			t.Errorf("%s emitted twice", ref)
		}
		ids[ref] = true
	}
	for _, r := range rs {
		ref := r.Reference()
		again, err := fhir.Canonicalize(r.JSON)
		if err != nil {
			t.Errorf("%s: not valid R4: %v", ref, err)
			continue
		}
		if !bytes.Equal(again.JSON, r.JSON) {
			t.Errorf("%s: not canonical JSON", ref)
		}
		for _, p := range profiles.Errors(profiles.CheckJSON(r.JSON)) {
			t.Errorf("%s: %v", ref, p)
		}
		if r.Type != "Patient" && (!strings.HasPrefix(r.ID, pid+"-") || len(r.ID) > 64) {
			t.Errorf("%s: id is not ResourceID(patient, local)", ref)
		}
		var m map[string]any
		_ = json.Unmarshal(r.JSON, &m)
		prof, _ := m["meta"].(map[string]any)["profile"].([]any)
		wantProf := fhir.ProfileFor(r.Type)
		if r.Type == "Observation" && fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
			wantProf = fhir.ProfileBloodPressure
		}
		if len(prof) != 1 || prof[0] != wantProf {
			t.Errorf("%s: profile %v, want %s", ref, prof, wantProf)
		}
		for _, to := range fhir.References(r.JSON) {
			if !ids[to] {
				t.Errorf("%s: reference %s does not resolve in the record", ref, to)
			}
		}
		for _, k := range []string{"subject", "patient"} {
			if s, ok := m[k].(map[string]any); ok && s["reference"] != "Patient/"+pid {
				t.Errorf("%s: %s is %v", ref, k, s["reference"])
			}
		}
		freeText(t, ref, m, "")
	}
}

// freeText reports free-text elements: notes, comments, narrative,
// descriptions, string values, patient instructions and CodeableConcept
// text (only dosage text and the labels UK Core fixes may carry text).
func freeText(t *testing.T, ref string, v any, path string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := path + "." + k
			switch k {
			case "note", "comment", "conclusion", "description", "valueString", "patientInstruction", "div":
				t.Errorf("%s: free text at %s", ref, p)
			case "text":
				s, _ := e.(string)
				if !strings.HasSuffix(path, ".dosage") && !strings.HasSuffix(path, ".dosageInstruction") && !fhir.IsProfileFixedText(s) {
					t.Errorf("%s: free text at %s", ref, p)
				}
			}
			freeText(t, ref, e, p)
		}
	case []any:
		for _, e := range x {
			freeText(t, ref, e, path)
		}
	}
}
