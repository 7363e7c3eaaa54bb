package fhir

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustResource(t testing.TB, s string) *Resource {
	t.Helper()
	r, err := NewResource([]byte(s))
	if err != nil {
		t.Fatalf("NewResource: %v\n%s", err, s)
	}
	return r
}

func TestNewResourceIndex(t *testing.T) {
	type want struct {
		typ, id        string
		area           Area
		patient        string
		category, code []Coding
		status         string
		clinicalStatus string
		intent         string
		start, end     string // RFC 3339 or ""; "max" is the open end
		lastUpdated    string
		confidential   bool
	}
	tests := []struct {
		name string
		json string
		want want
	}{
		{"Patient", `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2021-02-03T04:05:06Z"},"birthDate":"1970-01-01"}`,
			want{typ: "Patient", id: "p1", area: AreaDemographics, lastUpdated: "2021-02-03T04:05:06Z"}},
		{"Organization", `{"resourceType":"Organization","id":"o1"}`,
			want{typ: "Organization", id: "o1", area: AreaDemographics}},
		{"Condition problem", `{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],
			"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"onsetDateTime":"2019-05-01","recordedDate":"2019-06-01"}`,
			want{typ: "Condition", id: "c1", area: AreaProblems, patient: "p1",
				category:       []Coding{{ConditionCategorySystem, "problem-list-item"}},
				code:           []Coding{{SNOMED, "38341003"}},
				clinicalStatus: "active", start: "2019-05-01T00:00:00Z", end: "2019-05-02T00:00:00Z"}},
		{"Condition encounter-diagnosis", `{"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1"},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis"}]}],
			"onsetPeriod":{"start":"2020-03-01","end":"2020-06-30"}}`,
			want{typ: "Condition", id: "c2", area: AreaDiagnoses, patient: "p1",
				category: []Coding{{ConditionCategorySystem, "encounter-diagnosis"}},
				start:    "2020-03-01T00:00:00Z", end: "2020-07-01T00:00:00Z"}},
		{"Condition encounter-diagnosis code in another system is a problem", `{"resourceType":"Condition","id":"c3",
			"category":[{"coding":[{"system":"http://example.org/cat","code":"encounter-diagnosis"}]}]}`,
			want{typ: "Condition", id: "c3", area: AreaProblems, category: []Coding{{"http://example.org/cat", "encounter-diagnosis"}}}},
		{"Condition without category, recorded date only", `{"resourceType":"Condition","id":"c4","recordedDate":"2018-01-02T10:00:00+01:00"}`,
			want{typ: "Condition", id: "c4", area: AreaProblems, start: "2018-01-02T09:00:00Z", end: "2018-01-02T09:00:01Z"}},
		{"Condition open onset period", `{"resourceType":"Condition","id":"c5","onsetPeriod":{"start":"2020"}}`,
			want{typ: "Condition", id: "c5", area: AreaProblems, start: "2020-01-01T00:00:00Z", end: "max"}},
		{"Condition bad onset falls back to recordedDate", `{"resourceType":"Condition","id":"c6","onsetDateTime":"yesterday","recordedDate":"2018"}`,
			want{typ: "Condition", id: "c6", area: AreaProblems, start: "2018-01-01T00:00:00Z", end: "2019-01-01T00:00:00Z"}},
		{"Observation blood pressure", `{"resourceType":"Observation","id":"bp","status":"final","subject":{"reference":"Patient/p1"},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"},{"system":"http://snomed.info/sct","code":"75367002"}]},
			"effectiveDateTime":"2021-04-05T09:10:00Z",
			"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120}}]}`,
			want{typ: "Observation", id: "bp", area: AreaExamination, patient: "p1", status: "final",
				category: []Coding{{ObservationCategorySystem, "vital-signs"}},
				code:     []Coding{{LOINC, LOINCBloodPressurePanel}, {SNOMED, "75367002"}},
				start:    "2021-04-05T09:10:00Z", end: "2021-04-05T09:10:01Z"}},
		{"Observation lab", `{"resourceType":"Observation","id":"lab","status":"final","subject":{"reference":"Patient/p1"},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]},{"coding":[{"code":"x"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"issued":"2021-04-06T10:00:00.000Z"}`,
			want{typ: "Observation", id: "lab", area: AreaInvestigations, patient: "p1", status: "final",
				category: []Coding{{ObservationCategorySystem, "laboratory"}, {"", "x"}},
				code:     []Coding{{LOINC, "2345-7"}},
				start:    "2021-04-06T10:00:00Z", end: "2021-04-06T10:00:00.001Z"}},
		{"Observation systolic alone is not the BP panel", `{"resourceType":"Observation","id":"sys",
			"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"effectivePeriod":{"start":"2021-01-01","end":"2021-01-03"}}`,
			want{typ: "Observation", id: "sys", area: AreaInvestigations, code: []Coding{{LOINC, LOINCSystolic}},
				start: "2021-01-01T00:00:00Z", end: "2021-01-04T00:00:00Z"}},
		{"AllergyIntolerance string categories", `{"resourceType":"AllergyIntolerance","id":"a1","patient":{"reference":"Patient/p1"},
			"category":["food","medication"],
			"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"91936005"}]},"onsetDateTime":"2001","recordedDate":"2010-10-10"}`,
			want{typ: "AllergyIntolerance", id: "a1", area: AreaAllergies, patient: "p1",
				category: []Coding{{"", "food"}, {"", "medication"}}, code: []Coding{{SNOMED, "91936005"}},
				clinicalStatus: "active", start: "2010-10-10T00:00:00Z", end: "2010-10-11T00:00:00Z"}},
		{"AllergyIntolerance onset when not recorded", `{"resourceType":"AllergyIntolerance","id":"a2","onsetDateTime":"2001"}`,
			want{typ: "AllergyIntolerance", id: "a2", area: AreaAllergies, start: "2001-01-01T00:00:00Z", end: "2002-01-01T00:00:00Z"}},
		{"MedicationStatement", `{"resourceType":"MedicationStatement","id":"ms","status":"active","subject":{"reference":"Patient/p1"},
			"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/medication-statement-category","code":"community"}]},
			"medicationCodeableConcept":{"coding":[{"system":"https://dmd.nhs.uk","code":"322236009"}]},
			"effectivePeriod":{"start":"2020-01-01"},"dateAsserted":"2020-01-01"}`,
			want{typ: "MedicationStatement", id: "ms", area: AreaMedication, patient: "p1", status: "active",
				category: []Coding{{"http://terminology.hl7.org/CodeSystem/medication-statement-category", "community"}},
				code:     []Coding{{DMD, "322236009"}}, start: "2020-01-01T00:00:00Z", end: "max"}},
		{"MedicationStatement dateAsserted fallback", `{"resourceType":"MedicationStatement","id":"ms2","dateAsserted":"2020-02"}`,
			want{typ: "MedicationStatement", id: "ms2", area: AreaMedication, start: "2020-02-01T00:00:00Z", end: "2020-03-01T00:00:00Z"}},
		{"MedicationRequest", `{"resourceType":"MedicationRequest","id":"mr","status":"active","intent":"plan","subject":{"reference":"Patient/p1"},
			"medicationCodeableConcept":{"coding":[{"system":"https://dmd.nhs.uk","code":"1"}]},"authoredOn":"2021-01-01T09:30:00Z"}`,
			want{typ: "MedicationRequest", id: "mr", area: AreaMedication, patient: "p1", status: "active", intent: "plan",
				code: []Coding{{DMD, "1"}}, start: "2021-01-01T09:30:00Z", end: "2021-01-01T09:30:01Z"}},
		{"Medication", `{"resourceType":"Medication","id":"med","code":{"coding":[{"system":"https://dmd.nhs.uk","code":"1"}]}}`,
			want{typ: "Medication", id: "med", area: AreaMedication, code: []Coding{{DMD, "1"}}}},
		{"Flag", `{"resourceType":"Flag","id":"f","status":"active","subject":{"reference":"Patient/p1"},"period":{"start":"2015-05-05"}}`,
			want{typ: "Flag", id: "f", area: AreaRisks, patient: "p1", status: "active", start: "2015-05-05T00:00:00Z", end: "max"}},
		{"Procedure", `{"resourceType":"Procedure","id":"pr","status":"completed","subject":{"reference":"Patient/p1"},"performedPeriod":{"start":"2012-01-01","end":"2012-01-02"}}`,
			want{typ: "Procedure", id: "pr", area: AreaProcedures, patient: "p1", status: "completed", start: "2012-01-01T00:00:00Z", end: "2012-01-03T00:00:00Z"}},
		{"DiagnosticReport issued", `{"resourceType":"DiagnosticReport","id":"dr","status":"final","subject":{"reference":"Patient/p1"},"issued":"2021-03-03T03:03:03Z"}`,
			want{typ: "DiagnosticReport", id: "dr", area: AreaInvestigations, patient: "p1", status: "final", start: "2021-03-03T03:03:03Z", end: "2021-03-03T03:03:04Z"}},
		{"Specimen collected", `{"resourceType":"Specimen","id":"sp","subject":{"reference":"Patient/p1"},"collection":{"collectedDateTime":"2021-03-01"},"receivedTime":"2021-03-02T00:00:00Z"}`,
			want{typ: "Specimen", id: "sp", area: AreaInvestigations, patient: "p1", start: "2021-03-01T00:00:00Z", end: "2021-03-02T00:00:00Z"}},
		{"Specimen received", `{"resourceType":"Specimen","id":"sp2","receivedTime":"2021-03-02T00:00:00Z"}`,
			want{typ: "Specimen", id: "sp2", area: AreaInvestigations, start: "2021-03-02T00:00:00Z", end: "2021-03-02T00:00:01Z"}},
		{"Encounter open period", `{"resourceType":"Encounter","id":"e","status":"in-progress","subject":{"reference":"Patient/p1"},"period":{"start":"2021-05-05T10:00:00Z"}}`,
			want{typ: "Encounter", id: "e", area: AreaEvents, patient: "p1", status: "in-progress", start: "2021-05-05T10:00:00Z", end: "max"}},
		{"Encounter end only", `{"resourceType":"Encounter","id":"e2","period":{"end":"2021-05-05"}}`,
			want{typ: "Encounter", id: "e2", area: AreaEvents, end: "2021-05-06T00:00:00Z"}},
		{"ServiceRequest", `{"resourceType":"ServiceRequest","id":"sr","status":"active","intent":"order","subject":{"reference":"Patient/p1"},
			"category":[{"coding":[{"system":"http://snomed.info/sct","code":"3457005"}]}],"authoredOn":"2020-10-10"}`,
			want{typ: "ServiceRequest", id: "sr", area: AreaEvents, patient: "p1", status: "active", intent: "order",
				category: []Coding{{SNOMED, "3457005"}}, start: "2020-10-10T00:00:00Z", end: "2020-10-11T00:00:00Z"}},
		{"Consent", `{"resourceType":"Consent","id":"cs","status":"active","patient":{"reference":"Patient/p1"},"dateTime":"2021-01-01T00:00:00Z"}`,
			want{typ: "Consent", id: "cs", patient: "p1", status: "active", start: "2021-01-01T00:00:00Z", end: "2021-01-01T00:00:01Z"}},
		{"List", `{"resourceType":"List","id":"l","status":"current","subject":{"reference":"Patient/p1"},"date":"2021-01-01"}`,
			want{typ: "List", id: "l", patient: "p1", status: "current", start: "2021-01-01T00:00:00Z", end: "2021-01-02T00:00:00Z"}},
		{"subject that is not a Patient", `{"resourceType":"Observation","id":"g","subject":{"reference":"Group/g1"}}`,
			want{typ: "Observation", id: "g", area: AreaInvestigations}},
		{"absolute or urn subject is not indexed", `{"resourceType":"Observation","id":"u","subject":{"reference":"urn:uuid:0b1e6b4a-0000-4000-8000-000000000000"}}`,
			want{typ: "Observation", id: "u", area: AreaInvestigations}},
		{"subject wins over patient", `{"resourceType":"Observation","id":"sw","subject":{"reference":"Patient/a"},"patient":{"reference":"Patient/b"}}`,
			want{typ: "Observation", id: "sw", area: AreaInvestigations, patient: "a"}},
		{"restricted label", `{"resourceType":"Condition","id":"r","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`,
			want{typ: "Condition", id: "r", area: AreaProblems, confidential: true}},
		{"very restricted label", `{"resourceType":"Condition","id":"v","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"V"}]}}`,
			want{typ: "Condition", id: "v", area: AreaProblems, confidential: true}},
		{"NOPAT label among others", `{"resourceType":"Condition","id":"np","meta":{"security":[{"code":"N"},{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"NOPAT"}]}}`,
			want{typ: "Condition", id: "np", area: AreaProblems, confidential: true}},
		{"normal label", `{"resourceType":"Condition","id":"n","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N"}]}}`,
			want{typ: "Condition", id: "n", area: AreaProblems}},
		{"lower-case r is not a label", `{"resourceType":"Condition","id":"lr","meta":{"security":[{"code":"r"}]}}`,
			want{typ: "Condition", id: "lr", area: AreaProblems}},
		{"unknown type has no area", `{"resourceType":"Basic","id":"b"}`,
			want{typ: "Basic", id: "b"}},
		{"null elements", `{"resourceType":"Condition","id":"nul","category":null,"code":null,"subject":null,"meta":null}`,
			want{typ: "Condition", id: "nul", area: AreaProblems}},
	}
	parseT := func(t *testing.T, s string) time.Time {
		t.Helper()
		switch s {
		case "":
			return time.Time{}
		case "max":
			return maxTime
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewResource([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			w, ix := tc.want, r.Ix
			if r.Type != w.typ || r.ID != w.id || r.Reference() != w.typ+"/"+w.id {
				t.Errorf("type/id = %s/%s, want %s/%s", r.Type, r.ID, w.typ, w.id)
			}
			if !bytes.Equal(r.JSON, []byte(tc.json)) {
				t.Error("JSON is not the input bytes")
			}
			if ix.Area != w.area {
				t.Errorf("area = %v, want %v", ix.Area, w.area)
			}
			if ix.Patient != w.patient {
				t.Errorf("patient = %q, want %q", ix.Patient, w.patient)
			}
			if !reflect.DeepEqual(ix.Category, w.category) {
				t.Errorf("category = %+v, want %+v", ix.Category, w.category)
			}
			if !reflect.DeepEqual(ix.Code, w.code) {
				t.Errorf("code = %+v, want %+v", ix.Code, w.code)
			}
			if ix.Status != w.status || ix.ClinicalStatus != w.clinicalStatus || ix.Intent != w.intent {
				t.Errorf("status/clinical/intent = %q/%q/%q, want %q/%q/%q", ix.Status, ix.ClinicalStatus, ix.Intent, w.status, w.clinicalStatus, w.intent)
			}
			if s := parseT(t, w.start); !ix.Start.Equal(s) {
				t.Errorf("start = %v, want %v", ix.Start, s)
			}
			if e := parseT(t, w.end); !ix.End.Equal(e) {
				t.Errorf("end = %v, want %v", ix.End, e)
			}
			if lu := parseT(t, w.lastUpdated); !ix.LastUpdated.Equal(lu) {
				t.Errorf("lastUpdated = %v, want %v", ix.LastUpdated, lu)
			}
			if ix.Confidential != w.confidential {
				t.Errorf("confidential = %v, want %v", ix.Confidential, w.confidential)
			}
			// A resource's area is always one its type may have.
			if ix.Area != 0 && !AreasOfType(r.Type).Has(ix.Area) {
				t.Errorf("area %v is not among %v for %s", ix.Area, AreasOfType(r.Type), r.Type)
			}
		})
	}
}

func TestNewResourceErrors(t *testing.T) {
	for _, s := range []string{
		``,
		`null`,
		`[]`,
		`{}`,
		`{"resourceType":"Patient"}`,
		`{"id":"x"}`,
		`{"resourceType":"Patient","id":""}`,
		`{"resourceType":"Patient","id":"x"`,
		`{"resourceType":1,"id":"x"}`,
		`{"resourceType":"Condition","id":"x","status":5}`,
		`{"resourceType":"Condition","id":"x","category":"problem"}`,
		`{"resourceType":"Condition","id":"x","category":[1]}`,
		`{"resourceType":"Condition","id":"x","category":[{"coding":"x"}]}`,
		`{"resourceType":"AllergyIntolerance","id":"x","category":["food",2]}`,
		`{"resourceType":"Condition","id":"x","code":[]}`,
	} {
		t.Run(s, func(t *testing.T) {
			if r, err := NewResource([]byte(s)); err == nil {
				t.Errorf("NewResource accepted %q: %+v", s, r)
			}
		})
	}
}

func TestAreas(t *testing.T) {
	tests := []struct {
		in   string
		want Areas
		err  bool
	}{
		{"", 0, false},
		{"problems", AreaProblems, false},
		{"Problems, medication ,", AreaProblems | AreaMedication, false},
		{"summary", AreaSummary, false},
		{"all", AllAreas, false},
		{"*", AllAreas, false},
		{"summary,examination", AreaSummary | AreaExamination, false},
		{"problems,nonsense", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAreas(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseAreas(%q) = %v, want error", tc.in, got)
				}
				wantCodedError(t, err, CodeInvalidParameter)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAreas(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			// String and ParseAreas round-trip.
			if back, err := ParseAreas(got.String()); got != 0 && (err != nil || back != got) {
				t.Errorf("ParseAreas(%q) = %v, %v", got.String(), back, err)
			}
		})
	}
	if Area(0).String() != "none" || AreaProblems.Has(0) || AllAreas.Has(AreaSummary) || !AllAreas.Has(SummaryAreas) || SummaryAreas.Has(AreaDiagnoses) {
		t.Error("Has/String basics")
	}
	if len(AllAreas.List()) != len(AreaTable) || !SummaryAreas.Any(AreaProblems|AreaDiagnoses) || SummaryAreas.Any(AreaDiagnoses) {
		t.Error("List/Any basics")
	}
	for _, typ := range ReadableTypes {
		if AreasOfType(typ) == 0 {
			t.Errorf("readable type %s is in no area", typ)
		}
	}
}

func FuzzNewResource(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Condition","id":"c1","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis"}]}],"onsetPeriod":{"start":"2020","end":"x"}}`,
		`{"resourceType":"AllergyIntolerance","id":"a","category":["food",{"coding":[]}],"patient":{"reference":"Patient/p"}}`,
		`{"resourceType":"Observation","id":"o","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"effectivePeriod":{}}`,
		`{"resourceType":"Specimen","id":"s","collection":{"collectedDateTime":"2021-02-29"}}`,
		`{"resourceType":"Encounter","id":"e","period":{"start":"2021-01-01T10:00:00+14:00"},"meta":{"lastUpdated":"9999-12-31T23:59:59-14:00","security":[{"code":"R"}]}}`,
		`{"resourceType":"MedicationStatement","id":"m","category":null,"medicationCodeableConcept":{"coding":null}}`,
		`{}`, `[`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := bytes.Clone(raw)
		r, err := NewResource(raw)
		if !bytes.Equal(in, raw) {
			t.Fatal("NewResource modified its input")
		}
		if err != nil {
			return
		}
		if r.Type == "" || r.ID == "" || &r.JSON[0] != &raw[0] {
			t.Fatalf("resource = %+v", r)
		}
		if r.Ix.Area != 0 && !AreasOfType(r.Type).Has(r.Ix.Area) {
			t.Fatalf("area %v not among %v for %s", r.Ix.Area, AreasOfType(r.Type), r.Type)
		}
		// (An open period starting after 9999-12-31T23:59:59Z in UTC, which
		// only an offset can produce, ends before it starts: not checked.)
		if !r.Ix.Start.IsZero() && r.Ix.Start.Before(maxTime) && r.Ix.End.Before(r.Ix.Start) {
			t.Fatalf("range [%v, %v) is reversed", r.Ix.Start, r.Ix.End)
		}
		if strings.Contains(r.Ix.Patient, "/") {
			t.Fatalf("patient %q keeps a path", r.Ix.Patient)
		}
		SortByDateDesc([]*Resource{r, r})
		SortByLastUpdatedDesc([]*Resource{r, r})
	})
}
