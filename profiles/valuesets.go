package profiles

import "github.com/gpgate/gpgate/fhir"

// valueSet is a binding gpgate can check offline: the complete expansion of
// a small value set, per code system. A code-typed element is checked
// against the codes of system "" (any listed system).
type valueSet struct {
	url     string // canonical, as in the snapshot binding, without |version
	systems map[string]map[string]bool
}

func vs(url, system string, codes ...string) *valueSet {
	v := &valueSet{url: url, systems: map[string]map[string]bool{}}
	return v.include(system, codes...)
}

func (v *valueSet) include(system string, codes ...string) *valueSet {
	m := v.systems[system]
	if m == nil {
		m = make(map[string]bool, len(codes))
		v.systems[system] = m
	}
	for _, c := range codes {
		m[c] = true
	}
	return v
}

// hasCode reports whether a bare code (a `code` element) is in the set.
func (v *valueSet) hasCode(code string) bool {
	for _, m := range v.systems {
		if m[code] {
			return true
		}
	}
	return false
}

// hasCoding reports whether system|code is in the set, and whether the
// system is one of the set's systems at all.
func (v *valueSet) hasCoding(system, code string) (in, knownSystem bool) {
	m, ok := v.systems[system]
	return ok && m[code], ok
}

const (
	hl7VS = "http://hl7.org/fhir/ValueSet/"
	hl7CS = "http://hl7.org/fhir/"
	thoCS = "http://terminology.hl7.org/CodeSystem/"
)

// The R4 (4.0.1) required bindings of the profiled types, as expanded by
// hl7.fhir.r4.expansions; and the UK Core bindings gpgate checks.
var (
	vsIdentifierUse          = vs(hl7VS+"identifier-use", hl7CS+"identifier-use", "usual", "official", "temp", "secondary", "old")
	vsContactPointSystem     = vs(hl7VS+"contact-point-system", hl7CS+"contact-point-system", "phone", "fax", "email", "pager", "url", "sms", "other")
	vsContactPointUse        = vs(hl7VS+"contact-point-use", hl7CS+"contact-point-use", "home", "work", "temp", "old", "mobile")
	vsAdministrativeGender   = vs(hl7VS+"administrative-gender", hl7CS+"administrative-gender", "male", "female", "other", "unknown")
	vsAddressUse             = vs(hl7VS+"address-use", hl7CS+"address-use", "home", "work", "temp", "old", "billing")
	vsAddressType            = vs(hl7VS+"address-type", hl7CS+"address-type", "postal", "physical", "both")
	vsLinkType               = vs(hl7VS+"link-type", hl7CS+"link-type", "replaced-by", "replaces", "refer", "seealso")
	vsConditionClinical      = vs(hl7VS+"condition-clinical", thoCS+"condition-clinical", "active", "recurrence", "relapse", "inactive", "remission", "resolved")
	vsConditionVerStatus     = vs(hl7VS+"condition-ver-status", thoCS+"condition-ver-status", "unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error")
	vsAllergyClinical        = vs(hl7VS+"allergyintolerance-clinical", thoCS+"allergyintolerance-clinical", "active", "inactive", "resolved")
	vsAllergyVerification    = vs(hl7VS+"allergyintolerance-verification", thoCS+"allergyintolerance-verification", "unconfirmed", "confirmed", "refuted", "entered-in-error")
	vsAllergyType            = vs(hl7VS+"allergy-intolerance-type", hl7CS+"allergy-intolerance-type", "allergy", "intolerance")
	vsAllergyCategory        = vs(hl7VS+"allergy-intolerance-category", hl7CS+"allergy-intolerance-category", "food", "medication", "environment", "biologic")
	vsAllergyCriticality     = vs(hl7VS+"allergy-intolerance-criticality", hl7CS+"allergy-intolerance-criticality", "low", "high", "unable-to-assess")
	vsReactionSeverity       = vs(hl7VS+"reaction-event-severity", hl7CS+"reaction-event-severity", "mild", "moderate", "severe")
	vsMedStatementStatus     = vs(hl7VS+"medication-statement-status", hl7CS+"CodeSystem/medication-statement-status", "active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown", "not-taken")
	vsMedRequestStatus       = vs(hl7VS+"medicationrequest-status", hl7CS+"CodeSystem/medicationrequest-status", "active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown")
	vsMedRequestIntent       = vs(hl7VS+"medicationrequest-intent", hl7CS+"CodeSystem/medicationrequest-intent", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	vsRequestPriority        = vs(hl7VS+"request-priority", hl7CS+"request-priority", "routine", "urgent", "asap", "stat")
	vsMedicationStatus       = vs(hl7VS+"medication-status", hl7CS+"CodeSystem/medication-status", "active", "inactive", "entered-in-error")
	vsObservationStatus      = vs(hl7VS+"observation-status", hl7CS+"observation-status", "registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown")
	vsQuantityComparator     = vs(hl7VS+"quantity-comparator", hl7CS+"quantity-comparator", "<", "<=", ">=", ">")
	vsEncounterStatus        = vs(hl7VS+"encounter-status", hl7CS+"encounter-status", "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown")
	vsEncounterLocStatus     = vs(hl7VS+"encounter-location-status", hl7CS+"encounter-location-status", "planned", "active", "reserved", "completed")
	vsEventStatus            = vs(hl7VS+"event-status", hl7CS+"event-status", "preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown")
	vsFlagStatus             = vs(hl7VS+"flag-status", hl7CS+"flag-status", "active", "inactive", "entered-in-error")
	vsImmunizationStatus     = vs(hl7VS+"immunization-status", hl7CS+"event-status", "completed", "entered-in-error", "not-done")
	vsRequestStatus          = vs(hl7VS+"request-status", hl7CS+"request-status", "draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
	vsRequestIntent          = vs(hl7VS+"request-intent", hl7CS+"request-intent", "proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	vsDiagnosticReportStatus = vs(hl7VS+"diagnostic-report-status", hl7CS+"diagnostic-report-status", "registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled", "entered-in-error", "unknown")
	vsSpecimenStatus         = vs(hl7VS+"specimen-status", hl7CS+"specimen-status", "available", "unavailable", "unsatisfactory", "entered-in-error")
	vsListStatus             = vs(hl7VS+"list-status", hl7CS+"list-status", "current", "retired", "entered-in-error")
	vsListMode               = vs(hl7VS+"list-mode", hl7CS+"list-mode", "working", "snapshot", "changes")
	vsConsentState           = vs(hl7VS+"consent-state-codes", hl7CS+"consent-state-codes", "draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
	vsConsentProvisionType   = vs(hl7VS+"consent-provision-type", hl7CS+"consent-provision-type", "deny", "permit")
	vsConsentDataMeaning     = vs(hl7VS+"consent-data-meaning", hl7CS+"consent-data-meaning", "instance", "related", "dependents", "authoredby")
	vsAuditEventAction       = vs(hl7VS+"audit-event-action", hl7CS+"audit-event-action", "C", "R", "U", "D", "E")
	vsAuditEventOutcome      = vs(hl7VS+"audit-event-outcome", hl7CS+"audit-event-outcome", "0", "4", "8", "12")
	vsNetworkType            = vs(hl7VS+"network-type", hl7CS+"network-type", "1", "2", "3", "4", "5")
	vsIssueSeverity          = vs(hl7VS+"issue-severity", hl7CS+"issue-severity", "fatal", "error", "warning", "information")
	vsIssueType              = vs(hl7VS+"issue-type", hl7CS+"issue-type", "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational")
	vsBundleType             = vs(hl7VS+"bundle-type", hl7CS+"bundle-type", "document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection")
	vsSearchEntryMode        = vs(hl7VS+"search-entry-mode", hl7CS+"search-entry-mode", "match", "include", "outcome")
	vsHTTPVerb               = vs(hl7VS+"http-verb", hl7CS+"http-verb", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")

	// list-empty-reason is a preferred binding in R4 (UK Core binds its
	// UKCore-ListEmptyReasonCode, the base codes and no-content-recorded);
	// gpgate uses only these, so a coding in their systems must carry one
	// of their codes.
	vsListEmptyReason = vs(hl7VS+"list-empty-reason", fhir.ListEmptyReasonSystem, "nilknown", "notasked", "withheld", "unavailable", "notstarted", "closed").
				include(fhir.UKCoreListEmptyReasonSystem, "no-content-recorded")

	// UKCore-NHSNumberVerificationStatus (required): England and Wales code
	// systems and the NullFlavor NI.
	vsNHSNumberVerificationStatus = vs("https://fhir.hl7.org.uk/ValueSet/UKCore-NHSNumberVerificationStatus",
		fhir.NHSNumberVerificationSystem, "01", "02", "03", "04", "05", "06", "07", "08").
		include("https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusWales", "nn", "01", "02", "03", "04", "05", "06", "07", "08").
		include(thoCS+"v3-NullFlavor", "NI")

	// UKCore-ListWarningCode (extensible in UK Core; gpgate only ever uses
	// the UK Core code system, so its codes are checked).
	vsListWarningCode = vs("https://fhir.hl7.org.uk/ValueSet/UKCore-ListWarningCode",
		fhir.ListWarningCodeSystem, "confidential-items", "data-in-transit", "data-awaiting-filing")
)
