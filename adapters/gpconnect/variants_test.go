package gpconnect

import (
	"os"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// TestContainedEntries: resources a provider puts inside a List (ended
// allergies) are entries of the record, reachable by every form of
// reference to a contained resource, labelled as their container is; an
// id two containers share is not guessed at.
func TestContainedEntries(t *testing.T) {
	body, err := os.ReadFile("testdata/contained-ended-allergies.json")
	if err != nil {
		t.Fatal(err)
	}
	got, res := decoded(t, body)
	checkRecord(t, res.Resources)
	for _, r := range res.Resources {
		for _, p := range profiles.CodedOnly(r.JSON) {
			t.Errorf("%s: %v", r.Reference(), p)
		}
	}
	for _, k := range []string{"AllergyIntolerance/e1", "AllergyIntolerance/e2", "AllergyIntolerance/other.e1"} {
		if got[k] == nil {
			t.Errorf("%s not emitted (have %d resources)", k, len(got))
		}
	}
	if got["List/ended"] != nil || res.Dropped != 0 {
		t.Errorf("List emitted or entries dropped (%d)", res.Dropped)
	}
	if res.Restricted != 2 {
		t.Errorf("restricted %d, want the 2 entries of the labelled List", res.Restricted)
	}
	if rec, _ := got["AllergyIntolerance/e1"]["recorder"].(map[string]any); rec["reference"] != "Practitioner/"+fhir.ResourceID(fhir.PatientID(testNHS), "gp") {
		t.Errorf("recorder via PractitionerRole: %v", rec)
	}
	ext, _ := got["Condition/prob"]["extension"].([]any)
	if len(ext) != 1 || !strings.HasSuffix(ext[0].(map[string]any)["valueReference"].(map[string]any)["reference"].(string), "-e2") {
		t.Errorf("condition links %v, want only List/ended#e2 (#e1 is ambiguous)", ext)
	}
}

// TestSupplierVariants: shapes seen in other suppliers' and versions'
// records convert without losing a coded statement.
func TestSupplierVariants(t *testing.T) {
	obs := func(id string, extra map[string]any) map[string]any {
		o := map[string]any{"resourceType": "Observation", "id": id, "status": "final", "code": cc(sct, "1022541000000102")}
		for k, v := range extra {
			o[k] = v
		}
		return o
	}
	cases := []struct {
		name  string
		in    []map[string]any
		check func(t *testing.T, got map[string]map[string]any, res *Result)
	}{
		{"a reused id keeps both entries, once each", []map[string]any{
			obs("o1", map[string]any{"related": []any{map[string]any{"type": "has-member", "target": ref("Observation/o1")}}}),
			obs("o1", map[string]any{"code": cc(sct, "1022451000000103")}),
			obs("o1", map[string]any{"code": cc(sct, "1022451000000103")})}, // an identical repeat is one resource
			func(t *testing.T, got map[string]map[string]any, res *Result) {
				if got["Observation/o1"] == nil || got["Observation/o1.dup1"] == nil || got["Observation/o1.dup2"] != nil {
					t.Errorf("got %v", keys(got))
				}
				if got["Observation/o1"]["hasMember"] != nil {
					t.Error("an Observation is its own member")
				}
			}},
		{"untyped relations of a laboratory test group are membership", []map[string]any{
			{"resourceType": "DiagnosticReport", "id": "dr", "status": "final", "code": cc(sct, "721981007"), "result": []any{ref("Observation/grp")}},
			obs("grp", map[string]any{"related": []any{map[string]any{"target": ref("Observation/res")}}}),
			obs("res", nil),
			obs("other", map[string]any{"related": []any{map[string]any{"target": ref("Observation/res")}}})},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				if m, _ := got["Observation/grp"]["hasMember"].([]any); len(m) != 1 {
					t.Errorf("test group members %v", got["Observation/grp"]["hasMember"])
				}
				if c, _ := got["Observation/res"]["category"].([]any); len(c) != 1 {
					t.Errorf("member of a lab report has category %v", c)
				}
				if got["Observation/other"]["hasMember"] != nil {
					t.Error("an untyped relation outside a laboratory report became membership")
				}
			}},
		{"integers out of their R4 range are left out, the statement kept", []map[string]any{
			{"resourceType": "Medication", "id": "m", "code": cc("https://dmd.nhs.uk", "322236009")},
			{"resourceType": "MedicationRequest", "id": "mr", "intent": "plan", "status": "active", "medicationReference": ref("Medication/m"),
				"dosageInstruction": []any{map[string]any{"text": "one daily", "sequence": 1.5, "timing": map[string]any{"repeat": map[string]any{"frequency": 0, "period": -1, "periodUnit": "d"}}}},
				"dispenseRequest":   map[string]any{"numberOfRepeatsAllowed": -2, "quantity": map[string]any{"value": "28", "unit": "tablet"}},
				"extension": []any{map[string]any{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationRepeatInformation-1",
					"extension": []any{map[string]any{"url": "numberOfRepeatPrescriptionsIssued", "valueUnsignedInt": -1}}}}},
			{"resourceType": "Immunization", "id": "i", "status": "completed", "notGiven": false, "date": "2021-01-05", "vaccineCode": cc(sct, "1119349007"),
				"vaccinationProtocol": []any{map[string]any{"doseSequence": 0, "seriesDoses": 2}, map[string]any{"doseSequence": 2}}}},
			func(t *testing.T, got map[string]map[string]any, res *Result) {
				mr, im := got["MedicationRequest/mr"], got["Immunization/i"]
				if mr == nil || im == nil || res.Dropped != 0 {
					t.Fatalf("dropped %d: %v", res.Dropped, keys(got))
				}
				q := mr["dispenseRequest"].(map[string]any)["quantity"].(map[string]any)
				if q["value"] != 28.0 {
					t.Errorf("a quantity written as a string: %v", q)
				}
				if p, _ := im["protocolApplied"].([]any); len(p) != 1 {
					t.Errorf("protocolApplied %v", p)
				}
			}},
		{"a time without a zone keeps its day", []map[string]any{
			obs("t1", map[string]any{"effectiveDateTime": "2019-04-01T11:00", "issued": "2019-04-01"}),
			{"resourceType": "Immunization", "id": "i", "status": "completed", "notGiven": false, "vaccineCode": cc(sct, "1119349007"), "date": "2021-01-05T10:00:00"}},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				if got["Observation/t1"]["effectiveDateTime"] != "2019-04-01" || got["Observation/t1"]["issued"] != nil {
					t.Errorf("observation %v", got["Observation/t1"])
				}
				if got["Immunization/i"]["occurrenceDateTime"] != "2021-01-05" {
					t.Errorf("immunization %v", got["Immunization/i"])
				}
			}},
		{"a PractitionerRole reference leads to its practitioner, never round a loop", []map[string]any{
			{"resourceType": "Practitioner", "id": "gp", "name": []any{map[string]any{"family": "Doctor"}}},
			{"resourceType": "PractitionerRole", "id": "role", "practitioner": ref("Practitioner/gp")},
			{"resourceType": "PractitionerRole", "id": "loop", "practitioner": ref("PractitionerRole/loop")},
			{"resourceType": "AllergyIntolerance", "id": "a1", "code": cc(sct, "91936005"), "recorder": ref("PractitionerRole/role"), "asserter": ref("PractitionerRole/loop")}},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				a := got["AllergyIntolerance/a1"]
				if a["recorder"] == nil || a["asserter"] != nil {
					t.Errorf("allergy %v", a)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, res := decoded(t, bundle("1234567890", c.in...))
			checkRecord(t, res.Resources)
			for _, r := range res.Resources {
				for _, p := range profiles.CodedOnly(r.JSON) {
					t.Errorf("%s: %v", r.Reference(), p)
				}
			}
			c.check(t, got, res)
		})
	}
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
