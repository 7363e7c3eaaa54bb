package audit

import (
	"encoding/json"
	"errors"
	"net/url"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gpgate/gpgate/fhir"
)

func TestParseFilter(t *testing.T) {
	day := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	pid := fhir.PatientID("9000000009")
	for _, tc := range []struct {
		name  string
		query string
		want  Filter
		err   string // expression of the INVALID_PARAMETER error
	}{
		{"empty", "", Filter{}, ""},
		{"patient id", "patient=" + pid, Filter{Patient: pid}, ""},
		{"patient ref", "patient=Patient/" + pid, Filter{Patient: pid}, ""},
		{"bad patient", "patient=../x", Filter{}, "patient"},
		{"agent", "agent=ed-system-01", Filter{Agent: "ed-system-01"}, ""},
		{"agent identifier", "agent=https://fhir.nhs.uk/Id/sds-user-id|555", Filter{Agent: "555"}, ""},
		{"entity", "entity=Patient/" + pid, Filter{Entity: "Patient/" + pid}, ""},
		{"bad entity", "entity=" + pid, Filter{}, "entity"},
		{"date range", "date=ge2025-01-01&date=lt2025-02", Filter{Since: day("2025-01-01T00:00:00Z"), Until: day("2025-02-01T00:00:00Z")}, ""},
		{"date eq day", "date=2025-03-14", Filter{Since: day("2025-03-14T00:00:00Z"), Until: day("2025-03-15T00:00:00Z")}, ""},
		{"date le", "date=le2025-03-14T10:00:00Z", Filter{Until: day("2025-03-14T10:00:01Z")}, ""},
		{"date gt", "date=gt2025", Filter{Since: day("2026-01-01T00:00:00Z")}, ""},
		{"bad date", "date=ge2025-13-01", Filter{}, "date"},
		{"bad prefix", "date=ne2025", Filter{}, "date"},
		{"outcome code", "outcome=4", Filter{Outcome: fhir.OutcomeDenied}, ""},
		{"outcome word", "outcome=error", Filter{Outcome: fhir.OutcomeError}, ""},
		{"bad outcome", "outcome=2", Filter{}, "outcome"},
		{"subtype", "subtype=http://hl7.org/fhir/restful-interaction|read", Filter{Action: "PatientRead"}, ""},
		{"bad subtype", "subtype=delete", Filter{}, "subtype"},
		{"break glass", "break-glass=true", Filter{BreakGlassOnly: true}, ""},
		{"bad break glass", "break-glass=yes", Filter{}, "break-glass"},
		{"count offset", "_count=10&_offset=20", Filter{Count: 10, Offset: 20}, ""},
		{"count capped", "_count=5000", Filter{Count: fhir.MaxCount}, ""},
		{"count zero", "_count=0", Filter{TotalOnly: true}, ""},
		{"summary count", "_summary=count", Filter{TotalOnly: true}, ""},
		{"bad count", "_count=-1", Filter{}, "_count"},
		{"bad count text", "_count=ten", Filter{}, "_count"},
		{"bad offset", "_offset=x", Filter{}, "_offset"},
		{"sort", "_sort=-date", Filter{}, ""},
		{"bad sort", "_sort=date", Filter{}, "_sort"},
		{"repeated patient", "patient=a&patient=b", Filter{}, "patient"},
		{"empty agent", "agent=", Filter{}, "agent"},
		{"unknown ignored", "foo=bar&_format=json", Filter{Ignored: []string{"foo"}}, ""},
		{"not utf8", "agent=%ff", Filter{}, "agent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseFilter(v)
			if tc.err != "" {
				var fe *fhir.Error
				if !errors.As(err, &fe) || fe.Code != fhir.CodeInvalidParameter || fe.Expression != tc.err {
					t.Fatalf("err = %v, want INVALID_PARAMETER at %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Since.Equal(tc.want.Since) || !got.Until.Equal(tc.want.Until) {
				t.Errorf("since/until %v %v, want %v %v", got.Since, got.Until, tc.want.Since, tc.want.Until)
			}
			got.Since, got.Until, tc.want.Since, tc.want.Until = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if fmtFilter(got) != fmtFilter(tc.want) {
				t.Errorf("got  %s\nwant %s", fmtFilter(got), fmtFilter(tc.want))
			}
		})
	}
}

func fmtFilter(f Filter) string {
	b, _ := jsonMarshal(f)
	return string(b)
}

// FuzzParseFilter: any query either parses into a sane Filter or fails
// with a coded INVALID_PARAMETER naming a parameter; it never panics.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "patient=Patient/pabc&date=ge2025-01-01&date=le2025-02", "_count=0",
		"agent=a|b&outcome=4&break-glass=true", "date=2025-03-14T10:00:00.123+01:00", "subtype=read&_offset=7",
		"entity=Patient/x&_summary=count", "date=xx2025", "_count=99999999999999999999", "_cursor=42&_count=7", "_cursor=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		got, err := ParseFilter(v)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Code != fhir.CodeInvalidParameter || fe.Expression == "" {
				t.Fatalf("error %v is not INVALID_PARAMETER with an expression", err)
			}
			if !utf8.ValidString(fe.Diagnostics) {
				t.Fatalf("diagnostics not UTF-8: %q", fe.Diagnostics)
			}
			return
		}
		if got.Count < 0 || got.Count > fhir.MaxCount || got.Offset < 0 {
			t.Fatalf("count/offset %d/%d", got.Count, got.Offset)
		}
		if got.Patient != "" && !fhir.ValidID(got.Patient) {
			t.Fatalf("patient %q", got.Patient)
		}
		switch got.Outcome {
		case "", fhir.OutcomeGranted, fhir.OutcomeDenied, fhir.OutcomeError:
		default:
			t.Fatalf("outcome %q", got.Outcome)
		}
	})
}

// FuzzMatcher: the byte-pattern matcher Query counts with agrees with the
// decoded-entry match for any field contents.
func FuzzMatcher(f *testing.F) {
	f.Add("client-1", "sds-1", "RRK", "pabc", "denied", "PatientRead", true, "no \"outcome\":\"denied\"", "client-1", "pabc", "denied", "PatientRead", true)
	f.Add("a", `","pract":"b`, "o", "p", "granted", "x", false, `"bg":true`, "b", "", "", "", true)
	f.Add("c", "c", "c", "", "error", "", false, "", "c", "q", "error", "", false)
	f.Fuzz(func(t *testing.T, client, pract, ods, pid, outcome, action string, bg bool, rule,
		fAgent, fPatient, fOutcome, fAction string, fBG bool) {
		for _, s := range []string{client, pract, ods, pid, outcome, action, rule, fAgent, fPatient, fOutcome, fAction} {
			if !utf8.ValidString(s) {
				return // JSON stores invalid UTF-8 as U+FFFD; ParseFilter refuses it
			}
		}
		e := &fhir.AuditEntry{ClientID: client, Practitioner: pract, ConsumerODS: ods, PatientID: pid,
			Outcome: outcome, Action: action, BreakGlass: bg, Rule: rule, Reason: rule, Query: fAgent}
		payload, err := encodePayload(e)
		if err != nil {
			t.Fatal(err)
		}
		body := frame(nil, 1, t0, "n", payload)
		v := append(make([]byte, 32), body...)
		dec, err := decodeRecord(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, flt := range []Filter{
			{Agent: fAgent}, {Patient: fPatient}, {Outcome: fOutcome}, {Action: fAction}, {BreakGlassOnly: fBG},
			{Agent: fAgent, Patient: fPatient, Outcome: fOutcome, Action: fAction, BreakGlassOnly: fBG},
			{Entity: "Patient/" + fPatient},
		} {
			m := compile(&flt)
			if got, want := m.match(body, dec.Recorded), flt.match(&dec); got != want {
				t.Fatalf("filter %+v: byte match %v, decoded match %v\nbody %s", flt, got, want, body)
			}
		}
	})
}

// FuzzDecodeRecord: stored bytes that are not a record fail cleanly.
func FuzzDecodeRecord(f *testing.F) {
	payload, _ := encodePayload(entryFor(6))
	good := append(make([]byte, 32), frame(nil, 42, t0, "n1", payload)...)
	f.Add(good)
	f.Add([]byte(`{"seq":1,"recorded":"2025-01-01T00:00:00Z","entry":{}}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := decodeRecord(v)
		if len(v) < 32 {
			if err == nil {
				t.Fatal("short record decoded")
			}
			return
		}
		seq, rec, herr := recordHead(v[32:])
		if err == nil && herr == nil && (seq != e.Seq || !rec.Equal(e.Recorded)) {
			t.Fatalf("head %d %v, decoded %d %v", seq, rec, e.Seq, e.Recorded)
		}
	})
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
