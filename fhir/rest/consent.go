package rest

import (
	"context"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// ConsentFacts are what the audit needs to know of a consent to view.
type ConsentFacts struct {
	PatientID  string
	NHS        fhir.NHSNumber
	BreakGlass bool
	Reason     string // break-glass reason: kept in the audit only
}

// ConsentRecorder records a clinician's consent to view (or a break-glass).
type ConsentRecorder interface {
	RecordConsent(ctx context.Context, p *fhir.Principal, body []byte) (*fhir.Resource, ConsentFacts, error)
	// ReadConsent returns a recorded consent to the organisation that
	// recorded it (NO_RECORD_FOUND for anyone else).
	ReadConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
}

const maxConsentBody = 64 << 10

// POST /Consent: a system token with Consent create scope records consent
// to view; the answer is the UK Core Consent, whose id is the
// consent_reference for a patient-context token.
func (s *Server) createConsent(c echo.Context) error {
	ctx := c.Request().Context()
	req := &fhir.Request{Interaction: "create", Type: "Consent"}
	if s.cfg.Authorizer != nil {
		d, err := s.cfg.Authorizer.Authorize(ctx, fhir.PrincipalFrom(ctx), req, RecordMeta{})
		if err != nil {
			return err
		}
		if !d.Permit {
			return s.refuse(ctx, req, d)
		}
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxConsentBody+1))
	if err != nil {
		return fhir.Errorf(fhir.CodeBadRequest, "the request body could not be read")
	}
	if len(body) > maxConsentBody {
		return fhir.Errorf(fhir.CodeBodyTooLarge, "the Consent body is over %d bytes", maxConsentBody)
	}
	r, facts, err := s.cfg.Consents.RecordConsent(ctx, fhir.PrincipalFrom(ctx), body)
	req.PatientID, req.NHS = facts.PatientID, facts.NHS
	e := s.auditEntry(ctx, req, nil, fhir.Decision{Permit: err == nil}, 0, "")
	e.Action, e.BreakGlass, e.Reason = "consent-record", e.BreakGlass || facts.BreakGlass, facts.Reason
	if err != nil {
		fe := fhir.AsError(err)
		e.Code, e.Outcome = fe.Code, fhir.OutcomeDenied
		e.Rule = fe.Diagnostics
		if fe.Code == fhir.CodeInternal {
			e.Outcome = fhir.OutcomeError
		}
	}
	if aerr := s.writeAudit(ctx, e); aerr != nil {
		return aerr
	}
	if err != nil {
		if fe := fhir.AsError(err); fe.Code == fhir.CodeNoOrganisationConsent {
			return fhir.Errorf(fe.Code, "%s", publicRule(fhir.Decision{Code: fe.Code}))
		}
		return err
	}
	c.Response().Header().Set("Location", s.cfg.BaseURL+"/Consent/"+r.ID)
	return s.writeJSON(c, http.StatusCreated, r.JSON)
}

// GET /Consent/{id}: the recording organisation reads its consent back.
func (s *Server) readConsent(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "read", Type: "Consent", ID: id}
	r, err := s.cfg.Consents.ReadConsent(ctx, fhir.PrincipalFrom(ctx), id)
	if err != nil {
		return s.deny(ctx, req, err)
	}
	req.PatientID = r.Ix.Patient
	e := s.auditEntry(ctx, req, nil, fhir.Decision{Permit: true}, 1, "")
	e.Action = "consent-read"
	if err := s.writeAudit(ctx, e); err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etagOf(r.JSON))
	return s.writeJSON(c, http.StatusOK, r.JSON)
}
