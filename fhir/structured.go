package fhir

import (
	"bytes"
	"encoding/json"
	"time"
)

// $getstructuredrecord, modelled on GP Connect Access Record: Structured,
// adapted to the R4 dataset. The body is a Parameters resource:
//
//	patientNHSNumber            valueIdentifier (required)
//	includeAllergies            part includeResolvedAllergies valueBoolean
//	includeMedication           parts includePrescriptionIssues valueBoolean, medicationSearchFromDate valueDate
//	includeProblems             part filterStatus valueCode (active|inactive)
//	includeDiagnoses            no parts
//	includeConsultations        parts consultationSearchPeriod valuePeriod, includeNumberOfMostRecent valuePositiveInt
//	includeInvestigations       part investigationSearchPeriod valuePeriod
//	includeReferrals            part referralSearchPeriod valuePeriod
//	includeRisksAndWarnings     no parts
//	includeProcedures           part procedureSearchPeriod valuePeriod
//	includeExamination          part examinationSearchPeriod valuePeriod (blood pressure)
//	includeImmunisations        no parts
//
// The answer is a collection Bundle: Patient, practice, usual GP, then one
// List per requested section with the section's resources.

// Section is one $getstructuredrecord section: a parameter asking for
// (part of) one dataset area.
type Section struct {
	Param string // parameter name, e.g. includeAllergies
	Area  Area
	// Types narrows the area to these resource types (nil: all of them).
	Types []string
	// ListTypes are the types the section's List entries point at (others
	// of the section, e.g. the Medication of a statement, are in the Bundle
	// but not in the List).
	ListTypes []string
	// Code is the SNOMED CT list code GP Connect uses; a section without one
	// carries only gpgate's area code (AreaCodeSystem).
	Code  Coding
	Title string
	// PeriodPart names the part that bounds the section by clinical date.
	PeriodPart string
	// Doc says what the section holds; Parts are the parts it takes (the
	// OperationDefinition is generated from them).
	Doc   string
	Parts []SectionPart
}

// SectionPart is one part of a section parameter: its name, FHIR type and
// meaning.
type SectionPart struct {
	Name, Type, Doc string
}

// Sections are the $getstructuredrecord sections, in parameter order. Each
// names a row of AreaTable.
var Sections = []Section{
	{Param: "includeAllergies", Area: AreaAllergies, ListTypes: []string{"AllergyIntolerance"},
		Code: Coding{System: SNOMED, Code: "886921000000105"}, Title: "Allergies and adverse reactions",
		Doc: "Allergies and adverse reactions", Parts: []SectionPart{{"includeResolvedAllergies", "boolean", "Include resolved (inactive) allergies (default true)"}}},
	{Param: "includeMedication", Area: AreaMedication, ListTypes: []string{"MedicationStatement"},
		Code: Coding{System: SNOMED, Code: "933361000000108"}, Title: "Medications and medical devices",
		Doc: "Medications and medical devices", Parts: []SectionPart{
			{"includePrescriptionIssues", "boolean", "Include issues (MedicationRequest intent order) (default true)"},
			{"medicationSearchFromDate", "date", "Only medication current on or after this date (YYYY, YYYY-MM or YYYY-MM-DD)"}}},
	{Param: "includeProblems", Area: AreaProblems, ListTypes: []string{"Condition"},
		Code: Coding{System: SNOMED, Code: "717711000000103"}, Title: "Problems",
		Doc: "Problems", Parts: []SectionPart{{"filterStatus", "code", "active or inactive"}}},
	{Param: "includeDiagnoses", Area: AreaDiagnoses, ListTypes: []string{"Condition"}, Title: "Diagnoses", Doc: "Diagnoses (encounter diagnoses)"},
	{Param: "includeConsultations", Area: AreaEvents, Types: []string{"Encounter"}, ListTypes: []string{"Encounter"},
		Code: Coding{System: SNOMED, Code: "1149501000000101"}, Title: "List of consultations", PeriodPart: "consultationSearchPeriod",
		Doc: "Encounters", Parts: []SectionPart{
			{"consultationSearchPeriod", "Period", "Only encounters starting in this period"},
			{"includeNumberOfMostRecent", "positiveInt", "Only the N most recent encounters"}}},
	{Param: "includeInvestigations", Area: AreaInvestigations, ListTypes: []string{"DiagnosticReport", "Observation"},
		Code: Coding{System: SNOMED, Code: "887191000000108"}, Title: "Investigations and results", PeriodPart: "investigationSearchPeriod",
		Doc: "Investigations and results", Parts: []SectionPart{{"investigationSearchPeriod", "Period", "Only results in this period"}}},
	{Param: "includeReferrals", Area: AreaEvents, Types: []string{"ServiceRequest"}, ListTypes: []string{"ServiceRequest"},
		Code: Coding{System: SNOMED, Code: "792931000000107"}, Title: "Outbound referral", PeriodPart: "referralSearchPeriod",
		Doc: "Referrals", Parts: []SectionPart{{"referralSearchPeriod", "Period", "Only referrals in this period"}}},
	{Param: "includeRisksAndWarnings", Area: AreaRisks, ListTypes: []string{"Flag"}, Title: "Risks and warnings", Doc: "Risks and warnings (Flags)"},
	{Param: "includeProcedures", Area: AreaProcedures, ListTypes: []string{"Procedure"}, Title: "Procedures", PeriodPart: "procedureSearchPeriod",
		Doc: "Procedures", Parts: []SectionPart{{"procedureSearchPeriod", "Period", "Only procedures in this period"}}},
	{Param: "includeExamination", Area: AreaExamination, ListTypes: []string{"Observation"}, Title: "Examination findings", PeriodPart: "examinationSearchPeriod",
		Doc: "Examination findings (blood pressure)", Parts: []SectionPart{{"examinationSearchPeriod", "Period", "Only findings in this period"}}},
	{Param: "includeImmunisations", Area: AreaImmunisations, ListTypes: []string{"Immunization"},
		Code: Coding{System: SNOMED, Code: "1102181000000102"}, Title: "Immunisations", Doc: "Immunisations"},
}

// SectionOf returns the section a parameter names, or nil.
func SectionOf(param string) *Section {
	for i := range Sections {
		if Sections[i].Param == param {
			return &Sections[i]
		}
	}
	return nil
}

// AreaCodeSystem is gpgate's code system for dataset areas (List.code).
const AreaCodeSystem = "https://gpgate.dev/fhir/CodeSystem/record-area"

// ExtListWarningCode is the UK Core List warning extension.
const ExtListWarningCode = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ListWarningCode"

// MaxParametersBody bounds the Parameters body of $getstructuredrecord.
const MaxParametersBody = 64 << 10

// StructuredRequest is a parsed $getstructuredrecord request.
type StructuredRequest struct {
	NHS      NHSNumber
	Sections []SectionRequest
	Ignored  []string // unknown parameters and parts ignored under lenient handling
}

// SectionRequest is one requested section with its filters.
type SectionRequest struct {
	*Section
	From, To   time.Time // period bounds (zero: open)
	HasPeriod  bool
	MostRecent int    // consultations: the n most recent
	Status     string // problems: active | inactive
	Resolved   bool   // allergies: include resolved (default true)
	Issues     bool   // medication: include issues (default true)
	MedFrom    time.Time
	HasMedFrom bool
}

// Keeps reports whether a resource of the section's area passes its filters.
func (sec *SectionRequest) Keeps(r *Resource) bool {
	if r.Ix.Area != sec.Area || (sec.Types != nil && !containsString(sec.Types, r.Type)) {
		return false
	}
	ix := &r.Ix
	switch sec.Param {
	case "includeAllergies":
		if !sec.Resolved && r.Type == "AllergyIntolerance" && ix.ClinicalStatus != "" && ix.ClinicalStatus != "active" {
			return false
		}
	case "includeMedication":
		if !sec.Issues && r.Type == "MedicationRequest" && ix.Intent == "order" {
			return false
		}
		if sec.HasMedFrom && r.Type != "Medication" {
			end := ix.End
			if end.IsZero() {
				end = ix.Start
			}
			if !ix.Start.IsZero() && end.Before(sec.MedFrom) {
				return false
			}
		}
	case "includeProblems":
		switch sec.Status {
		case "active":
			return ActiveStatus(ix.ClinicalStatus)
		case "inactive":
			return ix.ClinicalStatus == "inactive" || ix.ClinicalStatus == "resolved" || ix.ClinicalStatus == "remission"
		}
	}
	if sec.HasPeriod && r.Type != "Specimen" {
		if ix.Start.IsZero() {
			return false
		}
		if !sec.From.IsZero() && ix.Start.Before(sec.From) {
			return false
		}
		if !sec.To.IsZero() && !ix.Start.Before(sec.To) {
			return false
		}
	}
	return true
}

// ListOf builds the section's List (UK Core List) over entries. permitted
// false marks a section the decision does not cover (emptyReason withheld,
// not "nil known"); warnings of the list warning code system are carried as
// List warning extensions.
func (sec *Section) ListOf(patientID string, entries []*Resource, now time.Time, permitted bool, warnings []Issue) *Resource {
	l := listJSON{
		ResourceType: "List",
		ID:           ResourceID(patientID, "list-"+sec.Param[len("include"):]),
		Meta:         listMeta{Profile: []string{ProfileList}},
		Status:       "current",
		Mode:         "snapshot",
		Title:        sec.Title,
		Subject:      ref{Reference: "Patient/" + patientID},
		Date:         now.UTC().Format("2006-01-02T15:04:05Z"),
		OrderedBy:    &listConcept{Coding: []listCoding{{System: "http://terminology.hl7.org/CodeSystem/list-order", Code: "event-date", Display: "Sorted by Event Date"}}},
	}
	if sec.Code.Code != "" {
		l.Code.Coding = append(l.Code.Coding, listCoding{System: sec.Code.System, Code: sec.Code.Code, Display: sec.Title})
	}
	l.Code.Coding = append(l.Code.Coding, listCoding{System: AreaCodeSystem, Code: sec.Area.Name(), Display: sec.Title})
	for _, w := range warnings {
		if WarningSystem(w.Code) == ListWarningCodeSystem {
			l.Extension = append(l.Extension, listExtension{URL: ExtListWarningCode,
				ValueCodeableConcept: listConcept{Coding: []listCoding{{System: ListWarningCodeSystem, Code: string(w.Code)}}}})
		}
	}
	for _, r := range entries {
		l.Entry = append(l.Entry, listEntry{Item: ref{Reference: r.Type + "/" + r.ID}})
	}
	if len(entries) == 0 {
		l.OrderedBy = nil
		reason := EmptyNilKnown
		if src := sourceEmptyReason(sec.Area, warnings); src != "" {
			reason = src // the source said why: nothing recorded, withheld, ...
		}
		if !permitted {
			reason = EmptyWithheld
		}
		l.EmptyReason = &listConcept{Coding: []listCoding{{System: WarningSystem(reason), Code: string(reason), Display: EmptyDisplay(reason)}}}
	}
	raw, _ := json.Marshal(l) // plain structs: cannot fail
	r, _ := NewResource(raw)
	return r
}

// sourceEmptyReason is the empty reason a source gave for the area (an
// Issue whose Expression names it); when several, the one that says the
// least is known (withheld, unavailable, then the others in order).
func sourceEmptyReason(a Area, warnings []Issue) Code {
	rank := func(c Code) int {
		switch c {
		case EmptyWithheld:
			return 3
		case EmptyUnavailable:
			return 2
		case EmptyNilKnown:
			return 0
		}
		return 1
	}
	var best Code
	for _, w := range warnings {
		if EmptyReason(w.Code) && w.Expression == a.Name() && (best == "" || rank(w.Code) > rank(best)) {
			best = w.Code
		}
	}
	return best
}

type listJSON struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Meta         listMeta        `json:"meta"`
	Extension    []listExtension `json:"extension,omitempty"`
	Status       string          `json:"status"`
	Mode         string          `json:"mode"`
	Title        string          `json:"title"`
	Code         listConcept     `json:"code"`
	Subject      ref             `json:"subject"`
	Date         string          `json:"date"`
	OrderedBy    *listConcept    `json:"orderedBy,omitempty"`
	Entry        []listEntry     `json:"entry,omitempty"`
	EmptyReason  *listConcept    `json:"emptyReason,omitempty"`
}
type listMeta struct {
	Profile []string `json:"profile"`
}

// listExtension is the UK Core ListWarningCode extension, whose value is a
// CodeableConcept (Extension-UKCore-ListWarningCode).
type listExtension struct {
	URL                  string      `json:"url"`
	ValueCodeableConcept listConcept `json:"valueCodeableConcept"`
}
type listCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}
type listConcept struct {
	Coding []listCoding `json:"coding"`
}
type listEntry struct {
	Item ref `json:"item"`
}

// The Parameters body, as far as gpgate reads it.
type param struct {
	Name            string       `json:"name"`
	ValueIdentifier *paramIdent  `json:"valueIdentifier"`
	ValueBoolean    *bool        `json:"valueBoolean"`
	ValueDate       *string      `json:"valueDate"`
	ValueCode       *string      `json:"valueCode"`
	ValuePeriod     *paramPeriod `json:"valuePeriod"`
	ValuePosInt     *int         `json:"valuePositiveInt"`
	Part            []param      `json:"part"`
}

type paramIdent struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type paramPeriod struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type parametersBody struct {
	ResourceType string  `json:"resourceType"`
	Parameter    []param `json:"parameter"`
}

// ParseStructuredRequest reads the $getstructuredrecord Parameters body.
// Unknown parameters and parts are ignored (and listed) unless strict, when
// they are INVALID_PARAMETER; a body that is not a Parameters resource is
// INVALID_RESOURCE.
func ParseStructuredRequest(body []byte, strict bool) (*StructuredRequest, error) {
	if len(body) > MaxParametersBody {
		return nil, Errorf(CodeBodyTooLarge, "the Parameters body is over %d bytes", MaxParametersBody)
	}
	var p parametersBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return nil, Errorf(CodeInvalidResource, "the body is not a JSON Parameters resource")
	}
	if dec.More() {
		return nil, Errorf(CodeInvalidResource, "the body has data after the Parameters resource")
	}
	if p.ResourceType != "Parameters" {
		return nil, Errorf(CodeInvalidResource, "the body must be a Parameters resource")
	}
	out := &StructuredRequest{}
	seen := map[string]bool{}
	for _, prm := range p.Parameter {
		name := safeName(prm.Name)
		if seen[prm.Name] {
			return nil, Errorf(CodeInvalidParameter, "parameter %s is given more than once", name).At(name)
		}
		seen[prm.Name] = true
		if prm.Name == "patientNHSNumber" {
			id := prm.ValueIdentifier
			if id == nil || id.System != NHSNumberSystem {
				return nil, Errorf(CodeInvalidIdentifier, "patientNHSNumber must be a valueIdentifier with system %s", NHSNumberSystem).At("patientNHSNumber")
			}
			n, err := ParseNHSNumber(id.Value)
			if err != nil {
				return nil, err
			}
			out.NHS = n
			continue
		}
		def := SectionOf(prm.Name)
		if def == nil {
			if strict {
				return nil, Errorf(CodeInvalidParameter, "unknown parameter %q (Prefer: handling=strict)", name).At(name)
			}
			out.Ignored = append(out.Ignored, name)
			continue
		}
		if prm.ValueBoolean != nil && !*prm.ValueBoolean {
			continue // includeX: false asks for nothing
		}
		sec := SectionRequest{Section: def, Issues: true, Resolved: true}
		if err := sec.parts(prm.Part, strict, &out.Ignored); err != nil {
			return nil, err
		}
		out.Sections = append(out.Sections, sec)
	}
	if out.NHS == "" {
		return nil, Errorf(CodeInvalidParameter, "patientNHSNumber is required").At("patientNHSNumber")
	}
	return out, nil
}

func (sec *SectionRequest) parts(parts []param, strict bool, ignored *[]string) error {
	bad := func(name, why string) error {
		return Errorf(CodeInvalidParameter, "%s.%s %s", sec.Param, name, why).At(sec.Param + "." + name)
	}
	for _, pt := range parts {
		switch {
		case pt.Name == "includeResolvedAllergies" && sec.Param == "includeAllergies":
			if pt.ValueBoolean == nil {
				return bad(pt.Name, "must be a valueBoolean")
			}
			sec.Resolved = *pt.ValueBoolean
		case pt.Name == "includePrescriptionIssues" && sec.Param == "includeMedication":
			if pt.ValueBoolean == nil {
				return bad(pt.Name, "must be a valueBoolean")
			}
			sec.Issues = *pt.ValueBoolean
		case pt.Name == "medicationSearchFromDate" && sec.Param == "includeMedication":
			if pt.ValueDate == nil {
				return bad(pt.Name, "must be a valueDate")
			}
			d, err := ParseDate(*pt.ValueDate)
			if err != nil || len(*pt.ValueDate) > 10 {
				return bad(pt.Name, "must be a date (YYYY, YYYY-MM or YYYY-MM-DD)")
			}
			sec.MedFrom, sec.HasMedFrom = d.Start, true
		case pt.Name == "filterStatus" && sec.Param == "includeProblems":
			if pt.ValueCode == nil || (*pt.ValueCode != "active" && *pt.ValueCode != "inactive") {
				return bad(pt.Name, "must be valueCode active or inactive")
			}
			sec.Status = *pt.ValueCode
		case pt.Name == "includeNumberOfMostRecent" && sec.Param == "includeConsultations":
			if pt.ValuePosInt == nil || *pt.ValuePosInt < 1 {
				return bad(pt.Name, "must be a valuePositiveInt")
			}
			sec.MostRecent = *pt.ValuePosInt
		case pt.Name == sec.PeriodPart && sec.PeriodPart != "":
			if pt.ValuePeriod == nil {
				return bad(pt.Name, "must be a valuePeriod")
			}
			if pt.ValuePeriod.Start != "" {
				d, err := ParseDate(pt.ValuePeriod.Start)
				if err != nil {
					return bad(pt.Name, "has an invalid start date")
				}
				sec.From = d.Start
			}
			if pt.ValuePeriod.End != "" {
				d, err := ParseDate(pt.ValuePeriod.End)
				if err != nil {
					return bad(pt.Name, "has an invalid end date")
				}
				sec.To = d.End
			}
			if !sec.From.IsZero() && !sec.To.IsZero() && sec.To.Before(sec.From) {
				return bad(pt.Name, "ends before it starts")
			}
			sec.HasPeriod = true
		default:
			if strict {
				return bad(safeName(pt.Name), "is not a known part")
			}
			*ignored = append(*ignored, sec.Param+"."+safeName(pt.Name))
		}
	}
	return nil
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
