// Package rest is gpgate's FHIR R4 REST surface: echo routes, middleware
// (in one place, in order) and thin handlers that parse a request, call the
// record-access core and render canonical bytes. Every decision, every
// audit entry and every byte of record data comes from the core.
package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gpgate/gpgate/fhir"
)

// Core is what the handlers need of the record-access core (fhir/access).
type Core interface {
	Read(ctx context.Context, p *fhir.Principal, typ, id string) (*fhir.Resource, error)
	Search(ctx context.Context, p *fhir.Principal, q *fhir.Query) (*fhir.Page, error)
	Everything(ctx context.Context, p *fhir.Principal, e *fhir.EverythingRequest) (*fhir.Page, error)
	StructuredRecord(ctx context.Context, p *fhir.Principal, sr *fhir.StructuredRequest) (*fhir.Collection, error)
	RecordConsent(ctx context.Context, p *fhir.Principal, cr fhir.ConsentRequest) (*fhir.Resource, error)
	ReadConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
	RevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
	SearchAuditEvents(ctx context.Context, p *fhir.Principal, v url.Values, strict bool) (*fhir.Page, error)
	ReadAuditEvent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
	Agreements(ctx context.Context, p *fhir.Principal, interaction, id, action string, body []byte) ([]byte, error)
}

// Authenticator turns a request's bearer token into a Principal.
type Authenticator interface {
	Authenticate(r *http.Request) (*fhir.Principal, error)
}

// Config wires the server. Core and Auth are required.
type Config struct {
	BaseURL    string // absolute base, e.g. http://127.0.0.1:8080 (no trailing slash)
	Core       Core
	Auth       Authenticator
	Capability []byte            // CapabilityStatement bytes for /metadata
	Static     map[string][]byte // extra GET routes served as FHIR JSON (e.g. OperationDefinitions)
	Logger     *slog.Logger
	Now        func() time.Time
	BodyLimit  string        // echo body limit, default "1M"
	Timeout    time.Duration // per request, default 30s
	// Mount lets cmd add routes owned by other packages (auth endpoints)
	// to the same echo instance and middleware chain. Routes it adds are
	// outside the FHIR API's authentication: they authenticate themselves.
	Mount func(e *echo.Echo)
	// Production guards: security headers (security.go), rate limits
	// (ratelimit.go), request metrics (observe.go).
	Security Security
	Limits   Limits
	Observer Observer
}

// Server holds the wired dependencies of the handlers.
type Server struct {
	cfg  Config
	core Core
	log  *slog.Logger
	now  func() time.Time
	lim  *limiters
}

// New builds the echo instance with every route and middleware. It refuses
// a configuration without the core or without authentication.
func New(cfg Config) (*echo.Echo, error) {
	if cfg.Core == nil || cfg.Auth == nil {
		return nil, errors.New("rest: a server needs the record-access core and an authenticator")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BodyLimit == "" {
		cfg.BodyLimit = "1M"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	s := &Server{cfg: cfg, core: cfg.Core, log: cfg.Logger, now: cfg.Now}
	s.lim = newLimiters(cfg.Limits)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Middleware order lives here and only here:
	// correlation id and peer address -> request id -> recover -> metrics ->
	// access log -> security headers -> per-address rate limit -> body
	// limit -> timeout context, then on the FHIR routes: negotiation (FHIR
	// JSON only) -> authentication -> per-client rate and concurrency limit.
	// Mounted routes (the token endpoint, the viewer) negotiate their own
	// media types.
	e.Use(s.correlate)
	e.Use(s.requestID)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.log.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
		return fhir.Internal(err)
	}}))
	e.Use(s.observe)
	e.Use(s.accessLog)
	e.Use(s.secure)
	e.Use(s.limitAddress)
	e.Use(middleware.BodyLimit(cfg.BodyLimit))
	e.Use(s.deadline)

	e.GET("/metadata", s.metadata, s.negotiate)
	for path, body := range cfg.Static {
		b := body
		e.GET(path, func(c echo.Context) error { return s.writeJSON(c, http.StatusOK, b) }, s.negotiate)
	}
	if cfg.Mount != nil {
		cfg.Mount(e)
	}
	for _, r := range Routes {
		e.Add(r.Method, r.Path, r.handler(s), s.negotiate, s.authenticate, s.limitClient)
	}
	// Everything else that looks like a FHIR interaction is a write or an
	// unsupported method: 405 with an OperationOutcome.
	writes := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	for _, p := range []string{"/:type", "/:type/:id", "/Patient/:id/$everything"} {
		e.Match(writes, p, s.methodNotAllowed)
	}
	e.Match([]string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete}, "/Patient/$getstructuredrecord", s.methodNotAllowed)
	e.Match([]string{http.MethodPut, http.MethodPatch}, "/Consent/:id", s.methodNotAllowed)
	return e, nil
}

// Route is one authenticated route of the FHIR API. The table is the one
// place routes are declared: New registers them, and the access-control
// matrix test walks it so no route can be added without its row.
type Route struct {
	Method, Path string
	handler      func(s *Server) echo.HandlerFunc
}

// Routes are the authenticated routes, in registration order (echo prefers
// static segments, so the order does not change matching).
var Routes = []Route{
	{http.MethodGet, "/admin/agreements", func(s *Server) echo.HandlerFunc { return s.listAgreements }},
	{http.MethodPost, "/admin/agreements", func(s *Server) echo.HandlerFunc { return s.addAgreement }},
	{http.MethodGet, "/admin/agreements/:id", func(s *Server) echo.HandlerFunc { return s.getAgreement }},
	{http.MethodPost, "/admin/agreements/:id/:action", func(s *Server) echo.HandlerFunc { return s.setAgreementStatus }},
	{http.MethodGet, "/admin/clients", func(s *Server) echo.HandlerFunc { return s.listClients }},
	{http.MethodPost, "/admin/clients", func(s *Server) echo.HandlerFunc { return s.addClient }},
	{http.MethodGet, "/admin/clients/:id", func(s *Server) echo.HandlerFunc { return s.getClient }},
	{http.MethodPost, "/admin/clients/:id/:action", func(s *Server) echo.HandlerFunc { return s.setClient }},
	{http.MethodPost, "/admin/signing-keys/rotate", func(s *Server) echo.HandlerFunc { return s.rotateSigningKey }},
	{http.MethodGet, "/admin/audit/verify", func(s *Server) echo.HandlerFunc { return s.verifyAudit }},
	{http.MethodGet, "/admin/audit/export", func(s *Server) echo.HandlerFunc { return s.exportAudit }},
	{http.MethodDelete, "/admin/consents/:id", func(s *Server) echo.HandlerFunc { return s.adminRevokeConsent }},
	{http.MethodPost, "/Consent", func(s *Server) echo.HandlerFunc { return s.createConsent }},
	{http.MethodGet, "/Consent/:id", func(s *Server) echo.HandlerFunc { return s.readConsent }},
	{http.MethodDelete, "/Consent/:id", func(s *Server) echo.HandlerFunc { return s.revokeConsent }},
	{http.MethodGet, "/AuditEvent", func(s *Server) echo.HandlerFunc { return s.searchAuditEvents }},
	{http.MethodGet, "/AuditEvent/:id", func(s *Server) echo.HandlerFunc { return s.readAuditEvent }},
	{http.MethodPost, "/Patient/$getstructuredrecord", func(s *Server) echo.HandlerFunc { return s.getStructuredRecord }},
	{http.MethodGet, "/Patient/:id/$everything", func(s *Server) echo.HandlerFunc { return s.everything }},
	{http.MethodGet, "/:type", func(s *Server) echo.HandlerFunc { return s.search }},
	{http.MethodGet, "/:type/:id", func(s *Server) echo.HandlerFunc { return s.read }},
}

func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		c.SetRequest(c.Request().WithContext(fhir.WithRequestID(c.Request().Context(), id)))
		return next(c)
	}
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// accessLog logs the route pattern, never the path: paths and queries carry
// patient ids and NHS numbers.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := s.now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		lvl := slog.LevelInfo
		if status >= 500 {
			lvl = slog.LevelError
		}
		attrs := []any{
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID),
			"method", c.Request().Method,
			"route", c.Path(),
			"status", status,
			"bytes", c.Response().Size,
			"duration_ms", float64(s.now().Sub(start).Microseconds()) / 1000,
		}
		if p := fhir.PrincipalFrom(c.Request().Context()); p != nil {
			attrs = append(attrs, "client", p.ClientID)
		}
		s.log.Log(c.Request().Context(), lvl, "request", attrs...)
		return nil
	}
}

func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.Timeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := s.cfg.Auth.Authenticate(c.Request())
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(fhir.WithPrincipal(c.Request().Context(), p)))
		return next(c)
	}
}

// principal is the authenticated caller of the request.
func principal(c echo.Context) (context.Context, *fhir.Principal) {
	ctx := c.Request().Context()
	return ctx, fhir.PrincipalFrom(ctx)
}

func (s *Server) methodNotAllowed(c echo.Context) error {
	allow := "GET"
	switch {
	case strings.HasSuffix(c.Path(), "$getstructuredrecord"):
		allow = "POST"
	case strings.HasPrefix(c.Path(), "/Consent"):
		allow = "GET, POST, DELETE"
	}
	c.Response().Header().Set("Allow", allow)
	return fhir.Errorf(fhir.CodeMethodNotAllowed, "gpgate is read-only: %s is not supported here", c.Request().Method)
}

func (s *Server) metadata(c echo.Context) error {
	return s.writeJSON(c, http.StatusOK, s.cfg.Capability)
}
