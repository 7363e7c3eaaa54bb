package fhir

// UK Core 2.6.1 profile canonicals gpgate claims in meta.profile.
const (
	ukcore = "https://fhir.hl7.org.uk/StructureDefinition/"

	ProfilePatient             = ukcore + "UKCore-Patient"
	ProfileOrganization        = ukcore + "UKCore-Organization"
	ProfilePractitioner        = ukcore + "UKCore-Practitioner"
	ProfileCondition           = ukcore + "UKCore-Condition"
	ProfileAllergyIntolerance  = ukcore + "UKCore-AllergyIntolerance"
	ProfileMedicationStatement = ukcore + "UKCore-MedicationStatement"
	ProfileMedicationRequest   = ukcore + "UKCore-MedicationRequest"
	ProfileMedication          = ukcore + "UKCore-Medication"
	ProfileObservation         = ukcore + "UKCore-Observation"
	ProfileObservationLab      = ukcore + "UKCore-Observation-Lab"
	ProfileBloodPressure       = ukcore + "UKCore-Observation-VitalSigns-BloodPressure"
	ProfileEncounter           = ukcore + "UKCore-Encounter"
	ProfileProcedure           = ukcore + "UKCore-Procedure"
	ProfileFlag                = ukcore + "UKCore-Flag"
	ProfileServiceRequest      = ukcore + "UKCore-ServiceRequest"
	ProfileDiagnosticReport    = ukcore + "UKCore-DiagnosticReport"
	ProfileSpecimen            = ukcore + "UKCore-Specimen"
	ProfileImmunization        = ukcore + "UKCore-Immunization"
	ProfileList                = ukcore + "UKCore-List"
	ProfileConsent             = ukcore + "UKCore-Consent"
	ProfileAuditEvent          = ukcore + "UKCore-AuditEvent"
	ProfileBundle              = ukcore + "UKCore-Bundle"

	// ExtNHSNumberVerificationStatus is carried on the NHS number identifier.
	ExtNHSNumberVerificationStatus = ukcore + "Extension-UKCore-NHSNumberVerificationStatus"
	// NHSNumberVerificationSystem is the CodeSystem of that extension's code.
	NHSNumberVerificationSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
	// ListWarningCodeSystem is the code system of List warnings (withheld items).
	ListWarningCodeSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-ListWarningCode"
	// ListEmptyReasonSystem is the base list-empty-reason code system.
	ListEmptyReasonSystem = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
	// UKCoreListEmptyReasonSystem is UK Core's list empty reason code
	// system (no-content-recorded); its value set also takes the base codes.
	UKCoreListEmptyReasonSystem = "https://fhir.hl7.org.uk/CodeSystem/UKCore-ListEmptyReasonCode"
)

// ProfileFor returns the UK Core profile for a resource type (the base
// profile; a blood-pressure Observation claims ProfileBloodPressure instead).
func ProfileFor(resourceType string) string {
	switch resourceType {
	case "Patient", "Organization", "Practitioner", "Condition", "AllergyIntolerance",
		"MedicationStatement", "MedicationRequest", "Medication", "Observation", "Encounter",
		"Procedure", "Flag", "ServiceRequest", "DiagnosticReport", "Specimen", "Immunization", "List",
		"Consent", "AuditEvent", "Bundle", "OperationOutcome":
		return ukcore + "UKCore-" + resourceType
	}
	return ""
}

// Labels that UK Core fixes on coded elements (the BP profile's
// component.code.text, by which it slices the components). They are
// constants of the profile, not free text, and are the only text gpgate
// emits in a CodeableConcept.
const (
	TextSystolicBP  = "Systolic blood pressure"
	TextDiastolicBP = "Diastolic blood pressure"
)

// IsProfileFixedText reports whether s is one of the labels UK Core fixes.
func IsProfileFixedText(s string) bool {
	return s == TextSystolicBP || s == TextDiastolicBP
}
