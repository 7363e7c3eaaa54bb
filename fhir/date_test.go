package fhir

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func utc(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in         string
		start, end time.Time // end zero: an INVALID_PARAMETER error
	}{
		// Every precision.
		{"2021", utc(2021, 1, 1, 0, 0, 0, 0), utc(2022, 1, 1, 0, 0, 0, 0)},
		{"2021-02", utc(2021, 2, 1, 0, 0, 0, 0), utc(2021, 3, 1, 0, 0, 0, 0)},
		{"2021-12", utc(2021, 12, 1, 0, 0, 0, 0), utc(2022, 1, 1, 0, 0, 0, 0)},
		{"2021-02-28", utc(2021, 2, 28, 0, 0, 0, 0), utc(2021, 3, 1, 0, 0, 0, 0)},
		{"2021-12-31", utc(2021, 12, 31, 0, 0, 0, 0), utc(2022, 1, 1, 0, 0, 0, 0)},
		{"2021-03-04T10:30", utc(2021, 3, 4, 10, 30, 0, 0), utc(2021, 3, 4, 10, 31, 0, 0)},
		{"2021-03-04T10:30Z", utc(2021, 3, 4, 10, 30, 0, 0), utc(2021, 3, 4, 10, 31, 0, 0)},
		{"2021-03-04T10:30:15", utc(2021, 3, 4, 10, 30, 15, 0), utc(2021, 3, 4, 10, 30, 16, 0)},
		{"2021-03-04T10:30:15Z", utc(2021, 3, 4, 10, 30, 15, 0), utc(2021, 3, 4, 10, 30, 16, 0)},
		{"2021-03-04T10:30:15.1Z", utc(2021, 3, 4, 10, 30, 15, 100e6), utc(2021, 3, 4, 10, 30, 15, 200e6)},
		{"2021-03-04T10:30:15.123Z", utc(2021, 3, 4, 10, 30, 15, 123e6), utc(2021, 3, 4, 10, 30, 15, 124e6)},
		{"2021-03-04T10:30:15.123456", utc(2021, 3, 4, 10, 30, 15, 123456e3), utc(2021, 3, 4, 10, 30, 15, 123457e3)},
		{"2021-03-04T10:30:15.123456789Z", utc(2021, 3, 4, 10, 30, 15, 123456789), utc(2021, 3, 4, 10, 30, 15, 123456790)},
		// Timezone offsets: the range is the same instant span, in UTC.
		{"2021-03-04T10:30:15+01:00", utc(2021, 3, 4, 9, 30, 15, 0), utc(2021, 3, 4, 9, 30, 16, 0)},
		{"2021-03-04T10:30:15-05:30", utc(2021, 3, 4, 16, 0, 15, 0), utc(2021, 3, 4, 16, 0, 16, 0)},
		{"2021-03-04T00:30:00+01:00", utc(2021, 3, 3, 23, 30, 0, 0), utc(2021, 3, 3, 23, 30, 1, 0)},
		{"2021-12-31T23:30+14:00", utc(2021, 12, 31, 9, 30, 0, 0), utc(2021, 12, 31, 9, 31, 0, 0)},
		{"2021-03-04T10:30:15.5-00:00", utc(2021, 3, 4, 10, 30, 15, 500e6), utc(2021, 3, 4, 10, 30, 15, 600e6)},
		{"2021-03-04T10:30:15+00:00", utc(2021, 3, 4, 10, 30, 15, 0), utc(2021, 3, 4, 10, 30, 16, 0)},
		// Leap days and month lengths.
		{"2020-02-29", utc(2020, 2, 29, 0, 0, 0, 0), utc(2020, 3, 1, 0, 0, 0, 0)},
		{"2000-02-29", utc(2000, 2, 29, 0, 0, 0, 0), utc(2000, 3, 1, 0, 0, 0, 0)},
		{"2020-02", utc(2020, 2, 1, 0, 0, 0, 0), utc(2020, 3, 1, 0, 0, 0, 0)},
		{"2021-02-29", time.Time{}, time.Time{}},
		{"1900-02-29", time.Time{}, time.Time{}},
		{"2021-04-31", time.Time{}, time.Time{}},
		{"2021-01-32", time.Time{}, time.Time{}},
		// Range edges.
		{"0001", utc(1, 1, 1, 0, 0, 0, 0), utc(2, 1, 1, 0, 0, 0, 0)},
		{"9999-12-31", utc(9999, 12, 31, 0, 0, 0, 0), utc(10000, 1, 1, 0, 0, 0, 0)},
		{"0000", time.Time{}, time.Time{}},
		// Invalid month, day, hour, minute, second, offset.
		{"2021-00", time.Time{}, time.Time{}},
		{"2021-13", time.Time{}, time.Time{}},
		{"2021-01-00", time.Time{}, time.Time{}},
		{"2021-01-01T24:00", time.Time{}, time.Time{}},
		{"2021-01-01T23:60", time.Time{}, time.Time{}},
		{"2021-01-01T23:59:61", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00+15:00", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00+01:60", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00+0100", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00+1:00", time.Time{}, time.Time{}},
		// Shape errors and garbage.
		{"", time.Time{}, time.Time{}},
		{"21", time.Time{}, time.Time{}},
		{"202", time.Time{}, time.Time{}},
		{"20211", time.Time{}, time.Time{}},
		{"2021-1", time.Time{}, time.Time{}},
		{"2021-01-", time.Time{}, time.Time{}},
		{"2021-01-1", time.Time{}, time.Time{}},
		{"2021/01/01", time.Time{}, time.Time{}},
		{"01-01-2021", time.Time{}, time.Time{}},
		{"2021-01-01T", time.Time{}, time.Time{}},
		{"2021-01-01T10", time.Time{}, time.Time{}},
		{"2021-01-01T10:0", time.Time{}, time.Time{}},
		{"2021-01-01 10:00", time.Time{}, time.Time{}},
		{"2021-01-01t10:00", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:0", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00.", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00.Z", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00.1234567890Z", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00ZZ", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00z", time.Time{}, time.Time{}},
		{"2021-01-01Z", time.Time{}, time.Time{}},
		{"2021-01-01T10:00:00 ", time.Time{}, time.Time{}},
		{" 2021", time.Time{}, time.Time{}},
		{"abcd", time.Time{}, time.Time{}},
		{"２０２１", time.Time{}, time.Time{}},
		{"-2021", time.Time{}, time.Time{}},
		{"today", time.Time{}, time.Time{}},
		// Overlong: 35 characters is the longest valid form.
		{"2021-03-04T10:30:15.123456789+01:00", utc(2021, 3, 4, 9, 30, 15, 123456789), utc(2021, 3, 4, 9, 30, 15, 123456790)},
		{"2021-03-04T10:30:15.123456789+01:000", time.Time{}, time.Time{}},
		{"2021" + strings.Repeat("0", 100), time.Time{}, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(truncate(tc.in, 40), func(t *testing.T) {
			got, err := ParseDate(tc.in)
			if tc.end.IsZero() {
				if err == nil {
					t.Fatalf("ParseDate(%q) = %v, want error", tc.in, got)
				}
				wantCodedError(t, err, CodeInvalidParameter)
				return
			}
			if err != nil {
				t.Fatalf("ParseDate(%q): %v", tc.in, err)
			}
			if !got.Start.Equal(tc.start) || !got.End.Equal(tc.end) {
				t.Fatalf("ParseDate(%q) = [%v, %v), want [%v, %v)", tc.in, got.Start, got.End, tc.start, tc.end)
			}
			if got.Start.Location() != time.UTC || got.End.Location() != time.UTC {
				t.Errorf("ParseDate(%q) is not in UTC: %v", tc.in, got.Start.Location())
			}
		})
	}
}

func TestParseDateErrorIsTruncated(t *testing.T) {
	_, err := ParseDate(strings.Repeat("x", 500))
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("not a *fhir.Error: %v", err)
	}
	if len(fe.Diagnostics) > 120 {
		t.Errorf("diagnostics echo an overlong value (%d bytes)", len(fe.Diagnostics))
	}
}

func TestParseInstantLoose(t *testing.T) {
	got, err := ParseInstantLoose("")
	if err != nil || !got.IsZero() {
		t.Fatalf(`ParseInstantLoose("") = %v, %v; want zero, nil`, got, err)
	}
	got, err = ParseInstantLoose("2021-06")
	if err != nil || !got.Equal(utc(2021, 6, 1, 0, 0, 0, 0)) {
		t.Fatalf(`ParseInstantLoose("2021-06") = %v, %v`, got, err)
	}
	if _, err := ParseInstantLoose("June"); err == nil {
		t.Fatal(`ParseInstantLoose("June") accepted`)
	}
}

// mustRange parses a FHIR date or "start/end" (either side may be empty) into
// the range a resource value denotes, as the index builds it.
func mustRange(t *testing.T, s string) DateRange {
	t.Helper()
	if a, b, ok := strings.Cut(s, "/"); ok {
		var r DateRange
		if a != "" {
			r.Start = mustDate(t, a).Start
		}
		r.End = maxTime
		if b != "" {
			r.End = mustDate(t, b).End
		}
		return r
	}
	return mustDate(t, s)
}

func mustDate(t *testing.T, s string) DateRange {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatalf("ParseDate(%q): %v", s, err)
	}
	return d
}

// TestDatePredicateMatches checks the R4 search rules (3.1.1.5.8 "date"):
// both the parameter and the target are ranges, and
//
//	eq: the parameter range contains the target range
//	ne: it does not
//	gt: the range above the parameter intersects the target
//	lt: the range below the parameter intersects the target
//	ge: gt or eq; le: lt or eq
//	sa: the target starts after the parameter ends
//	eb: the target ends before the parameter starts
//	ap: the ranges overlap (gpgate's approximation of "approximately")
func TestDatePredicateMatches(t *testing.T) {
	// Targets, against the parameter day 2021-01-01 = [Jan 1, Jan 2).
	targets := []struct {
		name, value string
	}{
		{"inside", "2021-01-01T10:00"},
		{"same day", "2021-01-01"},
		{"first second of day", "2021-01-01T00:00:00Z"},
		{"last second of day", "2021-01-01T23:59:59Z"},
		{"containing year", "2021"},
		{"day before", "2020-12-31"},
		{"day after", "2021-01-02"},
		{"straddles start", "2020-12-31T12:00:00Z/2021-01-01T12:00:00Z"},
		{"straddles end", "2021-01-01T12:00:00Z/2021-01-02T12:00:00Z"},
		{"open-ended from before", "2020-06-01/"},
		{"open start to inside", "/2021-01-01T06:00:00Z"},
		{"long before", "1999"},
		{"long after", "2030-05-05"},
	}
	want := map[string]string{ // prefix -> one T/F per target, in order
		"eq": "TTTTFFFFFFFFF",
		"ne": "FFFFTTTTTTTTT",
		"gt": "FFFFTFTFTTFFT",
		"lt": "FFFFFTFTFTTTF",
		"ge": "TTTTTFTFTTFFT",
		"le": "TTTTFTFTFTTTF",
		"sa": "FFFFFFTFFFFFT",
		"eb": "FFFFFTFFFFFTF",
		"ap": "TTTTTFFTTTTFF",
	}
	for _, pre := range datePrefixes {
		w, ok := want[pre]
		if !ok {
			t.Fatalf("prefix %q has no expectations in this test", pre)
		}
		if len(w) != len(targets) {
			t.Fatalf("prefix %q: %d expectations for %d targets", pre, len(w), len(targets))
		}
		p, err := parseDatePredicate("date", pre+"2021-01-01")
		if err != nil {
			t.Fatal(err)
		}
		if p.Prefix != pre {
			t.Fatalf("parsed prefix %q, want %q", p.Prefix, pre)
		}
		for i, tg := range targets {
			t.Run(pre+"/"+tg.name, func(t *testing.T) {
				r := mustRange(t, tg.value)
				if got := p.Matches(r); got != (w[i] == 'T') {
					t.Errorf("%s2021-01-01 vs %s [%v, %v) = %v, want %v", pre, tg.value, r.Start, r.End, got, !got)
				}
			})
		}
	}
}

// TestDatePredicateBoundaries pins the half-open interval edges with
// instant-like targets (as _lastUpdated builds them: [t, t+1ns)).
func TestDatePredicateBoundaries(t *testing.T) {
	instant := func(s string) DateRange {
		d := mustDate(t, s)
		return DateRange{d.Start, d.Start.Add(1)}
	}
	tests := []struct {
		param  string
		target DateRange
		want   bool
	}{
		{"2021-01-01", instant("2021-01-01T00:00:00Z"), true},
		{"2021-01-01", instant("2021-01-02T00:00:00Z"), false},
		{"2021-01-01", instant("2021-01-01T23:59:59.999999999Z"), true},
		{"lt2021-01-02", instant("2021-01-02T00:00:00Z"), false},
		{"lt2021-01-02", instant("2021-01-01T23:59:59.999999999Z"), true},
		{"ge2021-01-02", instant("2021-01-02T00:00:00Z"), true},
		{"gt2021-01-01", instant("2021-01-02T00:00:00Z"), true},
		{"gt2021-01-01", instant("2021-01-01T23:59:59Z"), false},
		{"le2021-01-01", instant("2021-01-02T00:00:00Z"), false},
		{"sa2021-01-01", instant("2021-01-02T00:00:00Z"), true},
		{"eb2021-01-02", instant("2021-01-01T23:59:59.999999999Z"), true},
		{"eb2021-01-02", instant("2021-01-02T00:00:00Z"), false},
		{"ap2021-01-01", instant("2021-01-02T00:00:00Z"), false},
		{"2021-01-01T10:00:00+01:00", instant("2021-01-01T09:00:00Z"), true},
		{"2021-01-01T10:00:00+01:00", instant("2021-01-01T10:00:00Z"), false},
		{"ne2021", instant("2021-06-01T00:00:00Z"), false},
		// A target with no end is an instant at its start.
		{"2021-01-01", DateRange{Start: utc(2021, 1, 1, 12, 0, 0, 0)}, true},
		{"gt2021-01-01", DateRange{Start: utc(2021, 1, 1, 12, 0, 0, 0)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.param+"@"+tc.target.Start.Format(time.RFC3339Nano), func(t *testing.T) {
			p, err := parseDatePredicate("_lastUpdated", tc.param)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Matches(tc.target); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
	if (DatePredicate{Prefix: "xx", Value: mustDate(t, "2021")}).Matches(mustDate(t, "2021-05")) {
		t.Error("an unknown prefix matched")
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{
		"2021", "2021-02", "2020-02-29", "2021-03-04T10:30", "2021-03-04T10:30:15.123+01:00",
		"2021-03-04T10:30:15Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00+14:00", "2021-13", "x",
		"2021-03-04T10:30:60Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDate(s)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != CodeInvalidParameter || fe.Status()/100 != 4 {
				t.Fatalf("ParseDate(%q) error %v is not a 4xx INVALID_PARAMETER", s, err)
			}
			// At most 40 input bytes are quoted, each at most \xNN.
			if len(fe.Diagnostics) > 256 {
				t.Fatalf("diagnostics too long: %d", len(fe.Diagnostics))
			}
			return
		}
		if len(s) > 35 {
			t.Fatalf("ParseDate accepted %d characters", len(s))
		}
		if !d.End.After(d.Start) {
			t.Fatalf("ParseDate(%q) = empty range [%v, %v)", s, d.Start, d.End)
		}
		if d.End.Sub(d.Start) > 366*24*time.Hour {
			t.Fatalf("ParseDate(%q) range longer than a year", s)
		}
		if d.Start.Location() != time.UTC {
			t.Fatalf("ParseDate(%q) not UTC", s)
		}
		// The start, written at full precision, parses back to itself.
		back, err := ParseDate(d.Start.Format("2006-01-02T15:04:05.000000000Z07:00"))
		if d.Start.Year() >= 1 && d.Start.Year() <= 9999 {
			if err != nil || !back.Start.Equal(d.Start) {
				t.Fatalf("start %v of %q does not round-trip: %v %v", d.Start, s, back.Start, err)
			}
		}
		// Every date-prefix form of an accepted value is accepted.
		for _, pre := range datePrefixes {
			p, err := parseDatePredicate("date", pre+s)
			if err != nil || p.Prefix != pre || p.Value != d {
				t.Fatalf("parseDatePredicate(%q) = %v, %v", pre+s, p, err)
			}
		}
	})
}
