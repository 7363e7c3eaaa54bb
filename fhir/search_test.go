package fhir

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// validValue is a value each parameter type accepts, keyed by parameter name
// for the ones with their own syntax.
func validValue(p SearchParam) string {
	switch p.Name {
	case "identifier":
		return NHSNumberSystem + "|9000000009"
	case "_id":
		return "res-1"
	}
	switch p.Type {
	case ParamToken:
		return SNOMED + "|22298006"
	case ParamDate:
		return "ge2021-01-01"
	case ParamReference:
		return "Patient/p1"
	}
	return ""
}

func sortedTypes() []string {
	ts := make([]string, 0, len(SearchParams))
	for t := range SearchParams {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// baseValues are the parameters a search on typ needs besides the one tested.
func baseValues(typ string) url.Values {
	v := url.Values{}
	if typ == "Patient" {
		v.Set("identifier", NHSNumberSystem+"|9000000009")
	}
	return v
}

func findFilter(q *Query, name string) *Filter {
	for i := range q.Filters {
		if q.Filters[i].Param == name {
			return &q.Filters[i]
		}
	}
	return nil
}

// TestParseQueryEveryDeclaredParam drives ParseQuery from the SearchParams
// table, so a parameter added there is parsed here too.
func TestParseQueryEveryDeclaredParam(t *testing.T) {
	for _, typ := range sortedTypes() {
		defs := append(slices.Clone(SearchParams[typ]), CommonParams...)
		for _, p := range defs {
			t.Run(typ+"/"+p.Name, func(t *testing.T) {
				if p.Type == "" || p.Doc == "" || !strings.HasPrefix(p.Definition, spBase) {
					t.Errorf("declaration is incomplete: %+v", p)
				}
				val := validValue(p)
				if val == "" {
					t.Fatalf("no test value for parameter type %q: extend validValue", p.Type)
				}
				v := baseValues(typ)
				v.Set(p.Name, val)
				q, err := ParseQuery(typ, v, true)
				if err != nil {
					t.Fatalf("ParseQuery(%s, %s=%s): %v", typ, p.Name, val, err)
				}
				if q.Type != typ || q.Count != DefaultCount || len(q.Ignored) != 0 {
					t.Errorf("query = %+v", q)
				}
				switch {
				case p.Name == "identifier":
					if q.NHS != "9000000009" {
						t.Errorf("NHS = %q", q.NHS)
					}
				case p.Type == ParamReference:
					if q.Patient != "p1" {
						t.Errorf("Patient = %q", q.Patient)
					}
					// A bare id and the :Patient type modifier are accepted too.
					v.Del(p.Name)
					v.Set(p.Name+":Patient", "p1")
					if q, err := ParseQuery(typ, v, true); err != nil || q.Patient != "p1" {
						t.Errorf("%s:Patient=p1: %v, %+v", p.Name, err, q)
					}
				default:
					f := findFilter(q, p.Name)
					if f == nil {
						t.Fatalf("no filter for %s in %+v", p.Name, q.Filters)
					}
					switch p.Type {
					case ParamToken:
						if len(f.Tokens) != 1 || f.Not {
							t.Errorf("filter = %+v", f)
						}
						// :not is the one token modifier.
						nv := baseValues(typ)
						nv.Set(p.Name+":not", val)
						nq, err := ParseQuery(typ, nv, true)
						if err != nil {
							t.Fatalf("%s:not: %v", p.Name, err)
						}
						if nf := findFilter(nq, p.Name); nf == nil || !nf.Not {
							t.Errorf("%s:not did not set Not: %+v", p.Name, nq.Filters)
						}
					case ParamDate:
						if len(f.Dates) != 1 || f.Dates[0].Prefix != "ge" || !f.Dates[0].Value.Start.Equal(utc(2021, 1, 1, 0, 0, 0, 0)) {
							t.Errorf("filter = %+v", f)
						}
					default:
						t.Errorf("parameter type %q made a filter", p.Type)
					}
					// Every filter a declared parameter makes is one Match knows:
					// an unknown filter name never matches, even negated.
					r := indexedEverything(t)
					neg := Filter{Param: p.Name, Not: true}
					if !f.Match(r) && !neg.Match(r) && p.Type == ParamToken {
						t.Errorf("Filter.Match has no case for %s", p.Name)
					}
					if p.Type == ParamDate && !(&Filter{Param: p.Name, Dates: []DatePredicate{{Prefix: "ne", Value: mustDate(t, "1900")}}}).Match(r) {
						t.Errorf("Filter.Match has no case for %s", p.Name)
					}
				}
				// FHIR modifiers gpgate does not serve are NOT_IMPLEMENTED
				// (never ignored); what is no FHIR modifier is
				// INVALID_PARAMETER.
				for _, mod := range []string{"exact", "missing", "text", "below", "contains", "in", "bogus"} {
					mv := baseValues(typ)
					mv.Set(p.Name+":"+mod, val)
					_, err := ParseQuery(typ, mv, false)
					if err == nil {
						t.Errorf("%s:%s accepted", p.Name, mod)
						continue
					}
					want := CodeNotImplemented
					if mod == "bogus" {
						want = CodeInvalidParameter
					}
					wantCodedError(t, err, want)
				}
			})
		}
	}
}

// indexedEverything is a resource whose index has a value in every field a
// filter reads.
func indexedEverything(t *testing.T) *Resource {
	t.Helper()
	return mustResource(t, `{"resourceType":"MedicationRequest","id":"res-1",
		"meta":{"lastUpdated":"2021-06-01T10:00:00Z"},
		"status":"active","intent":"plan",
		"category":[{"coding":[{"system":"http://example.org/cat","code":"c"}]}],
		"medicationCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"22298006"}]},
		"clinicalStatus":{"coding":[{"code":"active"}]},
		"authoredOn":"2021-05-01",
		"subject":{"reference":"Patient/p1"}}`)
}

func TestParseQueryTokens(t *testing.T) {
	tests := []struct {
		value string
		want  []Coding
		not   bool
	}{
		{"http://snomed.info/sct|22298006", []Coding{{SNOMED, "22298006"}}, false},
		{"|22298006", []Coding{{noSystem, "22298006"}}, false},
		{"http://snomed.info/sct|", []Coding{{SNOMED, ""}}, false},
		{"22298006", []Coding{{"", "22298006"}}, false},
		{"22298006,195967001", []Coding{{"", "22298006"}, {"", "195967001"}}, false},
		{"http://snomed.info/sct|1,http://read.info/readv2|G30..", []Coding{{SNOMED, "1"}, {ReadV2, "G30.."}}, false},
		{`a\,b`, []Coding{{"", "a,b"}}, false},
		{`a\,b,c`, []Coding{{"", "a,b"}, {"", "c"}}, false},
		{`a\\,b`, []Coding{{"", `a\`}, {"", "b"}}, false},
		{`a\$b`, []Coding{{"", "a$b"}}, false},
		{`a\xb`, []Coding{{"", `a\xb`}}, false},
		{"sys|a|b", []Coding{{"sys", "a|b"}}, false},
	}
	for _, tc := range tests {
		for _, not := range []bool{false, true} {
			name := tc.value
			key := "code"
			if not {
				name, key = "not/"+name, "code:not"
			}
			t.Run(name, func(t *testing.T) {
				q, err := ParseQuery("Condition", url.Values{key: {tc.value}}, true)
				if err != nil {
					t.Fatal(err)
				}
				if len(q.Filters) != 1 {
					t.Fatalf("filters = %+v", q.Filters)
				}
				f := q.Filters[0]
				if f.Param != "code" || f.Not != not || !reflect.DeepEqual(f.Tokens, tc.want) {
					t.Errorf("filter = %+v, want tokens %+v not=%v", f, tc.want, not)
				}
			})
		}
	}
	// Two occurrences are ANDed: two filters.
	q, err := ParseQuery("Condition", url.Values{"code": {"a", "b,c"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Filters) != 2 || len(q.Filters[0].Tokens) != 1 || len(q.Filters[1].Tokens) != 2 {
		t.Errorf("filters = %+v", q.Filters)
	}
}

func TestParseQueryResultParams(t *testing.T) {
	tests := []struct {
		name   string
		v      url.Values
		count  int
		offset int
		sort   string
	}{
		{"defaults", url.Values{}, DefaultCount, 0, ""},
		{"count", url.Values{"_count": {"10"}}, 10, 0, ""},
		{"count zero", url.Values{"_count": {"0"}}, 0, 0, ""},
		{"count clamped", url.Values{"_count": {"1000000"}}, MaxCount, 0, ""},
		{"count at max", url.Values{"_count": {"1000"}}, MaxCount, 0, ""},
		{"last count wins", url.Values{"_count": {"5", "7"}}, 7, 0, ""},
		{"offset", url.Values{"_offset": {"100"}}, DefaultCount, 100, ""},
		{"offset at limit", url.Values{"_offset": {"1073741824"}}, DefaultCount, 1 << 30, ""},
		{"sort date", url.Values{"_sort": {"date"}}, DefaultCount, 0, "date"},
		{"sort -date", url.Values{"_sort": {"-date"}}, DefaultCount, 0, "-date"},
		{"sort _lastUpdated", url.Values{"_sort": {"_lastUpdated"}}, DefaultCount, 0, "_lastUpdated"},
		{"sort -_lastUpdated", url.Values{"_sort": {"-_lastUpdated"}}, DefaultCount, 0, "-_lastUpdated"},
		{"format and pretty ignored, even strictly", url.Values{"_format": {"json"}, "_pretty": {"true"}}, DefaultCount, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery("Observation", tc.v, true)
			if err != nil {
				t.Fatal(err)
			}
			if q.Count != tc.count || q.Offset != tc.offset || q.Sort != tc.sort || len(q.Filters) != 0 || len(q.Ignored) != 0 {
				t.Errorf("query = %+v", q)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	long := strings.Repeat("a", maxParamValue+1)
	tests := []struct {
		name   string
		typ    string
		v      url.Values
		strict bool
		code   Code
		status int
		expr   string
	}{
		{"unsupported type", "Practitioner", url.Values{}, false, CodeNotImplemented, 501, ""},
		{"negative count", "Condition", url.Values{"_count": {"-1"}}, false, CodeInvalidParameter, 422, "_count"},
		{"non-numeric count", "Condition", url.Values{"_count": {"ten"}}, false, CodeInvalidParameter, 422, "_count"},
		{"empty count", "Condition", url.Values{"_count": {""}}, false, CodeInvalidParameter, 422, "_count"},
		{"count overflows int", "Condition", url.Values{"_count": {"99999999999999999999999"}}, false, CodeInvalidParameter, 422, "_count"},
		{"negative offset", "Condition", url.Values{"_offset": {"-5"}}, false, CodeInvalidParameter, 422, "_offset"},
		{"huge offset", "Condition", url.Values{"_offset": {"1073741825"}}, false, CodeInvalidParameter, 422, "_offset"},
		{"non-numeric offset", "Condition", url.Values{"_offset": {"1e3"}}, false, CodeInvalidParameter, 422, "_offset"},
		{"sort not served", "Condition", url.Values{"_sort": {"code"}}, false, CodeNotImplemented, 501, "_sort"},
		{"sort list", "Condition", url.Values{"_sort": {"date,-_lastUpdated"}}, false, CodeNotImplemented, 501, "_sort"},
		{"bad sort", "Condition", url.Values{"_sort": {"date desc"}}, false, CodeInvalidParameter, 422, "_sort"},
		{"unknown param strict", "Condition", url.Values{"severity": {"x"}}, true, CodeBadRequest, 400, "severity"},
		{"unknown result param strict", "Condition", url.Values{"_foo": {"count"}}, true, CodeBadRequest, 400, "_foo"},
		{"modifier not served", "Condition", url.Values{"code:exact": {"x"}}, false, CodeNotImplemented, 501, "code"},
		{"unknown modifier", "Condition", url.Values{"code:sideways": {"x"}}, false, CodeInvalidParameter, 422, "code"},
		{":not on a date", "Condition", url.Values{"onset-date:not": {"2021"}}, false, CodeNotImplemented, 501, "onset-date"},
		{":not on a reference", "Condition", url.Values{"patient:not": {"p1"}}, false, CodeNotImplemented, 501, "patient"},
		{"summary text", "Condition", url.Values{"_summary": {"text"}}, false, CodeNotImplemented, 501, "_summary"},
		{"summary unknown", "Condition", url.Values{"_summary": {"brief"}}, false, CodeInvalidParameter, 422, "_summary"},
		{"elements not names", "Condition", url.Values{"_elements": {"code,(x)"}}, false, CodeInvalidParameter, 422, "_elements"},
		{"total unknown", "Condition", url.Values{"_total": {"some"}}, false, CodeInvalidParameter, 422, "_total"},
		{"include not served", "Condition", url.Values{"_include": {"Condition:asserter"}}, false, CodeNotImplemented, 501, "_include"},
		{"include other source", "Condition", url.Values{"_include": {"Observation:has-member"}}, false, CodeInvalidParameter, 422, "_include"},
		{"include bad target", "Condition", url.Values{"_include": {"Condition:encounter:Patient"}}, false, CodeInvalidParameter, 422, "_include"},
		{"include malformed", "Condition", url.Values{"_include": {"encounter"}}, false, CodeInvalidParameter, 422, "_include"},
		{"include wildcard", "Condition", url.Values{"_include": {"*"}}, false, CodeInvalidParameter, 422, "_include"},
		{"revinclude not pointing here", "Condition", url.Values{"_revinclude": {"Observation:has-member"}}, false, CodeInvalidParameter, 422, "_revinclude"},
		{"include modifier", "Condition", url.Values{"_include:deep": {"Condition:encounter"}}, false, CodeInvalidParameter, 422, "_include"},
		{"_has", "Condition", url.Values{"_has:Encounter:diagnosis:status": {"finished"}}, false, CodeNotImplemented, 501, "_has"},
		{"_filter", "Condition", url.Values{"_filter": {"code eq x"}}, true, CodeNotImplemented, 501, "_filter"},
		{"chained", "Condition", url.Values{"patient.identifier": {"x"}}, false, CodeNotImplemented, 501, "patient.identifier"},
		{"other reference type", "Condition", url.Values{"patient:Group": {"g1"}}, false, CodeInvalidParameter, 422, "patient"},
		{"bad date prefix", "Condition", url.Values{"onset-date": {"xx2021"}}, false, CodeInvalidParameter, 422, "onset-date"},
		{"upper-case prefix", "Condition", url.Values{"onset-date": {"GE2021"}}, false, CodeInvalidParameter, 422, "onset-date"},
		{"bad date", "Condition", url.Values{"onset-date": {"ge2021-02-30"}}, false, CodeInvalidParameter, 422, "onset-date"},
		{"prefix only", "Condition", url.Values{"onset-date": {"ge"}}, false, CodeInvalidParameter, 422, "onset-date"},
		{"bad date in a list", "Observation", url.Values{"date": {"2021,garbage"}}, false, CodeInvalidParameter, 422, "date"},
		{"empty token", "Condition", url.Values{"code": {""}}, false, CodeInvalidParameter, 422, "code"},
		{"empty token in a list", "Condition", url.Values{"code": {"a,"}}, false, CodeInvalidParameter, 422, "code"},
		{"bare bar", "Condition", url.Values{"code": {"|"}}, false, CodeInvalidParameter, 422, "code"},
		{"overlong token", "Condition", url.Values{"code": {long}}, false, CodeInvalidParameter, 422, "code"},
		{"overlong date", "Condition", url.Values{"onset-date": {long}}, false, CodeInvalidParameter, 422, "onset-date"},
		{"overlong patient", "Condition", url.Values{"patient": {long}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient given twice", "Condition", url.Values{"patient": {"p1", "Patient/p2"}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient path traversal", "Condition", url.Values{"patient": {"Patient/../p1"}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient slash", "Condition", url.Values{"patient": {"a/b"}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient dotdot", "Condition", url.Values{"patient": {".."}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient encoded slash", "Condition", url.Values{"patient": {"a%2Fb"}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient absolute url", "Condition", url.Values{"patient": {"https://evil.example/Patient/p1"}}, false, CodeInvalidParameter, 422, "patient"},
		{"patient 65 chars", "Condition", url.Values{"patient": {strings.Repeat("a", 65)}}, false, CodeInvalidParameter, 422, "patient"},
		{"Patient search without identifier", "Patient", url.Values{}, false, CodeInvalidParameter, 422, "identifier"},
		{"Patient search, only unknown params", "Patient", url.Values{"name": {"Smith"}}, false, CodeInvalidParameter, 422, "identifier"},
		{"identifier without system", "Patient", url.Values{"identifier": {"9000000009"}}, false, CodeInvalidIdentifier, 400, "identifier"},
		{"identifier wrong system", "Patient", url.Values{"identifier": {"https://example.org/mrn|9000000009"}}, false, CodeInvalidIdentifier, 400, "identifier"},
		{"identifier empty system", "Patient", url.Values{"identifier": {"|9000000009"}}, false, CodeInvalidIdentifier, 400, "identifier"},
		{"identifier bad NHS number", "Patient", url.Values{"identifier": {NHSNumberSystem + "|9000000001"}}, false, CodeInvalidNHSNumber, 400, ""},
		{"identifier empty NHS number", "Patient", url.Values{"identifier": {NHSNumberSystem + "|"}}, false, CodeInvalidNHSNumber, 400, ""},
		{"identifier twice", "Patient", url.Values{"identifier": {NHSNumberSystem + "|9000000009", NHSNumberSystem + "|9434765919"}}, false, CodeInvalidParameter, 422, "identifier"},
		{"identifier:not", "Patient", url.Values{"identifier:not": {NHSNumberSystem + "|9000000009"}}, false, CodeInvalidParameter, 422, "identifier"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery(tc.typ, tc.v, tc.strict)
			if err == nil {
				t.Fatalf("ParseQuery accepted: %+v", q)
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *fhir.Error", err)
			}
			if fe.Code != tc.code || fe.Status() != tc.status {
				t.Fatalf("error = %s (%d), want %s (%d): %v", fe.Code, fe.Status(), tc.code, tc.status, err)
			}
			if fe.Expression != tc.expr {
				t.Errorf("expression = %q, want %q", fe.Expression, tc.expr)
			}
			if len(fe.Diagnostics) > 400 {
				t.Errorf("diagnostics are %d bytes long", len(fe.Diagnostics))
			}
			if strings.Contains(fe.Diagnostics, "9000000001") || strings.Contains(fe.Diagnostics, "9434765919") {
				t.Errorf("diagnostics echo an NHS number: %q", fe.Diagnostics)
			}
		})
	}
}

func TestParseQueryUnknownParams(t *testing.T) {
	v := url.Values{
		"severity":      {"x"},
		"_foo":          {"Condition:patient"},
		"evidence:text": {"x"},
		"code":          {"a"},
	}
	q, err := ParseQuery("Condition", v, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"_foo", "evidence:text", "severity"}
	if !reflect.DeepEqual(q.Ignored, want) {
		t.Errorf("Ignored = %q, want %q", q.Ignored, want)
	}
	if len(q.Filters) != 1 || q.Filters[0].Param != "code" {
		t.Errorf("filters = %+v", q.Filters)
	}
	// Ignored names are made safe to echo in an OperationOutcome.
	q, err = ParseQuery("Condition", url.Values{"bad\x00\nname" + strings.Repeat("x", 100): {"1"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Ignored) != 1 || strings.ContainsAny(q.Ignored[0], "\x00\n") || len(q.Ignored[0]) > 70 {
		t.Errorf("Ignored = %q", q.Ignored)
	}
	// Strict handling names the parameter safely too.
	_, err = ParseQuery("Condition", url.Values{"evil\r\nname": {"1"}}, true)
	var fe *Error
	if !errors.As(err, &fe) || strings.ContainsAny(fe.Diagnostics+fe.Expression, "\r\n") {
		t.Errorf("strict error = %#v", err)
	}
}

func TestParseQueryPatient(t *testing.T) {
	tests := []struct {
		name string
		v    url.Values
		nhs  NHSNumber
		id   string
	}{
		{"identifier", url.Values{"identifier": {NHSNumberSystem + "|9000000009"}}, "9000000009", ""},
		{"identifier spaced", url.Values{"identifier": {NHSNumberSystem + "|943 476 5919"}}, "9434765919", ""},
		{"identifier repeated, same number", url.Values{"identifier": {NHSNumberSystem + "|9434765919", NHSNumberSystem + "|943-476-5919"}}, "9434765919", ""},
		{"_id alone", url.Values{"_id": {"pabc"}}, "", "pabc"},
		{"both", url.Values{"_id": {"pabc"}, "identifier": {NHSNumberSystem + "|9000000009"}}, "9000000009", "pabc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery("Patient", tc.v, true)
			if err != nil {
				t.Fatal(err)
			}
			if q.NHS != tc.nhs {
				t.Errorf("NHS = %q, want %q", q.NHS, tc.nhs)
			}
			f := findFilter(q, "_id")
			if (f != nil) != (tc.id != "") || f != nil && (len(f.Tokens) != 1 || f.Tokens[0].Code != tc.id) {
				t.Errorf("_id filter = %+v, want %q", f, tc.id)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"p1", true},
		{"pabcdefghijklmnop-123.4", true},
		{"A-Z.0-9", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".", false},
		{"..", false},
		{"...", true}, // not a path segment on its own; still [A-Za-z0-9.-]
		{"../etc", false},
		{"a/b", false},
		{"/a", false},
		{"a%2Fb", false},
		{"%2e%2e", false},
		{`a\b`, false},
		{"a b", false},
		{"a_b", false},
		{"a?b", false},
		{"a#b", false},
		{"a\x00", false},
		{"é", false},
		{"ａ", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := ValidID(tc.in); got != tc.want {
				t.Errorf("ValidID(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// matchFixtures are small hand-built resources with distinct index values.
func matchFixtures(t *testing.T) []*Resource {
	t.Helper()
	return []*Resource{
		mustResource(t, `{"resourceType":"Condition","id":"c1",
			"meta":{"lastUpdated":"2021-01-02T03:04:05Z"},
			"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"},{"system":"http://read.info/readv2","code":"G20.."}]},
			"subject":{"reference":"Patient/p1"},"onsetDateTime":"2019-05-01"}`),
		mustResource(t, `{"resourceType":"Condition","id":"c2",
			"meta":{"lastUpdated":"2022-07-01T00:00:00Z"},
			"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved"}]},
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis"}]}],
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"195967001"}]},
			"subject":{"reference":"Patient/p1"},"onsetPeriod":{"start":"2020-03-01","end":"2020-06-30"}}`),
		mustResource(t, `{"resourceType":"Condition","id":"c3",
			"code":{"coding":[{"code":"LOCAL1"}]},
			"subject":{"reference":"Patient/p1"}}`),
		mustResource(t, `{"resourceType":"MedicationRequest","id":"m1",
			"meta":{"lastUpdated":"2021-01-02T00:00:00Z"},
			"status":"active","intent":"plan",
			"medicationCodeableConcept":{"coding":[{"system":"https://dmd.nhs.uk","code":"322236009"}]},
			"subject":{"reference":"Patient/p1"},"authoredOn":"2021-01-01T09:30:00Z"}`),
		mustResource(t, `{"resourceType":"MedicationRequest","id":"m2",
			"status":"completed","intent":"order",
			"medicationCodeableConcept":{"coding":[{"system":"https://dmd.nhs.uk","code":"322236009"}]},
			"subject":{"reference":"Patient/p1"},"authoredOn":"2021-02-01"}`),
		mustResource(t, `{"resourceType":"Observation","id":"o1","status":"final",
			"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
			"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},
			"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2021-01-01T23:59:59Z"}`),
	}
}

func TestQueryMatch(t *testing.T) {
	rs := matchFixtures(t)
	tests := []struct {
		typ, query string
		want       string // ids that match, space-separated, in fixture order
	}{
		{"Condition", "", "c1 c2 c3"},
		{"Condition", "code=38341003", "c1"},
		{"Condition", "code=http://snomed.info/sct|38341003", "c1"},
		{"Condition", "code=http://read.info/readv2|G20..", "c1"},
		{"Condition", "code=http://read.info/ctv3|38341003", ""},
		// A coding indexed without a system matches any system (see
		// TestTokenWithoutSystem), so c3's system-less LOCAL1 matches here.
		{"Condition", "code=http://snomed.info/sct|", "c1 c2 c3"},
		{"Condition", "code=%7C38341003", ""},
		{"Condition", "code=%7CLOCAL1", "c3"},
		{"Condition", "code=38341003,195967001", "c1 c2"},
		{"Condition", "code=38341003&code=195967001", ""},
		{"Condition", "code:not=38341003", "c2 c3"},
		{"Condition", "code:not=38341003,195967001", "c3"},
		{"Condition", "category=problem-list-item", "c1"},
		{"Condition", "category=http://terminology.hl7.org/CodeSystem/condition-category|encounter-diagnosis", "c2"},
		{"Condition", "category:not=encounter-diagnosis", "c1 c3"},
		{"Condition", "clinical-status=active", "c1"},
		{"Condition", "clinical-status=http://terminology.hl7.org/CodeSystem/condition-clinical|resolved", "c2"},
		{"Condition", "clinical-status=active,resolved", "c1 c2"},
		{"Condition", "clinical-status:not=resolved", "c1 c3"},
		{"Condition", "_id=c2", "c2"},
		{"Condition", "_id=c1,c3", "c1 c3"},
		{"Condition", "_id:not=c1", "c2 c3"},
		{"Condition", "onset-date=2019", "c1"},
		{"Condition", "onset-date=2019-05-01", "c1"},
		{"Condition", "onset-date=ge2020", "c2"},
		{"Condition", "onset-date=lt2020", "c1"},
		{"Condition", "onset-date=2020-04", ""}, // the period overlaps but is not contained
		{"Condition", "onset-date=2020", "c2"},
		{"Condition", "onset-date=ap2020-04", "c2"},
		{"Condition", "onset-date=ne2019", "c2"}, // no date: no match, even for ne
		{"Condition", "onset-date=sa2020-06-30", ""},
		{"Condition", "onset-date=sa2020-02-29", "c2"},
		{"Condition", "onset-date=sa2020-03-01", ""},
		{"Condition", "onset-date=eb2020-03-01", "c1"},
		{"Condition", "_lastUpdated=2021-01-02", "c1"},
		{"Condition", "_lastUpdated=ge2021-01-02T03:04:05Z", "c1 c2"},
		{"Condition", "_lastUpdated=gt2021-01-02T03:04:05Z", "c2"},
		{"Condition", "_lastUpdated=lt2021-01-02T03:04:05Z", ""},
		{"Condition", "_lastUpdated=le2021-01-02T03:04:05Z", "c1"},
		{"Condition", "_lastUpdated=2021,2022", "c1 c2"},
		{"Condition", "_lastUpdated=ge2021&_lastUpdated=lt2022", "c1"},
		{"Condition", "code=38341003&clinical-status=resolved", ""},
		{"MedicationRequest", "status=active", "m1"},
		{"MedicationRequest", "status=active,completed", "m1 m2"},
		{"MedicationRequest", "status:not=active", "m2"},
		{"MedicationRequest", "intent=plan", "m1"},
		{"MedicationRequest", "intent=order", "m2"},
		{"MedicationRequest", "intent:not=order", "m1"},
		{"MedicationRequest", "code=https://dmd.nhs.uk|322236009", "m1 m2"},
		{"MedicationRequest", "authoredon=2021-01-01", "m1"},
		{"MedicationRequest", "authoredon=2021-01", "m1"},
		{"MedicationRequest", "authoredon=2021", "m1 m2"},
		{"MedicationRequest", "authoredon=gt2021-01-01", "m2"},
		{"MedicationRequest", "authoredon=ge2021-01-01T09:30:00Z", "m1 m2"},
		{"MedicationRequest", "authoredon=eq2021-01-01T09:30:00%2B00:00", "m1"},
		{"MedicationRequest", "authoredon=eq2021-01-01T10:30:00%2B01:00", "m1"},
		{"MedicationRequest", "_lastUpdated=2021-01-02T00:00:00Z", "m1"},
		{"Observation", "date=2021-01-01", "o1"},
		{"Observation", "date=2021-01-02", ""},
		{"Observation", "date=lt2021-01-02", "o1"},
		{"Observation", "category=laboratory", "o1"},
		{"Observation", "category=vital-signs", ""},
		{"Observation", "status=final", "o1"},
		{"Observation", "status=amended", ""},
		{"Observation", "code=http://loinc.org|2345-7", "o1"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+"?"+tc.query, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := ParseQuery(tc.typ, v, true)
			if err != nil {
				t.Fatalf("ParseQuery: %v", err)
			}
			var got []string
			for _, r := range rs {
				if r.Type == tc.typ && q.Match(r) {
					got = append(got, r.ID)
				}
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("matched %q, want %q", g, tc.want)
			}
		})
	}
	// A filter on a name Match does not know never matches.
	if (&Filter{Param: "unknown", Tokens: []Coding{{Code: "x"}}}).Match(rs[0]) {
		t.Error("unknown filter matched")
	}
}

func TestSortResources(t *testing.T) {
	rs := matchFixtures(t)
	conds := rs[:3] // c1 2019-05-01, c2 2020-03-01, c3 no date
	tests := []struct {
		sort, want string
	}{
		{"", "c2 c1 c3"},
		{"-date", "c2 c1 c3"},
		{"date", "c3 c1 c2"},
		{"-_lastUpdated", "c2 c1 c3"},
		{"_lastUpdated", "c3 c1 c2"},
	}
	for _, tc := range tests {
		t.Run(tc.sort, func(t *testing.T) {
			in := slices.Clone(conds)
			slices.Reverse(in)
			(&Query{Sort: tc.sort}).SortResources(in)
			var ids []string
			for _, r := range in {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, " "); got != tc.want {
				t.Errorf("order %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIsReadable(t *testing.T) {
	for _, typ := range ReadableTypes {
		if !IsReadable(typ) {
			t.Errorf("IsReadable(%s) = false", typ)
		}
	}
	for typ := range SearchParams {
		if !IsReadable(typ) {
			t.Errorf("%s is searchable but not readable", typ)
		}
	}
	for _, typ := range []string{"", "patient", "Bundle", "AuditEvent", "Patient/"} {
		if IsReadable(typ) {
			t.Errorf("IsReadable(%q) = true", typ)
		}
	}
}

// FuzzParseQuery is the search-parameter parser fuzz target: any query string
// on any searchable type parses or fails with a coded 4xx error, and a parsed
// query can be matched.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "code=a", "code=http://snomed.info/sct|22298006,|x&code:not=y", "onset-date=ge2021&onset-date=lt2022-01-01T10:00:00Z",
		"identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009", "_count=-1", "_count=99999999999", "_offset=3&_sort=-date",
		"patient=Patient/../x", "patient:Patient=p1", "code:exact=1", "date=xx2021", "a\\,b=c", "code=a%5C%2Cb", "%zz",
		"identifier:not=https://fhir.nhs.uk/Id/nhs-number|9000000009", "_lastUpdated=ap2021-01&status=active,final",
		"patient=p1&_include=Condition:encounter&_revinclude:iterate=Encounter:diagnosis&_summary=true&_elements=code,onset[x]",
		"patient=p1&_summary=count&_total=accurate&_include=Observation:has-member:Observation", "patient=p1&_has:Encounter:diagnosis:status=x&code:text=y",
	} {
		f.Add(s, uint8(0), false)
		f.Add(s, uint8(3), true)
	}
	types := sortedTypes()
	f.Fuzz(func(t *testing.T, raw string, which uint8, strict bool) {
		typ := types[int(which)%len(types)]
		v, _ := url.ParseQuery(raw) // keep what parsed before any error
		q, err := ParseQuery(typ, v, strict)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *fhir.Error", err, err)
			}
			if s := fe.Status(); (s < 400 || s > 499) && fe.Code != CodeNotImplemented {
				t.Fatalf("status %d for %v", s, err)
			}
			if len(fe.Diagnostics) > 400 || strings.ContainsAny(fe.Diagnostics, "\r\n\x00") {
				t.Fatalf("diagnostics not caller-safe: %q", fe.Diagnostics)
			}
			return
		}
		if q.Type != typ || q.Count < 0 || q.Count > MaxCount || q.Offset < 0 {
			t.Fatalf("query out of range: %+v", q)
		}
		if q.Patient != "" && !ValidID(q.Patient) {
			t.Fatalf("invalid patient id %q accepted", q.Patient)
		}
		if q.NHS != "" && !ValidNHSNumber(string(q.NHS)) {
			t.Fatalf("invalid NHS number %q accepted", q.NHS)
		}
		if typ == "Patient" && q.NHS == "" && findFilter(q, "_id") == nil {
			t.Fatal("Patient search accepted without identifier or _id")
		}
		if strict && len(q.Ignored) != 0 {
			t.Fatalf("strict search ignored %q", q.Ignored)
		}
		for _, f := range q.Filters {
			if _, ok := findParam(SearchParams[typ], f.Param); !ok {
				t.Fatalf("filter on undeclared parameter %q", f.Param)
			}
			if len(f.Tokens)+len(f.Dates) == 0 {
				t.Fatalf("empty filter %+v", f)
			}
		}
		r := indexedEverything(t)
		q.Match(r)
		q.SortResources([]*Resource{r, r})
	})
}

// TestTokenWithoutSystem pins a deliberate leniency: codes indexed without a
// system (clinical-status, AllergyIntolerance's code-valued category) match a
// system-qualified search, since the system is implied by the element.
func TestTokenWithoutSystem(t *testing.T) {
	r := mustResource(t, `{"resourceType":"AllergyIntolerance","id":"a1","category":["food"],
		"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]}}`)
	tests := []struct {
		query string
		want  bool
	}{
		{"category=food", true},
		{"category=http://hl7.org/fhir/allergy-intolerance-category|food", true},
		{"category=%7Cfood", true},
		{"category=medication", false},
		{"category:not=food", false},
		{"clinical-status=http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical|active", true},
		{"clinical-status=%7Cactive", true},
		{"clinical-status=inactive", false},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := ParseQuery("AllergyIntolerance", v, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Match(r); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}
