package rest

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// The agreements admin API speaks the agreement JSON of package consent,
// not FHIR; the core authorises (system/Agreement scopes) and audits.

const maxAgreementBody = 256 << 10

func (s *Server) listAgreements(c echo.Context) error {
	return s.agreements(c, "search-type", "", "", nil)
}

func (s *Server) getAgreement(c echo.Context) error {
	return s.agreements(c, "read", c.Param("id"), "", nil)
}

func (s *Server) addAgreement(c echo.Context) error {
	body, _, err := readBody(c, maxAgreementBody, "agreement", plainJSON, fhirJSON)
	if err != nil {
		return err
	}
	return s.agreements(c, "create", "", "", body)
}

func (s *Server) setAgreementStatus(c echo.Context) error {
	return s.agreements(c, "update", c.Param("id"), c.Param("action"), nil)
}

func (s *Server) agreements(c echo.Context, interaction, id, action string, body []byte) error {
	ctx, p := principal(c)
	out, err := s.core.Agreements(ctx, p, interaction, id, action, body)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if interaction == "create" {
		status = http.StatusCreated
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(status, "application/json; charset=utf-8", out)
}
