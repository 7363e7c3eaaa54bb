package viewer

import (
	"context"

	"github.com/gpgate/gpgate/fhir"
)

// Core is the record-access core as the viewer uses it: the same core, the
// same decisions and the same audit as the FHIR API (fhir/access). The
// viewer authenticates the clinician and builds the *fhir.Principal; the
// core decides and audits every call. Errors are *fhir.Error codes
// (NO_ORGANISATION_CONSENT, NO_PATIENT_CONSENT, INVALID_NHS_NUMBER, ...).
type Core interface {
	// FindPatient returns the patient's demographics: NO_ORGANISATION_CONSENT
	// when the caller's organisation has no agreement (the same answer
	// whether or not the patient exists), NO_PATIENT_CONSENT when the
	// patient dissents from sharing.
	FindPatient(ctx context.Context, p *fhir.Principal, nhs fhir.NHSNumber) (*Demographics, error)
	// SharingOptions says what the caller's organisation's agreement shares
	// for the patient and whether it allows break-glass.
	SharingOptions(ctx context.Context, p *fhir.Principal, patientID string) (*Sharing, error)
	// RecordConsent records consent to view (or a break-glass) and returns
	// the consent id. The break-glass reason goes to the audit only.
	RecordConsent(ctx context.Context, p *fhir.Principal, req ConsentRequest) (string, error)
	// PatientContext returns the principal a patient-context token bound to
	// the consent would carry (patient, consent, narrowed scopes).
	PatientContext(ctx context.Context, p *fhir.Principal, consentID string) (*fhir.Principal, error)
	// RevokeConsent ends a consent to view the viewer recorded: every later
	// PatientContext or Everything bound to it is refused at once.
	RevokeConsent(ctx context.Context, p *fhir.Principal, consentID string) error
	// Everything returns the patient's record as the decision allows it:
	// redacted resources, warnings (confidential-items, AREA_UNAVAILABLE)
	// and the areas permitted.
	Everything(ctx context.Context, p *fhir.Principal, patientID string) (*Result, error)
}

// Demographics is what FindPatient returns: the Patient and, when the
// record has them, the registered practice and usual GP.
type Demographics struct {
	Patient  *fhir.Resource
	Practice *fhir.Resource // Organization, may be nil
	GP       *fhir.Resource // Practitioner, may be nil
}

// Sharing is what an agreement shares with the caller's organisation.
type Sharing struct {
	// Areas shared; fhir.AreaSummary means the summary view of the summary
	// areas (not those whole areas unless they are listed too).
	Areas      fhir.Areas
	BreakGlass bool // break-glass allowed
}

// ConsentRequest is a clinician's record of consent to view, or a
// break-glass (with a reason).
type ConsentRequest struct {
	PatientID  string
	NHS        fhir.NHSNumber
	Clinician  string // SDS user id
	BreakGlass bool
	Reason     string // break-glass only; kept in the audit alone
}

// Result is one decided, redacted answer.
type Result struct {
	Resources []*fhir.Resource
	Warnings  []fhir.Issue
	// Areas the decision permits; fhir.AreaSummary as in Sharing.
	Areas fhir.Areas
}
