package gpconnect

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// codedOnly fails the test for any free text the converted record holds,
// by the independent coded-only checker.
func codedOnly(t *testing.T, res *Result) {
	t.Helper()
	for _, r := range res.Resources {
		for _, p := range profiles.CodedOnly(r.JSON) {
			t.Errorf("%s: %v", r.Reference(), p)
		}
	}
}

const (
	gpcEmptyReasonSystem = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1"
	stu3EmptyReason      = "http://hl7.org/fhir/list-empty-reason"
)

// section is a hand-written STU3 section List: its SNOMED code, an
// emptyReason coding (system|code, none when ""), and entries.
func section(id, code, reason string, items ...string) map[string]any {
	l := map[string]any{"resourceType": "List", "id": id, "status": "current", "mode": "snapshot", "title": "Private title",
		"code": cc(sct, code), "note": []any{map[string]any{"text": "Information not available"}}}
	if reason != "" {
		sys, c, _ := strings.Cut(reason, "|")
		l["emptyReason"] = map[string]any{"coding": []any{map[string]any{"system": sys, "code": c}}, "text": "why, in words"}
	}
	var es []any
	for _, it := range items {
		es = append(es, map[string]any{"item": ref(it)})
	}
	if len(es) > 0 {
		l["entry"] = es
	}
	return l
}

// TestListEmptyReasons: a section List's coded emptyReason reaches the
// record's warnings, scoped to its area, and from there the empty section
// List gpgate builds, so "nothing recorded" and "withheld" stay apart.
func TestListEmptyReasons(t *testing.T) {
	const (
		allergies = "886921000000105"
		ended     = "1103671000000101"
		meds      = "933361000000108"
		problems  = "717711000000103"
	)
	allergy := map[string]any{"resourceType": "AllergyIntolerance", "id": "a1", "code": cc(sct, "91936005"), "clinicalStatus": "active",
		"verificationStatus": "confirmed", "patient": ref("Patient/pat")}
	type want struct {
		code     fhir.Code
		area     fhir.Area
		severity string
	}
	cases := []struct {
		name  string
		in    []map[string]any
		want  []want
		lists map[string]string // section param -> emptyReason system|code of gpgate's empty List
	}{
		{"nothing recorded (GP Connect code)", []map[string]any{section("l1", allergies, gpcEmptyReasonSystem+"|no-content-recorded")},
			[]want{{fhir.EmptyNoContentRecorded, fhir.AreaAllergies, "information"}},
			map[string]string{"includeAllergies": fhir.UKCoreListEmptyReasonSystem + "|no-content-recorded", "includeMedication": fhir.ListEmptyReasonSystem + "|nilknown"}},
		{"withheld (base code, STU3 system)", []map[string]any{section("l1", meds, stu3EmptyReason+"|withheld")},
			[]want{{fhir.EmptyWithheld, fhir.AreaMedication, "warning"}},
			map[string]string{"includeMedication": fhir.ListEmptyReasonSystem + "|withheld"}},
		{"information not available (base code, R4 system)", []map[string]any{section("l1", problems, fhir.ListEmptyReasonSystem+"|unavailable")},
			[]want{{fhir.EmptyUnavailable, fhir.AreaProblems, "warning"}},
			map[string]string{"includeProblems": fhir.ListEmptyReasonSystem + "|unavailable"}},
		{"withheld and nothing recorded in two sections stay apart", []map[string]any{
			section("l1", allergies, gpcEmptyReasonSystem+"|no-content-recorded"), section("l2", meds, stu3EmptyReason+"|withheld")},
			[]want{{fhir.EmptyNoContentRecorded, fhir.AreaAllergies, "information"}, {fhir.EmptyWithheld, fhir.AreaMedication, "warning"}},
			map[string]string{"includeAllergies": fhir.UKCoreListEmptyReasonSystem + "|no-content-recorded", "includeMedication": fhir.ListEmptyReasonSystem + "|withheld"}},
		{"nothing recorded in a sub-list of an area with entries says nothing", []map[string]any{
			allergy, section("l1", allergies, "", "AllergyIntolerance/a1"), section("l2", ended, gpcEmptyReasonSystem+"|no-content-recorded")},
			nil, nil},
		{"withheld in a sub-list of an area with entries still stands", []map[string]any{
			allergy, section("l1", allergies, "", "AllergyIntolerance/a1"), section("l2", ended, stu3EmptyReason+"|withheld")},
			[]want{{fhir.EmptyWithheld, fhir.AreaAllergies, "warning"}}, nil},
		{"an emptyReason beside entries is ignored (lst-1)", []map[string]any{
			allergy, section("l1", allergies, stu3EmptyReason+"|withheld", "AllergyIntolerance/a1")},
			nil, nil},
		{"unknown codes and text alone are ignored", []map[string]any{
			section("l1", allergies, "http://example.org/reasons|gone-fishing"),
			{"resourceType": "List", "id": "l2", "status": "current", "mode": "snapshot", "code": cc(sct, meds), "emptyReason": map[string]any{"text": "withheld"}}},
			nil, map[string]string{"includeAllergies": fhir.ListEmptyReasonSystem + "|nilknown"}},
		{"a withheld List of no known section has no area", []map[string]any{section("l1", "1234567", stu3EmptyReason+"|withheld"), section("l2", "7654321", stu3EmptyReason+"|nilknown")},
			[]want{{fhir.EmptyWithheld, 0, "warning"}}, nil},
		{"list warnings and empty reasons travel together", []map[string]any{func() map[string]any {
			l := section("l1", meds, gpcEmptyReasonSystem+"|no-content-recorded")
			l["extension"] = []any{map[string]any{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1", "valueCode": "confidential-items"}}
			return l
		}()}, []want{{fhir.WarnConfidentialItems, 0, "warning"}, {fhir.EmptyNoContentRecorded, fhir.AreaMedication, "information"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, res := decoded(t, bundle("1234567890", c.in...))
			checkRecord(t, res.Resources)
			codedOnly(t, res)
			if len(res.Warnings) != len(c.want) {
				t.Fatalf("warnings %+v, want %+v", res.Warnings, c.want)
			}
			for i, w := range c.want {
				got := res.Warnings[i]
				area := ""
				if w.area != 0 {
					area = w.area.Name()
				}
				if got.Code != w.code || got.Severity != w.severity || (fhir.EmptyReason(w.code) && got.Expression != area) {
					t.Errorf("warning %d = %+v, want %+v", i, got, w)
				}
				for _, leak := range []string{"Private title", "Information not available", "why, in words", "fishing"} {
					if strings.Contains(got.Diagnostics, leak) {
						t.Errorf("warning %d carries source text %q", i, leak)
					}
				}
			}
			// The section Lists gpgate builds over the record (no entries).
			for param, reason := range c.lists {
				l := fhir.SectionOf(param).ListOf(fhir.PatientID(testNHS), nil, time.Unix(0, 0), true, res.Warnings)
				var got struct {
					EmptyReason struct {
						Coding []struct{ System, Code string } `json:"coding"`
					} `json:"emptyReason"`
				}
				if err := json.Unmarshal(l.JSON, &got); err != nil {
					t.Fatal(err)
				}
				if cs := got.EmptyReason.Coding; len(cs) != 1 || cs[0].System+"|"+cs[0].Code != reason {
					t.Errorf("%s List emptyReason %v, want %s", param, cs, reason)
				}
				for _, p := range profiles.Errors(profiles.CheckJSON(l.JSON)) {
					t.Errorf("%s List: %v", param, p)
				}
			}
			// The OperationOutcome of $everything codes them in their systems.
			if len(res.Warnings) > 0 {
				var oo struct {
					Issue []struct {
						Details struct {
							Coding []struct{ System, Code, Display string } `json:"coding"`
						} `json:"details"`
					} `json:"issue"`
				}
				raw := fhir.OperationOutcome(res.Warnings...)
				if err := json.Unmarshal(raw, &oo); err != nil {
					t.Fatal(err)
				}
				for i, is := range oo.Issue {
					cd := is.Details.Coding[0]
					if cd.System != fhir.WarningSystem(res.Warnings[i].Code) || cd.System == fhir.SpineErrorSystem || cd.Display == "" {
						t.Errorf("issue %d coded %+v", i, cd)
					}
				}
				for _, p := range profiles.Errors(profiles.CheckJSON(raw)) {
					t.Errorf("OperationOutcome: %v", p)
				}
			}
		})
	}
}

// TestIssuedDate: an issued time R4 cannot hold (a day, a time without a
// zone) becomes the effective date of an entry without one, and is left
// out of one with one; the entry stays.
func TestIssuedDate(t *testing.T) {
	dr := func(id string, extra map[string]any) map[string]any {
		d := map[string]any{"resourceType": "DiagnosticReport", "id": id, "status": "final", "code": cc(sct, "721981007"), "subject": ref("Patient/pat")}
		for k, v := range extra {
			d[k] = v
		}
		return d
	}
	obs := func(id string, extra map[string]any) map[string]any {
		o := map[string]any{"resourceType": "Observation", "id": id, "status": "final", "code": cc(sct, "1022541000000102"), "subject": ref("Patient/pat")}
		for k, v := range extra {
			o[k] = v
		}
		return o
	}
	cases := []struct {
		name              string
		in                map[string]any
		key               string
		effective, issued any // want; nil: absent
		period            bool
	}{
		{"report issued on a day, no effective", dr("d1", map[string]any{"issued": "2020-03-04"}), "DiagnosticReport/d1", "2020-03-04", nil, false},
		{"report issued without a zone, no effective", dr("d2", map[string]any{"issued": "2020-03-04T09:30:00"}), "DiagnosticReport/d2", "2020-03-04", nil, false},
		{"report issued in a month, no effective", dr("d3", map[string]any{"issued": "2020-03"}), "DiagnosticReport/d3", "2020-03", nil, false},
		{"report issued at an instant keeps it", dr("d4", map[string]any{"issued": "2020-03-04T09:30:00+00:00"}), "DiagnosticReport/d4", nil, "2020-03-04T09:30:00+00:00", false},
		{"report with an effective period keeps it, issued day left out", dr("d5", map[string]any{"issued": "2020-03-04",
			"effectivePeriod": map[string]any{"start": "2020-03-01", "end": "2020-03-02"}}), "DiagnosticReport/d5", nil, nil, true},
		{"result issued on a day, no effective", obs("o1", map[string]any{"issued": "2021-07-08"}), "Observation/o1", "2021-07-08", nil, false},
		{"result with an effective date keeps it, issued day left out", obs("o2", map[string]any{"issued": "2021-07-08", "effectiveDateTime": "2021-07-01"}), "Observation/o2", "2021-07-01", nil, false},
		{"an effective the source gave but R4 cannot take is not replaced", obs("o3", map[string]any{"issued": "2021-07-08", "effectiveDateTime": "yesterday"}), "Observation/o3", nil, nil, false},
		{"an issued that is no date at all is left out", obs("o4", map[string]any{"issued": "soon"}), "Observation/o4", nil, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, res := decoded(t, bundle("1234567890", c.in))
			checkRecord(t, res.Resources)
			codedOnly(t, res)
			r := got[c.key]
			if r == nil || res.Dropped != 0 {
				t.Fatalf("%s dropped (%d): %v", c.key, res.Dropped, keys(got))
			}
			if r["effectiveDateTime"] != c.effective {
				t.Errorf("effectiveDateTime %v, want %v", r["effectiveDateTime"], c.effective)
			}
			if r["issued"] != c.issued {
				t.Errorf("issued %v, want %v", r["issued"], c.issued)
			}
			if (r["effectivePeriod"] != nil) != c.period {
				t.Errorf("effectivePeriod %v", r["effectivePeriod"])
			}
		})
	}
}

// TestTestRequests: a ProcedureRequest that is a test request (a report is
// based on it, an order intent, a laboratory or imaging category) is a
// ServiceRequest for a laboratory procedure (imaging for an imaging
// report); a diary entry (intent plan) stays one; free text stays behind.
func TestTestRequests(t *testing.T) {
	pr := func(id, intent string, extra map[string]any) map[string]any {
		p := map[string]any{"resourceType": "ProcedureRequest", "id": id, "status": "active", "intent": intent, "code": cc(sct, "26604007"),
			"subject": ref("Patient/pat"), "note": []any{map[string]any{"text": "why the test was asked for"}}}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	report := func(id string, category map[string]any, basedOn ...string) map[string]any {
		d := map[string]any{"resourceType": "DiagnosticReport", "id": id, "status": "final", "code": cc(sct, "721981007"), "subject": ref("Patient/pat")}
		var b []any
		for _, x := range basedOn {
			b = append(b, ref(x))
		}
		d["basedOn"] = b
		if category != nil {
			d["category"] = category
		}
		return d
	}
	gp := map[string]any{"resourceType": "Practitioner", "id": "gp", "name": []any{map[string]any{"family": "Doctor"}}}
	spec := map[string]any{"resourceType": "Specimen", "id": "sp", "type": cc(sct, "119297000"), "subject": ref("Patient/pat")}
	cases := []struct {
		name     string
		in       []map[string]any
		key      string
		category string // first category code; "" for none
		intent   string
		check    func(t *testing.T, got map[string]map[string]any)
	}{
		{"an order is a laboratory test request", []map[string]any{gp, spec, pr("p1", "order", map[string]any{
			"requester": ref("Practitioner/gp"), "specimen": []any{ref("Specimen/sp")}, "reasonCode": []any{cc(sct, "44054006")}})},
			"ServiceRequest/p1", snomedLabProcedure, "order", func(t *testing.T, got map[string]map[string]any) {
				s := got["ServiceRequest/p1"]
				if s["requester"] == nil || s["specimen"] == nil || s["reasonCode"] == nil {
					t.Errorf("test request lost requester, specimen or reason: %v", s)
				}
			}},
		{"a request a laboratory report is based on is a test request", []map[string]any{pr("p2", "plan", nil), report("r", nil, "ProcedureRequest/p2")},
			"ServiceRequest/p2", snomedLabProcedure, "plan", func(t *testing.T, got map[string]map[string]any) {
				b, _ := got["DiagnosticReport/r"]["basedOn"].([]any)
				if len(b) != 1 || !strings.HasSuffix(b[0].(map[string]any)["reference"].(string), "-p2") {
					t.Errorf("report basedOn %v", b)
				}
			}},
		{"a request an imaging report is based on asks for imaging", []map[string]any{pr("p3", "order", nil), report("r", cc(systemV20074, "RAD"), "ProcedureRequest/p3")},
			"ServiceRequest/p3", snomedImaging, "order", nil},
		{"a laboratory category makes a plan a test request, its own category kept once", []map[string]any{pr("p4", "plan", map[string]any{
			"category": []any{cc(sct, snomedLabProcedure), cc(sct, "15220000")}})},
			"ServiceRequest/p4", snomedLabProcedure, "plan", func(t *testing.T, got map[string]map[string]any) {
				if c, _ := got["ServiceRequest/p4"]["category"].([]any); len(c) != 2 {
					t.Errorf("categories %v", c)
				}
			}},
		{"a diary entry stays a diary entry", []map[string]any{pr("p5", "plan", map[string]any{"code": cc(sct, "314529007")})},
			"ServiceRequest/p5", "", "plan", nil},
		{"a request without intent or signs of a test is a diary entry", []map[string]any{pr("p6", "", nil)},
			"ServiceRequest/p6", "", "plan", nil},
		{"an uncoded test request is free text and is dropped", []map[string]any{pr("p7", "order", map[string]any{"code": map[string]any{"text": "No code available"}})},
			"", "", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, res := decoded(t, bundle("1234567890", c.in...))
			checkRecord(t, res.Resources)
			codedOnly(t, res)
			if c.key == "" {
				for k := range got {
					if strings.HasPrefix(k, "ServiceRequest/") {
						t.Errorf("%s emitted", k)
					}
				}
				if res.Dropped != 1 {
					t.Errorf("dropped %d", res.Dropped)
				}
				return
			}
			s := got[c.key]
			if s == nil {
				t.Fatalf("%s missing: %v", c.key, keys(got))
			}
			if s["intent"] != c.intent || s["note"] != nil {
				t.Errorf("intent %v note %v", s["intent"], s["note"])
			}
			cats, _ := s["category"].([]any)
			first := ""
			if len(cats) > 0 {
				first = cats[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
			}
			if first != c.category {
				t.Errorf("category %v, want %q", cats, c.category)
			}
			if c.check != nil {
				c.check(t, got)
			}
		})
	}
}
