package fhir

import (
	"errors"
	"strings"
	"testing"
)

// refValid is an independent statement of the Modulus 11 rule: with weights
// 10..2 on the first nine digits and weight 1 on the check digit, the weighted
// sum of a valid number is a multiple of 11. (A remainder that needs check
// digit 10 can never be satisfied by a single digit, so those prefixes have no
// valid number.)
func refValid(s string) bool {
	if len(s) != 10 {
		return false
	}
	sum := 0
	for i := 0; i < 10; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		sum += int(s[i]-'0') * (10 - i)
	}
	return sum%11 == 0
}

func TestRefValidKnownNumbers(t *testing.T) {
	// Published test numbers (PDS sandbox and the NHS Digital examples).
	for _, s := range []string{"9000000009", "9434765919", "9434765870", "5900046192"} {
		if !refValid(s) {
			t.Errorf("reference check rejects known-good %s: the test oracle is wrong", s)
		}
	}
}

func wantCodedError(t *testing.T, err error, code Code) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *fhir.Error", err, err)
	}
	if fe.Code != code {
		t.Fatalf("error code = %s, want %s (%v)", fe.Code, code, err)
	}
}

func TestParseNHSNumber(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want NHSNumber // "" means an INVALID_NHS_NUMBER error
	}{
		{"PDS sandbox Jane Smith", "9000000009", "9000000009"},
		{"NHS Digital example", "9434765919", "9434765919"},
		{"another example", "9434765870", "9434765870"},
		{"check digit 0 from remainder 0", "9990000026", "9990000026"},
		{"all zeros is arithmetically valid", "0000000000", "0000000000"},
		{"spaced 3-3-4", "943 476 5919", "9434765919"},
		{"hyphenated 3-3-4", "943-476-5919", "9434765919"},
		{"leading and trailing spaces", "  9434765919\t", "9434765919"},
		{"spaced with outer spaces", " 943 476 5919 ", "9434765919"},
		{"wrong check digit", "9434765918", ""},
		{"wrong check digit 2", "9000000001", ""},
		{"transposed digits", "4934765919", ""},
		{"prefix whose check digit would be 10", "0000000060", ""},
		{"prefix whose check digit would be 10, any digit", "0000000069", ""},
		{"letters", "94347659A9", ""},
		{"letters only", "NHSNUMBER!", ""},
		{"nine digits", "943476591", ""},
		{"eleven digits", "94347659190", ""},
		{"empty", "", ""},
		{"spaces only", "          ", ""},
		{"mixed separators", "943 476-5919", ""},
		{"separators in the wrong place", "9434 765 919", ""},
		{"double spaces", "943  476  5919", ""},
		{"4-3-3 grouping", "9434-765-919", ""},
		{"spaces inside ungrouped", "94347 65919", ""},
		{"full-width digits", "９４３４７６５９１９", ""},
		{"Arabic-Indic digits", "٩٤٣٤٧٦٥٩١٩", ""},
		{"sign", "+9434765919", ""},
		{"negative", "-943476591", ""},
		{"embedded NUL", "94347\x0065919", ""},
		{"dots", "943.476.5919", ""},
		{"trailing newline inside grouping", "943 476 591\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNHSNumber(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ParseNHSNumber(%q) = %q, want error", tc.in, got)
				}
				wantCodedError(t, err, CodeInvalidNHSNumber)
				if got != "" {
					t.Errorf("ParseNHSNumber(%q) returned %q with its error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNHSNumber(%q): %v", tc.in, err)
			}
			if got != tc.want || got.String() != string(tc.want) {
				t.Fatalf("ParseNHSNumber(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !ValidNHSNumber(string(got)) {
				t.Errorf("ValidNHSNumber(%q) = false for a parsed number", got)
			}
		})
	}
}

func TestParseNHSNumberErrorIsCallerSafe(t *testing.T) {
	_, err := ParseNHSNumber("9434765918")
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("not a *fhir.Error: %v", err)
	}
	if strings.Contains(fe.Diagnostics, "9434765918") {
		t.Errorf("diagnostics echo the NHS number: %q", fe.Diagnostics)
	}
	if fe.Status() != 400 {
		t.Errorf("status = %d, want 400", fe.Status())
	}
}

func TestValidNHSNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"9000000009", true},
		{"9434765919", true},
		{"9434765918", false},
		{"943 476 5919", false}, // ValidNHSNumber does not normalise
		{" 9434765919", false},
		{"943476591", false},
		{"94347659190", false},
		{"", false},
		{"0000000060", false},
		{"abcdefghij", false},
		{"９４３４７６５９１９", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := ValidNHSNumber(tc.in); got != tc.want {
				t.Errorf("ValidNHSNumber(%q) = %v, want %v", tc.in, got, tc.want)
			}
			if got := refValid(tc.in); got != tc.want {
				t.Errorf("reference oracle disagrees on %q: %v", tc.in, got)
			}
		})
	}
}

func TestCheckDigit(t *testing.T) {
	tests := []struct {
		nine string
		want byte // 0 means no valid check digit
	}{
		{"900000000", '9'},
		{"943476591", '9'},
		{"943476587", '0'},
		{"999000002", '6'},
		{"000000000", '0'},
		{"000000006", 0}, // weighted sum 12, remainder 1: check digit would be 10
		{"94347659", 0},
		{"9434765911", 0},
		{"", 0},
		{"94347659x", 0},
		{"９４３", 0},
	}
	for _, tc := range tests {
		t.Run(tc.nine, func(t *testing.T) {
			got, ok := CheckDigit(tc.nine)
			if ok != (tc.want != 0) || got != tc.want {
				t.Fatalf("CheckDigit(%q) = %q, %v; want %q, %v", tc.nine, got, ok, tc.want, tc.want != 0)
			}
		})
	}
}

// TestCheckDigitGenerated sweeps the 999000000x test range (the style of the
// NHS test-number ranges): every prefix either has exactly one valid check
// digit, the one CheckDigit returns, or none (remainder 1).
func TestCheckDigitGenerated(t *testing.T) {
	none, some := 0, 0
	for i := 0; i < 2000; i++ {
		nine := "999" + leftPad(i, 6)
		d, ok := CheckDigit(nine)
		valid := 0
		for c := byte('0'); c <= '9'; c++ {
			full := nine + string(c)
			if refValid(full) {
				valid++
				if !ok || c != d {
					t.Fatalf("%s is valid but CheckDigit(%s) = %q, %v", full, nine, d, ok)
				}
			}
			if ValidNHSNumber(full) != refValid(full) {
				t.Fatalf("ValidNHSNumber(%s) disagrees with the reference", full)
			}
			if _, err := ParseNHSNumber(full); (err == nil) != refValid(full) {
				t.Fatalf("ParseNHSNumber(%s) err=%v disagrees with the reference", full, err)
			}
		}
		switch valid {
		case 0:
			none++
			if ok {
				t.Fatalf("CheckDigit(%s) = %q but no digit makes a valid number", nine, d)
			}
		case 1:
			some++
		default:
			t.Fatalf("%s has %d valid check digits", nine, valid)
		}
	}
	// About one prefix in eleven has no check digit; both branches must run.
	if none == 0 || some == 0 {
		t.Fatalf("sweep did not exercise both cases: none=%d some=%d", none, some)
	}
}

func leftPad(n, width int) string {
	s := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		s[i] = byte('0' + n%10)
		n /= 10
	}
	return string(s)
}

func FuzzNHSNumber(f *testing.F) {
	for _, s := range []string{
		"9000000009", "9434765919", "943 476 5919", "943-476-5919", " 9434765919 ",
		"9434765918", "0000000060", "", "94347659A9", "９４３４７６５９１９", "943 476-5919",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNHSNumber(s)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != CodeInvalidNHSNumber {
				t.Fatalf("ParseNHSNumber(%q) error %v is not INVALID_NHS_NUMBER", s, err)
			}
			if n != "" {
				t.Fatalf("ParseNHSNumber(%q) returned %q with an error", s, n)
			}
		} else {
			if !ValidNHSNumber(string(n)) || !refValid(string(n)) {
				t.Fatalf("ParseNHSNumber(%q) accepted %q, which is not valid", s, n)
			}
			// The normalised digits are the input's digits in order.
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, s)
			if digits != string(n) {
				t.Fatalf("ParseNHSNumber(%q) = %q, not the input's digits %q", s, n, digits)
			}
		}
		if ValidNHSNumber(s) != refValid(s) {
			t.Fatalf("ValidNHSNumber(%q) disagrees with the reference", s)
		}
		if ValidNHSNumber(s) != modulus11(s) {
			t.Fatalf("ValidNHSNumber(%q) disagrees with modulus11", s)
		}
		if len(s) >= 9 {
			nine := s[:9]
			d, ok := CheckDigit(nine)
			if ok {
				if !modulus11(nine+string(d)) || !refValid(nine+string(d)) {
					t.Fatalf("CheckDigit(%q) = %q does not make a valid number", nine, d)
				}
			}
			if len(s) == 10 && modulus11(s) && (!ok || s[9] != d) {
				t.Fatalf("modulus11(%q) but CheckDigit(%q) = %q, %v", s, nine, d, ok)
			}
		}
	})
}
