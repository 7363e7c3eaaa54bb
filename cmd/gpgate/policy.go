package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/rest"
)

// sharing wires package consent into the request path: the agreement
// decision before the fetch (rest.Authorizer), consent to share, consent to
// view and redaction after it (rest.RecordPolicy), consent-to-view records
// (rest.ConsentRecorder) and patient-context token narrowing (smart.Narrower).
// Agreements and consents are re-read on every request, so a suspension or
// a new dissent takes effect on the next one.
type sharing struct {
	store    *consent.BoltStore
	consents *consent.Consents
	redactor *consent.Redactor
	now      func() time.Time
	log      *slog.Logger
}

func newSharing(st *consent.BoltStore, practiceOf func(fhir.NHSNumber) (string, error), resolve func(string) (fhir.NHSNumber, error), now func() time.Time, log *slog.Logger) *sharing {
	return &sharing{
		store: st,
		consents: &consent.Consents{Store: st, Agreements: st, Now: now, Logger: log,
			PracticeOf: func(_ context.Context, n fhir.NHSNumber) (string, error) { return practiceOf(n) },
			ResolveNHS: func(_ context.Context, id string) (fhir.NHSNumber, error) { return resolve(id) }},
		redactor: consent.NewRedactor(consent.DefaultExclusions(), 0),
		now:      now,
		log:      log,
	}
}

func (s *sharing) input(ctx context.Context, p *fhir.Principal, req *fhir.Request, practice string) (consent.Input, error) {
	in := consent.Input{Principal: p, Request: req, Practice: practice, Now: s.now()}
	if practice != "" {
		ags, err := s.store.ForProvider(ctx, practice)
		if err != nil {
			return in, err
		}
		in.Agreements = ags
	}
	if p != nil && p.ConsentRef != "" {
		c, err := s.store.GetConsent(ctx, p.ConsentRef)
		if err == nil {
			in.Consent = c
		}
	}
	return in, nil
}

// Authorize is the pre-fetch decision: it never depends on whether the
// patient exists.
func (s *sharing) Authorize(ctx context.Context, p *fhir.Principal, req *fhir.Request, meta rest.RecordMeta) (fhir.Decision, error) {
	in, err := s.input(ctx, p, req, meta.Practice)
	if err != nil {
		return fhir.Decision{}, err
	}
	return consent.DecideOrganisation(in), nil
}

// Apply is the post-fetch decision and redaction.
func (s *sharing) Apply(ctx context.Context, p *fhir.Principal, req *fhir.Request, rec *fhir.Record, dec fhir.Decision) (*fhir.Record, fhir.Decision, error) {
	in, err := s.input(ctx, p, req, rec.Practice)
	if err != nil {
		return nil, dec, err
	}
	in.Record = rec
	d := consent.DecidePatient(in)
	if !d.Permit {
		return nil, d, nil
	}
	d.Areas &= dec.Areas
	d.BreakGlass = d.Rule == consent.RulePermitBreakGlass
	out, _ := s.redactor.Redact(rec, d.Areas)
	return out, d, nil
}

// RecordConsent serves POST /Consent.
func (s *sharing) RecordConsent(ctx context.Context, p *fhir.Principal, body []byte) (*fhir.Resource, rest.ConsentFacts, error) {
	req, err := consent.ParseConsentBody(body)
	if err != nil {
		return nil, rest.ConsentFacts{}, err
	}
	facts := rest.ConsentFacts{PatientID: req.PatientID, NHS: req.NHS, BreakGlass: req.BreakGlass, Reason: req.Reason}
	r, err := s.consents.RecordConsent(ctx, p, req)
	return r, facts, err
}

// Narrow issues patient-context tokens only against a live consent to view,
// with scopes cut down to what the agreement shares.
func (s *sharing) Narrow(ctx context.Context, client *smart.Client, b2b *smart.B2B, requested []smart.Scope) ([]smart.Scope, string, error) {
	if b2b == nil || len(b2b.ConsentReference) == 0 {
		return nil, "", &smart.OAuthError{Status: 400, Code: "invalid_grant", Description: "a patient-context token needs consent_reference"}
	}
	patientID, areas, _, err := s.consents.NarrowAreas(ctx, client.ODS, b2b.ConsentReference[0], s.now())
	if err != nil {
		return nil, "", err
	}
	allowed, err := smart.ParseScopes(joinScopes(consent.ScopesForAreas(areas)))
	if err != nil {
		return nil, "", err
	}
	var granted []smart.Scope
	for _, a := range allowed {
		for _, r := range requested {
			switch {
			case r.Covers(a):
				granted = appendScope(granted, a)
			case a.Covers(r):
				granted = appendScope(granted, r)
			}
		}
	}
	if len(granted) == 0 {
		return nil, "", &smart.OAuthError{Status: 400, Code: "invalid_scope", Description: "none of the requested scopes is shared by the agreement"}
	}
	return granted, patientID, nil
}

func appendScope(l []smart.Scope, s smart.Scope) []smart.Scope {
	for _, x := range l {
		if x.String() == s.String() {
			return l
		}
	}
	return append(l, s)
}

// ReadConsent returns a consent to view to the organisation that recorded it.
func (s *sharing) ReadConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	c, err := s.store.GetConsent(ctx, id)
	if err != nil || p == nil || c.Organisation != p.ConsumerODS || (p.PatientID != "" && p.PatientID != c.PatientID) {
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no Consent with that id")
	}
	return fhir.NewResource(c.Resource)
}

// The admin API over agreements (rest.AgreementAdmin).

func (s *sharing) ListAgreements(ctx context.Context) ([]byte, error) {
	l, err := s.store.List(ctx)
	if err != nil {
		return nil, err
	}
	return consent.AgreementListJSON(l), nil
}

func (s *sharing) GetAgreement(ctx context.Context, id string) ([]byte, error) {
	a, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return consent.AgreementJSON(a), nil
}

func (s *sharing) AddAgreement(ctx context.Context, body []byte) ([]byte, error) {
	a, err := consent.ParseAgreement(body)
	if err != nil {
		return nil, err
	}
	if a, err = s.store.Add(ctx, a); err != nil {
		return nil, err
	}
	return consent.AgreementJSON(a), nil
}

func (s *sharing) SetAgreementStatus(ctx context.Context, id, action string) ([]byte, error) {
	f := map[string]func(context.Context, string) (consent.Agreement, error){
		"suspend": s.store.Suspend, "end": s.store.End, "activate": s.store.Activate}[action]
	a, err := f(ctx, id)
	if err != nil {
		return nil, err
	}
	return consent.AgreementJSON(a), nil
}
