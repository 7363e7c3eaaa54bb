package fhir

import "strings"

// NHSNumberSystem is the identifier system for NHS numbers.
const NHSNumberSystem = "https://fhir.nhs.uk/Id/nhs-number"

// ODSSystem is the identifier system for ODS organisation codes.
const ODSSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// NHSNumber is a ten-digit NHS number that has passed the Modulus 11 check.
// The zero value is not a valid NHS number.
type NHSNumber string

// ParseNHSNumber accepts ten digits, optionally grouped 3-3-4 with single
// spaces or hyphens (as printed on letters), and checks the Modulus 11 check
// digit. It returns an INVALID_NHS_NUMBER error otherwise.
func ParseNHSNumber(s string) (NHSNumber, error) {
	d, ok := normaliseNHS(s)
	if !ok || !modulus11(d) {
		return "", Errorf(CodeInvalidNHSNumber, "the NHS number is not ten digits with a valid Modulus 11 check digit")
	}
	return NHSNumber(d), nil
}

// ValidNHSNumber reports whether s is ten digits with a valid check digit.
func ValidNHSNumber(s string) bool {
	return len(s) == 10 && modulus11(s)
}

func normaliseNHS(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 12 && (s[3] == ' ' || s[3] == '-') && s[7] == s[3] {
		s = s[:3] + s[4:7] + s[8:]
	}
	if len(s) != 10 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// modulus11 implements the NHS number check: weights 10..2 over the first
// nine digits, check = 11 - (sum mod 11); 11 becomes 0 and 10 is never valid.
func modulus11(d string) bool {
	if len(d) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := d[i]
		if c < '0' || c > '9' {
			return false
		}
		sum += int(c-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 {
		return false
	}
	return d[9] >= '0' && d[9] <= '9' && int(d[9]-'0') == check
}

// CheckDigit returns the Modulus 11 check digit for nine leading digits, and
// false when no valid check digit exists (the sum gives 10).
func CheckDigit(nine string) (byte, bool) {
	if len(nine) != 9 {
		return 0, false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		if nine[i] < '0' || nine[i] > '9' {
			return 0, false
		}
		sum += int(nine[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 {
		return 0, false
	}
	return byte('0' + check), true
}

// String returns the ten digits.
func (n NHSNumber) String() string { return string(n) }

// ValidODS reports whether s looks like an ODS organisation code: 3 to 12
// upper-case letters and digits (practice codes are 6, trust codes 3 to 5,
// site codes longer).
func ValidODS(s string) bool {
	if len(s) < 3 || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
