package viewer

import (
	"strconv"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// UK date style, as clinical systems show it: 03-Feb-2024; a month or a
// year alone at that precision (Feb-2024, 2024).
const (
	ukDate     = "02-Jan-2006"
	ukDateTime = "02-Jan-2006 15:04"
	ukMonth    = "Jan-2006"
)

// fhirDate formats a FHIR date, dateTime or instant at its own precision;
// times are shown in loc (UK local time). "" and unparseable values give "".
func fhirDate(s string, loc *time.Location) string {
	d, err := fhir.ParseDate(s)
	if err != nil {
		return ""
	}
	switch len(s) {
	case 4:
		return d.Start.Format("2006")
	case 7:
		return d.Start.Format(ukMonth)
	case 10:
		return d.Start.Format(ukDate)
	}
	return d.Start.In(loc).Format(ukDate)
}

// fhirDateTime is fhirDate with the time of day when the value has one.
func fhirDateTime(s string, loc *time.Location) string {
	if len(s) <= 10 {
		return fhirDate(s, loc)
	}
	d, err := fhir.ParseDate(s)
	if err != nil {
		return ""
	}
	return d.Start.In(loc).Format(ukDateTime)
}

// age in whole years on the day now, from a FHIR birthDate.
func age(birth string, now time.Time, loc *time.Location) string {
	if len(birth) != 10 {
		return ""
	}
	b, err := time.Parse("2006-01-02", birth)
	if err != nil {
		return ""
	}
	n := now.In(loc)
	y := n.Year() - b.Year()
	if n.Month() < b.Month() || (n.Month() == b.Month() && n.Day() < b.Day()) {
		y--
	}
	if y < 0 {
		return ""
	}
	if y < 2 {
		months := (n.Year()-b.Year())*12 + int(n.Month()-b.Month())
		if n.Day() < b.Day() {
			months--
		}
		if months < 0 {
			return ""
		}
		return strconv.Itoa(months) + "m"
	}
	return strconv.Itoa(y) + "y"
}

// formatNHS prints an NHS number 3 3 4, as on letters.
func formatNHS(n string) string {
	if len(n) != 10 {
		return n
	}
	return n[:3] + " " + n[3:6] + " " + n[6:]
}

// systemNames are the labels of the code systems shown with a code.
var systemNames = map[string]string{
	fhir.SNOMED: "SNOMED CT",
	fhir.ReadV2: "Read v2",
	fhir.CTV3:   "CTV3",
	fhir.DMD:    "dm+d",
	fhir.LOINC:  "LOINC",
	"https://fhir.hl7.org.uk/Id/emis-drug-codes":          "EMIS drug",
	"https://fhir.hl7.org.uk/Id/emis-code":                "EMIS",
	"http://unitsofmeasure.org":                           "UCUM",
	"http://terminology.hl7.org/CodeSystem/v3-ActCode":    "HL7 ActCode",
	"http://terminology.hl7.org/CodeSystem/v2-0074":       "HL7 v2 0074",
	"http://terminology.hl7.org/CodeSystem/flag-category": "HL7 flag category",
}

func systemName(s string) string {
	if n, ok := systemNames[s]; ok {
		return n
	}
	return s
}

// ucumDisplay shows common UCUM units the way clinicians write them.
var ucumDisplay = map[string]string{
	"mm[Hg]":           "mmHg",
	"10*9/L":           "×10⁹/L",
	"10*12/L":          "×10¹²/L",
	"u/L":              "U/L",
	"[IU]/L":           "IU/L",
	"kg/m2":            "kg/m²",
	"mL/min/{1.73_m2}": "mL/min/1.73m²",
	"%":                "%",
}

// number formats a decimal as FHIR gave it (json.Number text), trimmed.
func number(s string) string {
	if s == "" {
		return ""
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return ""
}

// titleCode shows a FHIR code (a status, an intent) as words: "entered-in-error" -> "Entered in error".
func titleCode(c string) string {
	if c == "" {
		return ""
	}
	c = strings.ReplaceAll(c, "-", " ")
	c = strings.ReplaceAll(c, "_", " ")
	return strings.ToUpper(c[:1]) + c[1:]
}
