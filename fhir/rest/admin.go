package rest

import (
	"context"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// AgreementAdmin is the admin API over Information Sharing Agreements. It
// speaks the agreement JSON of package consent, not FHIR.
type AgreementAdmin interface {
	ListAgreements(ctx context.Context) ([]byte, error)
	GetAgreement(ctx context.Context, id string) ([]byte, error)
	AddAgreement(ctx context.Context, body []byte) ([]byte, error)
	// SetAgreementStatus applies "suspend", "end" or "activate".
	SetAgreementStatus(ctx context.Context, id, action string) ([]byte, error)
}

const maxAgreementBody = 256 << 10

func (s *Server) mountAdmin(e *echo.Echo, auth echo.MiddlewareFunc) {
	g := e.Group("/admin/agreements", auth)
	g.GET("", func(c echo.Context) error {
		return s.admin(c, "search-type", "", func(ctx context.Context) ([]byte, error) { return s.cfg.Agreements.ListAgreements(ctx) })
	})
	g.POST("", func(c echo.Context) error {
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxAgreementBody+1))
		if err != nil || len(body) > maxAgreementBody {
			return fhir.Errorf(fhir.CodeBodyTooLarge, "the agreement body is over %d bytes", maxAgreementBody)
		}
		return s.admin(c, "create", "", func(ctx context.Context) ([]byte, error) { return s.cfg.Agreements.AddAgreement(ctx, body) })
	})
	g.GET("/:id", func(c echo.Context) error {
		id := c.Param("id")
		return s.admin(c, "read", id, func(ctx context.Context) ([]byte, error) { return s.cfg.Agreements.GetAgreement(ctx, id) })
	})
	g.POST("/:id/:action", func(c echo.Context) error {
		id, action := c.Param("id"), c.Param("action")
		switch action {
		case "suspend", "end", "activate":
		default:
			return fhir.Errorf(fhir.CodeInvalidParameter, "action must be suspend, end or activate").At("action")
		}
		return s.admin(c, "update", id, func(ctx context.Context) ([]byte, error) {
			return s.cfg.Agreements.SetAgreementStatus(ctx, id, action)
		})
	})
}

// admin authorises (scope system/Agreement.*), audits and answers an admin
// call. Every change is audited, granted or refused.
func (s *Server) admin(c echo.Context, interaction, id string, call func(context.Context) ([]byte, error)) error {
	ctx := c.Request().Context()
	if id != "" && !fhir.ValidID(id) {
		return fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid agreement id").At("id")
	}
	req := &fhir.Request{Interaction: interaction, Type: "Agreement", ID: id}
	if s.cfg.Authorizer != nil {
		d, err := s.cfg.Authorizer.Authorize(ctx, fhir.PrincipalFrom(ctx), req, RecordMeta{})
		if err != nil {
			return err
		}
		if !d.Permit {
			return s.refuse(ctx, req, d)
		}
	}
	out, err := call(ctx)
	if interaction == "create" || interaction == "update" || err != nil {
		e := s.auditEntry(ctx, req, nil, fhir.Decision{Permit: err == nil, Rule: "admin"}, 0, "")
		e.Action = "admin"
		if err != nil {
			fe := fhir.AsError(err)
			e.Outcome, e.Code = fhir.OutcomeDenied, fe.Code
			if fe.Code == fhir.CodeInternal {
				e.Outcome = fhir.OutcomeError
			}
		}
		if aerr := s.writeAudit(ctx, e); aerr != nil {
			return aerr
		}
	}
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
