package viewer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

func TestParseNHSInput(t *testing.T) {
	cases := []struct {
		in   string
		want fhir.NHSNumber
		msg  string
	}{
		{"9434765919", "9434765919", ""},
		{"943 476 5919", "9434765919", ""},
		{" 94 34 76 59 19 ", "9434765919", ""},
		{"943\u00a0476\u00a05919", "9434765919", ""},
		{"943\t476\t5919", "9434765919", ""},
		{"", "", "Enter the patient's NHS number."},
		{"   ", "", "Enter the patient's NHS number."},
		{"943-476-5919", "", "only digits"},
		{"943476591O", "", "only digits"},
		{"９４３４７６５９１９", "", "only digits"}, // full-width digits are not digits here
		{"943476591", "", "You entered 9."},
		{"94347659190", "", "more than 10"},
		{"9434765918", "", "check digit"},
		{"1234567890", "", "check digit"}, // check digit would be 10: never valid
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, msg := parseNHSInput(c.in)
			if got != c.want || (c.msg == "") != (msg == "") || !strings.Contains(msg, c.msg) {
				t.Fatalf("parseNHSInput(%q) = %q, %q; want %q, %q", c.in, got, msg, c.want, c.msg)
			}
		})
	}
}

// The viewer's reading agrees with fhir.ParseNHSNumber on every input
// without spaces, and never accepts what it rejects.
func FuzzParseNHSInput(f *testing.F) {
	for _, s := range []string{"9434765919", "943 476 5919", "", "abc", "94347659190", "9434765918", "0000000000", "\u00a0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, msg := parseNHSInput(s)
		if (got == "") == (msg == "") {
			t.Fatalf("%q: number %q and message %q", s, got, msg)
		}
		if got != "" {
			if !fhir.ValidNHSNumber(string(got)) {
				t.Fatalf("%q accepted as invalid %q", s, got)
			}
			return
		}
		if !strings.ContainsAny(s, " \t\u00a0\u202f") {
			if n, err := fhir.ParseNHSNumber(s); err == nil && len(s) == 10 {
				t.Fatalf("%q rejected but fhir accepts %q", s, n)
			}
		}
	})
}

func TestFHIRDates(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	cases := []struct{ in, date, dateTime string }{
		{"2024", "2024", "2024"},
		{"2024-02", "Feb-2024", "Feb-2024"},
		{"2024-02-03", "03-Feb-2024", "03-Feb-2024"},
		{"2024-02-03T14:05:00Z", "03-Feb-2024", "03-Feb-2024 14:05"},
		{"2024-07-03T23:30:00Z", "04-Jul-2024", "04-Jul-2024 00:30"}, // British Summer Time
		{"2024-07-03T10:00:00+02:00", "03-Jul-2024", "03-Jul-2024 09:00"},
		{"", "", ""},
		{"yesterday", "", ""},
		{"2024-13-01", "", ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			if got := fhirDate(c.in, london); got != c.date {
				t.Errorf("fhirDate = %q, want %q", got, c.date)
			}
			if got := fhirDateTime(c.in, london); got != c.dateTime {
				t.Errorf("fhirDateTime = %q, want %q", got, c.dateTime)
			}
		})
	}
}

func TestAge(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct{ birth, want string }{
		{"1950-03-07", "76y"}, {"1950-03-11", "75y"}, {"2025-09-10", "6m"}, {"2024-03-10", "2y"}, {"2030-01-01", ""}, {"1950", ""},
	}
	for _, c := range cases {
		if got := age(c.birth, now, london); got != c.want {
			t.Errorf("age(%s) = %q, want %q", c.birth, got, c.want)
		}
	}
}

func TestTermPicksTheRecordedTerm(t *testing.T) {
	cases := []struct {
		name string
		c    jConcept
		want string
	}{
		{"original Read term over SNOMED", jConcept{Coding: []jCoding{{System: fhir.SNOMED, Code: "1", Display: "Snomed term"}, {System: fhir.ReadV2, Code: "G20..00", Display: "Read term"}}}, "Read term"},
		{"user selected first", jConcept{Coding: []jCoding{{System: fhir.ReadV2, Code: "x", Display: "Read"}, {System: fhir.SNOMED, Code: "1", Display: "Chosen", UserSelected: true}}}, "Chosen"},
		{"SNOMED over LOINC", jConcept{Coding: []jCoding{{System: fhir.LOINC, Code: "2951-2", Display: "Loinc"}, {System: fhir.SNOMED, Code: "1", Display: "Snomed"}}}, "Snomed"},
		{"no display at all", jConcept{Coding: []jCoding{{System: fhir.SNOMED, Code: "1"}}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := term(&c.c)
			if got.Display != c.want {
				t.Fatalf("display %q, want %q", got.Display, c.want)
			}
			if len(got.Codes) != len(c.c.Coding) {
				t.Fatalf("codes %v", got.Codes)
			}
			if c.want == "" && !got.NoTerm {
				t.Fatal("a coded entry without a term is not marked")
			}
		})
	}
}

func TestResultFlags(t *testing.T) {
	q := func(v string) *jQuantity { return &jQuantity{Value: json.Number(v), Unit: "mmol/L"} }
	rng := func(lo, hi string) []struct {
		Low  *jQuantity `json:"low"`
		High *jQuantity `json:"high"`
	} {
		r := make([]struct {
			Low  *jQuantity `json:"low"`
			High *jQuantity `json:"high"`
		}, 1)
		if lo != "" {
			r[0].Low = q(lo)
		}
		if hi != "" {
			r[0].High = q(hi)
		}
		return r
	}
	cases := []struct {
		name         string
		o            jObservation
		flag, range_ string
	}{
		{"in range", jObservation{ValueQuantity: q("4.4"), ReferenceRange: rng("3.5", "5.3")}, "", "3.5 – 5.3 mmol/L"},
		{"high", jObservation{ValueQuantity: q("5.9"), ReferenceRange: rng("3.5", "5.3")}, "High", "3.5 – 5.3 mmol/L"},
		{"low", jObservation{ValueQuantity: q("3.1"), ReferenceRange: rng("3.5", "5.3")}, "Low", "3.5 – 5.3 mmol/L"},
		{"on the limit is in range", jObservation{ValueQuantity: q("5.3"), ReferenceRange: rng("3.5", "5.3")}, "", "3.5 – 5.3 mmol/L"},
		{"upper limit only", jObservation{ValueQuantity: q("7"), ReferenceRange: rng("", "5")}, "High", "≤ 5 mmol/L"},
		{"by interpretation code", jObservation{ValueQuantity: q("7"), Interpretation: []jConcept{{Coding: []jCoding{{Code: "H"}}}}}, "High", ""},
		{"abnormal coded value", jObservation{ValueCodeableConcept: &jConcept{Coding: []jCoding{{Display: "Positive"}}}, Interpretation: []jConcept{{Coding: []jCoding{{Code: "A"}}}}}, "Abnormal", ""},
		{"comparator value is not compared", jObservation{ValueQuantity: &jQuantity{Value: "90", Comparator: ">", Unit: "mL/min"}, ReferenceRange: rng("", "60")}, "", "≤ 60 mmol/L"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := resultOf(&c.o, time.UTC)
			if r.Flag != c.flag || r.Range != c.range_ {
				t.Fatalf("flag %q range %q; want %q %q", r.Flag, r.Range, c.flag, c.range_)
			}
		})
	}
}

func TestDosage(t *testing.T) {
	d := jDosage{Text: "Take with food", Route: &jConcept{Coding: []jCoding{{Display: "Oral route"}}}}
	d.DoseAndRate = append(d.DoseAndRate, struct {
		DoseQuantity *jQuantity `json:"doseQuantity"`
	}{&jQuantity{Value: "2", Unit: "puff", System: "http://unitsofmeasure.org", Code: "{puff}"}})
	got := dosageLines([]jDosage{d})
	if len(got) != 2 || got[0] != "2 puff, oral" || got[1] != "Take with food" {
		t.Fatalf("dosage %q", got)
	}
}

func TestClaimString(t *testing.T) {
	claims := map[string]any{
		"org": "rxx01", "sds": float64(555000000001),
		"nhsid_nrbac_roles": []any{map[string]any{"org_code": "RYY02", "role_code": "R8000"}},
	}
	cases := []struct{ path, want string }{
		{"org", "rxx01"}, {"sds", "555000000001"}, {"nhsid_nrbac_roles.0.org_code", "RYY02"},
		{"nhsid_nrbac_roles.1.org_code", ""}, {"nhsid_nrbac_roles.x", ""}, {"missing", ""}, {"org.deeper", ""},
	}
	for _, c := range cases {
		if got := claimString(claims, c.path); got != c.want {
			t.Errorf("claimString(%s) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestSessionsTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ss := newSessions(15*time.Minute, 8*time.Hour, clock)
	id, s := ss.create(account{Username: "a"})
	if got := ss.get(id); got != s {
		t.Fatal("session not found")
	}
	if ss.get(id+"x") != nil || ss.get("") != nil {
		t.Fatal("wrong id found a session")
	}
	if _, ok := ss.m[id]; ok {
		t.Fatal("the table is keyed by the cookie value itself")
	}
	if id == s.CSRF || len(id) < 43 {
		t.Fatal("weak session id")
	}
	now = now.Add(15 * time.Minute)
	if ss.get(id) != nil {
		t.Fatal("idle session alive")
	}
	if ss.len() != 0 {
		t.Fatal("expired session kept")
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	l := newLimiter(Limits{UserBurst: 2, UserEvery: time.Minute, AddrBurst: 3, AddrEvery: time.Minute}, func() time.Time { return now })
	if l.blocked("u", "a") {
		t.Fatal("blocked before any failure")
	}
	l.failed("u", "a")
	l.failed("u", "a")
	if !l.blocked("u", "a") || !l.blocked("u", "b") || l.blocked("v", "b") {
		t.Fatal("username limit wrong")
	}
	l.failed("v", "a")
	if !l.blocked("w", "a") {
		t.Fatal("address limit wrong")
	}
	now = now.Add(time.Minute)
	if l.blocked("u", "b") {
		t.Fatal("no refill")
	}
}

func TestBPChart(t *testing.T) {
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []bpRow{
		{Date: "a", Systolic: "140", Diastolic: "90", sys: 140, dia: 90, hasSys: true, hasDia: true, at: t0},
		{Date: "b", Systolic: "150", Diastolic: "85", sys: 150, dia: 85, hasSys: true, hasDia: true, at: t0.AddDate(2, 0, 0)},
		{Date: "c", Systolic: "130", hasSys: true, sys: 130, at: t0.AddDate(4, 0, 0)},
	}
	c := newBPChart(rows, time.UTC)
	if len(c.Sys) != 3 || len(c.Dia) != 2 {
		t.Fatalf("points %d %d", len(c.Sys), len(c.Dia))
	}
	for _, p := range append(c.Sys, c.Dia...) {
		if p.X < c.Left || p.X > c.Right || p.Y < c.Top || p.Y > c.Bottom {
			t.Fatalf("point outside the plot: %+v", p)
		}
	}
	if c.Sys[1].Y >= c.Sys[0].Y {
		t.Fatal("a higher pressure is not drawn higher")
	}
	if newBPChart(nil, time.UTC) != nil {
		t.Fatal("a chart without readings")
	}
	if !strings.Contains(c.Summary, "3 blood pressure readings") {
		t.Fatal(c.Summary)
	}
}

// fhirDate and claimString take what a source or an identity provider
// sent: never a panic, and a date shown is one fhir.ParseDate accepts.
func FuzzFHIRDate(f *testing.F) {
	for _, s := range []string{"2024", "2024-02", "2024-02-03", "2024-02-03T14:05:00Z", "2024-02-03T14:05", "", "x", "2024-02-30", "2024-13"} {
		f.Add(s)
	}
	london, _ := time.LoadLocation("Europe/London")
	f.Fuzz(func(t *testing.T, s string) {
		got := fhirDate(s, london)
		fhirDateTime(s, london)
		if got != "" {
			if _, err := fhir.ParseDate(s); err != nil {
				t.Fatalf("%q shown as %q but is not a FHIR date", s, got)
			}
		}
	})
}

func FuzzClaimString(f *testing.F) {
	f.Add("a.0.b", "x")
	f.Add("..", "")
	f.Add("0.0.0", "y")
	f.Fuzz(func(t *testing.T, path, value string) {
		claims := map[string]any{"a": []any{map[string]any{"b": value}}, "n": float64(1e300)}
		claimString(claims, path)
	})
}

// The API's warnings, and a section's empty reason that says something
// may exist, each become one fixed message; nothing else is shown.
func TestWarningMessages(t *testing.T) {
	withheld, fetch := "Some items are withheld", "Part of the record could not be fetched"
	for _, tc := range []struct {
		name  string
		codes []fhir.Code
		want  []string
	}{
		{"none", nil, nil},
		{"confidential items", []fhir.Code{fhir.WarnConfidentialItems}, []string{withheld}},
		{"a section withheld", []fhir.Code{fhir.EmptyWithheld}, []string{withheld}},
		{"both say withheld once", []fhir.Code{fhir.WarnConfidentialItems, fhir.EmptyWithheld, fhir.WarnConfidentialItems}, []string{withheld}},
		{"in transit and awaiting filing: said once", []fhir.Code{fhir.WarnDataInTransit, fhir.WarnDataAwaitingFiling}, []string{fetch}},
		{"a section unavailable", []fhir.Code{fhir.EmptyUnavailable}, []string{fetch}},
		{"nothing recorded is not a warning", []fhir.Code{fhir.EmptyNoContentRecorded, fhir.EmptyNilKnown}, nil},
		{"both kinds", []fhir.Code{fhir.EmptyUnavailable, fhir.WarnConfidentialItems}, []string{fetch, withheld}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var is []fhir.Issue
			for _, c := range tc.codes {
				is = append(is, fhir.Issue{Code: c})
			}
			var got []string
			for _, m := range warningMessages(is) {
				got = append(got, m.Heading)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
