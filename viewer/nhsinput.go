package viewer

import (
	"strconv"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// parseNHSInput reads an NHS number as a clinician types it: ten digits,
// spaces anywhere (letters print it 3 3 4). It returns the number or a
// message saying what is wrong, in words.
func parseNHSInput(s string) (fhir.NHSNumber, string) {
	var b strings.Builder
	n := 0
	for _, c := range s {
		switch {
		case c == ' ' || c == '\t' || c == '\u00a0' || c == '\u202f':
			continue
		case c >= '0' && c <= '9':
			n++
			if n > 10 {
				return "", "An NHS number has 10 digits. You entered more than 10."
			}
			b.WriteRune(c)
		default:
			return "", "An NHS number has only digits (spaces are allowed between them)."
		}
	}
	switch {
	case n == 0:
		return "", "Enter the patient's NHS number."
	case n != 10:
		return "", "An NHS number has 10 digits. You entered " + strconv.Itoa(n) + "."
	}
	nhs, err := fhir.ParseNHSNumber(b.String())
	if err != nil {
		return "", "This is not a valid NHS number: the last digit is a check digit and it does not match. Check the number and try again."
	}
	return nhs, ""
}
