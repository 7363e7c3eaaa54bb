package rest

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// The online administration routes (JSON, not FHIR, like the agreements
// admin; the audit export is NDJSON): the core authorises each call —
// system scopes naming Client, SigningKey, AuditEvent or Agreement — and
// audits it.

// AdminCore is what these handlers need of the record-access core. A core
// without it answers them NOT_IMPLEMENTED.
type AdminCore interface {
	Clients(ctx context.Context, p *fhir.Principal, interaction, id, action string, body []byte) ([]byte, error)
	RotateSigningKey(ctx context.Context, p *fhir.Principal, body []byte) ([]byte, error)
	VerifyAudit(ctx context.Context, p *fhir.Principal) ([]byte, error)
	ExportAudit(ctx context.Context, p *fhir.Principal, since time.Time, w io.Writer) (int, error)
	AdminRevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
}

const maxAdminBody = 256 << 10

func (s *Server) admin() (AdminCore, error) {
	if a, ok := s.core.(AdminCore); ok {
		return a, nil
	}
	return nil, fhir.Errorf(fhir.CodeNotImplemented, "online administration is not configured on this server")
}

func (s *Server) adminJSON(c echo.Context, status int, out []byte) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(status, "application/json; charset=utf-8", out)
}

func (s *Server) clients(c echo.Context, interaction string, withBody bool) error {
	a, err := s.admin()
	if err != nil {
		return err
	}
	var body []byte
	if withBody {
		if body, _, err = readBody(c, maxAdminBody, "admin", "application/json", "application/fhir+json"); err != nil {
			return err
		}
	}
	ctx, p := principal(c)
	out, err := a.Clients(ctx, p, interaction, c.Param("id"), c.Param("action"), body)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if interaction == "create" {
		status = http.StatusCreated
	}
	return s.adminJSON(c, status, out)
}

// GET /admin/clients
func (s *Server) listClients(c echo.Context) error { return s.clients(c, "search-type", false) }

// POST /admin/clients
func (s *Server) addClient(c echo.Context) error { return s.clients(c, "create", true) }

// GET /admin/clients/{id}
func (s *Server) getClient(c echo.Context) error { return s.clients(c, "read", false) }

// POST /admin/clients/{id}/{disable|enable|rotate-key}
func (s *Server) setClient(c echo.Context) error { return s.clients(c, "update", true) }

// POST /admin/signing-keys/rotate
func (s *Server) rotateSigningKey(c echo.Context) error {
	a, err := s.admin()
	if err != nil {
		return err
	}
	body, _, err := readBody(c, maxAdminBody, "admin", "application/json", "application/fhir+json")
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	out, err := a.RotateSigningKey(ctx, p, body)
	if err != nil {
		return err
	}
	return s.adminJSON(c, http.StatusOK, out)
}

// GET /admin/audit/verify
func (s *Server) verifyAudit(c echo.Context) error {
	a, err := s.admin()
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	out, err := a.VerifyAudit(ctx, p)
	if err != nil {
		return err
	}
	return s.adminJSON(c, http.StatusOK, out)
}

// GET /admin/audit/export[?since=2026-01-01]: NDJSON AuditEvents, oldest
// first, streamed.
func (s *Server) exportAudit(c echo.Context) error {
	a, err := s.admin()
	if err != nil {
		return err
	}
	var since time.Time
	if v := c.QueryParam("since"); v != "" {
		d, err := fhir.ParseDate(v)
		if err != nil {
			return fhir.Errorf(fhir.CodeInvalidParameter, "since must be a date or dateTime").At("since")
		}
		since = d.Start
	}
	ctx, p := principal(c)
	// A whole log takes longer than an API request may: the export gets
	// its own deadline (the stream still ends when the caller goes away:
	// its writes fail).
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(ExportTimeout))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ExportTimeout)
	defer cancel()
	w := &lazyNDJSON{c: c}
	n, err := a.ExportAudit(ctx, p, since, w)
	if err != nil {
		if !c.Response().Committed {
			return err
		}
		// the stream has started: it ends short, without the trailer that
		// says it is complete; the log says why
		s.log.Error("audit export cut short", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "exported", n, "err", err)
		return nil
	}
	if !c.Response().Committed {
		w.start()
	}
	c.Response().Header().Set(TrailerExportCount, strconv.Itoa(n))
	return nil
}

// ExportTimeout bounds an audit export through the API (export larger
// logs with since= windows, or with `gpgate audit export` on the data
// directory).
const ExportTimeout = 15 * time.Minute

// TrailerExportCount is the trailer of a complete audit export: the number
// of AuditEvents sent. A stream without it was cut short.
const TrailerExportCount = "X-Export-Count"

// lazyNDJSON commits the 200 answer at the first byte, so a refusal before
// it is still rendered as an error.
type lazyNDJSON struct {
	c       echo.Context
	started bool
}

func (l *lazyNDJSON) start() {
	l.started = true
	h := l.c.Response().Header()
	h.Set("Trailer", TrailerExportCount)
	h.Set(echo.HeaderContentType, "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	l.c.Response().WriteHeader(http.StatusOK)
}

func (l *lazyNDJSON) Write(b []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.c.Response().Write(b)
}

// DELETE /admin/consents/{id}: a sharing administrator revokes any consent
// to view.
func (s *Server) adminRevokeConsent(c echo.Context) error {
	a, err := s.admin()
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	r, err := a.AdminRevokeConsent(ctx, p, c.Param("id"))
	if err != nil {
		return err
	}
	return s.writeJSON(c, http.StatusOK, r.JSON)
}
