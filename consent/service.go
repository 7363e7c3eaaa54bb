package consent

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Service is the sharing policy as the record-access core uses it: the
// agreement decision before the fetch (Organisation), consent to share and
// consent to view after it (Patient), consents to view (record, read,
// revoke, and the grant a patient-context principal gets from one) and the
// agreements admin API. Agreements come from an AgreementCache (a
// suspension made through Service takes effect on the next request);
// consents to view are re-read on every request, so a revocation does too.
type Service struct {
	agreements *AgreementCache
	consents   *Consents
	now        func() time.Time
	log        *slog.Logger
}

// ServiceOptions wires a Service.
type ServiceOptions struct {
	Agreements AgreementStore
	Consents   ConsentStore
	// PracticeOf names the practice of a patient; an unknown patient is an
	// error (answered as "no agreement", so nothing reveals existence).
	PracticeOf func(ctx context.Context, nhs fhir.NHSNumber) (string, error)
	// ResolveNHS maps a patient id to its NHS number.
	ResolveNHS func(ctx context.Context, patientID string) (fhir.NHSNumber, error)
	// CacheTTL bounds how long an agreement change made outside this
	// Service (another node, the CLI) takes to be seen; default 5 s.
	CacheTTL time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// NewService returns the policy service. Every collaborator is required:
// a policy that cannot read agreements or consents must not be wired.
func NewService(o ServiceOptions) (*Service, error) {
	if o.Agreements == nil || o.Consents == nil || o.PracticeOf == nil || o.ResolveNHS == nil {
		return nil, errors.New("consent: NewService needs Agreements, Consents, PracticeOf and ResolveNHS")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ac := NewAgreementCache(o.Agreements, o.CacheTTL, o.Now)
	return &Service{
		agreements: ac,
		consents: &Consents{Store: o.Consents, Agreements: ac, Now: o.Now, Logger: o.Logger,
			PracticeOf: o.PracticeOf, ResolveNHS: o.ResolveNHS},
		now: o.Now,
		log: o.Logger,
	}, nil
}

func (s *Service) input(ctx context.Context, p *fhir.Principal, req *fhir.Request, practice string) (Input, error) {
	in := Input{Principal: p, Request: req, Practice: practice, Now: s.now()}
	// The same work whether or not there is a practice: an unknown patient
	// (practice "") costs the lookup a known one does.
	ags, err := s.agreements.ForProvider(ctx, practice)
	if err != nil {
		return in, err
	}
	in.Agreements = ags
	if p != nil && p.ConsentRef != "" && fhir.ValidID(p.ConsentRef) {
		// Both decisions of a request read the token's consent: once.
		c, err := fhir.Memoize(ctx, consentMemo(p.ConsentRef), func() (*ViewConsent, error) {
			return s.consents.Store.GetConsent(ctx, p.ConsentRef)
		})
		if err == nil {
			in.Consent = c
		} else if fhir.AsError(err).Code != fhir.CodeReferenceNotFound {
			return in, err
		}
	}
	return in, nil
}

// consentMemo keys a consent to view in the request memo.
type consentMemo string

// Organisation is the pre-fetch decision (DecideOrganisation): it never
// depends on whether the patient exists.
func (s *Service) Organisation(ctx context.Context, p *fhir.Principal, req *fhir.Request, practice string) (fhir.Decision, error) {
	in, err := s.input(ctx, p, req, practice)
	if err != nil {
		return fhir.Decision{}, err
	}
	return DecideOrganisation(in), nil
}

// Patient is the post-fetch decision (DecidePatient) on the whole record.
func (s *Service) Patient(ctx context.Context, p *fhir.Principal, req *fhir.Request, rec *fhir.Record) (fhir.Decision, error) {
	in, err := s.input(ctx, p, req, rec.Practice)
	if err != nil {
		return fhir.Decision{}, err
	}
	in.Record = rec
	return DecidePatient(in), nil
}

// RecordConsent records a consent to view (Consents.RecordConsent).
func (s *Service) RecordConsent(ctx context.Context, p *fhir.Principal, req fhir.ConsentRequest) (*fhir.Resource, error) {
	return s.consents.RecordConsent(ctx, p, req)
}

// ReadConsent returns a consent to view to the consumer system that recorded
// it (NO_RECORD_FOUND for anyone else, as for an id that does not exist).
func (s *Service) ReadConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	c, err := s.consents.GetConsent(ctx, id)
	if err != nil || p == nil || c.Organisation != p.ConsumerODS || c.ClientID != p.ClientID || (p.PatientID != "" && p.PatientID != c.PatientID) {
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no Consent with that id")
	}
	return fhir.NewResource(c.Resource)
}

// RevokeConsent revokes a consent to view (Consents.RevokeConsent).
func (s *Service) RevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	c, err := s.consents.RevokeConsent(ctx, p, id)
	if err != nil {
		return nil, err
	}
	s.log.Info("consent: consent to view revoked", "consent", c.ID, "consumer", c.Organisation)
	return fhir.NewResource(c.Resource)
}

// ConsentGrant is what a patient-context principal bound to consentID may
// see now (Consents.NarrowAreas).
func (s *Service) ConsentGrant(ctx context.Context, p *fhir.Principal, consentID string) (Grant, error) {
	return s.consents.NarrowAreas(ctx, p, consentID, s.now())
}

// Sharing says what the caller's organisation may see of a patient's
// record under the agreements in force (areas, summary-only areas) and
// whether a break-glass is allowed: for a face that offers the choices
// (the viewer). The answer for an unknown patient is the no-agreement
// refusal.
func (s *Service) Sharing(ctx context.Context, p *fhir.Principal, nhs fhir.NHSNumber) (fhir.Decision, bool, error) {
	if p == nil {
		return fhir.Decision{}, false, fhir.Errorf(fhir.CodeAccessDenied, "%s", RuleNoPrincipal)
	}
	d, err := s.consents.organisationAllows(ctx, p.ConsumerODS, nhs, false, s.now())
	if err != nil {
		return fhir.Decision{}, false, err
	}
	_, bgErr := s.consents.organisationAllows(ctx, p.ConsumerODS, nhs, true, s.now())
	return d, bgErr == nil, nil
}

// Reload drops the cached agreements: the next decision reads them from the
// store (SIGHUP, or after a change made behind the Service's back).
func (s *Service) Reload() { s.agreements.Invalidate() }

// The agreements admin API (JSON, not FHIR).

// ListAgreements answers GET /admin/agreements.
func (s *Service) ListAgreements(ctx context.Context) ([]byte, error) {
	l, err := s.agreements.List(ctx)
	if err != nil {
		return nil, err
	}
	return AgreementListJSON(l), nil
}

// GetAgreement answers GET /admin/agreements/{id}.
func (s *Service) GetAgreement(ctx context.Context, id string) ([]byte, error) {
	a, err := s.agreements.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return AgreementJSON(a), nil
}

// AddAgreement answers POST /admin/agreements.
func (s *Service) AddAgreement(ctx context.Context, body []byte) ([]byte, error) {
	a, err := ParseAgreement(body)
	if err != nil {
		return nil, err
	}
	if a, err = s.agreements.Add(ctx, a); err != nil {
		return nil, err
	}
	return AgreementJSON(a), nil
}

// SetAgreementStatus applies "suspend", "end" or "activate".
func (s *Service) SetAgreementStatus(ctx context.Context, id, action string) ([]byte, error) {
	var f func(context.Context, string) (Agreement, error)
	switch action {
	case "suspend":
		f = s.agreements.Suspend
	case "end":
		f = s.agreements.End
	case "activate":
		f = s.agreements.Activate
	default:
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "action must be suspend, end or activate").At("action")
	}
	a, err := f(ctx, id)
	if err != nil {
		return nil, err
	}
	return AgreementJSON(a), nil
}

// AdminRevokeConsent revokes a consent to view whoever recorded it (the
// record-access core lets only a sharing administrator call it). Unknown
// ids are NO_RECORD_FOUND; revoking twice is not an error.
func (s *Service) AdminRevokeConsent(ctx context.Context, id string) (*fhir.Resource, error) {
	c, err := s.consents.GetConsent(ctx, id)
	if err != nil {
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no Consent with that id")
	}
	if c.Status != StatusRevoked {
		c.Status = StatusRevoked
		res, err := consentResource(c)
		if err != nil {
			return nil, fhir.Internal(err)
		}
		c.Resource = res.JSON
		if err := s.consents.Store.PutConsent(ctx, c); err != nil {
			return nil, err
		}
		s.log.Info("consent: consent to view revoked by an administrator", "consent", c.ID, "consumer", c.Organisation)
	}
	return fhir.NewResource(c.Resource)
}

// InvalidateAgreements drops the cached agreements, so the next decision
// reads them again: for a change made elsewhere (another node's, announced
// by the store; see consent/pgstore).
func (s *Service) InvalidateAgreements() { s.agreements.Invalidate() }
