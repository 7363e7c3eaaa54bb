package fhir

import (
	"strings"
)

// Area is one dataset area of the GP record (DESIGN.md, "The dataset").
// Areas form a bit set so a decision can carry several at once.
type Area uint16

// The dataset areas. Summary is a view over problems, medication, allergies
// and recent investigations, not an area of its own.
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
	AreaEvents

	areaEnd
)

// Areas is a set of dataset areas.
type Areas = Area

// AllAreas is every dataset area.
const AllAreas Areas = areaEnd - 1

// AreaSummary is the GP summary view: current problems, current medication,
// allergies and recent investigations.
const AreaSummary Areas = AreaDemographics | AreaProblems | AreaMedication | AreaAllergies | AreaInvestigations

var areaNames = []struct {
	a    Area
	name string
}{
	{AreaDemographics, "demographics"},
	{AreaProblems, "problems"},
	{AreaDiagnoses, "diagnoses"},
	{AreaMedication, "medication"},
	{AreaAllergies, "allergies"},
	{AreaRisks, "risks"},
	{AreaProcedures, "procedures"},
	{AreaInvestigations, "investigations"},
	{AreaExamination, "examination"},
	{AreaEvents, "events"},
}

// Has reports whether every area in b is in a.
func (a Area) Has(b Area) bool { return a&b == b && b != 0 }

// Any reports whether a and b share an area.
func (a Area) Any(b Area) bool { return a&b != 0 }

// List returns the individual areas of the set in table order.
func (a Area) List() []Area {
	var out []Area
	for _, n := range areaNames {
		if a&n.a != 0 {
			out = append(out, n.a)
		}
	}
	return out
}

// String names the areas, comma-separated.
func (a Area) String() string {
	var parts []string
	for _, n := range areaNames {
		if a&n.a != 0 {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// ParseAreas parses a comma-separated list of area names ("summary" and "all"
// are accepted as shorthands).
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
		for _, n := range areaNames {
			if n.name == p {
				out |= n.a
				found = true
			}
		}
		if !found {
			return 0, Errorf(CodeInvalidParameter, "unknown dataset area %q", p)
		}
	}
	return out, nil
}

// AreasOfType returns the areas a resource type may belong to. A type that
// spans several areas (Condition, Observation) needs its category to decide
// the single area of one resource; see Index.Area.
func AreasOfType(resourceType string) Areas {
	switch resourceType {
	case "Patient", "Organization", "Practitioner", "PractitionerRole":
		return AreaDemographics
	case "Condition":
		return AreaProblems | AreaDiagnoses
	case "MedicationStatement", "MedicationRequest", "Medication":
		return AreaMedication
	case "AllergyIntolerance":
		return AreaAllergies
	case "Flag":
		return AreaRisks
	case "Procedure":
		return AreaProcedures
	case "DiagnosticReport", "Specimen":
		return AreaInvestigations
	case "Observation":
		return AreaInvestigations | AreaExamination
	case "Encounter", "ServiceRequest":
		return AreaEvents
	}
	return 0
}
