package gpconnect

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Code systems written by gpgate or translated from STU3.
const (
	tho                     = "http://terminology.hl7.org/CodeSystem/"
	systemConditionClinical = tho + "condition-clinical"
	systemConditionVerif    = tho + "condition-ver-status"
	systemAllergyClinical   = tho + "allergyintolerance-clinical"
	systemAllergyVerif      = tho + "allergyintolerance-verification"
	systemActCode           = tho + "v3-ActCode"
	systemNullFlavor        = tho + "v3-NullFlavor"
	systemCourseOfTherapy   = tho + "medicationrequest-course-of-therapy"
	systemV20074            = tho + "v2-0074"
	systemDataAbsent        = tho + "data-absent-reason"
	systemUCUM              = "http://unitsofmeasure.org"
	systemPrescriptionType  = "https://fhir.hl7.org.uk/CodeSystem/UKCore-PrescriptionType"

	extProblemSignificance    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ProblemSignificance"
	extActualProblem          = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ActualProblem"
	extRelatedClinicalContent = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RelatedClinicalContent"
	extRelatedProblemHeader   = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RelatedProblemHeader"
	extAllergyEnd             = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AllergyIntoleranceEnd"
	extVaccinationProcedure   = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-VaccinationProcedure"
	extParentPresent          = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ParentPresent"
	extPrescriptionType       = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-PrescriptionType"
	extRepeatInformation      = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
	extLastIssueDate          = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationStatementLastIssueDate"
	extDataAbsentReason       = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
)

// stu3Systems translates the code systems whose canonical URL changed
// between STU3 and R4 (HL7 v2/v3 tables and FHIR-defined systems moved to
// terminology.hl7.org; CareConnect STU3 systems to their UK Core
// successors). Other systems (SNOMED CT, Read v2, CTV3, EMIS, dm+d, LOINC)
// are kept as the source wrote them.
var stu3Systems = map[string]string{
	"http://hl7.org/fhir/observation-category":                                tho + "observation-category",
	"http://hl7.org/fhir/condition-category":                                  tho + "condition-category",
	"http://hl7.org/fhir/allergy-clinical-status":                             systemAllergyClinical,
	"http://hl7.org/fhir/allergy-verification-status":                         systemAllergyVerif,
	"http://hl7.org/fhir/data-absent-reason":                                  systemDataAbsent,
	"http://hl7.org/fhir/medication-statement-category":                       tho + "medication-statement-category",
	"http://hl7.org/fhir/medication-request-category":                         tho + "medicationrequest-category",
	"http://hl7.org/fhir/referencerange-meaning":                              tho + "referencerange-meaning",
	"http://hl7.org/fhir/list-empty-reason":                                   tho + "list-empty-reason",
	"https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1": fhir.ConditionCategorySystem,
	"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ConditionCategory-1":     fhir.ConditionCategorySystem,
	"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1":      systemPrescriptionType,
	"https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1":  systemPrescriptionType,
	"http://read.info/readv2/":                                                fhir.ReadV2,
	"http://read.info/ctv3/":                                                  fhir.CTV3,
	"http://snomed.info/sct/":                                                 fhir.SNOMED,
}

// system translates one STU3 code system URL to R4.
func system(s string) string {
	s = strings.TrimSpace(s)
	if r, ok := stu3Systems[s]; ok {
		return r
	}
	if rest, ok := strings.CutPrefix(s, "http://hl7.org/fhir/v3/"); ok && rest != "" && !strings.Contains(rest, "/") {
		return tho + "v3-" + rest
	}
	if rest, ok := strings.CutPrefix(s, "http://hl7.org/fhir/v2/"); ok && rest != "" && !strings.Contains(rest, "/") {
		return tho + "v2-" + rest
	}
	return s
}

// coding is an R4 Coding: system, code and display only (never text,
// extensions or userSelected).
type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// concept is a CodeableConcept of codings only; Text is used solely for
// the labels UK Core fixes (fhir.IsProfileFixedText).
type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text,omitempty"`
}

// codings reads a STU3 CodeableConcept's codings: systems translated, every
// coding without a system or a valid code dropped, duplicates dropped.
// Its text is never read.
func codings(cc any) []coding {
	co, _ := cc.(obj)
	var out []coding
	for _, c := range list(co["coding"]) {
		x, _ := c.(obj)
		cd := codingOf(x)
		if cd == nil {
			continue
		}
		dup := false
		for _, o := range out {
			if o.System == cd.System && o.Code == cd.Code {
				dup = true
			}
		}
		if !dup {
			out = append(out, *cd)
		}
	}
	return out
}

func codingOf(x obj) *coding {
	sys, code := system(str(x["system"])), strings.TrimSpace(str(x["code"]))
	if sys == "" || !validURI(sys) || !validCode(code) {
		return nil
	}
	return &coding{System: sys, Code: code, Display: cleanDisplay(str(x["display"]))}
}

// conceptOf returns the CodeableConcept of cc, or nil when it has no coding.
func conceptOf(cc any) *concept {
	cs := codings(cc)
	if len(cs) == 0 {
		return nil
	}
	return &concept{Coding: cs}
}

// concepts maps a list of CodeableConcepts, dropping uncoded ones.
func concepts(v any) []*concept {
	var out []*concept
	for _, c := range list(v) {
		if cc := conceptOf(c); cc != nil {
			out = append(out, cc)
		}
	}
	return out
}

func hasCoding(cs []coding, set map[string]bool) bool {
	for _, c := range cs {
		if set[c.System+"|"+c.Code] {
			return true
		}
	}
	return false
}

// codeSet builds system|code keys; an argument starting with "http"
// switches the system.
func codeSet(args ...string) map[string]bool {
	m := map[string]bool{}
	sys := ""
	for _, a := range args {
		if strings.HasPrefix(a, "http") {
			sys = a
			continue
		}
		m[sys+"|"+a] = true
	}
	return m
}

// validCode: an R4 code is non-empty, without leading or trailing
// whitespace and without runs of whitespace.
func validCode(s string) bool {
	if s == "" || len(s) > 256 || strings.TrimSpace(s) != s {
		return false
	}
	prev := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || (c == ' ' && prev == ' ') {
			return false
		}
		prev = c
	}
	return true
}

func validURI(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return s != ""
}

// cleanDisplay collapses whitespace in a display and bounds its length.
func cleanDisplay(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// code returns s when it is a member of allowed ("" otherwise).
func code(v any, allowed ...string) string {
	s := strings.TrimSpace(str(v))
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	return ""
}

var (
	reDate     = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`)
	reDateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	reInstant  = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
)

// dateTime returns v when it is an R4 dateTime, its date when only the
// time of day is malformed (no zone, no seconds: a time without a zone
// cannot be placed, the day it names can), "" otherwise.
func dateTime(v any) string {
	s := strings.TrimSpace(str(v))
	if reDateTime.MatchString(s) {
		return s
	}
	if d, _, ok := strings.Cut(s, "T"); ok && len(d) == 10 && reDate.MatchString(d) {
		return d
	}
	return ""
}

func date(v any) string {
	s := strings.TrimSpace(str(v))
	if reDate.MatchString(s) {
		return s
	}
	return ""
}

func instant(v any) string {
	s := strings.TrimSpace(str(v))
	if reInstant.MatchString(s) {
		return s
	}
	return ""
}

// period maps a STU3 Period; an end before its start is dropped.
func period(v any) obj {
	p, _ := v.(obj)
	out := obj{}
	start, end := dateTime(p["start"]), dateTime(p["end"])
	if start != "" {
		out["start"] = start
	}
	if end != "" && (start == "" || !before(end, start)) {
		out["end"] = end
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// before reports whether dateTime a is strictly before b, comparing the
// start of each at its precision.
func before(a, b string) bool {
	da, err1 := fhir.ParseDate(a)
	db, err2 := fhir.ParseDate(b)
	return err1 == nil && err2 == nil && da.Start.Before(db.Start)
}

// number returns a JSON number (as decoded with UseNumber) when v is one.
func number(v any) (json.Number, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return "", false
	}
	if _, err := n.Float64(); err != nil {
		return "", false
	}
	return n, true
}

// integer returns a JSON number that is a whole number from min to the
// R4 integer maximum (positiveInt: min 1, unsignedInt: min 0). A value out
// of its element's range is left out rather than failing the resource.
func integer(v any, min int64) (json.Number, bool) {
	n, ok := number(v)
	if !ok {
		return "", false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || i < min || i > math.MaxInt32 {
		return "", false
	}
	return json.Number(strconv.FormatInt(i, 10)), true
}

var reDecimal = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$`)

// quantity maps a STU3 Quantity (SimpleQuantity, Duration, Age: same
// shape): value, comparator, unit, system, code. A value written as a JSON
// string holding a decimal (as some examples write it) is read as the
// number.
func quantity(v any) obj {
	q, _ := v.(obj)
	n, ok := number(q["value"])
	if s := strings.TrimSpace(str(q["value"])); !ok && reDecimal.MatchString(s) {
		n, ok = json.Number(s), true
	}
	if !ok {
		return nil
	}
	out := obj{"value": n}
	if c := code(q["comparator"], "<", "<=", ">=", ">"); c != "" {
		out["comparator"] = c
	}
	if u := cleanDisplay(str(q["unit"])); u != "" {
		out["unit"] = u
	}
	sys, c := strings.TrimSpace(str(q["system"])), strings.TrimSpace(str(q["code"]))
	if sys != "" && validURI(sys) && validCode(c) {
		out["system"], out["code"] = sys, c
	}
	return out
}

// simpleQuantity is a Quantity without a comparator.
func simpleQuantity(v any) obj {
	q := quantity(v)
	if q != nil {
		delete(q, "comparator")
	}
	return q
}

// security copies meta.security labels (confidentiality, NOPAT, ...) with
// their systems translated, so the redactor can withhold the resource.
func security(r obj) []coding {
	var out []coding
	for _, s := range list(child(r, "meta")["security"]) {
		x, _ := s.(obj)
		if c := codingOf(x); c != nil {
			out = append(out, *c)
		}
	}
	return out
}

// restricted reports whether security labels mark a resource withheld
// from the patient or confidential (as fhir.Index.Confidential reads them).
func restricted(cs []coding) bool {
	for _, c := range cs {
		if c.Code == "R" || c.Code == "V" || c.Code == "NOPAT" {
			return true
		}
	}
	return false
}
