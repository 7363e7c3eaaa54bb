package access

import (
	"context"
	"net/url"

	"github.com/gpgate/gpgate/fhir"
)

// The operations on what is not the GP record — consents to view, the audit
// log, the agreements register — go through the same core: the token's
// scopes decide, and every call is audited, granted or refused.

func notImplemented(what string) error {
	return fhir.Errorf(fhir.CodeNotImplemented, "%s is not configured on this server", what)
}

// authorize runs the scope decision for a request that is not a record
// read, auditing a refusal.
func (c *Core) authorize(ctx context.Context, p *fhir.Principal, req *fhir.Request) error {
	if p == nil {
		return c.refuse(ctx, p, req, fhir.Decision{Code: fhir.CodeUnauthorized, Rule: "an access token is required"})
	}
	if d := c.cfg.Scopes.Authorize(p, req); !d.Permit {
		return c.refuse(ctx, p, req, d)
	}
	return nil
}

// outcome audits the result of a call: granted, refused or failed.
func (c *Core) outcome(ctx context.Context, p *fhir.Principal, req *fhir.Request, action string, err error, count int, mut func(*fhir.AuditEntry)) error {
	e := c.entry(ctx, p, req, fhir.Decision{Permit: err == nil}, count)
	if action != "" {
		e.Action = action
	}
	if err != nil {
		fe := fhir.AsError(err)
		e.Outcome, e.Code, e.Rule = fhir.OutcomeDenied, fe.Code, fe.Diagnostics
		if fe.Code == fhir.CodeInternal {
			e.Outcome, e.Rule = fhir.OutcomeError, string(fe.Code)
		}
	}
	if mut != nil {
		mut(e)
	}
	return c.write(ctx, e)
}

// RecordConsent records a clinician's consent to view (or a break-glass)
// for the caller's organisation and consumer system. The break-glass reason
// goes to the audit only.
func (c *Core) RecordConsent(ctx context.Context, p *fhir.Principal, cr fhir.ConsentRequest) (*fhir.Resource, error) {
	req := &fhir.Request{Interaction: "create", Type: "Consent", PatientID: cr.PatientID, NHS: cr.NHS}
	if req.PatientID == "" && cr.NHS != "" {
		req.PatientID = fhir.PatientID(cr.NHS)
	}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.Consents == nil {
		return nil, notImplemented("recording consent")
	}
	r, err := c.cfg.Consents.RecordConsent(ctx, p, cr)
	if aerr := c.outcome(ctx, p, req, "consent-record", err, 0, func(e *fhir.AuditEntry) {
		e.BreakGlass = e.BreakGlass || cr.BreakGlass
		e.Reason = cr.Reason
	}); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		if fe := fhir.AsError(err); fe.Code == fhir.CodeNoOrganisationConsent {
			return nil, fhir.Errorf(fe.Code, "%s", publicReason(fe.Code, ""))
		}
		return nil, err
	}
	return r, nil
}

// ReadConsent returns a consent to view to the consumer system that
// recorded it (NO_RECORD_FOUND for anyone else).
func (c *Core) ReadConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	return c.consentCall(ctx, p, "read", id, "consent-read", func() (*fhir.Resource, error) {
		return c.cfg.Consents.ReadConsent(ctx, p, id)
	})
}

// RevokeConsent revokes a consent to view; tokens and sessions bound to it
// stop working at once.
func (c *Core) RevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	return c.consentCall(ctx, p, "delete", id, "consent-revoke", func() (*fhir.Resource, error) {
		return c.cfg.Consents.RevokeConsent(ctx, p, id)
	})
}

func (c *Core) consentCall(ctx context.Context, p *fhir.Principal, interaction, id, action string, call func() (*fhir.Resource, error)) (*fhir.Resource, error) {
	if !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: interaction, Type: "Consent", ID: id}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.Consents == nil {
		return nil, notImplemented("Consent")
	}
	r, err := call()
	if err == nil {
		req.PatientID = r.Ix.Patient
	}
	if aerr := c.outcome(ctx, p, req, action, err, 1, nil); aerr != nil {
		return nil, aerr
	}
	return r, err
}

// PatientContext checks a consent reference for a patient-context
// principal (a token being issued, a viewer session) and returns what it
// grants now: the consent must be live, not revoked, recorded by this
// consumer system for this clinician, and the agreements must still allow
// it. The token endpoint audits its own grants and refusals; a face that
// issues no token audits through the reads the grant then allows.
func (c *Core) PatientContext(ctx context.Context, p *fhir.Principal, consentRef string) (fhir.ConsentGrant, error) {
	if c.cfg.Consents == nil {
		return fhir.ConsentGrant{}, notImplemented("consent to view")
	}
	if p == nil {
		return fhir.ConsentGrant{}, fhir.Errorf(fhir.CodeUnauthorized, "an access token is required")
	}
	if !fhir.ValidID(consentRef) {
		return fhir.ConsentGrant{}, fhir.Errorf(fhir.CodeNoPatientConsent, "no-consent-to-view")
	}
	return c.cfg.Consents.ConsentGrant(ctx, p, consentRef)
}

// Sharing tells a caller which areas the agreements in force between its
// organisation and the patient's practice share (Decision.Areas and
// .Summary) and whether they allow a break-glass, for a face that offers
// the choices. It needs what a Patient search needs (demographics) and is
// audited as one; an unknown patient is refused like a patient at a
// practice without an agreement.
func (c *Core) Sharing(ctx context.Context, p *fhir.Principal, patientID string) (fhir.Decision, bool, error) {
	if !fhir.ValidID(patientID) {
		return fhir.Decision{}, false, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "search-type", Type: "Patient", PatientID: patientID, Areas: fhir.AreaDemographics}
	if _, _, err := c.open(ctx, p, req); err != nil {
		return fhir.Decision{}, false, err
	}
	if c.cfg.Consents == nil {
		return fhir.Decision{}, false, notImplemented("consent to view")
	}
	d, bg, err := c.cfg.Consents.Sharing(ctx, p, req.NHS)
	if err != nil {
		return fhir.Decision{}, false, c.fail(ctx, p, req, err)
	}
	if err := c.outcome(ctx, p, req, "", nil, 0, func(e *fhir.AuditEntry) { e.Areas, e.Rule = d.Areas, "sharing-options" }); err != nil {
		return fhir.Decision{}, false, err
	}
	return d, bg, nil
}

// SearchAuditEvents searches the audit log for auditors (system/AuditEvent
// scopes); a patient-context token sees only its own patient's accesses.
func (c *Core) SearchAuditEvents(ctx context.Context, p *fhir.Principal, v url.Values, strict bool) (*fhir.Page, error) {
	v2 := url.Values{}
	for k, vals := range v {
		v2[k] = vals
	}
	if p != nil && p.PatientID != "" {
		v2.Set("patient", p.PatientID) // a patient's token never sees another patient's accesses
	}
	req := &fhir.Request{Interaction: "search-type", Type: "AuditEvent", PatientID: v2.Get("patient")}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.AuditLog == nil {
		return nil, notImplemented("the audit log")
	}
	pg, err := c.cfg.AuditLog.SearchAuditEvents(ctx, v2, strict)
	if err != nil {
		return nil, err
	}
	req.Query = pg.Query
	if err := c.outcome(ctx, p, req, "", nil, len(pg.Resources), nil); err != nil {
		return nil, err
	}
	return pg, nil
}

// ReadAuditEvent reads one audit entry.
func (c *Core) ReadAuditEvent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	if !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "read", Type: "AuditEvent", ID: id}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.AuditLog == nil {
		return nil, notImplemented("the audit log")
	}
	r, err := c.cfg.AuditLog.ReadAuditEvent(ctx, id)
	if err == nil && p.PatientID != "" && r.Ix.Patient != p.PatientID {
		r, err = nil, fhir.Errorf(fhir.CodeNoRecordFound, "no AuditEvent with that id")
	}
	if err != nil {
		return nil, err
	}
	if err := c.outcome(ctx, p, req, "", nil, 1, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// Agreements runs an admin call on the agreements register (system
// scopes naming Agreement): interaction search-type (list), read (id),
// create (body: the agreement JSON) or update (id, action suspend | end |
// activate). Every change is audited, granted or refused; reads are
// audited when refused.
func (c *Core) Agreements(ctx context.Context, p *fhir.Principal, interaction, id, action string, body []byte) ([]byte, error) {
	a := struct{ Interaction, ID, Action string }{interaction, id, action}
	if a.ID != "" && !fhir.ValidID(a.ID) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid agreement id").At("id")
	}
	req := &fhir.Request{Interaction: a.Interaction, Type: "Agreement", ID: a.ID}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.Agreements == nil {
		return nil, notImplemented("the agreements register")
	}
	var out []byte
	var err error
	switch a.Interaction {
	case "search-type":
		out, err = c.cfg.Agreements.ListAgreements(ctx)
	case "read":
		out, err = c.cfg.Agreements.GetAgreement(ctx, a.ID)
	case "create":
		out, err = c.cfg.Agreements.AddAgreement(ctx, body)
	case "update":
		out, err = c.cfg.Agreements.SetAgreementStatus(ctx, a.ID, a.Action)
	default:
		return nil, fhir.Errorf(fhir.CodeNotImplemented, "agreements: %s is not supported", safe(a.Interaction))
	}
	if a.Interaction == "create" || a.Interaction == "update" || err != nil {
		if aerr := c.outcome(ctx, p, req, "admin", err, 0, func(e *fhir.AuditEntry) {
			if err == nil {
				e.Rule = "admin"
			}
		}); aerr != nil {
			return nil, aerr
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
