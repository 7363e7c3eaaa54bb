package fhir_test

import (
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestLinkMedicationCodes(t *testing.T) {
	mk := func(js string) *fhir.Resource {
		r, err := fhir.NewResource([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	med := mk(`{"resourceType":"Medication","id":"p1-med-1","code":{"coding":[{"system":"https://dmd.nhs.uk","code":"319283006"}]}}`)
	byRef := mk(`{"resourceType":"MedicationStatement","id":"p1-ms-1","status":"active","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Medication/p1-med-1"}}`)
	byCode := mk(`{"resourceType":"MedicationRequest","id":"p1-mr-1","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},"medicationCodeableConcept":{"coding":[{"system":"https://dmd.nhs.uk","code":"325278007"}]}}`)
	dangling := mk(`{"resourceType":"MedicationRequest","id":"p1-mr-2","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Medication/p1-nothere"}}`)
	fhir.LinkMedicationCodes([]*fhir.Resource{byRef, med, byCode, dangling})
	cases := []struct {
		name string
		r    *fhir.Resource
		code string
		want bool
	}{
		{"reference takes the Medication's code", byRef, "319283006", true},
		{"own code kept", byCode, "325278007", true},
		{"own code not replaced", byCode, "319283006", false},
		{"dangling reference has no code", dangling, "319283006", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fhir.HasCoding(c.r.Ix.Code, "https://dmd.nhs.uk", c.code); got != c.want {
				t.Fatalf("HasCoding %s = %v, want %v", c.code, got, c.want)
			}
		})
	}
}
