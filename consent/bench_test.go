package consent

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// bigRecord is a 500-resource record shaped like a demo record: problems,
// medication with dosage text, BP and lab observations, encounters, a few
// resources with free text and one sensitive entry.
func bigRecord(tb testing.TB) *fhir.Record {
	s := fmt.Sprintf(subj, pidA)
	rs := []*fhir.Resource{patientRes(tb, pidA, "1950-02-03"),
		mustRes(tb, `{"id":"`+pidA+`-org","name":"Moorland Surgery","resourceType":"Organization"}`)}
	for i := 0; len(rs) < 500; i++ {
		id := fmt.Sprintf(`"id":"%s-r%d"`, pidA, i)
		var raw string
		switch i % 6 {
		case 0:
			raw = `{"category":[{"coding":[{"code":"problem-list-item","system":"http://terminology.hl7.org/CodeSystem/condition-category"}]}],"clinicalStatus":{"coding":[{"code":"active","system":"http://terminology.hl7.org/CodeSystem/condition-clinical"}]},"code":{"coding":[{"code":"38341003","display":"Hypertensive disorder","system":"http://snomed.info/sct"},{"code":"G20..","system":"http://read.info/readv2"}]},` + id + `,"onsetDateTime":"2015-04-01","resourceType":"Condition",` + s + `}`
		case 1:
			raw = `{"authoredOn":"2025-01-02","dosageInstruction":[{"text":"one tablet daily","timing":{"repeat":{"frequency":1,"period":1,"periodUnit":"d"}}}],` + id + `,"intent":"order","medicationCodeableConcept":{"coding":[{"code":"318137001","system":"http://snomed.info/sct"}]},"resourceType":"MedicationRequest","status":"active",` + s + `}`
		case 2:
			raw = `{"category":[{"coding":[{"code":"vital-signs","system":"http://terminology.hl7.org/CodeSystem/observation-category"}]}],"code":{"coding":[{"code":"85354-9","system":"http://loinc.org"}]},"component":[{"code":{"coding":[{"code":"8480-6","system":"http://loinc.org"}]},"valueQuantity":{"code":"mm[Hg]","system":"http://unitsofmeasure.org","unit":"mmHg","value":130}},{"code":{"coding":[{"code":"8462-4","system":"http://loinc.org"}]},"valueQuantity":{"code":"mm[Hg]","system":"http://unitsofmeasure.org","unit":"mmHg","value":85}}],"effectiveDateTime":"2024-06-01",` + id + `,"resourceType":"Observation","status":"final",` + s + `}`
		case 3:
			raw = `{"category":[{"coding":[{"code":"laboratory","system":"http://terminology.hl7.org/CodeSystem/observation-category"}]}],"code":{"coding":[{"code":"1022441000000108","system":"http://snomed.info/sct"}]},"effectiveDateTime":"2024-06-01",` + id + `,"resourceType":"Observation","status":"final",` + s + `,"valueQuantity":{"unit":"mmol/L","value":5.2}}`
		case 4:
			raw = `{"class":{"code":"AMB","system":"http://terminology.hl7.org/CodeSystem/v3-ActCode"},` + id + `,"period":{"start":"2024-06-01T10:00:00Z"},"resourceType":"Encounter","status":"finished",` + s + `,"type":[{"coding":[{"code":"185349003","system":"http://snomed.info/sct"}]}]}`
		case 5:
			if i%60 == 5 {
				raw = `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}],"text":"free"},` + id + `,"note":[{"text":"free"}],"resourceType":"Procedure","status":"completed",` + s + `}`
			} else if i == 11 {
				raw = `{"code":{"coding":[{"code":"386639001","system":"http://snomed.info/sct"}]},` + id + `,"resourceType":"Procedure","status":"completed",` + s + `}`
			} else {
				raw = `{"code":{"coding":[{"code":"80146002","system":"http://snomed.info/sct"}]},` + id + `,"performedDateTime":"2010-01-01","resourceType":"Procedure","status":"completed",` + s + `}`
			}
		}
		rs = append(rs, mustRes(tb, raw))
	}
	return &fhir.Record{NHS: nhsA, PatientID: pidA, Practice: practice, Version: "v1", Resources: rs}
}

func benchInput(rec *fhir.Record) Input {
	ags := DemoAgreements([]string{practice, "Y99002", "Y99003"}, t0)
	return Input{Principal: &fhir.Principal{ClientID: "cl", ConsumerODS: "RXX01", Practitioner: "555", PurposeOfUse: "TREAT", ConsentRef: "c1", PatientID: pidA},
		Request: &fhir.Request{Areas: fhir.AllAreas, PatientID: pidA}, Practice: practice, Agreements: ags,
		Record: rec, Consent: liveConsent(), Now: t0}
}

// BenchmarkDecideAndRedact is the per-request cost on a 500-resource record:
// pre-fetch decision, post-fetch decision (with the consent-to-share scan),
// and cached redaction (steady state: the record's version was seen before).
func BenchmarkDecideAndRedact(b *testing.B) {
	rec := bigRecord(b)
	in := benchInput(rec)
	z := NewRedactor(DefaultExclusions(), 0)
	z.Redact(rec, permit(fhir.AllAreas), testNow)
	b.ReportAllocs()
	for b.Loop() {
		pre := in
		pre.Record = nil
		if d := DecideOrganisation(pre); !d.Permit {
			b.Fatal(d)
		}
		d := DecidePatient(in)
		if !d.Permit {
			b.Fatal(d)
		}
		out, _ := z.Redact(rec, d, testNow)
		if len(out.Resources) < 400 {
			b.Fatal(len(out.Resources))
		}
	}
}

// BenchmarkRedactCold is the first request for a record version: every
// resource checked for sensitive codes and free text, the few with free text
// re-rendered.
func BenchmarkRedactCold(b *testing.B) {
	rec := bigRecord(b)
	b.ReportAllocs()
	for b.Loop() {
		Redact(rec, permit(fhir.AllAreas), testNow, DefaultExclusions())
	}
}

func BenchmarkDecidePatient(b *testing.B) {
	in := benchInput(bigRecord(b))
	b.ReportAllocs()
	for b.Loop() {
		DecidePatient(in)
	}
}

// TestDecideAndRedactLatency reports p50/p99 of the per-request path (no
// assertion on time: the number is for the report; see the benchmarks).
func TestDecideAndRedactLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency report skipped in -short")
	}
	rec := bigRecord(t)
	in := benchInput(rec)
	z := NewRedactor(DefaultExclusions(), 0)
	var ds []time.Duration
	for i := 0; i < 2000; i++ {
		start := time.Now()
		d := DecidePatient(in)
		out, _ := z.Redact(rec, d, testNow)
		ds = append(ds, time.Since(start))
		if !d.Permit || len(out.Resources) == 0 {
			t.Fatal("denied")
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	t.Logf("decision+redaction, 500 resources: p50 %v p99 %v (first, cold: %v)", ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
}
