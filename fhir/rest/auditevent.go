package rest

import (
	"context"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// AuditLog is what the AuditEvent endpoints need of the audit log.
type AuditLog interface {
	// SearchAuditEvents returns one page of AuditEvents (newest first), the
	// total number of matches and the paging actually applied.
	SearchAuditEvents(ctx context.Context, v url.Values, strict bool) (page []*fhir.Resource, total int, q *fhir.Query, err error)
	ReadAuditEvent(ctx context.Context, id string) (*fhir.Resource, error)
}

// GET /AuditEvent: auditors (system/AuditEvent scopes) search the log; a
// patient-context token sees only its own patient ("who viewed my record").
func (s *Server) searchAuditEvents(c echo.Context) error {
	ctx := c.Request().Context()
	v := c.QueryParams()
	p := fhir.PrincipalFrom(ctx)
	if p != nil && p.PatientID != "" {
		v.Set("patient", p.PatientID) // a patient's token never sees another patient's accesses
	}
	req := &fhir.Request{Interaction: "search-type", Type: "AuditEvent", PatientID: v.Get("patient")}
	if err := s.authorizeAudit(ctx, req); err != nil {
		return err
	}
	page, total, q, err := s.cfg.Audit.SearchAuditEvents(ctx, v, strict(c))
	if err != nil {
		return err
	}
	req.Query = q
	if err := s.audit(ctx, req, nil, fhir.Decision{Permit: true}, len(page), ""); err != nil {
		return err
	}
	return s.writePage(c, q, page, total, nil)
}

// GET /AuditEvent/{id}.
func (s *Server) readAuditEvent(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "read", Type: "AuditEvent", ID: id}
	if err := s.authorizeAudit(ctx, req); err != nil {
		return err
	}
	r, err := s.cfg.Audit.ReadAuditEvent(ctx, id)
	if err != nil {
		return err
	}
	if p := fhir.PrincipalFrom(ctx); p != nil && p.PatientID != "" && r.Ix.Patient != p.PatientID {
		return fhir.Errorf(fhir.CodeNoRecordFound, "no AuditEvent with that id")
	}
	if err := s.audit(ctx, req, nil, fhir.Decision{Permit: true}, 1, ""); err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etagOf(r.JSON))
	return s.writeJSON(c, http.StatusOK, r.JSON)
}

func (s *Server) authorizeAudit(ctx context.Context, req *fhir.Request) error {
	if s.cfg.Authorizer == nil {
		return nil
	}
	d, err := s.cfg.Authorizer.Authorize(ctx, fhir.PrincipalFrom(ctx), req, RecordMeta{})
	if err != nil {
		return err
	}
	if !d.Permit {
		return s.refuse(ctx, req, d)
	}
	return nil
}
