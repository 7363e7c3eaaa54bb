package rest

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

const maxConsentBody = 64 << 10

// POST /Consent: a system token with Consent create scope records consent
// to view; the answer is the UK Core Consent, whose id is the
// consent_reference for a patient-context token.
func (s *Server) createConsent(c echo.Context) error {
	body, _, err := readBody(c, maxConsentBody, "Consent", fhirJSON, plainJSON)
	if err != nil {
		return err
	}
	cr, err := fhir.ParseConsentBody(body)
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	r, err := s.core.RecordConsent(ctx, p, cr)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", s.cfg.BaseURL+"/Consent/"+r.ID)
	return s.writeJSON(c, http.StatusCreated, r.JSON)
}

// GET /Consent/{id}: the recording consumer system reads its consent back.
func (s *Server) readConsent(c echo.Context) error {
	ctx, p := principal(c)
	r, err := s.core.ReadConsent(ctx, p, c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etagOf(r.JSON))
	return s.writeJSON(c, http.StatusOK, r.JSON)
}

// DELETE /Consent/{id}: the recording consumer system revokes its consent
// to view (kept, status inactive); tokens bound to it stop working at once.
func (s *Server) revokeConsent(c echo.Context) error {
	ctx, p := principal(c)
	r, err := s.core.RevokeConsent(ctx, p, c.Param("id"))
	if err != nil {
		return err
	}
	return s.writeJSON(c, http.StatusOK, r.JSON)
}
