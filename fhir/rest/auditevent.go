package rest

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// GET /AuditEvent: auditors (system/AuditEvent scopes) search the log; a
// patient-context token sees only its own patient ("who viewed my record").
func (s *Server) searchAuditEvents(c echo.Context) error {
	ctx, p := principal(c)
	pg, err := s.core.SearchAuditEvents(ctx, p, c.QueryParams(), strict(c))
	if err != nil {
		return err
	}
	return s.writePage(c, pg, "/AuditEvent", c.QueryParams())
}

// GET /AuditEvent/{id}.
func (s *Server) readAuditEvent(c echo.Context) error {
	ctx, p := principal(c)
	r, err := s.core.ReadAuditEvent(ctx, p, c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etagOf(r.JSON))
	return s.writeJSON(c, http.StatusOK, r.JSON)
}
