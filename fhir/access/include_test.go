package access

import (
	"context"
	"net/url"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// _include and _revinclude return only what the decision lets out, and the
// audit counts what is returned: matches and included resources, with
// their areas; _summary=count returns and counts nothing.
func TestIncludesAreDecidedAndAudited(t *testing.T) {
	withEncounterLink := func(c *Config, w *world) {
		rec := record(t)
		rec.Resources = append(rec.Resources, res(t, `{"resourceType":"Condition","id":"`+fhir.ResourceID(pidKnown, "c3")+`","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],"clinicalStatus":{"coding":[{"code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"onsetDateTime":"2026-06-01","encounter":{"reference":"Encounter/`+fhir.ResourceID(pidKnown, "e1")+`"},"subject":{"reference":"Patient/`+pidKnown+`"}}`))
		c.Records = fakeRecords{calls: w.calls, recs: map[fhir.NHSNumber]*fhir.Record{nhsKnown: rec}}
	}
	noEvents := func(c *Config, w *world) {
		c.Policy = fakePolicy{calls: w.calls, patient: func(*fhir.Record) fhir.Decision {
			return fhir.Decision{Permit: true, Areas: fhir.AllAreas &^ fhir.AreaEvents, Rule: "permit"}
		}}
	}
	for _, tc := range []struct {
		name      string
		opts      []opt
		query     url.Values
		matches   int
		included  []string
		auditArea fhir.Areas
	}{
		{"include", []opt{withEncounterLink}, url.Values{"_include": {"Condition:encounter"}, "_id": {fhir.ResourceID(pidKnown, "c3")}}, 1,
			[]string{"Encounter/" + fhir.ResourceID(pidKnown, "e1")}, fhir.AreaProblems | fhir.AreaDiagnoses | fhir.AreaEvents},
		{"include withheld by the decision", []opt{withEncounterLink, noEvents}, url.Values{"_include": {"Condition:encounter"}, "_id": {fhir.ResourceID(pidKnown, "c3")}}, 1,
			nil, fhir.AreaProblems | fhir.AreaDiagnoses},
		{"include the patient", nil, url.Values{"_include": {"Condition:patient"}, "_count": {"1"}}, 1,
			[]string{"Patient/" + pidKnown}, fhir.AreaProblems | fhir.AreaDiagnoses | fhir.AreaDemographics},
		{"count", []opt{withEncounterLink}, url.Values{"_include": {"Condition:encounter"}, "_summary": {"count"}}, 0, nil, fhir.AreaProblems | fhir.AreaDiagnoses},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts...)
			v := url.Values{"patient": {pidKnown}}
			for k, vals := range tc.query {
				v[k] = vals
			}
			q, err := fhir.ParseQuery("Condition", v, true)
			if err != nil {
				t.Fatal(err)
			}
			pg, err := w.core.Search(context.Background(), clinician, q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range pg.Included {
				got = append(got, r.Type+"/"+r.ID)
			}
			if len(pg.Resources) != tc.matches || len(got) != len(tc.included) || (len(got) > 0 && got[0] != tc.included[0]) {
				t.Fatalf("%d matches, included %q; want %d, %q", len(pg.Resources), got, tc.matches, tc.included)
			}
			e := (*w.audit)[len(*w.audit)-1]
			if e.Count != tc.matches+len(tc.included) || e.Areas != tc.auditArea {
				t.Fatalf("audit count %d areas %s; want %d, %s", e.Count, e.Areas, tc.matches+len(tc.included), tc.auditArea)
			}
		})
	}
}
