package consent

import (
	"errors"

	"github.com/gpgate/gpgate/fhir"
)

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// Granular SMART v2 scopes per area. Where an area is narrower than a
// resource type the scope is granular (category / code), so a token for a
// blood-pressure-only agreement cannot read other Observations.
var areaScopes = []struct {
	area   fhir.Area
	scopes []string
}{
	{fhir.AreaDemographics, []string{"patient/Patient.rs", "patient/Organization.rs", "patient/Practitioner.rs"}},
	{fhir.AreaProblems, []string{"patient/Condition.rs?category=problem-list-item"}},
	{fhir.AreaDiagnoses, []string{"patient/Condition.rs?category=encounter-diagnosis"}},
	{fhir.AreaMedication, []string{"patient/MedicationStatement.rs", "patient/MedicationRequest.rs", "patient/Medication.rs"}},
	{fhir.AreaAllergies, []string{"patient/AllergyIntolerance.rs"}},
	{fhir.AreaRisks, []string{"patient/Flag.rs"}},
	{fhir.AreaProcedures, []string{"patient/Procedure.rs"}},
	{fhir.AreaInvestigations, []string{"patient/Observation.rs?category=laboratory", "patient/DiagnosticReport.rs", "patient/Specimen.rs"}},
	{fhir.AreaExamination, []string{"patient/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9"}},
	{fhir.AreaEvents, []string{"patient/Encounter.rs", "patient/ServiceRequest.rs"}},
}

// ScopesForAreas maps dataset areas to SMART v2 patient scopes (read and
// search), granular where an area is narrower than a type:
//
//	demographics   patient/Patient.rs patient/Organization.rs patient/Practitioner.rs
//	problems       patient/Condition.rs?category=problem-list-item
//	diagnoses      patient/Condition.rs?category=encounter-diagnosis
//	problems+diagnoses  patient/Condition.rs
//	medication     patient/MedicationStatement.rs patient/MedicationRequest.rs patient/Medication.rs
//	allergies      patient/AllergyIntolerance.rs
//	risks          patient/Flag.rs
//	procedures     patient/Procedure.rs
//	investigations patient/Observation.rs?category=laboratory patient/DiagnosticReport.rs patient/Specimen.rs
//	examination    patient/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9
//	investigations+examination  patient/Observation.rs (and DiagnosticReport, Specimen)
//	events         patient/Encounter.rs patient/ServiceRequest.rs
//
// The result is in this table's order, without duplicates. Scopes are the
// token's ceiling; every request is still decided against the agreements.
func ScopesForAreas(areas fhir.Areas) []string {
	var out []string
	bothCond := areas.Has(fhir.AreaProblems | fhir.AreaDiagnoses)
	bothObs := areas.Has(fhir.AreaInvestigations | fhir.AreaExamination)
	for _, as := range areaScopes {
		if !areas.Has(as.area) {
			continue
		}
		for _, s := range as.scopes {
			switch {
			case bothCond && (as.area == fhir.AreaProblems || as.area == fhir.AreaDiagnoses):
				s = "patient/Condition.rs"
			case bothObs && (s == "patient/Observation.rs?category=laboratory" || as.area == fhir.AreaExamination):
				s = "patient/Observation.rs"
			}
			if !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
