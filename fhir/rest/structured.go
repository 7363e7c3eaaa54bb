package rest

import (
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// POST /Patient/$getstructuredrecord, modelled on GP Connect Access Record:
// Structured, adapted to the R4 dataset. The body is a Parameters resource:
//
//	patientNHSNumber            valueIdentifier (required)
//	includeAllergies            part includeResolvedAllergies valueBoolean
//	includeMedication           parts includePrescriptionIssues valueBoolean, medicationSearchFromDate valueDate
//	includeProblems             parts filterStatus valueCode (active|inactive)
//	includeDiagnoses            no parts
//	includeConsultations        parts consultationSearchPeriod valuePeriod, includeNumberOfMostRecent valuePositiveInt
//	includeInvestigations       part investigationSearchPeriod valuePeriod
//	includeReferrals            part referralSearchPeriod valuePeriod
//	includeRisksAndWarnings     no parts
//	includeProcedures           part procedureSearchPeriod valuePeriod
//	includeExamination          part examinationSearchPeriod valuePeriod (blood pressure)
//
// The answer is a collection Bundle: Patient, practice, usual GP, then one
// List per requested section with the section's resources.

type param struct {
	Name            string       `json:"name"`
	ValueIdentifier *identifier  `json:"valueIdentifier"`
	ValueBoolean    *bool        `json:"valueBoolean"`
	ValueDate       *string      `json:"valueDate"`
	ValueCode       *string      `json:"valueCode"`
	ValuePeriod     *periodValue `json:"valuePeriod"`
	ValuePosInt     *int         `json:"valuePositiveInt"`
	Part            []param      `json:"part"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type periodValue struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type parametersBody struct {
	ResourceType string  `json:"resourceType"`
	Parameter    []param `json:"parameter"`
}

// section is one requested part of the record.
type section struct {
	key     string // parameter name
	area    fhir.Area
	types   map[string]bool
	listTyp []string // types the List entries point at
	code    fhir.Coding
	display string
	title   string
	// filters
	from, to   time.Time // period
	mostRecent int
	status     string // problems: active|inactive
	resolved   bool   // allergies: include resolved
	issues     bool   // medication: include issues
	medFrom    time.Time
	hasMedFrom bool
	hasPeriod  bool
}

// SNOMED CT list codes as GP Connect uses them; sections without one carry
// only gpgate's area code.
var sectionDefs = map[string]section{
	"includeAllergies":        {area: fhir.AreaAllergies, listTyp: []string{"AllergyIntolerance"}, code: fhir.Coding{System: fhir.SNOMED, Code: "886921000000105"}, display: "Allergies and adverse reactions", title: "Allergies and adverse reactions"},
	"includeMedication":       {area: fhir.AreaMedication, listTyp: []string{"MedicationStatement"}, code: fhir.Coding{System: fhir.SNOMED, Code: "933361000000108"}, display: "Medications and medical devices", title: "Medications and medical devices"},
	"includeProblems":         {area: fhir.AreaProblems, listTyp: []string{"Condition"}, code: fhir.Coding{System: fhir.SNOMED, Code: "717711000000103"}, display: "Problems", title: "Problems"},
	"includeDiagnoses":        {area: fhir.AreaDiagnoses, listTyp: []string{"Condition"}, title: "Diagnoses"},
	"includeConsultations":    {area: fhir.AreaEvents, types: map[string]bool{"Encounter": true}, listTyp: []string{"Encounter"}, code: fhir.Coding{System: fhir.SNOMED, Code: "1149501000000101"}, display: "List of consultations", title: "Encounters"},
	"includeReferrals":        {area: fhir.AreaEvents, types: map[string]bool{"ServiceRequest": true}, listTyp: []string{"ServiceRequest"}, code: fhir.Coding{System: fhir.SNOMED, Code: "792931000000107"}, display: "Outbound referral", title: "Referrals"},
	"includeInvestigations":   {area: fhir.AreaInvestigations, listTyp: []string{"DiagnosticReport", "Observation"}, code: fhir.Coding{System: fhir.SNOMED, Code: "887191000000108"}, display: "Investigations and results", title: "Investigations and results"},
	"includeRisksAndWarnings": {area: fhir.AreaRisks, listTyp: []string{"Flag"}, title: "Risks and warnings"},
	"includeProcedures":       {area: fhir.AreaProcedures, listTyp: []string{"Procedure"}, title: "Procedures"},
	"includeExamination":      {area: fhir.AreaExamination, listTyp: []string{"Observation"}, title: "Examination findings"},
}

// AreaCodeSystem is gpgate's code system for dataset areas (List.code).
const AreaCodeSystem = "https://gpgate.dev/fhir/CodeSystem/record-area"

const maxParametersBody = 64 << 10

func (s *Server) getStructuredRecord(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxParametersBody+1))
	if err != nil {
		return fhir.Errorf(fhir.CodeBadRequest, "the request body could not be read")
	}
	if len(body) > maxParametersBody {
		return fhir.Errorf(fhir.CodeBodyTooLarge, "the Parameters body is over %d bytes", maxParametersBody)
	}
	nhs, sections, ignored, err := parseParameters(body, strict(c))
	if err != nil {
		return err
	}
	// The decision is asked for every area: the sections pick what is
	// returned, and references from them (an Encounter of a diagnosis, the
	// Medication of a statement) are included where the decision permits.
	req := &fhir.Request{Interaction: "operation", Operation: "$getstructuredrecord", Type: "Patient", NHS: nhs, Areas: fhir.AllAreas}
	rec, dec, err := s.access(c.Request().Context(), req)
	if err != nil {
		return err
	}
	now := s.now()
	b := fhir.Bundle{ID: newUUID(), Type: "collection", Timestamp: now, Total: -1, Base: s.cfg.BaseURL}
	included := map[string]bool{}
	add := func(r *fhir.Resource) {
		key := r.Type + "/" + r.ID
		if !included[key] {
			included[key] = true
			b.Entries = append(b.Entries, fhir.BundleEntry{Resource: r})
		}
	}
	for _, r := range rec.Resources {
		if r.Ix.Area == fhir.AreaDemographics {
			add(r)
		}
	}
	var warnings []fhir.Issue
	for _, sec := range sections {
		var entries []*fhir.Resource
		var members []*fhir.Resource
		permitted := dec.Areas.Any(sec.area)
		if permitted {
			for _, r := range rec.Resources {
				if r.Ix.Area != sec.area || (sec.types != nil && !sec.types[r.Type]) || !sec.keep(r) {
					continue
				}
				members = append(members, r)
			}
			fhir.SortByDateDesc(members)
			if sec.mostRecent > 0 {
				members = limitType(members, "Encounter", sec.mostRecent)
			}
			for _, r := range members {
				add(r)
				if contains(sec.listTyp, r.Type) && !(sec.area == fhir.AreaInvestigations && r.Type == "Observation" && referencedByReport(r, members)) {
					entries = append(entries, r)
				}
			}
		}
		list := buildList(rec, sec, entries, now, permitted, rec.Warnings)
		add(list)
	}
	// Close the Bundle over references to resources the decision permits, so
	// every reference resolves within it (Medication, Encounter, Specimen...).
	for i := 0; i < len(b.Entries); i++ {
		for _, ref := range fhir.References(b.Entries[i].Resource.JSON) {
			if included[ref] {
				continue
			}
			if r := findRef(rec, ref); r != nil && dec.Areas.Any(r.Ix.Area) {
				add(r)
			}
		}
	}
	for _, name := range ignored {
		warnings = append(warnings, fhir.Issue{Severity: "warning", Code: fhir.WarnUnknownParamIgnored, Diagnostics: "parameter " + name + " is not supported and was ignored", Expression: name})
	}
	warnings = append(warnings, rec.Warnings...)
	if len(warnings) > 0 {
		oo := &fhir.Resource{Type: "OperationOutcome", ID: newUUID(), JSON: fhir.OperationOutcome(warnings...)}
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: oo, Mode: ""})
	}
	var returned fhir.Areas
	for _, e := range b.Entries {
		returned |= e.Resource.Ix.Area
	}
	audited := dec
	audited.Areas = returned
	if err := s.audit(c.Request().Context(), req, rec, audited, len(b.Entries), ""); err != nil {
		return err
	}
	return s.writeBundle(c, &b)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func limitType(rs []*fhir.Resource, typ string, n int) []*fhir.Resource {
	out := rs[:0:0]
	seen := 0
	for _, r := range rs {
		if r.Type == typ {
			if seen >= n {
				continue
			}
			seen++
		}
		out = append(out, r)
	}
	return out
}

// referencedByReport reports whether an Observation is a result of a
// DiagnosticReport in the section (then the List points at the report).
func referencedByReport(o *fhir.Resource, members []*fhir.Resource) bool {
	needle := []byte(`"Observation/` + o.ID + `"`)
	for _, m := range members {
		if m.Type == "DiagnosticReport" && bytes.Contains(m.JSON, needle) {
			return true
		}
	}
	return false
}

func findRef(rec *fhir.Record, ref string) *fhir.Resource {
	for i := 0; i < len(ref); i++ {
		if ref[i] == '/' {
			return rec.Find(ref[:i], ref[i+1:])
		}
	}
	return nil
}

func (sec *section) keep(r *fhir.Resource) bool {
	ix := &r.Ix
	switch sec.key {
	case "includeAllergies":
		if !sec.resolved && r.Type == "AllergyIntolerance" && ix.ClinicalStatus != "" && ix.ClinicalStatus != "active" {
			return false
		}
	case "includeMedication":
		if !sec.issues && r.Type == "MedicationRequest" && ix.Intent == "order" {
			return false
		}
		if sec.hasMedFrom && r.Type != "Medication" {
			end := ix.End
			if end.IsZero() {
				end = ix.Start
			}
			if !ix.Start.IsZero() && end.Before(sec.medFrom) {
				return false
			}
		}
	case "includeProblems":
		switch sec.status {
		case "active":
			return ix.ClinicalStatus == "active" || ix.ClinicalStatus == "recurrence" || ix.ClinicalStatus == "relapse"
		case "inactive":
			return ix.ClinicalStatus == "inactive" || ix.ClinicalStatus == "resolved" || ix.ClinicalStatus == "remission"
		}
	}
	if sec.hasPeriod && r.Type != "Specimen" {
		if ix.Start.IsZero() {
			return false
		}
		if !sec.from.IsZero() && ix.Start.Before(sec.from) {
			return false
		}
		if !sec.to.IsZero() && !ix.Start.Before(sec.to) {
			return false
		}
	}
	return true
}

type listJSON struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	Meta         listMeta        `json:"meta"`
	Extension    []listExtension `json:"extension,omitempty"`
	Status       string          `json:"status"`
	Mode         string          `json:"mode"`
	Title        string          `json:"title"`
	Code         concept         `json:"code"`
	Subject      ref             `json:"subject"`
	Date         string          `json:"date"`
	OrderedBy    *concept        `json:"orderedBy,omitempty"`
	Entry        []listEntry     `json:"entry,omitempty"`
	EmptyReason  *concept        `json:"emptyReason,omitempty"`
}
type listMeta struct {
	Profile []string `json:"profile"`
}
type listExtension struct {
	URL       string `json:"url"`
	ValueCode string `json:"valueCode"`
}
type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}
type concept struct {
	Coding []coding `json:"coding"`
}
type ref struct {
	Reference string `json:"reference"`
}
type listEntry struct {
	Item ref `json:"item"`
}

// ExtListWarningCode is the UK Core List warning extension.
const ExtListWarningCode = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ListWarningCode"

func buildList(rec *fhir.Record, sec section, entries []*fhir.Resource, now time.Time, permitted bool, warnings []fhir.Issue) *fhir.Resource {
	l := listJSON{
		ResourceType: "List",
		ID:           fhir.ResourceID(rec.PatientID, "list-"+sec.key[len("include"):]),
		Meta:         listMeta{Profile: []string{fhir.ProfileList}},
		Status:       "current",
		Mode:         "snapshot",
		Title:        sec.title,
		Subject:      ref{Reference: "Patient/" + rec.PatientID},
		Date:         now.UTC().Format("2006-01-02T15:04:05Z"),
		OrderedBy:    &concept{Coding: []coding{{System: "http://terminology.hl7.org/CodeSystem/list-order", Code: "event-date", Display: "Sorted by Event Date"}}},
	}
	if sec.code.Code != "" {
		l.Code.Coding = append(l.Code.Coding, coding{System: sec.code.System, Code: sec.code.Code, Display: sec.display})
	}
	l.Code.Coding = append(l.Code.Coding, coding{System: AreaCodeSystem, Code: sec.area.String(), Display: sec.title})
	for _, w := range warnings {
		if fhir.WarningSystem(w.Code) == fhir.ListWarningCodeSystem {
			l.Extension = append(l.Extension, listExtension{URL: ExtListWarningCode, ValueCode: string(w.Code)})
		}
	}
	for _, r := range entries {
		l.Entry = append(l.Entry, listEntry{Item: ref{Reference: r.Type + "/" + r.ID}})
	}
	if len(entries) == 0 {
		l.OrderedBy = nil
		reason := coding{System: fhir.ListEmptyReasonSystem, Code: "nilknown", Display: "Nil Known"}
		if !permitted {
			reason = coding{System: fhir.ListEmptyReasonSystem, Code: "withheld", Display: "Information Withheld"}
		}
		l.EmptyReason = &concept{Coding: []coding{reason}}
	}
	raw, _ := json.Marshal(l) // plain structs: cannot fail
	r, _ := fhir.NewResource(raw)
	return r
}

// parseParameters reads the operation's Parameters body.
func parseParameters(body []byte, strict bool) (fhir.NHSNumber, []section, []string, error) {
	var p parametersBody
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return "", nil, nil, fhir.Errorf(fhir.CodeInvalidResource, "the body is not a JSON Parameters resource")
	}
	if dec.More() {
		return "", nil, nil, fhir.Errorf(fhir.CodeInvalidResource, "the body has data after the Parameters resource")
	}
	if p.ResourceType != "Parameters" {
		return "", nil, nil, fhir.Errorf(fhir.CodeInvalidResource, "the body must be a Parameters resource")
	}
	var nhs fhir.NHSNumber
	var sections []section
	var ignored []string
	seen := map[string]bool{}
	for _, prm := range p.Parameter {
		if seen[prm.Name] {
			return "", nil, nil, fhir.Errorf(fhir.CodeInvalidParameter, "parameter %s is given more than once", truncate(prm.Name, 40)).At(truncate(prm.Name, 40))
		}
		seen[prm.Name] = true
		if prm.Name == "patientNHSNumber" {
			id := prm.ValueIdentifier
			if id == nil || id.System != fhir.NHSNumberSystem {
				return "", nil, nil, fhir.Errorf(fhir.CodeInvalidIdentifier, "patientNHSNumber must be a valueIdentifier with system %s", fhir.NHSNumberSystem).At("patientNHSNumber")
			}
			n, err := fhir.ParseNHSNumber(id.Value)
			if err != nil {
				return "", nil, nil, err
			}
			nhs = n
			continue
		}
		def, ok := sectionDefs[prm.Name]
		if !ok {
			if strict {
				return "", nil, nil, fhir.Errorf(fhir.CodeInvalidParameter, "unknown parameter %q (Prefer: handling=strict)", truncate(prm.Name, 40)).At(truncate(prm.Name, 40))
			}
			ignored = append(ignored, truncate(prm.Name, 40))
			continue
		}
		if prm.ValueBoolean != nil && !*prm.ValueBoolean {
			continue // includeX: false asks for nothing
		}
		sec := def
		sec.key = prm.Name
		sec.issues = true
		sec.resolved = true
		if err := sec.parts(prm.Part, strict, &ignored); err != nil {
			return "", nil, nil, err
		}
		sections = append(sections, sec)
	}
	if nhs == "" {
		return "", nil, nil, fhir.Errorf(fhir.CodeInvalidParameter, "patientNHSNumber is required").At("patientNHSNumber")
	}
	return nhs, sections, ignored, nil
}

func (sec *section) parts(parts []param, strict bool, ignored *[]string) error {
	bad := func(name, why string) error {
		return fhir.Errorf(fhir.CodeInvalidParameter, "%s.%s %s", sec.key, name, why).At(sec.key + "." + name)
	}
	for _, pt := range parts {
		switch {
		case pt.Name == "includeResolvedAllergies" && sec.key == "includeAllergies":
			if pt.ValueBoolean == nil {
				return bad(pt.Name, "must be a valueBoolean")
			}
			sec.resolved = *pt.ValueBoolean
		case pt.Name == "includePrescriptionIssues" && sec.key == "includeMedication":
			if pt.ValueBoolean == nil {
				return bad(pt.Name, "must be a valueBoolean")
			}
			sec.issues = *pt.ValueBoolean
		case pt.Name == "medicationSearchFromDate" && sec.key == "includeMedication":
			if pt.ValueDate == nil {
				return bad(pt.Name, "must be a valueDate")
			}
			d, err := fhir.ParseDate(*pt.ValueDate)
			if err != nil || len(*pt.ValueDate) > 10 {
				return bad(pt.Name, "must be a date (YYYY, YYYY-MM or YYYY-MM-DD)")
			}
			sec.medFrom, sec.hasMedFrom = d.Start, true
		case pt.Name == "filterStatus" && sec.key == "includeProblems":
			if pt.ValueCode == nil || (*pt.ValueCode != "active" && *pt.ValueCode != "inactive") {
				return bad(pt.Name, "must be valueCode active or inactive")
			}
			sec.status = *pt.ValueCode
		case pt.Name == "includeNumberOfMostRecent" && sec.key == "includeConsultations":
			if pt.ValuePosInt == nil || *pt.ValuePosInt < 1 {
				return bad(pt.Name, "must be a valuePositiveInt")
			}
			sec.mostRecent = *pt.ValuePosInt
		case pt.Name == periodPart[sec.key] && periodPart[sec.key] != "":
			if pt.ValuePeriod == nil {
				return bad(pt.Name, "must be a valuePeriod")
			}
			if pt.ValuePeriod.Start != "" {
				d, err := fhir.ParseDate(pt.ValuePeriod.Start)
				if err != nil {
					return bad(pt.Name, "has an invalid start date")
				}
				sec.from = d.Start
			}
			if pt.ValuePeriod.End != "" {
				d, err := fhir.ParseDate(pt.ValuePeriod.End)
				if err != nil {
					return bad(pt.Name, "has an invalid end date")
				}
				sec.to = d.End
			}
			if !sec.from.IsZero() && !sec.to.IsZero() && sec.to.Before(sec.from) {
				return bad(pt.Name, "ends before it starts")
			}
			sec.hasPeriod = true
		default:
			if strict {
				return bad(truncate(pt.Name, 40), "is not a known part")
			}
			*ignored = append(*ignored, sec.key+"."+truncate(pt.Name, 40))
		}
	}
	return nil
}

var periodPart = map[string]string{
	"includeConsultations":  "consultationSearchPeriod",
	"includeInvestigations": "investigationSearchPeriod",
	"includeReferrals":      "referralSearchPeriod",
	"includeProcedures":     "procedureSearchPeriod",
	"includeExamination":    "examinationSearchPeriod",
}
