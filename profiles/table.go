package profiles

import (
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// rule is one row of the table: a constraint on the element a UK Core
// snapshot names by id. Element ids are the snapshot's own, slices
// included ("Observation.component:SystolicBP.value[x].code"); a slice is
// matched by the discriminator in the slices table below.
type rule struct {
	el     string    // snapshot element id
	min    int       // at least min instances in every instance of the parent
	max    int       // at most max instances (0: unbounded)
	absent bool      // max = 0: the element must not be present
	fixed  string    // fixed[x] value every present instance must equal
	typ    string    // choice element: the only allowed type ("Quantity")
	vs     *valueSet // binding
	ext    bool      // binding strength is extensible (a code outside is a warning)
	base   bool      // the constraint is R4's own (base.min / base binding)
}

// must: min 1 in the R4 base resource (so also in every profile on it).
func must(el string) rule { return rule{el: el, min: 1, base: true} }

// mustUK: min 1 added by UK Core (R4 base min is 0).
func mustUK(el string) rule { return rule{el: el, min: 1} }

// bound: a required binding in R4 on an optional element.
func bound(el string, v *valueSet) rule { return rule{el: el, vs: v, base: true} }

// fixedUK: a fixed value set by UK Core.
func fixedUK(el, v string) rule { return rule{el: el, fixed: v} }

func (r rule) bind(v *valueSet) rule { r.vs = v; return r }
func (r rule) atMost(n int) rule     { r.max = n; return r }
func (r rule) fix(v string) rule     { r.fixed = v; return r }
func (r rule) only(t string) rule    { r.typ = t; return r }

// profile is one UK Core profile gpgate claims.
type profile struct {
	url   string
	typ   string // resource type
	rules []rule
	// check holds the profile's rules that a table row cannot say
	// (closed slicing, profile invariants).
	check func(c *checker, res obj, path string)
}

// name is the profile's short name, "UKCore-Patient".
func (p *profile) name() string { return strings.TrimPrefix(p.url, ukcoreSD) }

const ukcoreSD = "https://fhir.hl7.org.uk/StructureDefinition/"

// Identifier systems gpgate relies on.
const (
	odsSiteSystem       = "https://fhir.nhs.uk/Id/ods-site-code"
	sdsUserSystem       = "https://fhir.nhs.uk/Id/sds-user-id"
	sdsRoleProfileSys   = "https://fhir.nhs.uk/Id/sds-role-profile-id"
	ucumSystem          = "http://unitsofmeasure.org"
	extListWarningCode  = ukcoreSD + "Extension-UKCore-ListWarningCode"
	observationCategory = fhir.ObservationCategorySystem
)

// slices maps "element:sliceName" to the discriminator gpgate matches it
// by. The snapshot discriminators are value discriminators on system or url
// (identifier, coding, extension), coding.code for the lab category, and
// code.text for the closed blood-pressure components; for the components
// gpgate matches by LOINC code, and the fixed code.text rows below then
// require the text the snapshot discriminates on.
var slices = map[string]func(v any) bool{
	"identifier:nhsNumber":                  fieldIs("system", fhir.NHSNumberSystem),
	"identifier:odsOrganisationCode":        fieldIs("system", fhir.ODSSystem),
	"identifier:odsSiteCode":                fieldIs("system", odsSiteSystem),
	"extension:nhsNumberVerificationStatus": fieldIs("url", fhir.ExtNHSNumberVerificationStatus),
	"extension:listWarningCode":             fieldIs("url", extListWarningCode),
	"coding:loinc":                          fieldIs("system", fhir.LOINC),
	"coding:snomedCT":                       fieldIs("system", fhir.SNOMED),
	"category:laboratory":                   conceptHas(observationCategory, "laboratory"),
	"component:SystolicBP":                  componentCode(fhir.LOINCSystolic),
	"component:DiastolicBP":                 componentCode(fhir.LOINCDiastolic),
}

// Base rules shared by the three Observation profiles (all R4 base).
var observationBase = []rule{
	must("Observation.status").bind(vsObservationStatus),
	must("Observation.code"),
	must("Observation.component.code"),
}

// bpComponent is the rows of one blood-pressure component slice.
func bpComponent(slice, loinc, text string) []rule {
	p := "Observation.component:" + slice
	return []rule{
		mustUK(p).atMost(1),
		must(p + ".code"),
		mustUK(p + ".code.coding:loinc").atMost(1),
		fixedUK(p+".code.coding:loinc.system", fhir.LOINC),
		fixedUK(p+".code.coding:loinc.code", loinc),
		fixedUK(p+".code.coding:loinc.display", text),
		mustUK(p + ".code.coding:snomedCT"),
		fixedUK(p+".code.coding:snomedCT.system", fhir.SNOMED),
		fixedUK(p+".code.text", text),
		mustUK(p + ".value[x]").only("Quantity"),
		bound(p+".value[x].comparator", vsQuantityComparator),
		fixedUK(p+".value[x].unit", "millimeter of mercury"),
		fixedUK(p+".value[x].system", ucumSystem),
		fixedUK(p+".value[x].code", "mm[Hg]"),
	}
}

func concat(parts ...[]rule) []rule {
	var out []rule
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// table is every profile gpgate claims, keyed by canonical URL.
var table = map[string]*profile{}

func init() {
	for _, p := range []*profile{
		{url: fhir.ProfilePatient, typ: "Patient", rules: []rule{
			rule{el: "Patient.identifier:nhsNumber"}.atMost(1),
			bound("Patient.identifier:nhsNumber.use", vsIdentifierUse),
			mustUK("Patient.identifier:nhsNumber.system").fix(fhir.NHSNumberSystem),
			mustUK("Patient.identifier:nhsNumber.value"),
			rule{el: "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus"}.atMost(1),
			// from Extension-UKCore-NHSNumberVerificationStatus
			mustUK("Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus.value[x]").only("CodeableConcept").bind(vsNHSNumberVerificationStatus),
			bound("Patient.telecom.system", vsContactPointSystem),
			bound("Patient.telecom.use", vsContactPointUse),
			bound("Patient.gender", vsAdministrativeGender),
			bound("Patient.address.use", vsAddressUse),
			bound("Patient.address.type", vsAddressType),
			bound("Patient.contact.telecom.system", vsContactPointSystem),
			bound("Patient.contact.telecom.use", vsContactPointUse),
			bound("Patient.contact.gender", vsAdministrativeGender),
			must("Patient.communication.language"), // all-languages (BCP-47): not checked offline
			must("Patient.link.other"),
			must("Patient.link.type").bind(vsLinkType),
		}},
		{url: fhir.ProfileCondition, typ: "Condition", rules: []rule{
			bound("Condition.clinicalStatus", vsConditionClinical),
			bound("Condition.verificationStatus", vsConditionVerStatus),
			must("Condition.subject"),
		}},
		{url: fhir.ProfileAllergyIntolerance, typ: "AllergyIntolerance", rules: []rule{
			bound("AllergyIntolerance.clinicalStatus", vsAllergyClinical),
			bound("AllergyIntolerance.verificationStatus", vsAllergyVerification),
			bound("AllergyIntolerance.type", vsAllergyType),
			bound("AllergyIntolerance.category", vsAllergyCategory),
			bound("AllergyIntolerance.criticality", vsAllergyCriticality),
			mustUK("AllergyIntolerance.code"),
			must("AllergyIntolerance.patient"),
			must("AllergyIntolerance.reaction.manifestation"),
			bound("AllergyIntolerance.reaction.severity", vsReactionSeverity),
		}},
		{url: fhir.ProfileMedicationStatement, typ: "MedicationStatement", rules: []rule{
			bound("MedicationStatement.identifier.use", vsIdentifierUse),
			mustUK("MedicationStatement.identifier.system"),
			mustUK("MedicationStatement.identifier.value"),
			must("MedicationStatement.status").bind(vsMedStatementStatus),
			must("MedicationStatement.medication[x]"),
			must("MedicationStatement.subject"),
		}},
		{url: fhir.ProfileMedicationRequest, typ: "MedicationRequest", rules: []rule{
			must("MedicationRequest.status").bind(vsMedRequestStatus),
			must("MedicationRequest.intent").bind(vsMedRequestIntent),
			bound("MedicationRequest.priority", vsRequestPriority),
			must("MedicationRequest.medication[x]"),
			must("MedicationRequest.subject"),
			mustUK("MedicationRequest.substitution"),
			must("MedicationRequest.substitution.allowed[x]"),
		}},
		{url: fhir.ProfileMedication, typ: "Medication", rules: []rule{
			mustUK("Medication.code"),
			bound("Medication.status", vsMedicationStatus),
			must("Medication.ingredient.item[x]"),
		}},
		{url: fhir.ProfileObservation, typ: "Observation", rules: observationBase},
		{url: fhir.ProfileObservationLab, typ: "Observation", check: checkLab, rules: concat(observationBase, []rule{
			mustUK("Observation.category"),
			mustUK("Observation.category:laboratory").atMost(1),
			fixedUK("Observation.category:laboratory.coding.system", observationCategory),
			fixedUK("Observation.category:laboratory.coding.code", "laboratory"),
		})},
		{url: fhir.ProfileBloodPressure, typ: "Observation", check: checkBloodPressure, rules: concat(
			[]rule{
				must("Observation.status").bind(vsObservationStatus).fix("final"),
				mustUK("Observation.category").atMost(1),
				fixedUK("Observation.category.coding.system", observationCategory),
				fixedUK("Observation.category.coding.code", "vital-signs"),
				must("Observation.code"),
				mustUK("Observation.code.coding:loinc").atMost(1),
				fixedUK("Observation.code.coding:loinc.system", fhir.LOINC),
				fixedUK("Observation.code.coding:loinc.code", fhir.LOINCBloodPressurePanel),
				mustUK("Observation.code.coding:snomedCT"),
				fixedUK("Observation.code.coding:snomedCT.system", fhir.SNOMED),
				mustUK("Observation.subject"),
				mustUK("Observation.effective[x]"),
				{el: "Observation.value[x]", absent: true},
				{el: "Observation.specimen", absent: true},
				mustUK("Observation.component"),
				must("Observation.component.code"),
				mustUK("Observation.component.code.coding:loinc").atMost(1),
				fixedUK("Observation.component.code.coding:loinc.system", fhir.LOINC),
				mustUK("Observation.component.code.coding:snomedCT"),
				fixedUK("Observation.component.code.coding:snomedCT.system", fhir.SNOMED),
			},
			bpComponent("SystolicBP", fhir.LOINCSystolic, "Systolic blood pressure"),
			bpComponent("DiastolicBP", fhir.LOINCDiastolic, "Diastolic blood pressure"),
		)},
		{url: fhir.ProfileEncounter, typ: "Encounter", rules: []rule{
			must("Encounter.status").bind(vsEncounterStatus),
			must("Encounter.statusHistory.status").bind(vsEncounterStatus),
			must("Encounter.statusHistory.period"),
			must("Encounter.class"),
			must("Encounter.classHistory.class"),
			must("Encounter.classHistory.period"),
			must("Encounter.diagnosis.condition"),
			must("Encounter.location.location"),
			bound("Encounter.location.status", vsEncounterLocStatus),
		}},
		{url: fhir.ProfileProcedure, typ: "Procedure", rules: []rule{
			must("Procedure.status").bind(vsEventStatus),
			must("Procedure.subject"),
			must("Procedure.performer.actor"),
			must("Procedure.focalDevice.manipulated"),
		}},
		{url: fhir.ProfileFlag, typ: "Flag", rules: []rule{
			must("Flag.status").bind(vsFlagStatus),
			must("Flag.code"),
			must("Flag.subject"),
		}},
		{url: fhir.ProfileServiceRequest, typ: "ServiceRequest", rules: []rule{
			must("ServiceRequest.status").bind(vsRequestStatus),
			must("ServiceRequest.intent").bind(vsRequestIntent),
			bound("ServiceRequest.priority", vsRequestPriority),
			must("ServiceRequest.subject"),
		}},
		{url: fhir.ProfileDiagnosticReport, typ: "DiagnosticReport", rules: []rule{
			must("DiagnosticReport.status").bind(vsDiagnosticReportStatus),
			must("DiagnosticReport.code"),
			must("DiagnosticReport.media.link"),
		}},
		{url: fhir.ProfileImmunization, typ: "Immunization", rules: []rule{
			must("Immunization.status").bind(vsImmunizationStatus),
			must("Immunization.vaccineCode"),
			must("Immunization.patient"),
			must("Immunization.occurrence[x]"),
			must("Immunization.performer.actor"),
			must("Immunization.protocolApplied.doseNumber[x]"),
		}},
		{url: fhir.ProfileSpecimen, typ: "Specimen", rules: []rule{
			bound("Specimen.status", vsSpecimenStatus),
		}},
		{url: fhir.ProfileList, typ: "List", rules: []rule{
			must("List.status").bind(vsListStatus),
			must("List.mode").bind(vsListMode),
			must("List.entry.item"),
			// from Extension-UKCore-ListWarningCode (extensible binding)
			mustUK("List.extension:listWarningCode.value[x]").only("CodeableConcept").bind(vsListWarningCode).extensible(),
			// R4 binding is preferred; gpgate's empty Lists use only this system
			rule{el: "List.emptyReason", vs: vsListEmptyReason, ext: true},
		}},
		{url: fhir.ProfileConsent, typ: "Consent", rules: []rule{
			must("Consent.status").bind(vsConsentState),
			must("Consent.scope"),
			must("Consent.category"),
			must("Consent.verification.verified"),
			bound("Consent.provision.type", vsConsentProvisionType),
			must("Consent.provision.actor.role"),
			must("Consent.provision.actor.reference"),
			must("Consent.provision.data.meaning").bind(vsConsentDataMeaning),
			must("Consent.provision.data.reference"),
		}},
		{url: fhir.ProfileAuditEvent, typ: "AuditEvent", rules: []rule{
			must("AuditEvent.type"),
			bound("AuditEvent.action", vsAuditEventAction),
			must("AuditEvent.recorded"),
			bound("AuditEvent.outcome", vsAuditEventOutcome),
			must("AuditEvent.agent"),
			must("AuditEvent.agent.requestor"),
			bound("AuditEvent.agent.network.type", vsNetworkType),
			must("AuditEvent.source"),
			must("AuditEvent.source.observer"),
			must("AuditEvent.entity.detail.type"),
			must("AuditEvent.entity.detail.value[x]"),
		}},
		{url: fhir.ProfileOrganization, typ: "Organization", rules: []rule{
			rule{el: "Organization.identifier:odsOrganisationCode"}.atMost(1),
			bound("Organization.identifier:odsOrganisationCode.use", vsIdentifierUse),
			mustUK("Organization.identifier:odsOrganisationCode.system").fix(fhir.ODSSystem),
			mustUK("Organization.identifier:odsOrganisationCode.value"),
			rule{el: "Organization.identifier:odsSiteCode"}.atMost(1),
			bound("Organization.identifier:odsSiteCode.use", vsIdentifierUse),
			mustUK("Organization.identifier:odsSiteCode.system").fix(odsSiteSystem),
			mustUK("Organization.identifier:odsSiteCode.value"),
		}},
		{url: fhir.ProfilePractitioner, typ: "Practitioner", rules: []rule{
			bound("Practitioner.gender", vsAdministrativeGender),
			must("Practitioner.qualification.code"),
			// Practitioner.communication: all-languages (BCP-47), not checked offline
		}},
		{url: ukcoreSD + "UKCore-OperationOutcome", typ: "OperationOutcome", rules: []rule{
			must("OperationOutcome.issue"),
			must("OperationOutcome.issue.severity").bind(vsIssueSeverity),
			must("OperationOutcome.issue.code").bind(vsIssueType),
		}},
		{url: fhir.ProfileBundle, typ: "Bundle", rules: []rule{
			must("Bundle.type").bind(vsBundleType),
			must("Bundle.link.relation"),
			must("Bundle.link.url"),
			bound("Bundle.entry.search.mode", vsSearchEntryMode),
			must("Bundle.entry.request.method").bind(vsHTTPVerb),
			must("Bundle.entry.request.url"),
			must("Bundle.entry.response.status"),
		}},
	} {
		table[p.url] = p
		if fhir.ProfileFor(p.typ) == p.url {
			baseOf[p.typ] = p
		}
	}
	// Slice-level and extension-level rows are not R4 base rows even when
	// the element's own min is R4's (Identifier.system is optional in R4).
	for _, p := range table {
		for i := range p.rules {
			if strings.Contains(p.rules[i].el, ":") {
				p.rules[i].base = false
			}
		}
	}
}

func (r rule) extensible() rule { r.ext = true; return r }

// baseOf maps a resource type to the UK Core profile whose base rows (the
// R4 constraints) apply to every resource of the type, claimed or not.
var baseOf = map[string]*profile{}

// Profiles returns the canonical URLs of every profile Check knows, in no
// particular order.
func Profiles() []string {
	out := make([]string, 0, len(table))
	for u := range table {
		out = append(out, u)
	}
	return out
}
