package consent

import (
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// A primitive element's "_element" leaves only as R4's data-absent-reason
// (a code saying why a value R4 requires is missing); anything else in it,
// or on an element not listed, is dropped. The output is checked by the
// independent coded-only checker and the R4 parser, not by the allowlist.
func TestCodedDataAbsentReason(t *testing.T) {
	const dar = `{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}`
	base := func(extra string) string {
		return `{"resourceType":"Immunization","id":"pabc-im1","status":"completed",` +
			`"vaccineCode":{"coding":[{"system":"http://snomed.info/sct","code":"39114911000001105"}]},` +
			`"patient":{"reference":"Patient/pabc"}` + extra + `}`
	}
	for _, tc := range []struct {
		name, extra string
		keep        []string // in the output
		gone        []string // not in the output
	}{
		{"a missing date, said why", `,"_occurrenceDateTime":{"extension":[` + dar + `]}`,
			[]string{`"_occurrenceDateTime":{"extension":[` + dar + `]}`}, nil},
		{"free text beside the reason goes", `,"_occurrenceDateTime":{"id":"free:x","extension":[` + dar + `,{"url":"http://example.org/note","valueString":"free:given at the fair"}]}`,
			[]string{`"_occurrenceDateTime":{"extension":[` + dar + `]}`}, []string{"free:"}},
		{"a reason given as text goes", `,"occurrenceDateTime":"2020-01-01","_occurrenceDateTime":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueString":"free:nobody knows"}]}`,
			nil, []string{"_occurrenceDateTime", "free:"}},
		{"another extension alone goes", `,"occurrenceDateTime":"2020-01-01","_lotNumber":{"extension":[{"url":"http://example.org/x","valueCode":"y"}]}`,
			nil, []string{"_lotNumber"}},
		{"an element not listed", `,"occurrenceDateTime":"2020-01-01","_note":{"extension":[` + dar + `]}`,
			nil, []string{"_note"}},
		{"a complex element has no _form", `,"occurrenceDateTime":"2020-01-01","_vaccineCode":{"extension":[` + dar + `]}`,
			nil, []string{"_vaccineCode"}},
		{"twice: once", `,"occurrenceDateTime":"2020-01-01","_recorded":{"extension":[` + dar + `]},"_recorded":{"extension":[` + dar + `]}`,
			[]string{`"_recorded":`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := fhir.NewResource([]byte(base(tc.extra)))
			if err != nil {
				t.Fatal(err)
			}
			nr, withhold, err := keepCoded(r)
			if err != nil || withhold {
				t.Fatalf("withhold %v, err %v", withhold, err)
			}
			out := string(nr.JSON)
			for _, k := range tc.keep {
				if !strings.Contains(out, k) {
					t.Errorf("lost %s:\n%s", k, out)
				}
			}
			for _, g := range tc.gone {
				if strings.Contains(out, g) {
					t.Errorf("kept %s:\n%s", g, out)
				}
			}
			if n := strings.Count(out, `"_recorded"`); n > 1 {
				t.Errorf("_recorded %d times:\n%s", n, out)
			}
			if ps := profiles.CodedOnly(nr.JSON); len(ps) > 0 {
				t.Errorf("the independent checker finds %v in\n%s", ps, out)
			}
			if _, err := fhir.Parse(nr.JSON); err != nil {
				t.Errorf("not R4: %v\n%s", err, out)
			}
		})
	}
}
