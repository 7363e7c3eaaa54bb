package fhir

import (
	"strings"
)

// Area is one dataset area of the GP record (DESIGN.md, "The dataset").
// Areas form a bit set so a decision can carry several at once.
type Area uint16

// The dataset areas, in the order of AreaTable.
const (
	AreaDemographics Area = 1 << iota
	AreaProblems
	AreaDiagnoses
	AreaMedication
	AreaAllergies
	AreaRisks
	AreaProcedures
	AreaInvestigations
	AreaExamination
	AreaImmunisations
	AreaEvents

	areaEnd
)

// AreaSummary is not an area of the record but a view over four of them:
// current problems, current medication, allergies and investigations of the
// last twelve months (InSummary). An agreement or a scope may share it
// instead of those whole areas; a decision then carries the four areas in
// Decision.Areas and marks them summary-only in Decision.Summary.
const AreaSummary Area = areaEnd

// Areas is a set of dataset areas.
type Areas = Area

// AllAreas is every dataset area (the whole record; AreaSummary is a view,
// not part of it).
const AllAreas Areas = areaEnd - 1

// SummaryAreas are the areas the summary view draws from.
const SummaryAreas Areas = AreaProblems | AreaMedication | AreaAllergies | AreaInvestigations

// AreaType places resources of one type in an area. A type that spans
// several areas (Condition, Observation) names the category or code that
// places a resource in this one; the first area listing a type without a
// matching category or code is its default.
type AreaType struct {
	Type string
	// Category is the code (in CategorySystem) that places a resource of
	// Type here; "" when the type belongs to this area alone.
	Category       string
	CategorySystem string
	// Codes, when set, place a resource here by its code instead of its
	// category (a blood-pressure panel is examination whatever its category).
	Codes []Coding
}

// AreaDef is one row of the dataset table: the area, its name in
// agreements and scopes, and the resource types that make it up. The SMART
// scopes of an area (AreaScopes), the resource types a scope or a search
// reaches (AreasOfType), where a resource belongs (Index.Area) and the
// $getstructuredrecord sections (Sections) are all derived from this table.
type AreaDef struct {
	Area  Area
	Name  string
	Title string
	Types []AreaType
}

// AreaTable is the dataset, once.
var AreaTable = []AreaDef{
	{AreaDemographics, "demographics", "Demographics", []AreaType{{Type: "Patient"}, {Type: "Organization"}, {Type: "Practitioner"}}},
	{AreaProblems, "problems", "Problems", []AreaType{{Type: "Condition", Category: "problem-list-item", CategorySystem: ConditionCategorySystem}}},
	{AreaDiagnoses, "diagnoses", "Diagnoses", []AreaType{{Type: "Condition", Category: "encounter-diagnosis", CategorySystem: ConditionCategorySystem}}},
	{AreaMedication, "medication", "Medication", []AreaType{{Type: "MedicationStatement"}, {Type: "MedicationRequest"}, {Type: "Medication"}}},
	{AreaAllergies, "allergies", "Allergies and adverse reactions", []AreaType{{Type: "AllergyIntolerance"}}},
	{AreaRisks, "risks", "Risks and warnings", []AreaType{{Type: "Flag"}}},
	{AreaProcedures, "procedures", "Procedures", []AreaType{{Type: "Procedure"}}},
	{AreaInvestigations, "investigations", "Investigations and results", []AreaType{
		{Type: "Observation", Category: "laboratory", CategorySystem: ObservationCategorySystem},
		{Type: "DiagnosticReport"}, {Type: "Specimen"}}},
	{AreaExamination, "examination", "Examination findings (blood pressure)", []AreaType{
		{Type: "Observation", Category: "vital-signs", CategorySystem: ObservationCategorySystem,
			Codes: []Coding{{System: LOINC, Code: LOINCBloodPressurePanel}}}}},
	{AreaImmunisations, "immunisations", "Immunisations", []AreaType{{Type: "Immunization"}}},
	{AreaEvents, "events", "Encounters, admissions and referrals", []AreaType{{Type: "Encounter"}, {Type: "ServiceRequest"}}},
}

// AreaDefOf returns the table row of a single area, or nil.
func AreaDefOf(a Area) *AreaDef {
	for i := range AreaTable {
		if AreaTable[i].Area == a {
			return &AreaTable[i]
		}
	}
	return nil
}

// Has reports whether every area in b is in a.
func (a Area) Has(b Area) bool { return a&b == b && b != 0 }

// Any reports whether a and b share an area.
func (a Area) Any(b Area) bool { return a&b != 0 }

// List returns the individual areas of the set in table order (AreaSummary
// last when present).
func (a Area) List() []Area {
	var out []Area
	for _, d := range AreaTable {
		if a&d.Area != 0 {
			out = append(out, d.Area)
		}
	}
	if a&AreaSummary != 0 {
		out = append(out, AreaSummary)
	}
	return out
}

// Name is the name of a single area ("summary" for AreaSummary).
func (a Area) Name() string {
	if a == AreaSummary {
		return "summary"
	}
	if d := AreaDefOf(a); d != nil {
		return d.Name
	}
	return a.String()
}

// String names the areas, comma-separated.
func (a Area) String() string {
	var parts []string
	for _, x := range a.List() {
		parts = append(parts, x.Name())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// ParseAreas parses a comma-separated list of area names; "all" (or "*") is
// every area and "summary" the summary view.
func ParseAreas(s string) (Areas, error) {
	var out Areas
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(strings.ToLower(p))
		switch p {
		case "":
			continue
		case "all", "*":
			out |= AllAreas
			continue
		case "summary":
			out |= AreaSummary
			continue
		}
		found := false
		for _, d := range AreaTable {
			if d.Name == p {
				out |= d.Area
				found = true
			}
		}
		if !found {
			return 0, Errorf(CodeInvalidParameter, "unknown dataset area %q", p)
		}
	}
	return out, nil
}

// AreaNames lists every name ParseAreas accepts, for help texts.
func AreaNames() []string {
	out := make([]string, 0, len(AreaTable)+2)
	for _, d := range AreaTable {
		out = append(out, d.Name)
	}
	return append(out, "summary", "all")
}

// AreasOfType returns the areas a resource type may belong to. A type that
// spans several areas (Condition, Observation) needs its category or code to
// decide the single area of one resource; see Index.Area.
func AreasOfType(resourceType string) Areas {
	var out Areas
	for _, d := range AreaTable {
		for _, t := range d.Types {
			if t.Type == resourceType {
				out |= d.Area
			}
		}
	}
	return out
}

// TypesOf lists the resource types of the areas, in table order, once each.
func TypesOf(areas Areas) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range AreaTable {
		if !areas.Any(d.Area) {
			continue
		}
		for _, t := range d.Types {
			if !seen[t.Type] {
				seen[t.Type] = true
				out = append(out, t.Type)
			}
		}
	}
	return out
}

// areaOf places one resource: by code first, then category, then the
// type's default (the first area that lists it without a category).
func areaOf(t string, ix *Index) Area {
	var byCategory, fallback Area
	for _, d := range AreaTable {
		for _, at := range d.Types {
			if at.Type != t {
				continue
			}
			for _, c := range at.Codes {
				if HasCoding(ix.Code, c.System, c.Code) {
					return d.Area
				}
			}
			if at.Category != "" && byCategory == 0 && len(at.Codes) == 0 && HasCoding(ix.Category, at.CategorySystem, at.Category) {
				byCategory = d.Area
			}
			if fallback == 0 && len(at.Codes) == 0 {
				fallback = d.Area
			}
		}
	}
	if byCategory != 0 {
		return byCategory
	}
	return fallback
}

// AreaScopes maps dataset areas to the SMART v2 patient scopes (read and
// search) that cover exactly them, derived from AreaTable: a type that
// belongs to one area alone is a plain scope (patient/Flag.rs); a type
// shared between areas is granular by the category or code that places it
// (patient/Condition.rs?category=problem-list-item), and plain when every
// area it spans is asked for. AreaSummary maps to the scopes of the areas
// it draws from (the summary filter itself is the agreement's to enforce).
// The result is in table order, without duplicates.
func AreaScopes(areas Areas) []string {
	if areas&AreaSummary != 0 {
		areas = areas&^AreaSummary | SummaryAreas
	}
	var out []string
	add := func(s string) {
		for _, x := range out {
			if x == s {
				return
			}
		}
		out = append(out, s)
	}
	for _, d := range AreaTable {
		if !areas.Has(d.Area) {
			continue
		}
		for _, t := range d.Types {
			span := AreasOfType(t.Type)
			if areas.Has(span) || (t.Category == "" && len(t.Codes) == 0) {
				add("patient/" + t.Type + ".rs")
				continue
			}
			var filters []string
			if t.Category != "" {
				filters = append(filters, "category="+t.Category)
			}
			for _, c := range t.Codes {
				filters = append(filters, "code="+c.System+"|"+c.Code)
			}
			add("patient/" + t.Type + ".rs?" + strings.Join(filters, "&"))
		}
	}
	return out
}
