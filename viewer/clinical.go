package viewer

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// ---- problems and diagnoses (Condition)

type jCondition struct {
	ClinicalStatus     *jConcept  `json:"clinicalStatus"`
	VerificationStatus *jConcept  `json:"verificationStatus"`
	Code               *jConcept  `json:"code"`
	Severity           *jConcept  `json:"severity"`
	OnsetDateTime      string     `json:"onsetDateTime"`
	OnsetPeriod        *jPeriod   `json:"onsetPeriod"`
	AbatementDateTime  string     `json:"abatementDateTime"`
	AbatementPeriod    *jPeriod   `json:"abatementPeriod"`
	RecordedDate       string     `json:"recordedDate"`
	BodySite           []jConcept `json:"bodySite"`
}

type conditionRow struct {
	Date         string
	Term         Term
	Status       string
	Verification string
	Ended        string
	Recorded     string
}

func conditionOf(c *jCondition, loc *time.Location) conditionRow {
	onset := c.OnsetDateTime
	if onset == "" && c.OnsetPeriod != nil {
		onset = c.OnsetPeriod.Start
	}
	end := c.AbatementDateTime
	if end == "" && c.AbatementPeriod != nil {
		end = c.AbatementPeriod.End
	}
	return conditionRow{
		Date:         fhirDate(onset, loc),
		Term:         term(c.Code),
		Status:       titleCode(firstCode(c.ClinicalStatus)),
		Verification: titleCode(firstCode(c.VerificationStatus)),
		Ended:        fhirDate(end, loc),
		Recorded:     fhirDate(c.RecordedDate, loc),
	}
}

// activeCondition: the clinical statuses of a current problem.
func activeCondition(status string) bool { return fhir.ActiveStatus(status) }

// ---- allergies

type jAllergy struct {
	ClinicalStatus     *jConcept `json:"clinicalStatus"`
	VerificationStatus *jConcept `json:"verificationStatus"`
	Type               string    `json:"type"`
	Category           []string  `json:"category"`
	Criticality        string    `json:"criticality"`
	Code               *jConcept `json:"code"`
	OnsetDateTime      string    `json:"onsetDateTime"`
	RecordedDate       string    `json:"recordedDate"`
	Reaction           []struct {
		Substance     *jConcept  `json:"substance"`
		Manifestation []jConcept `json:"manifestation"`
		Severity      string     `json:"severity"`
	} `json:"reaction"`
}

type allergyRow struct {
	Date         string
	Term         Term
	Category     string
	Type         string
	Criticality  string
	Reactions    []reaction
	Status       string
	Verification string
}

type reaction struct {
	Manifestations []Term
	Severity       string
}

func allergyOf(a *jAllergy, loc *time.Location) allergyRow {
	d := a.RecordedDate
	if d == "" {
		d = a.OnsetDateTime
	}
	row := allergyRow{
		Date:         fhirDate(d, loc),
		Term:         term(a.Code),
		Type:         titleCode(a.Type),
		Criticality:  titleCode(a.Criticality),
		Status:       titleCode(firstCode(a.ClinicalStatus)),
		Verification: titleCode(firstCode(a.VerificationStatus)),
	}
	var cats []string
	for _, c := range a.Category {
		cats = append(cats, titleCode(c))
	}
	row.Category = strings.Join(cats, ", ")
	for _, r := range a.Reaction {
		row.Reactions = append(row.Reactions, reaction{Manifestations: terms(r.Manifestation), Severity: titleCode(r.Severity)})
	}
	return row
}

// ---- medication

type jDosage struct {
	Text     string    `json:"text"` // the prescriber's dosage instruction: kept by design
	AsNeeded *bool     `json:"asNeededBoolean"`
	Route    *jConcept `json:"route"`
	Timing   *struct {
		Repeat *struct {
			Frequency  int         `json:"frequency"`
			Period     json.Number `json:"period"`
			PeriodUnit string      `json:"periodUnit"`
		} `json:"repeat"`
	} `json:"timing"`
	DoseAndRate []struct {
		DoseQuantity *jQuantity `json:"doseQuantity"`
	} `json:"doseAndRate"`
}

type jMedStatement struct {
	Status                    string    `json:"status"`
	MedicationCodeableConcept *jConcept `json:"medicationCodeableConcept"`
	MedicationReference       *jRef     `json:"medicationReference"`
	EffectiveDateTime         string    `json:"effectiveDateTime"`
	EffectivePeriod           *jPeriod  `json:"effectivePeriod"`
	DateAsserted              string    `json:"dateAsserted"`
	Dosage                    []jDosage `json:"dosage"`
	BasedOn                   []jRef    `json:"basedOn"`
}

type jMedRequest struct {
	Status                    string    `json:"status"`
	Intent                    string    `json:"intent"`
	MedicationCodeableConcept *jConcept `json:"medicationCodeableConcept"`
	MedicationReference       *jRef     `json:"medicationReference"`
	AuthoredOn                string    `json:"authoredOn"`
	CourseOfTherapyType       *jConcept `json:"courseOfTherapyType"`
	DosageInstruction         []jDosage `json:"dosageInstruction"`
	DispenseRequest           *struct {
		Quantity               *jQuantity `json:"quantity"`
		NumberOfRepeatsAllowed *int       `json:"numberOfRepeatsAllowed"`
		ValidityPeriod         *jPeriod   `json:"validityPeriod"`
		ExpectedSupplyDuration *jQuantity `json:"expectedSupplyDuration"`
	} `json:"dispenseRequest"`
}

type jMedication struct {
	Code *jConcept `json:"code"`
	Form *jConcept `json:"form"`
}

type medRow struct {
	Date     string
	Ended    string
	Drug     Term
	Dosage   []string
	Quantity string
	Repeats  string
	Course   string
	Status   string
}

var periodUnits = map[string][2]string{
	"s": {"second", "seconds"}, "min": {"minute", "minutes"}, "h": {"hour", "hours"},
	"d": {"day", "days"}, "wk": {"week", "weeks"}, "mo": {"month", "months"}, "a": {"year", "years"},
}

// dosageLines describes a dosage from its coded parts (dose, frequency,
// route, as needed), then the prescriber's dosage text when there is one.
func dosageLines(ds []jDosage) []string {
	var out []string
	for _, d := range ds {
		var parts []string
		for _, dr := range d.DoseAndRate {
			if q := qty(dr.DoseQuantity); q.Value != "" {
				parts = append(parts, q.String())
			}
		}
		if d.Timing != nil && d.Timing.Repeat != nil {
			rp := d.Timing.Repeat
			per := number(string(rp.Period))
			if rp.Frequency > 0 && per != "" {
				u := periodUnits[rp.PeriodUnit]
				unit := u[0]
				if per != "1" {
					unit = per + " " + u[1]
				}
				times := strconv.Itoa(rp.Frequency) + " times"
				switch rp.Frequency {
				case 1:
					times = "once"
				case 2:
					times = "twice"
				}
				if u[0] != "" {
					parts = append(parts, times+" a "+unit)
					if per != "1" {
						parts[len(parts)-1] = times + " every " + unit
					}
				}
			}
		}
		if t := term(d.Route); t.Display != "" {
			parts = append(parts, strings.ToLower(strings.TrimSuffix(t.Display, " route")))
		}
		if d.AsNeeded != nil && *d.AsNeeded {
			parts = append(parts, "when required")
		}
		if len(parts) > 0 {
			out = append(out, strings.Join(parts, ", "))
		}
		if s := strings.TrimSpace(d.Text); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ---- risks and warnings (Flag)

type jFlag struct {
	Status   string     `json:"status"`
	Category []jConcept `json:"category"`
	Code     *jConcept  `json:"code"`
	Period   *jPeriod   `json:"period"`
}

type flagRow struct {
	Date     string
	Ended    string
	Term     Term
	Category []Term
	Status   string
}

// ---- procedures

type jProcedure struct {
	Status            string     `json:"status"`
	Code              *jConcept  `json:"code"`
	PerformedDateTime string     `json:"performedDateTime"`
	PerformedPeriod   *jPeriod   `json:"performedPeriod"`
	BodySite          []jConcept `json:"bodySite"`
}

type procRow struct {
	Date   string
	Term   Term
	Sites  []Term
	Status string
}

// ---- investigations

type jObservation struct {
	Status               string     `json:"status"`
	Category             []jConcept `json:"category"`
	Code                 *jConcept  `json:"code"`
	EffectiveDateTime    string     `json:"effectiveDateTime"`
	EffectivePeriod      *jPeriod   `json:"effectivePeriod"`
	Issued               string     `json:"issued"`
	ValueQuantity        *jQuantity `json:"valueQuantity"`
	ValueCodeableConcept *jConcept  `json:"valueCodeableConcept"`
	ValueBoolean         *bool      `json:"valueBoolean"`
	ValueInteger         *int       `json:"valueInteger"`
	Interpretation       []jConcept `json:"interpretation"`
	ReferenceRange       []struct {
		Low  *jQuantity `json:"low"`
		High *jQuantity `json:"high"`
	} `json:"referenceRange"`
	HasMember []jRef `json:"hasMember"`
	Component []struct {
		Code          *jConcept  `json:"code"`
		ValueQuantity *jQuantity `json:"valueQuantity"`
	} `json:"component"`
}

type jReport struct {
	Status            string     `json:"status"`
	Category          []jConcept `json:"category"`
	Code              *jConcept  `json:"code"`
	EffectiveDateTime string     `json:"effectiveDateTime"`
	EffectivePeriod   *jPeriod   `json:"effectivePeriod"`
	Issued            string     `json:"issued"`
	Result            []jRef     `json:"result"`
	Specimen          []jRef     `json:"specimen"`
}

type jSpecimen struct {
	Type       *jConcept `json:"type"`
	Collection *struct {
		CollectedDateTime string `json:"collectedDateTime"`
	} `json:"collection"`
}

type reportView struct {
	Date      string
	Term      Term
	Status    string
	Specimens []Term
	Results   []resultRow
	Withheld  int // results the report names that are not in the answer
}

type resultRow struct {
	Date     string
	Term     Term
	Value    string
	Range    string
	Flag     string // High, Low, Abnormal
	FlagCode string // css class: high, low, abnormal
	Interp   []Term
	Status   string
}

func effective(dt string, p *jPeriod) string {
	if dt != "" {
		return dt
	}
	if p != nil {
		return p.Start
	}
	return ""
}

func resultOf(o *jObservation, loc *time.Location) resultRow {
	row := resultRow{Date: fhirDate(effective(o.EffectiveDateTime, o.EffectivePeriod), loc),
		Term: term(o.Code), Status: titleCode(o.Status), Interp: terms(o.Interpretation)}
	var val Qty
	switch {
	case o.ValueQuantity != nil:
		val = qty(o.ValueQuantity)
		row.Value = val.String()
	case o.ValueCodeableConcept != nil:
		row.Value = term(o.ValueCodeableConcept).Display
	case o.ValueInteger != nil:
		row.Value = strconv.Itoa(*o.ValueInteger)
	case o.ValueBoolean != nil:
		row.Value = map[bool]string{true: "Yes", false: "No"}[*o.ValueBoolean]
	}
	if len(o.ReferenceRange) > 0 {
		rr := o.ReferenceRange[0]
		lo, hi := qty(rr.Low), qty(rr.High)
		switch {
		case lo.Value != "" && hi.Value != "":
			u := hi.Unit
			row.Range = lo.Value + " – " + hi.Value
			if u != "" {
				row.Range += " " + u
			}
		case lo.Value != "":
			row.Range = "≥ " + lo.String()
		case hi.Value != "":
			row.Range = "≤ " + hi.String()
		}
		if val.ok {
			switch {
			case hi.ok && val.num > hi.num:
				row.Flag, row.FlagCode = "High", "high"
			case lo.ok && val.num < lo.num:
				row.Flag, row.FlagCode = "Low", "low"
			}
		}
	}
	if row.Flag == "" {
		for _, c := range o.Interpretation {
			switch firstCode(&c) {
			case "H", "HH", "HU", ">":
				row.Flag, row.FlagCode = "High", "high"
			case "L", "LL", "LU", "<":
				row.Flag, row.FlagCode = "Low", "low"
			case "A", "AA":
				row.Flag, row.FlagCode = "Abnormal", "abnormal"
			}
		}
	}
	return row
}

// ---- examination (blood pressure)

type bpRow struct {
	Date      string
	Systolic  string
	Diastolic string
	sys, dia  float64
	hasSys    bool
	hasDia    bool
	at        time.Time
}

func bpOf(o *jObservation, at time.Time, loc *time.Location) bpRow {
	row := bpRow{Date: fhirDateTime(effective(o.EffectiveDateTime, o.EffectivePeriod), loc), at: at}
	for _, c := range o.Component {
		q := qty(c.ValueQuantity)
		if c.Code == nil || !q.ok {
			continue
		}
		for _, cd := range c.Code.Coding {
			switch {
			case cd.System == "http://loinc.org" && cd.Code == "8480-6":
				row.Systolic, row.sys, row.hasSys = q.Value, q.num, true
			case cd.System == "http://loinc.org" && cd.Code == "8462-4":
				row.Diastolic, row.dia, row.hasDia = q.Value, q.num, true
			}
		}
	}
	return row
}

// ---- immunisations

type jImmunization struct {
	Status             string    `json:"status"`
	VaccineCode        *jConcept `json:"vaccineCode"`
	OccurrenceDateTime string    `json:"occurrenceDateTime"`
	RecordedDate       string    `json:"recorded"`
	Site               *jConcept `json:"site"`
	Route              *jConcept `json:"route"`
	StatusReason       *jConcept `json:"statusReason"`
	ProtocolApplied    []struct {
		DoseNumberPositiveInt *int       `json:"doseNumberPositiveInt"`
		TargetDisease         []jConcept `json:"targetDisease"`
	} `json:"protocolApplied"`
}

type immRow struct {
	Date   string
	Term   Term
	Status string
	Dose   string
	Route  Term
	Site   Term
	Reason Term
}

func immOf(x *jImmunization, loc *time.Location) immRow {
	d := x.OccurrenceDateTime
	if d == "" {
		d = x.RecordedDate
	}
	row := immRow{Date: fhirDate(d, loc), Term: term(x.VaccineCode), Status: titleCode(x.Status),
		Route: term(x.Route), Site: term(x.Site), Reason: term(x.StatusReason)}
	for _, p := range x.ProtocolApplied {
		if p.DoseNumberPositiveInt != nil {
			row.Dose = strconv.Itoa(*p.DoseNumberPositiveInt)
		}
	}
	return row
}

// ---- events

type jEncounter struct {
	Status          string     `json:"status"`
	Class           *jCoding   `json:"class"`
	Type            []jConcept `json:"type"`
	Period          *jPeriod   `json:"period"`
	Hospitalization *struct {
		AdmitSource          *jConcept `json:"admitSource"`
		DischargeDisposition *jConcept `json:"dischargeDisposition"`
	} `json:"hospitalization"`
	ReasonCode []jConcept `json:"reasonCode"`
}

type encRow struct {
	Date   string
	Ended  string
	Types  []Term
	Class  string
	Status string
	Reason []Term
	Source Term
}

// admission: an inpatient stay (v3 ActCode IMP, ACUTE, NONAC) or an
// encounter with hospitalisation details.
func admission(e *jEncounter) bool {
	if e.Hospitalization != nil {
		return true
	}
	if e.Class != nil {
		switch e.Class.Code {
		case "IMP", "ACUTE", "NONAC":
			return true
		}
	}
	return false
}

func encounterOf(e *jEncounter, loc *time.Location) encRow {
	row := encRow{Types: terms(e.Type), Status: titleCode(e.Status), Reason: terms(e.ReasonCode)}
	if e.Period != nil {
		row.Date, row.Ended = fhirDateTime(e.Period.Start, loc), fhirDateTime(e.Period.End, loc)
	}
	if e.Class != nil {
		if e.Class.Display != "" {
			row.Class = titleCode(e.Class.Display)
		} else {
			row.Class = e.Class.Code
		}
	}
	if e.Hospitalization != nil {
		row.Source = term(e.Hospitalization.AdmitSource)
	}
	return row
}

type jServiceRequest struct {
	Status        string     `json:"status"`
	Intent        string     `json:"intent"`
	Priority      string     `json:"priority"`
	Category      []jConcept `json:"category"`
	Code          *jConcept  `json:"code"`
	AuthoredOn    string     `json:"authoredOn"`
	PerformerType *jConcept  `json:"performerType"`
	ReasonCode    []jConcept `json:"reasonCode"`
}

type referralRow struct {
	Date      string
	Term      Term
	Category  []Term
	Performer Term
	Priority  string
	Status    string
}
