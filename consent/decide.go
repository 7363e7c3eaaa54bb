package consent

import (
	"encoding/json"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Rule ids: every decision names the rule that made it, for the
// OperationOutcome diagnostics and the audit. They are stable API.
// Organisation rules never depend on the patient, so a denial by one of
// them reads the same whether the patient exists or not.
const (
	// organisation (pre-fetch): NO_ORGANISATION_CONSENT
	RuleNoPrincipal          = "no-principal" // ACCESS_DENIED
	RuleNoArea               = "no-area-requested"
	RuleNoAgreement          = "no-agreement"
	RuleAgreementNotActive   = "agreement-not-active" // draft
	RuleAgreementSuspended   = "agreement-suspended"
	RuleAgreementEnded       = "agreement-ended"
	RuleAgreementNotStarted  = "agreement-not-started"
	RuleAgreementExpired     = "agreement-expired"
	RulePurposeNotAllowed    = "purpose-not-allowed"
	RuleBreakGlassNotAllowed = "break-glass-not-allowed"
	RuleAreaNotShared        = "area-not-shared"
	// patient (post-fetch): NO_PATIENT_CONSENT
	RuleNoRecord            = "no-record" // internal misuse: DecidePatient without a record
	RulePatientDissent      = "patient-dissent"
	RuleDefaultDissent      = "default-dissent" // no coded entry, agreement default is dissent
	RuleNoConsentToView     = "no-consent-to-view"
	RuleConsentExpired      = "consent-expired"
	RuleConsentOtherPatient = "consent-other-patient"
	RuleConsentOtherOrg     = "consent-other-organisation"
	RuleConsentOtherClient  = "consent-other-client"    // recorded by another consumer system
	RuleConsentOtherClin    = "consent-other-clinician" // recorded for another clinician
	RuleConsentRevoked      = "consent-revoked"
	RuleTokenOtherPatient   = "token-other-patient"
	// permits
	RulePermitOrganisation = "permit-organisation" // pre-fetch: agreement allows
	RulePermit             = "permit"
	RulePermitDemographics = "permit-demographics" // system token, demographics only
	RulePermitBreakGlass   = "permit-break-glass"
)

// Input is everything a decision needs; Decide reads nothing else.
type Input struct {
	Principal  *fhir.Principal
	Request    *fhir.Request // Areas wanted, PatientID
	Practice   string        // provider practice ODS code of the patient
	Agreements []Agreement   // of Practice (AgreementStore.ForProvider)
	// Record is the fetched record (nil before the fetch). Its Sharing is
	// used when the adapter set it; otherwise SharingFromRecord scans it.
	Record *fhir.Record
	// Consent is the consent to view named by Principal.ConsentRef (nil when
	// the principal names none or it was not found).
	Consent *ViewConsent
	Now     time.Time
}

func deny(code fhir.Code, rule string) fhir.Decision {
	return fhir.Decision{Code: code, Rule: rule}
}

// orgDecision is the pre-fetch part: the agreements in force for the caller.
func orgDecision(in *Input) (fhir.Decision, []Agreement) {
	p := in.Principal
	if p == nil || p.ConsumerODS == "" {
		return deny(fhir.CodeAccessDenied, RuleNoPrincipal), nil
	}
	if in.Request == nil || in.Request.Areas == 0 {
		return deny(fhir.CodeNoOrganisationConsent, RuleNoArea), nil
	}
	purpose := NormalizePurpose(p.PurposeOfUse)
	breakGlass := p.BreakGlass || purpose == PurposeEmergency || (in.Consent != nil && in.Consent.BreakGlass)

	// Narrow step by step, remembering why the last candidates fell out,
	// so the rule named is the most specific one.
	var cands []Agreement
	for i := range in.Agreements {
		a := &in.Agreements[i]
		if a.Provider == in.Practice && in.Practice != "" && a.covers(p.ConsumerODS) {
			cands = append(cands, *a)
		}
	}
	if len(cands) == 0 {
		return deny(fhir.CodeNoOrganisationConsent, RuleNoAgreement), nil
	}
	active := cands[:0:0]
	rule := ""
	for _, a := range cands {
		switch a.Status {
		case StatusActive:
			active = append(active, a)
		case StatusSuspended:
			rule = RuleAgreementSuspended
		case StatusEnded:
			if rule == "" || rule == RuleAgreementNotActive {
				rule = RuleAgreementEnded
			}
		default:
			if rule == "" {
				rule = RuleAgreementNotActive
			}
		}
	}
	if len(active) == 0 {
		return deny(fhir.CodeNoOrganisationConsent, rule), nil
	}
	current := active[:0:0]
	rule = RuleAgreementExpired
	for _, a := range active {
		if a.inPeriod(in.Now) {
			current = append(current, a)
		} else if !a.Start.IsZero() && in.Now.Before(a.Start) {
			rule = RuleAgreementNotStarted
		}
	}
	if len(current) == 0 {
		return deny(fhir.CodeNoOrganisationConsent, rule), nil
	}
	// Purpose: break-glass is emergency direct care, allowed by an agreement
	// for direct care (TREAT) or emergency care (ETREAT) that says so.
	purposed := current[:0:0]
	for _, a := range current {
		ok := a.allowsPurpose(purpose)
		if breakGlass {
			ok = a.allowsPurpose(PurposeTreat) || a.allowsPurpose(PurposeEmergency)
		}
		if ok {
			purposed = append(purposed, a)
		}
	}
	if len(purposed) == 0 {
		return deny(fhir.CodeNoOrganisationConsent, RulePurposeNotAllowed), nil
	}
	if breakGlass {
		bg := purposed[:0:0]
		for _, a := range purposed {
			if a.BreakGlass {
				bg = append(bg, a)
			}
		}
		if len(bg) == 0 {
			return deny(fhir.CodeNoOrganisationConsent, RuleBreakGlassNotAllowed), nil
		}
		purposed = bg
	}
	// An area shared whole by any agreement in force is shared whole; one
	// shared only through a "summary" agreement is the summary view.
	var full, summary fhir.Areas
	for _, a := range purposed {
		f, s := a.shares()
		full |= f
		summary |= s
	}
	summary &^= full
	permitted := in.Request.Areas & (full | summary)
	if permitted == 0 {
		return deny(fhir.CodeNoOrganisationConsent, RuleAreaNotShared), nil
	}
	return fhir.Decision{Permit: true, Areas: permitted, Summary: permitted & summary, Rule: RulePermitOrganisation}, purposed
}

// DecideOrganisation is the pre-fetch decision: is there an active agreement,
// in its period, between the patient's practice and the caller's
// organisation, for the purpose and (with break-glass) allowing it, sharing
// any of the requested areas? It never looks at the patient, so a denial is
// identical whether the patient exists or not. A permit carries the
// requested areas the agreements share (always with demographics) and rule
// permit-organisation; it is not yet a permit to return data: call
// DecidePatient once the record is fetched.
func DecideOrganisation(in Input) fhir.Decision {
	d, _ := orgDecision(&in)
	return d
}

// DecidePatient is the full decision after the record is fetched: the
// organisation rules again (cheap, and the caller cannot skip them), then
// consent to share (coded dissent wins over everything, break-glass
// included; with no coded entry the agreements' defaults apply), then
// consent to view for anything beyond demographics, then break-glass.
func DecidePatient(in Input) fhir.Decision {
	d, ags := orgDecision(&in)
	if !d.Permit {
		return d
	}
	if in.Record == nil {
		return deny(fhir.CodeInternal, RuleNoRecord)
	}
	p := in.Principal
	sharing := in.Record.Sharing
	if sharing == fhir.SharingUnknown {
		sharing = in.Record.DerivedSharing(SharingFromRecord) // once per record value
	}
	switch sharing {
	case fhir.SharingDissent:
		return deny(fhir.CodeNoPatientConsent, RulePatientDissent)
	case fhir.SharingUnknown:
		if !impliedByDefault(ags, in.Record, in.Now) {
			return deny(fhir.CodeNoPatientConsent, RuleDefaultDissent)
		}
	}
	patientID := in.Request.PatientID
	if patientID == "" {
		patientID = in.Record.PatientID
	}
	if p.PatientID != "" && p.PatientID != patientID {
		return deny(fhir.CodeNoPatientConsent, RuleTokenOtherPatient)
	}
	clinical := d.Areas &^ fhir.AreaDemographics
	if clinical == 0 {
		// Demographics only: a system token may identify the patient.
		if p.ConsentRef == "" {
			return fhir.Decision{Permit: true, Areas: d.Areas, Summary: d.Summary, Rule: RulePermitDemographics}
		}
	}
	if rule := checkConsent(in.Consent, p, patientID, in.Now); rule != "" {
		return deny(fhir.CodeNoPatientConsent, rule)
	}
	rule := RulePermit
	if p.BreakGlass || in.Consent.BreakGlass || NormalizePurpose(p.PurposeOfUse) == PurposeEmergency {
		rule = RulePermitBreakGlass // orgDecision already required an agreement allowing it
	}
	return fhir.Decision{Permit: true, Areas: d.Areas, Summary: d.Summary, Rule: rule, BreakGlass: rule == RulePermitBreakGlass}
}

// checkConsent returns the rule a consent to view fails for the principal
// and patient, or "": a consent binds one patient, one consumer
// organisation, the consumer system (client) that recorded it and the
// clinician it names, for its period, until revoked.
func checkConsent(c *ViewConsent, p *fhir.Principal, patientID string, now time.Time) string {
	switch {
	case p.ConsentRef == "" || c == nil || c.ID != p.ConsentRef:
		return RuleNoConsentToView
	case c.PatientID != patientID:
		return RuleConsentOtherPatient
	default:
		return consentBinding(c, p.ConsumerODS, p.ClientID, p.Practitioner, now)
	}
}

// consentBinding checks who may act on a consent, and that it is live.
func consentBinding(c *ViewConsent, consumerODS, clientID, clinician string, now time.Time) string {
	switch {
	case c.Organisation != consumerODS:
		return RuleConsentOtherOrg
	case c.ClientID != clientID:
		return RuleConsentOtherClient
	case c.Clinician != clinician:
		return RuleConsentOtherClin
	case c.Status == StatusRevoked:
		return RuleConsentRevoked
	case !c.Live(now):
		return RuleConsentExpired
	}
	return ""
}

// Decide is DecideOrganisation before the fetch (in.Record nil) and
// DecidePatient after it.
func Decide(in Input) fhir.Decision {
	if in.Record == nil {
		return DecideOrganisation(in)
	}
	return DecidePatient(in)
}

// CarePlanCodes are codes whose presence marks a care plan for the
// Over75WithCarePlan default rule, besides a CarePlan resource. Empty by
// default: no care-plan code was verified against public material here, so
// a region that relies on coded care plans must list its codes.
var CarePlanCodes []fhir.Coding

// impliedByDefault applies the agreements' defaults to a record without a
// coded consent-to-share entry: implied if any agreement in force implies it.
func impliedByDefault(ags []Agreement, rec *fhir.Record, now time.Time) bool {
	var facts *recordFacts
	for i := range ags {
		a := &ags[i]
		if a.DefaultSharing != DefaultDissent {
			return true
		}
		r := a.DefaultRules
		if !r.Under16 && !r.Over75WithCarePlan && !r.LongTermConditions {
			continue
		}
		if facts == nil {
			facts = factsOf(rec, now)
		}
		if r.Under16 && facts.age >= 0 && facts.age < 16 ||
			r.Over75WithCarePlan && facts.age >= 75 && facts.carePlan ||
			r.LongTermConditions && facts.ltc {
			return true
		}
	}
	return false
}

type recordFacts struct {
	age      int // whole years, -1 unknown
	carePlan bool
	ltc      bool
}

func factsOf(rec *fhir.Record, now time.Time) *recordFacts {
	f := &recordFacts{age: -1}
	for _, r := range rec.Resources {
		switch r.Type {
		case "Patient":
			var pt struct {
				BirthDate string `json:"birthDate"`
			}
			if json.Unmarshal(r.JSON, &pt) == nil && pt.BirthDate != "" {
				if d, err := fhir.ParseDate(pt.BirthDate); err == nil {
					f.age = ageAt(d.Start, now)
				}
			}
		case "CarePlan":
			f.carePlan = true
		case "Condition":
			if r.Ix.Area == fhir.AreaProblems && (r.Ix.ClinicalStatus == "active" || r.Ix.ClinicalStatus == "recurrence" || r.Ix.ClinicalStatus == "relapse") {
				f.ltc = true
			}
		}
		for _, c := range CarePlanCodes {
			if fhir.HasCoding(r.Ix.Code, c.System, c.Code) {
				f.carePlan = true
			}
		}
	}
	return f
}

// ageAt is the age in whole years on now of someone born on birth.
func ageAt(birth, now time.Time) int {
	by, bm, bd := birth.UTC().Date()
	ny, nm, nd := now.UTC().Date()
	age := ny - by
	if nm < bm || nm == bm && nd < bd {
		age--
	}
	return age
}
