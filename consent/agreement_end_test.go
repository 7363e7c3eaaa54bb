package consent

import (
	"testing"
	"time"
)

// An end given as a date includes that whole day; a dateTime is the
// instant given.
func TestAgreementEndIncludesTheDay(t *testing.T) {
	day := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	for _, tc := range []struct {
		end        string
		in, out    time.Time
		wantEndUTC string
	}{
		{"2026-12-31", day("2026-12-31T23:59:59Z"), day("2027-01-01T00:00:00Z"), "2027-01-01T00:00:00Z"},
		{"2026-06", day("2026-06-30T12:00:00Z"), day("2026-07-01T00:00:00Z"), "2026-07-01T00:00:00Z"},
		{"2026", day("2026-12-31T23:00:00Z"), day("2027-01-01T00:00:00Z"), "2027-01-01T00:00:00Z"},
		{"2026-12-31T12:00:00Z", day("2026-12-31T11:59:59Z"), day("2026-12-31T12:00:00Z"), "2026-12-31T12:00:00Z"},
	} {
		t.Run(tc.end, func(t *testing.T) {
			a, err := ParseAgreement([]byte(`{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"start":"2026-01-01","end":"` + tc.end + `","status":"active"}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := a.End.UTC().Format(time.RFC3339); got != tc.wantEndUTC {
				t.Errorf("End = %s, want %s", got, tc.wantEndUTC)
			}
			if !a.inPeriod(tc.in) {
				t.Errorf("%s is outside an agreement ending %s", tc.in, tc.end)
			}
			if a.inPeriod(tc.out) {
				t.Errorf("%s is inside an agreement ending %s", tc.out, tc.end)
			}
		})
	}
	if _, err := ParseAgreement([]byte(`{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"start":"2026-01-01","end":"2026-01-01"}`)); err != nil {
		t.Errorf("a one-day agreement (start and end the same date) is refused: %v", err)
	}
}
