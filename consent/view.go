package consent

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gpgate/gpgate/fhir"
)

// The consent to view's wire format and stored shape are domain types of
// package fhir; these names keep consent's API.
type (
	Period         = fhir.Period
	ConsentRequest = fhir.ConsentRequest
	ViewConsent    = fhir.ViewConsent
)

const (
	MaxConsentPeriod    = fhir.MaxConsentPeriod
	ExtBreakGlassReason = fhir.ExtBreakGlassReason
	MaxReasonLen        = fhir.MaxReasonLen
	SDSUserSystem       = fhir.SDSUserSystem
	ConsentPolicyURI    = fhir.ConsentPolicyURI
)

// ParseConsentBody is fhir.ParseConsentBody.
func ParseConsentBody(body []byte) (ConsentRequest, error) { return fhir.ParseConsentBody(body) }

func consentResource(c *ViewConsent) (*fhir.Resource, error) { return fhir.ConsentResource(c) }

// Consents records consents to view and narrows patient-context tokens.
type Consents struct {
	Store      ConsentStore
	Agreements AgreementStore
	// PracticeOf names the practice of a patient (the patient index). An
	// unknown patient must return an error; it is answered exactly like a
	// practice without an agreement, so nothing reveals existence.
	PracticeOf func(ctx context.Context, nhs fhir.NHSNumber) (string, error)
	// ResolveNHS maps a patient id to its NHS number when the request did
	// not carry one (optional).
	ResolveNHS func(ctx context.Context, patientID string) (fhir.NHSNumber, error)
	Now        func() time.Time
	Logger     *slog.Logger
}

func (s *Consents) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// organisationAllows runs the agreement rules for the consent's caller and
// patient: the areas the agreements share, or a NO_ORGANISATION_CONSENT error.
func (s *Consents) organisationAllows(ctx context.Context, consumer string, nhs fhir.NHSNumber, breakGlass bool, now time.Time) (fhir.Decision, error) {
	if s.Agreements == nil || s.PracticeOf == nil {
		return fhir.Decision{}, fhir.Internal(errors.New("consent: Consents needs Agreements and PracticeOf"))
	}
	practice, err := s.PracticeOf(ctx, nhs)
	if err != nil || practice == "" {
		return fhir.Decision{}, fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", RuleNoAgreement)
	}
	ags, err := s.Agreements.ForProvider(ctx, practice)
	if err != nil {
		return fhir.Decision{}, err
	}
	p := &fhir.Principal{ConsumerODS: consumer, BreakGlass: breakGlass}
	d := DecideOrganisation(Input{Principal: p, Request: &fhir.Request{Areas: fhir.AllAreas}, Practice: practice, Agreements: ags, Now: now})
	if !d.Permit {
		return fhir.Decision{}, fhir.Errorf(d.Code, "%s", d.Rule)
	}
	return d, nil
}

// RecordConsent records a consent to view for the caller p (a system token
// of the consumer organisation) and returns the UK Core Consent resource.
// The organisation must be the caller's; the period at most 24 h and not in
// the past; a break-glass needs a reason and an agreement allowing
// break-glass. An agreement must cover the caller and the patient's practice
// (else NO_ORGANISATION_CONSENT, whether or not the patient exists).
// req.Reason is not stored: the caller puts it in the audit entry.
func (s *Consents) RecordConsent(ctx context.Context, p *fhir.Principal, req ConsentRequest) (*fhir.Resource, error) {
	if p == nil || p.ConsumerODS == "" {
		return nil, fhir.Errorf(fhir.CodeAccessDenied, "a consumer organisation is required")
	}
	now := s.now().UTC().Truncate(time.Second)
	if req.Organisation == "" {
		req.Organisation = p.ConsumerODS
	}
	if req.Organisation != p.ConsumerODS {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the consent's organization must be the caller's organisation").At("Consent.organization")
	}
	if req.Clinician == "" {
		req.Clinician = p.Practitioner
	}
	if p.Practitioner != "" && req.Clinician != p.Practitioner {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the consent's performer must be the clinician the access token names").At("Consent.performer")
	}
	if err := validateRequest(&req, now); err != nil {
		return nil, err
	}
	if req.NHS == "" && s.ResolveNHS != nil {
		n, err := s.ResolveNHS(ctx, req.PatientID)
		if err != nil {
			return nil, fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", RuleNoAgreement)
		}
		req.NHS = n
	}
	if req.NHS != "" && fhir.PatientID(req.NHS) != req.PatientID {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "patient reference and NHS number name different patients").At("Consent.patient")
	}
	if _, err := s.organisationAllows(ctx, p.ConsumerODS, req.NHS, req.BreakGlass, now); err != nil {
		return nil, err
	}
	c := &ViewConsent{ID: newID(), PatientID: req.PatientID, NHS: req.NHS, Clinician: req.Clinician,
		Organisation: req.Organisation, ClientID: p.ClientID, Start: req.Period.Start, End: req.Period.End,
		BreakGlass: req.BreakGlass, Status: "active", Recorded: now}
	res, err := consentResource(c)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	c.Resource = res.JSON
	if err := s.Store.PutConsent(ctx, c); err != nil {
		return nil, err
	}
	if s.Logger != nil {
		s.Logger.Info("consent: consent to view recorded", "consent", c.ID, "consumer", c.Organisation, "break_glass", c.BreakGlass)
	}
	return res, nil
}

func validateRequest(req *ConsentRequest, now time.Time) error {
	bad := func(expr, format string, args ...any) error {
		return fhir.Errorf(fhir.CodeInvalidParameter, format, args...).At(expr)
	}
	if req.PatientID == "" && req.NHS != "" {
		req.PatientID = fhir.PatientID(req.NHS)
	}
	if !fhir.ValidID(req.PatientID) {
		return bad("Consent.patient", "the consent needs the patient (reference or NHS number)")
	}
	if !fhir.ValidClinician(req.Clinician) {
		return bad("Consent.performer", "the consent needs the clinician's SDS user id")
	}
	if req.Period.Start.IsZero() {
		req.Period.Start = now
	}
	if req.Period.End.IsZero() {
		req.Period.End = req.Period.Start.Add(MaxConsentPeriod)
	}
	req.Period.Start, req.Period.End = req.Period.Start.UTC(), req.Period.End.UTC()
	switch {
	case !req.Period.End.After(req.Period.Start):
		return bad("Consent.provision.period", "the period must end after it starts")
	case req.Period.End.Sub(req.Period.Start) > MaxConsentPeriod:
		return bad("Consent.provision.period", "a consent to view lasts at most 24 hours")
	case !req.Period.End.After(now):
		return bad("Consent.provision.period", "the period has already ended")
	case req.Period.Start.After(now.Add(time.Hour)):
		return bad("Consent.provision.period", "the period must start within the hour")
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.BreakGlass {
		if req.Reason == "" {
			return bad("Consent.extension", "a break-glass needs a reason (extension %s)", ExtBreakGlassReason)
		}
	} else if req.Reason != "" {
		return bad("Consent.extension", "a reason is only recorded for a break-glass (provision.purpose ETREAT)")
	}
	if utf8.RuneCountInString(req.Reason) > MaxReasonLen || !utf8.ValidString(req.Reason) {
		return bad("Consent.extension", "the break-glass reason is at most %d characters of valid UTF-8", MaxReasonLen)
	}
	return nil
}

// GetConsent returns a recorded consent to view.
func (s *Consents) GetConsent(ctx context.Context, id string) (*ViewConsent, error) {
	if !fhir.ValidID(id) {
		return nil, notFound("Consent", id)
	}
	return s.Store.GetConsent(ctx, id)
}

// StatusRevoked is the status of a revoked consent to view (R4
// Consent.status inactive).
const StatusRevoked = "inactive"

// Grant is what a consent to view lets a patient-context principal see.
type Grant = fhir.ConsentGrant

// NarrowAreas checks a consent_reference for a patient-context principal
// (a token or a viewer session): the consent exists, is live and not
// revoked, was recorded by this consumer system (client) of this
// organisation for this clinician, and the agreements between the
// patient's practice and the organisation (re-read now) are in force and
// allow break-glass where the consent is one. Errors are
// NO_PATIENT_CONSENT or NO_ORGANISATION_CONSENT with the rule id as
// diagnostics.
func (s *Consents) NarrowAreas(ctx context.Context, p *fhir.Principal, consentID string, now time.Time) (Grant, error) {
	if p == nil {
		return Grant{}, fhir.Errorf(fhir.CodeAccessDenied, "%s", RuleNoPrincipal)
	}
	c, err := s.GetConsent(ctx, consentID)
	if err != nil {
		if fhir.AsError(err).Code == fhir.CodeReferenceNotFound {
			return Grant{}, fhir.Errorf(fhir.CodeNoPatientConsent, "%s", RuleNoConsentToView)
		}
		return Grant{}, err
	}
	if rule := consentBinding(c, p.ConsumerODS, p.ClientID, p.Practitioner, now); rule != "" {
		return Grant{}, fhir.Errorf(fhir.CodeNoPatientConsent, "%s", rule)
	}
	nhs := c.NHS
	if nhs == "" && s.ResolveNHS != nil {
		if nhs, err = s.ResolveNHS(ctx, c.PatientID); err != nil {
			return Grant{}, fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", RuleNoAgreement)
		}
	}
	d, err := s.organisationAllows(ctx, p.ConsumerODS, nhs, c.BreakGlass, now)
	if err != nil {
		return Grant{}, err
	}
	return Grant{PatientID: c.PatientID, Areas: d.Areas, Summary: d.Summary, BreakGlass: c.BreakGlass}, nil
}

// RevokeConsent revokes a consent to view. Only the consumer system that
// recorded it may (anyone else: NO_RECORD_FOUND, as for a consent that does
// not exist). Tokens and sessions bound to it stop working at once: every
// request re-reads the consent. Revoking twice is not an error.
func (s *Consents) RevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*ViewConsent, error) {
	c, err := s.GetConsent(ctx, id)
	// The recording system may revoke; when the caller names a clinician
	// (a viewer session, a clinician's token), only the consent's own.
	if err != nil || p == nil || c.Organisation != p.ConsumerODS || c.ClientID != p.ClientID || (p.PatientID != "" && p.PatientID != c.PatientID) ||
		(p.Practitioner != "" && p.Practitioner != c.Clinician) {
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no Consent with that id")
	}
	if c.Status == StatusRevoked {
		return c, nil
	}
	c.Status = StatusRevoked
	res, err := consentResource(c)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	c.Resource = res.JSON
	if err := s.Store.PutConsent(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}
