package fhir

import (
	"strconv"
	"strings"
	"time"
)

var maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// DateRange is a FHIR date, dateTime or instant as the half-open interval it
// denotes at its precision: "2021" is [2021-01-01, 2022-01-01).
type DateRange struct {
	Start, End time.Time
}

// ParseDate parses a FHIR date/dateTime/instant (YYYY, YYYY-MM, YYYY-MM-DD,
// YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm]). A time without a zone is read as UTC.
func ParseDate(s string) (DateRange, error) {
	bad := func() (DateRange, error) {
		return DateRange{}, Errorf(CodeInvalidParameter, "%q is not a FHIR date or dateTime", truncate(s, 40))
	}
	n := len(s)
	if n < 4 || n > 35 {
		return bad()
	}
	num := func(a, b int, lo, hi int) (int, bool) {
		if b > n {
			return 0, false
		}
		v := 0
		for i := a; i < b; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, v >= lo && v <= hi
	}
	y, ok := num(0, 4, 1, 9999)
	if !ok {
		return bad()
	}
	if n == 4 {
		t := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		return DateRange{t, t.AddDate(1, 0, 0)}, nil
	}
	if s[4] != '-' {
		return bad()
	}
	m, ok := num(5, 7, 1, 12)
	if !ok {
		return bad()
	}
	if n == 7 {
		t := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
		return DateRange{t, t.AddDate(0, 1, 0)}, nil
	}
	if n < 10 || s[7] != '-' {
		return bad()
	}
	d, ok := num(8, 10, 1, 31)
	if !ok || d > daysIn(y, m) {
		return bad()
	}
	if n == 10 {
		t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
		return DateRange{t, t.AddDate(0, 0, 1)}, nil
	}
	if s[10] != 'T' || n < 16 || s[13] != ':' {
		return bad()
	}
	hh, ok1 := num(11, 13, 0, 23)
	mm, ok2 := num(14, 16, 0, 59)
	if !ok1 || !ok2 {
		return bad()
	}
	i := 16
	ss, nanos := 0, 0
	prec := time.Minute
	if i < n && s[i] == ':' {
		v, ok := num(i+1, i+3, 0, 60)
		if !ok {
			return bad()
		}
		ss, i, prec = v, i+3, time.Second
		if i < n && s[i] == '.' {
			j := i + 1
			for j < n && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i+1 || j-i-1 > 9 {
				return bad()
			}
			frac := s[i+1 : j]
			f, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
			nanos = f
			prec = time.Duration(pow10(9 - len(frac)))
			i = j
		}
	}
	loc := time.UTC
	switch {
	case i == n:
	case s[i] == 'Z' && i+1 == n:
	case (s[i] == '+' || s[i] == '-') && n-i == 6 && s[i+3] == ':':
		oh, ok1 := num(i+1, i+3, 0, 14)
		om, ok2 := num(i+4, i+6, 0, 59)
		if !ok1 || !ok2 {
			return bad()
		}
		off := oh*3600 + om*60
		if s[i] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return bad()
	}
	t := time.Date(y, time.Month(m), d, hh, mm, ss, nanos, loc).UTC()
	return DateRange{t, t.Add(prec)}, nil
}

func pow10(k int) int64 {
	v := int64(1)
	for ; k > 0; k-- {
		v *= 10
	}
	return v
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// ParseInstantLoose parses any FHIR date form and returns its start.
func ParseInstantLoose(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := ParseDate(s)
	return d.Start, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
