package consent

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// referencesRecord: a problem withheld as sensitive (termination of
// pregnancy), a medication request citing it as its reason, an encounter
// that diagnosed it, a statement whose Medication is sensitive, a diagnostic
// report with a result, and an encounter the problems area points at.
func referencesRecord(t *testing.T) *fhir.Record {
	subj := `"subject":{"reference":"Patient/` + pidA + `"}`
	id := func(l string) string { return `"id":"` + pidA + `-` + l + `"` }
	ref := func(typ, l string) string { return `{"reference":"` + typ + `/` + pidA + `-` + l + `"}` }
	class := `"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}`
	return &fhir.Record{NHS: nhsA, PatientID: pidA, Practice: practice, Version: "v1", Resources: []*fhir.Resource{
		mustRes(t, `{"resourceType":"Patient","id":"`+pidA+`"}`),
		mustRes(t, `{"resourceType":"Condition",`+id("top")+`,"code":{"coding":[{"system":"http://snomed.info/sct","code":"386639001"}]},`+subj+`}`),
		mustRes(t, `{"resourceType":"Condition",`+id("htn")+`,"clinicalStatus":{"coding":[{"code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"encounter":`+ref("Encounter", "e2")+`,`+subj+`}`),
		mustRes(t, `{"resourceType":"MedicationRequest",`+id("mr")+`,"status":"active","intent":"plan","medicationCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"318137001"}]},"reasonReference":[`+ref("Condition", "top")+`,`+ref("Condition", "htn")+`],`+subj+`}`),
		mustRes(t, `{"resourceType":"Encounter",`+id("e1")+`,"status":"finished",`+class+`,"diagnosis":[{"condition":`+ref("Condition", "top")+`,"rank":1},{"condition":`+ref("Condition", "htn")+`,"rank":2}],`+subj+`}`),
		mustRes(t, `{"resourceType":"Encounter",`+id("e2")+`,"status":"finished",`+class+`,`+subj+`}`),
		mustRes(t, `{"resourceType":"Medication",`+id("med")+`,"code":{"coding":[{"system":"http://snomed.info/sct","code":"52637005"}]}}`),
		mustRes(t, `{"resourceType":"MedicationStatement",`+id("ms")+`,"status":"active","medicationReference":`+ref("Medication", "med")+`,`+subj+`}`),
	}}
}

func idsOf(rec *fhir.Record) string {
	var out []string
	for _, r := range rec.Resources {
		out = append(out, strings.TrimPrefix(strings.TrimPrefix(r.ID, pidA), "-"))
	}
	return strings.Join(out, " ")
}

func TestRedactReferencesToWithheld(t *testing.T) {
	got, withheld := Redact(referencesRecord(t), permit(fhir.AllAreas), testNow, DefaultExclusions())
	if !withheld {
		t.Fatal("withheld entries must be signalled")
	}
	// The sensitive problem and Medication go; the statement that cannot
	// stand without its Medication goes with it.
	if ids := idsOf(got); ids != " htn mr e1 e2" {
		t.Fatalf("resources %q", ids)
	}
	for _, r := range got.Resources {
		for _, ref := range fhir.References(r.JSON) {
			typ, rid, _ := strings.Cut(ref, "/")
			if got.Find(typ, rid) == nil && !strings.HasPrefix(ref, "Patient/") {
				t.Errorf("%s/%s still points at %s", r.Type, r.ID, ref)
			}
		}
		if strings.Contains(string(r.JSON), "-top") || strings.Contains(string(r.JSON), "-med") {
			t.Errorf("%s/%s reveals a withheld entry: %s", r.Type, r.ID, r.JSON)
		}
	}
	// What is not withheld survives: the other reason, the other diagnosis.
	mr := got.Find("MedicationRequest", pidA+"-mr")
	e1 := got.Find("Encounter", pidA+"-e1")
	if !strings.Contains(string(mr.JSON), pidA+"-htn") || !strings.Contains(string(e1.JSON), pidA+"-htn") || !strings.Contains(string(e1.JSON), `"rank":2`) {
		t.Fatalf("pruned too much:\n%s\n%s", mr.JSON, e1.JSON)
	}
	if strings.Contains(string(e1.JSON), `"rank":1`) {
		t.Fatalf("a diagnosis entry without its condition stayed: %s", e1.JSON)
	}
	var m map[string]any
	if err := json.Unmarshal(e1.JSON, &m); err != nil {
		t.Fatal(err)
	}
}

func TestRedactReferencesOutsideDecision(t *testing.T) {
	// Problems and medication without events: the Condition's encounter
	// and the request's reasons stay only as far as they resolve.
	dec := fhir.Decision{Permit: true, Areas: fhir.AreaDemographics | fhir.AreaProblems | fhir.AreaMedication}
	z := NewRedactor(DefaultExclusions(), 0)
	got, _ := z.Redact(referencesRecord(t), dec, testNow)
	htn := got.Find("Condition", pidA+"-htn")
	if htn == nil || strings.Contains(string(htn.JSON), "encounter") {
		t.Fatalf("a reference to an area the decision does not cover stayed: %v", htn)
	}
	// The same answer again comes from the cache, byte for byte.
	again, _ := z.Redact(referencesRecord(t), dec, testNow)
	if idsOf(again) != idsOf(got) {
		t.Fatalf("cached %q vs %q", idsOf(again), idsOf(got))
	}
	// With events, the encounter reference resolves and stays.
	all, _ := z.Redact(referencesRecord(t), permit(fhir.AllAreas), testNow)
	if h := all.Find("Condition", pidA+"-htn"); !strings.Contains(string(h.JSON), pidA+"-e2") {
		t.Fatalf("a resolvable reference was dropped: %s", h.JSON)
	}
}

func TestRedactSummaryView(t *testing.T) {
	subj := `"subject":{"reference":"Patient/` + pidA + `"}`
	id := func(l string) string { return `"id":"` + pidA + `-` + l + `"` }
	lab := func(l, date string) string {
		return `{"resourceType":"Observation",` + id(l) + `,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"1022441000000108"}]},"effectiveDateTime":"` + date + `",` + subj + `}`
	}
	rec := &fhir.Record{NHS: nhsA, PatientID: pidA, Practice: practice, Version: "v2", Resources: []*fhir.Resource{
		mustRes(t, `{"resourceType":"Patient","id":"`+pidA+`"}`),
		mustRes(t, `{"resourceType":"Condition",`+id("active")+`,"clinicalStatus":{"coding":[{"code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},`+subj+`}`),
		mustRes(t, `{"resourceType":"Condition",`+id("resolved")+`,"clinicalStatus":{"coding":[{"code":"resolved"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"195967001"}]},`+subj+`}`),
		mustRes(t, `{"resourceType":"Medication",`+id("med1")+`,"code":{"coding":[{"system":"http://snomed.info/sct","code":"318137001"}]}}`),
		mustRes(t, `{"resourceType":"Medication",`+id("med2")+`,"code":{"coding":[{"system":"http://snomed.info/sct","code":"322236009"}]}}`),
		mustRes(t, `{"resourceType":"MedicationStatement",`+id("current")+`,"status":"active","medicationReference":{"reference":"Medication/`+pidA+`-med1"},`+subj+`}`),
		mustRes(t, `{"resourceType":"MedicationStatement",`+id("past")+`,"status":"completed","medicationReference":{"reference":"Medication/`+pidA+`-med2"},`+subj+`}`),
		mustRes(t, `{"resourceType":"MedicationRequest",`+id("issue")+`,"status":"completed","intent":"order","medicationReference":{"reference":"Medication/`+pidA+`-med1"},`+subj+`}`),
		mustRes(t, `{"resourceType":"AllergyIntolerance",`+id("allergy")+`,"code":{"coding":[{"system":"http://snomed.info/sct","code":"91936005"}]},"patient":{"reference":"Patient/`+pidA+`"}}`),
		mustRes(t, lab("recent", "2024-12-01")),
		mustRes(t, lab("old", "2023-01-01")),
		mustRes(t, `{"resourceType":"Flag",`+id("flag")+`,"status":"active","code":{"coding":[{"system":"http://snomed.info/sct","code":"1"}]},`+subj+`}`),
	}}
	dec := fhir.Decision{Permit: true, Areas: fhir.AreaDemographics | fhir.SummaryAreas, Summary: fhir.SummaryAreas}
	got, _ := Redact(rec, dec, testNow, nil)
	if ids := idsOf(got); ids != " active med1 current allergy recent" {
		t.Fatalf("summary view %q", ids)
	}
	// A whole area alongside the summary is whole.
	dec.Summary &^= fhir.AreaProblems
	got, _ = Redact(rec, dec, testNow, nil)
	if ids := idsOf(got); ids != " active resolved med1 current allergy recent" {
		t.Fatalf("summary + whole problems %q", ids)
	}
}
