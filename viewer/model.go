package viewer

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// The structs below decode only the coded and structural elements the
// pages show: codings (system, code, display), dates, quantities, statuses
// and references. Free-text elements (text, note, comment, valueString,
// description, CodeableConcept.text, ...) have no field here, so no
// template can render them. The one exception the design keeps is the
// dosage instruction of a prescription (Dosage.text).

type jCoding struct {
	System       string `json:"system"`
	Code         string `json:"code"`
	Display      string `json:"display"`
	UserSelected bool   `json:"userSelected"`
}

type jConcept struct {
	Coding []jCoding `json:"coding"`
}

type jQuantity struct {
	Value      json.Number `json:"value"`
	Comparator string      `json:"comparator"`
	Unit       string      `json:"unit"`
	System     string      `json:"system"`
	Code       string      `json:"code"`
}

type jPeriod struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type jRef struct {
	Reference string `json:"reference"`
}

type jName struct {
	Use    string   `json:"use"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
	Prefix []string `json:"prefix"`
}

type jAddress struct {
	Use        string   `json:"use"`
	Line       []string `json:"line"`
	City       string   `json:"city"`
	District   string   `json:"district"`
	PostalCode string   `json:"postalCode"`
}

type jContact struct {
	System string `json:"system"`
	Value  string `json:"value"`
	Use    string `json:"use"`
}

type jIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Term is a coded concept as shown: the display term and, on demand, its codes.
type Term struct {
	Display string
	Codes   []CodeRef
	NoTerm  bool // coded without any display term
}

// CodeRef is one code of a term.
type CodeRef struct {
	System string // the system's label (SNOMED CT, Read v2, ...) or URI
	Code   string
}

// Empty reports whether the concept carried no coding at all.
func (t Term) Empty() bool { return len(t.Codes) == 0 && t.Display == "" }

// term picks the display term a clinician expects: the coding the user
// selected, else the source's original (Read, CTV3, local) term, else
// SNOMED CT, else any term; all codes are listed.
func term(c *jConcept) Term {
	if c == nil {
		return Term{}
	}
	var t Term
	pick := -1
	score := func(x jCoding) int {
		switch {
		case x.Display == "":
			return 0
		case x.UserSelected:
			return 4
		case x.System != fhir.SNOMED && x.System != fhir.LOINC:
			return 3
		case x.System == fhir.SNOMED:
			return 2
		}
		return 1
	}
	best := 0
	for i, x := range c.Coding {
		if x.Code != "" {
			t.Codes = append(t.Codes, CodeRef{System: systemName(x.System), Code: x.Code})
		}
		if s := score(x); s > best {
			best, pick = s, i
		}
	}
	if pick >= 0 {
		t.Display = c.Coding[pick].Display
	} else if len(t.Codes) > 0 {
		t.NoTerm = true
	}
	return t
}

func terms(cs []jConcept) []Term {
	var out []Term
	for i := range cs {
		if t := term(&cs[i]); !t.Empty() {
			out = append(out, t)
		}
	}
	return out
}

// firstCode returns the code of the first coding, for fixed vocabularies
// (clinical status, verification status).
func firstCode(c *jConcept) string {
	if c == nil {
		return ""
	}
	for _, x := range c.Coding {
		if x.Code != "" {
			return x.Code
		}
	}
	return ""
}

// Qty is a quantity as shown.
type Qty struct {
	Value string
	Unit  string
	num   float64
	ok    bool
}

func (q Qty) String() string {
	if q.Value == "" {
		return ""
	}
	if q.Unit == "" {
		return q.Value
	}
	return q.Value + " " + q.Unit
}

func qty(q *jQuantity) Qty {
	if q == nil {
		return Qty{}
	}
	v := number(string(q.Value))
	if v == "" {
		return Qty{}
	}
	out := Qty{Value: v, Unit: unit(q)}
	switch q.Comparator {
	case "<", "<=", ">=", ">":
		out.Value = q.Comparator + v
	default:
		out.num, _ = strconv.ParseFloat(v, 64)
		out.ok = true
	}
	return out
}

func unit(q *jQuantity) string {
	if q.System == "http://unitsofmeasure.org" && q.Code != "" {
		if d, ok := ucumDisplay[q.Code]; ok {
			return d
		}
		if len(q.Code) > 2 && q.Code[0] == '{' && q.Code[len(q.Code)-1] == '}' {
			return q.Code[1 : len(q.Code)-1] // a UCUM annotation: {dose}, {puff}
		}
		return q.Code
	}
	if q.Unit != "" {
		return q.Unit
	}
	return q.Code
}

// decode unmarshals a resource's canonical JSON into one of the structs
// below. A resource that does not decode is shown as nothing rather than
// failing the page (the core emits only valid R4).
func decode[T any](r *fhir.Resource) *T {
	x := new(T)
	if err := json.Unmarshal(r.JSON, x); err != nil {
		return nil
	}
	return x
}

// ---- demographics

type jPatient struct {
	Identifier          []jIdentifier `json:"identifier"`
	Name                []jName       `json:"name"`
	Gender              string        `json:"gender"`
	BirthDate           string        `json:"birthDate"`
	DeceasedBoolean     *bool         `json:"deceasedBoolean"`
	DeceasedDateTime    string        `json:"deceasedDateTime"`
	Address             []jAddress    `json:"address"`
	Telecom             []jContact    `json:"telecom"`
	GeneralPractitioner []jRef        `json:"generalPractitioner"`
}

type jOrganization struct {
	Identifier []jIdentifier `json:"identifier"`
	Name       string        `json:"name"`
	Address    []jAddress    `json:"address"`
	Telecom    []jContact    `json:"telecom"`
}

type jPractitioner struct {
	Identifier []jIdentifier `json:"identifier"`
	Name       []jName       `json:"name"`
}

// demographics is the patient as the banner and the demographics page show them.
type demographics struct {
	Name            string // FAMILY, Given Names (Title)
	NHS             string // 3 3 4
	BirthDate       string
	Age             string
	Gender          string
	Deceased        string // date, or "Yes"
	Address         []string
	Phones          []phone
	Practice        string
	PracticeODS     string
	PracticeAddress []string
	GP              string
}

type phone struct{ Use, Value string }

func displayName(ns []jName) string {
	if len(ns) == 0 {
		return ""
	}
	n := ns[0]
	for _, x := range ns {
		if x.Use == "official" {
			n = x
			break
		}
	}
	s := strings.ToUpper(n.Family)
	if len(n.Given) > 0 {
		if s != "" {
			s += ", "
		}
		s += strings.Join(n.Given, " ")
	}
	if len(n.Prefix) > 0 {
		s += " (" + strings.Join(n.Prefix, " ") + ")"
	}
	return s
}

func plainName(ns []jName) string {
	if len(ns) == 0 {
		return ""
	}
	n := ns[0]
	parts := append(append(append([]string{}, n.Prefix...), n.Given...), n.Family)
	return strings.TrimSpace(strings.Join(parts, " "))
}

func addressLines(as []jAddress) []string {
	if len(as) == 0 {
		return nil
	}
	a := as[0]
	for _, x := range as {
		if x.Use == "home" {
			a = x
			break
		}
	}
	var out []string
	out = append(out, a.Line...)
	for _, s := range []string{a.City, a.District, a.PostalCode} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func buildDemographics(d *Demographics, now time.Time, loc *time.Location) *demographics {
	out := &demographics{}
	if d == nil || d.Patient == nil {
		return out
	}
	if p := decode[jPatient](d.Patient); p != nil {
		out.Name = displayName(p.Name)
		for _, id := range p.Identifier {
			if id.System == fhir.NHSNumberSystem {
				out.NHS = formatNHS(id.Value)
			}
		}
		out.BirthDate = fhirDate(p.BirthDate, loc)
		out.Age = age(p.BirthDate, now, loc)
		out.Gender = titleCode(p.Gender)
		if p.DeceasedDateTime != "" {
			out.Deceased = fhirDate(p.DeceasedDateTime, loc)
			out.Age = ""
		} else if p.DeceasedBoolean != nil && *p.DeceasedBoolean {
			out.Deceased = "Yes"
			out.Age = ""
		}
		out.Address = addressLines(p.Address)
		for _, t := range p.Telecom {
			if t.System == "phone" && t.Value != "" {
				out.Phones = append(out.Phones, phone{Use: titleCode(t.Use), Value: t.Value})
			}
		}
	}
	if d.Practice != nil {
		if o := decode[jOrganization](d.Practice); o != nil {
			out.Practice = o.Name
			for _, id := range o.Identifier {
				if id.System == fhir.ODSSystem {
					out.PracticeODS = id.Value
				}
			}
			out.PracticeAddress = addressLines(o.Address)
		}
	}
	if d.GP != nil {
		if g := decode[jPractitioner](d.GP); g != nil {
			out.GP = plainName(g.Name)
		}
	}
	return out
}
