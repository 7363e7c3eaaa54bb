package gpconnect

import (
	"errors"
	"strconv"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

const (
	sct    = "http://snomed.info/sct"
	readv2 = "http://read.info/readv2"
)

func bpObs(id string, sys, dia map[string]any) map[string]any {
	comp := func(code string, v map[string]any) map[string]any {
		c := map[string]any{"code": cc(sct, code)}
		for k, x := range v {
			c[k] = x
		}
		return c
	}
	return map[string]any{"resourceType": "Observation", "id": id, "status": "final", "code": cc(sct, "163020007"),
		"subject": ref("Patient/pat"), "effectiveDateTime": "2020-01-02", "issued": "2020-01-02T10:00:00+00:00",
		"comment": "sitting, anxious", "component": []any{comp("72313002", sys), comp("1091811000000102", dia)}}
}

func mmHg(v int) map[string]any {
	return map[string]any{"valueQuantity": map[string]any{"value": v, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
}

func TestConvertRules(t *testing.T) {
	absent := map[string]any{"dataAbsentReason": cc("http://hl7.org/fhir/data-absent-reason", "unknown")}
	cases := []struct {
		name  string
		in    []map[string]any
		check func(t *testing.T, got map[string]map[string]any, res *Result)
	}{
		{"blood pressure with both values takes the UK Core BP profile", []map[string]any{bpObs("bp1", mmHg(120), mmHg(80))},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				o := got["Observation/bp1"]
				if o == nil || o["meta"].(map[string]any)["profile"].([]any)[0] != fhir.ProfileBloodPressure {
					t.Fatalf("not a BP Observation: %v", o)
				}
				if o["comment"] != nil {
					t.Error("comment leaked")
				}
			}},
		{"half a blood pressure keeps the base profile and its components", []map[string]any{bpObs("bp2", mmHg(120), absent)},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				o := got["Observation/bp2"]
				if o["meta"].(map[string]any)["profile"].([]any)[0] != fhir.ProfileObservation || len(o["component"].([]any)) != 2 {
					t.Fatalf("half BP: %v", o)
				}
			}},
		{"string values and comment notes lose their text but stay", []map[string]any{
			{"resourceType": "Observation", "id": "o1", "status": "final", "code": cc(readv2, "42QE.00"), "valueString": "Ap 2.4"},
			{"resourceType": "Observation", "id": "o2", "status": "final", "code": cc(sct, "37331000000100"), "comment": "patient said ..."}},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				if got["Observation/o1"] == nil || got["Observation/o1"]["valueString"] != nil || got["Observation/o2"] == nil {
					t.Fatalf("got %v", got)
				}
			}},
		{"an uncoded allergy is dropped, a coded one kept", []map[string]any{
			{"resourceType": "AllergyIntolerance", "id": "a1", "code": map[string]any{"text": "cats"}, "clinicalStatus": "active", "verificationStatus": "unconfirmed", "patient": ref("Patient/pat")},
			{"resourceType": "AllergyIntolerance", "id": "a2", "code": cc(sct, "91936005"), "clinicalStatus": "resolved", "verificationStatus": "unconfirmed", "patient": ref("Patient/pat"),
				"extension": []any{map[string]any{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-AllergyIntoleranceEnd-1",
					"extension": []any{map[string]any{"url": "endDate", "valueDateTime": "2019-05-01"}, map[string]any{"url": "reasonEnded", "valueString": "grew out of it"}}}}}},
			func(t *testing.T, got map[string]map[string]any, res *Result) {
				if got["AllergyIntolerance/a1"] != nil || res.Dropped != 1 {
					t.Error("uncoded allergy kept")
				}
				a := got["AllergyIntolerance/a2"]
				cs := a["clinicalStatus"].(map[string]any)
				if cs["coding"].([]any)[0].(map[string]any)["code"] != "resolved" || cs["extension"] == nil {
					t.Errorf("resolved allergy: %v", cs)
				}
			}},
		{"a statement whose drug is uncoded goes with it; references to it are dropped", []map[string]any{
			{"resourceType": "Medication", "id": "m1", "code": map[string]any{"text": "unknown tablets"}},
			{"resourceType": "MedicationRequest", "id": "mr1", "intent": "plan", "status": "active", "medicationReference": ref("Medication/m1"), "subject": ref("Patient/pat")},
			{"resourceType": "MedicationStatement", "id": "ms1", "status": "active", "basedOn": []any{ref("MedicationRequest/mr1")}, "medicationCodeableConcept": cc("https://dmd.nhs.uk", "322236009"), "subject": ref("Patient/pat"), "taken": "unk"}},
			func(t *testing.T, got map[string]map[string]any, res *Result) {
				if got["MedicationRequest/mr1"] != nil || got["Medication/m1"] != nil || res.Dropped != 2 {
					t.Errorf("dropped %d: %v", res.Dropped, got)
				}
				if ms := got["MedicationStatement/ms1"]; ms == nil || ms["basedOn"] != nil {
					t.Errorf("statement: %v", ms)
				}
			}},
		{"references to Lists, Locations and missing resources are dropped", []map[string]any{
			{"resourceType": "Location", "id": "loc"},
			{"resourceType": "Encounter", "id": "e1", "status": "finished", "type": []any{map[string]any{"text": "GP Surgery"}},
				"location": []any{map[string]any{"location": ref("Location/loc")}}, "serviceProvider": ref("Organization/nowhere")},
			{"resourceType": "Condition", "id": "c1-PROB", "clinicalStatus": "active", "code": cc(sct, "38341003"), "subject": ref("Patient/pat"),
				"extension": []any{
					map[string]any{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1", "valueReference": ref("List/l1")},
					map[string]any{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-RelatedClinicalContent-1", "valueReference": ref("Encounter/e1")}}}},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				e := got["Encounter/e1"]
				if e["location"] != nil || e["serviceProvider"] != nil || e["type"] != nil {
					t.Errorf("encounter: %v", e)
				}
				if cls := e["class"].(map[string]any); cls["code"] != "UNK" {
					t.Errorf("an uncoded consultation type has class %v", cls)
				}
				if n := len(got["Condition/c1-PROB"]["extension"].([]any)); n != 1 {
					t.Errorf("condition keeps %d extensions, want the Encounter one", n)
				}
			}},
		{"referral and diary entry become ServiceRequests", []map[string]any{
			{"resourceType": "ReferralRequest", "id": "r1", "status": "suspended", "intent": "order", "subject": ref("Patient/pat"), "reasonCode": []any{cc(readv2, "8H...00")}, "description": "letter"},
			{"resourceType": "ProcedureRequest", "id": "p1", "status": "active", "intent": "plan", "code": cc(sct, "314529007"), "subject": ref("Patient/pat"), "note": []any{map[string]any{"text": "x"}}}},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				if r := got["ServiceRequest/r1"]; r == nil || r["status"] != "on-hold" || r["intent"] != "order" || r["category"] == nil {
					t.Errorf("referral: %v", r)
				}
				if p := got["ServiceRequest/p1"]; p == nil || p["intent"] != "plan" || p["note"] != nil {
					t.Errorf("diary entry: %v", p)
				}
			}},
		{"an immunisation without a date says its occurrence is unknown", []map[string]any{
			{"resourceType": "Immunization", "id": "i1", "status": "completed", "notGiven": false, "patient": ref("Patient/pat"), "primarySource": true,
				"vaccineCode": cc("http://hl7.org/fhir/v3/NullFlavor", "UNK"),
				"extension":   []any{map[string]any{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-VaccinationProcedure-1", "valueCodeableConcept": cc(sct, "1324681000000101")}}}},
			func(t *testing.T, got map[string]map[string]any, _ *Result) {
				im := got["Immunization/i1"]
				if im["_occurrenceDateTime"] == nil || im["vaccineCode"].(map[string]any)["coding"].([]any)[0].(map[string]any)["system"] != systemNullFlavor {
					t.Errorf("immunization: %v", im)
				}
			}},
		{"security labels stay so the redactor withholds the entry", []map[string]any{
			{"resourceType": "Observation", "id": "s1", "status": "final", "code": cc(sct, "1234"), "meta": map[string]any{"security": []any{map[string]any{"system": "http://hl7.org/fhir/v3/ActCode", "code": "NOPAT"}}}}},
			func(t *testing.T, got map[string]map[string]any, res *Result) {
				if res.Restricted != 1 {
					t.Errorf("restricted %d", res.Restricted)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, res := decoded(t, bundle("1234567890", c.in...))
			checkRecord(t, res.Resources)
			c.check(t, got, res)
		})
	}
}

func TestListWarnings(t *testing.T) {
	list := func(code string, warn ...string) map[string]any {
		var ext []any
		for _, w := range warn {
			ext = append(ext, map[string]any{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1", "valueCode": w})
		}
		return map[string]any{"resourceType": "List", "status": "current", "mode": "snapshot", "title": "Secret title", "code": cc(sct, code), "extension": ext,
			"note": []any{map[string]any{"text": "Items excluded"}}}
	}
	_, res := decoded(t, bundle("1234567890", list("933361000000108", "confidential-items", "data-in-transit"),
		list("886921000000105", "data-awaiting-filing", "something-new"), list("717711000000103", "confidential-items")))
	want := map[fhir.Code]bool{fhir.WarnConfidentialItems: true, fhir.WarnDataInTransit: true, fhir.WarnDataAwaitingFiling: true}
	if len(res.Warnings) != len(want) {
		t.Fatalf("warnings %v", res.Warnings)
	}
	for _, w := range res.Warnings {
		if !want[w.Code] || w.Severity != "warning" {
			t.Errorf("warning %v", w)
		}
	}
	for _, r := range res.Resources {
		if r.Type == "List" {
			t.Error("a List was emitted")
		}
	}
}

func TestParseRefuses(t *testing.T) {
	two := bundle("9000000009", map[string]any{"resourceType": "Patient", "id": "p2"})
	cases := map[string]struct {
		body []byte
		want error
		code fhir.Code
	}{
		"not json":       {[]byte("<html>"), ErrMalformed, ""},
		"not a bundle":   {[]byte(`{"resourceType":"Patient"}`), ErrMalformed, ""},
		"no patient":     {[]byte(`{"resourceType":"Bundle","entry":[]}`), ErrMalformed, ""},
		"two patients":   {two, ErrMalformed, ""},
		"too deep":       {[]byte(`{"resourceType":"Bundle","x":` + deep(100) + `}`), ErrMalformed, ""},
		"spine error":    {[]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","details":{"coding":[{"code":"NO_PATIENT_CONSENT"}]}}]}`), nil, fhir.CodeNoPatientConsent},
		"trailing bytes": {append(bundle("9000000009"), []byte(" {}")...), ErrMalformed, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(c.body)
			if err == nil {
				t.Fatal("accepted")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
			if c.code != "" && fhir.AsError(err).Code != c.code {
				t.Errorf("code %s, want %s", fhir.AsError(err).Code, c.code)
			}
		})
	}
}

func deep(n int) string {
	s := ""
	for i := 0; i < n; i++ {
		s += "["
	}
	for i := 0; i < n; i++ {
		s += "]"
	}
	return s
}

func TestProviderErrors(t *testing.T) {
	cases := []struct {
		spine  string
		status int
		want   fhir.Code
		cause  error
	}{
		{"PATIENT_NOT_FOUND", 404, fhir.CodePatientNotFound, nil},
		{"NO_PATIENT_CONSENT", 403, fhir.CodeNoPatientConsent, nil},
		{"INVALID_NHS_NUMBER", 400, fhir.CodeInvalidNHSNumber, nil},
		{"INVALID_PARAMETER", 422, fhir.CodeInternal, ErrRejected},
		{"ACCESS_DENIED", 403, fhir.CodeInternal, ErrRejected},
		{"INTERNAL_SERVER_ERROR", 500, fhir.CodeTimeout, ErrUnavailable},
		{"", 502, fhir.CodeTimeout, ErrUnavailable},
		{"", 429, fhir.CodeTimeout, ErrUnavailable},
		{"", 401, fhir.CodeInternal, ErrRejected},
		{"SOMETHING_NEW", 503, fhir.CodeTimeout, ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(c.spine+"/"+httpStatus(c.status), func(t *testing.T) {
			err := providerError(c.spine, c.status)
			fe := fhir.AsError(err)
			if fe.Code != c.want {
				t.Errorf("code %s, want %s", fe.Code, c.want)
			}
			if c.cause != nil && !errors.Is(err, c.cause) {
				t.Errorf("cause %v, want %v", fe.Cause, c.cause)
			}
			if c.cause == nil && (errors.Is(err, ErrRejected) || errors.Is(err, ErrUnavailable)) {
				t.Errorf("a patient-level answer counted as a provider failure: %v", fe.Cause)
			}
		})
	}
}

func httpStatus(s int) string { return strconv.Itoa(s) }
