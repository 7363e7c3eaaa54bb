package fhir

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestSectionPartsParsed: every part a section declares (and the
// OperationDefinition therefore advertises) is one the parser honours, with
// a value of its declared type; none is silently ignored.
func TestSectionPartsParsed(t *testing.T) {
	value := map[string]any{
		"boolean":     map[string]any{"valueBoolean": true},
		"date":        map[string]any{"valueDate": "2024-01-01"},
		"code":        map[string]any{"valueCode": "active"},
		"Period":      map[string]any{"valuePeriod": map[string]string{"start": "2020-01-01", "end": "2024-12-31"}},
		"positiveInt": map[string]any{"valuePositiveInt": 3},
	}
	for _, sec := range Sections {
		t.Run(sec.Param, func(t *testing.T) {
			p := map[string]any{"name": sec.Param}
			var parts []any
			for _, pt := range sec.Parts {
				v, ok := value[pt.Type]
				if !ok {
					t.Fatalf("part %s has type %s, which the test does not know", pt.Name, pt.Type)
				}
				m := map[string]any{"name": pt.Name}
				for k, x := range v.(map[string]any) {
					m[k] = x
				}
				parts = append(parts, m)
			}
			if parts != nil {
				p["part"] = parts
			}
			body, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": []any{
				map[string]any{"name": "patientNHSNumber", "valueIdentifier": map[string]string{"system": NHSNumberSystem, "value": "9990002517"}}, p}})
			sr, err := ParseStructuredRequest(body, true)
			if err != nil {
				t.Fatalf("strict parse of every declared part: %v", err)
			}
			if len(sr.Ignored) != 0 || len(sr.Sections) != 1 || sr.Sections[0].Param != sec.Param {
				t.Fatalf("parsed %+v", sr)
			}
			if AreaDefOf(sec.Area) == nil {
				t.Fatalf("section %s names no dataset area", sec.Param)
			}
		})
	}
}

func FuzzParseStructuredRequest(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990002517"}},{"name":"includeProblems","part":[{"name":"filterStatus","valueCode":"active"}]}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"includeConsultations","part":[{"name":"consultationSearchPeriod","valuePeriod":{"start":"2024","end":"2023"}}]}]}`,
		`{"resourceType":"Parameters"}`, `{}`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, strict := range []bool{false, true} {
			sr, err := ParseStructuredRequest(body, strict)
			if (err == nil) == (sr == nil) {
				t.Fatalf("result %v and error %v", sr, err)
			}
			if err != nil && AsError(err).Code == CodeInternal {
				t.Fatalf("bad input is never an internal error: %v", err)
			}
			if err == nil && sr.NHS == "" {
				t.Fatal("a parsed request always names the patient")
			}
		}
	})
}

// TestListOfWarnings: list warnings travel as the UK Core ListWarningCode
// extension, whose value is a CodeableConcept; other warnings do not.
func TestListOfWarnings(t *testing.T) {
	sec := SectionOf("includeAllergies")
	if sec == nil {
		t.Fatal("no includeAllergies section")
	}
	warnings := []Issue{{Severity: "warning", Code: WarnDataInTransit}, {Severity: "warning", Code: WarnAreaUnavailable}}
	l := sec.ListOf("p1", nil, time.Unix(0, 0), true, warnings)
	var got struct {
		Extension []map[string]any `json:"extension"`
	}
	if err := json.Unmarshal(l.JSON, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Extension) != 1 {
		t.Fatalf("extensions %v, want the one list warning", got.Extension)
	}
	want := map[string]any{"coding": []any{map[string]any{"system": ListWarningCodeSystem, "code": string(WarnDataInTransit)}}}
	if !reflect.DeepEqual(got.Extension[0]["valueCodeableConcept"], want) || got.Extension[0]["url"] != ExtListWarningCode {
		t.Errorf("extension %v", got.Extension[0])
	}
	if _, err := Parse(l.JSON); err != nil {
		t.Errorf("not valid R4: %v", err)
	}
}

// TestListOfEmptyReason: an empty section List says why it is empty: the
// decision's "withheld" first, then the reason the source gave for the
// section's area (the least-known one when several), else "nilknown".
func TestListOfEmptyReason(t *testing.T) {
	sec := SectionOf("includeAllergies")
	if sec == nil {
		t.Fatal("no includeAllergies section")
	}
	allergies, meds := AreaAllergies.Name(), AreaMedication.Name()
	entry := &Resource{Type: "AllergyIntolerance", ID: "a1"}
	for _, tc := range []struct {
		name      string
		entries   []*Resource
		permitted bool
		warnings  []Issue
		want      string // system|code, "" for no emptyReason
	}{
		{"no reason given", nil, true, nil, ListEmptyReasonSystem + "|nilknown"},
		{"not permitted", nil, false, []Issue{{Code: EmptyNoContentRecorded, Expression: allergies}}, ListEmptyReasonSystem + "|withheld"},
		{"nothing recorded", nil, true, []Issue{{Code: EmptyNoContentRecorded, Expression: allergies}}, UKCoreListEmptyReasonSystem + "|no-content-recorded"},
		{"withheld at source", nil, true, []Issue{{Code: EmptyWithheld, Expression: allergies}}, ListEmptyReasonSystem + "|withheld"},
		{"least known wins", nil, true, []Issue{{Code: EmptyNoContentRecorded, Expression: allergies}, {Code: EmptyUnavailable, Expression: allergies}}, ListEmptyReasonSystem + "|unavailable"},
		{"other area", nil, true, []Issue{{Code: EmptyWithheld, Expression: meds}}, ListEmptyReasonSystem + "|nilknown"},
		{"unscoped", nil, true, []Issue{{Code: EmptyWithheld}}, ListEmptyReasonSystem + "|nilknown"},
		{"has entries", []*Resource{entry}, true, []Issue{{Code: EmptyWithheld, Expression: allergies}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := sec.ListOf("p1", tc.entries, time.Unix(0, 0), tc.permitted, tc.warnings)
			var got struct {
				EmptyReason *struct {
					Coding []struct{ System, Code, Display string } `json:"coding"`
				} `json:"emptyReason"`
				Extension []any `json:"extension"`
			}
			if err := json.Unmarshal(l.JSON, &got); err != nil {
				t.Fatal(err)
			}
			have := ""
			if got.EmptyReason != nil {
				if len(got.EmptyReason.Coding) != 1 || got.EmptyReason.Coding[0].Display == "" {
					t.Fatalf("emptyReason %+v", got.EmptyReason)
				}
				have = got.EmptyReason.Coding[0].System + "|" + got.EmptyReason.Coding[0].Code
			}
			if have != tc.want {
				t.Errorf("emptyReason = %q, want %q", have, tc.want)
			}
			if len(got.Extension) != 0 {
				t.Errorf("an empty reason became a warning extension: %v", got.Extension)
			}
			if len(tc.entries) == 0 {
				if _, err := Parse(l.JSON); err != nil {
					t.Errorf("not valid R4: %v", err)
				}
			}
		})
	}
}
