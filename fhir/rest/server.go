// Package rest is gpgate's FHIR R4 REST surface: echo routes, middleware
// (in one place, in order) and thin handlers that parse a request, call the
// record pipeline and render canonical bytes.
package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gpgate/gpgate/fhir"
)

// Records is what the handlers need of the adapter registry.
type Records interface {
	Resolve(patientID string) (fhir.NHSNumber, error)
	Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error)
}

// Authenticator turns a request's bearer token into a Principal. A nil
// Authenticator is only for tests and the walking skeleton.
type Authenticator interface {
	Authenticate(r *http.Request) (*fhir.Principal, error)
}

// Authorizer decides whether a principal may make a request for a record
// (scopes, sharing agreement, consent). It returns the areas permitted.
type Authorizer interface {
	Authorize(ctx context.Context, p *fhir.Principal, req *fhir.Request, rec RecordMeta) (fhir.Decision, error)
}

// RecordMeta is what authorisation may know about the record before data.
type RecordMeta struct {
	NHS      fhir.NHSNumber
	Practice string
}

// RecordPolicy decides what may be seen once the record is fetched (the
// patient's consent to share, consent to view) and redacts it. It returns a
// new Record (records are shared and cached: never modify the one given).
type RecordPolicy interface {
	Apply(ctx context.Context, p *fhir.Principal, req *fhir.Request, rec *fhir.Record, dec fhir.Decision) (*fhir.Record, fhir.Decision, error)
}

// Auditor writes an audit entry durably; it returns only once it is durable.
type Auditor interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
}

// Locator names the practice of a patient without fetching the record.
type Locator interface {
	PracticeOf(nhs fhir.NHSNumber) (string, error)
}

// Config wires the server.
type Config struct {
	BaseURL      string // absolute base, e.g. http://127.0.0.1:8080 (no trailing slash)
	Records      Records
	Locator      Locator
	Auth         Authenticator
	Authorizer   Authorizer
	Policy       RecordPolicy // applied after the fetch, before the Bundle is built
	Auditor      Auditor
	Audit        AuditLog          // serves GET /AuditEvent when set
	Consents     ConsentRecorder   // serves POST /Consent when set
	Agreements   AgreementAdmin    // serves /admin/agreements when set
	Capability   []byte            // CapabilityStatement bytes for /metadata
	Static       map[string][]byte // extra GET routes served as FHIR JSON (e.g. OperationDefinitions)
	Logger       *slog.Logger
	Now          func() time.Time
	BodyLimit    string        // echo body limit, default "1M"
	Timeout      time.Duration // per request, default 30s
	SourceBudget time.Duration // deadline for the adapter, default 10s
	// Mount lets cmd add routes owned by other packages (auth endpoints,
	// admin API) to the same echo instance and middleware chain.
	Mount func(e *echo.Echo)
}

// Server holds the wired dependencies of the handlers.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New builds the echo instance with every route and middleware.
func New(cfg Config) *echo.Echo {
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
	if cfg.SourceBudget == 0 {
		cfg.SourceBudget = 10 * time.Second
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// Middleware order lives here and only here:
	// request id -> recover -> access log -> body limit -> timeout context -> negotiation.
	e.Use(s.requestID)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.log.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
		return fhir.Internal(err)
	}}))
	e.Use(s.accessLog)
	e.Use(middleware.BodyLimit(cfg.BodyLimit))
	e.Use(s.deadline)
	e.Use(s.negotiate)

	e.GET("/metadata", s.metadata)
	for path, body := range cfg.Static {
		b := body
		e.GET(path, func(c echo.Context) error { return s.writeJSON(c, http.StatusOK, b) })
	}
	if cfg.Mount != nil {
		cfg.Mount(e)
	}

	auth := s.authenticate
	if cfg.Agreements != nil {
		s.mountAdmin(e, auth)
	}
	if cfg.Consents != nil {
		e.POST("/Consent", s.createConsent, auth)
		e.GET("/Consent/:id", s.readConsent, auth)
	}
	if cfg.Audit != nil {
		e.GET("/AuditEvent", s.searchAuditEvents, auth)
		e.GET("/AuditEvent/:id", s.readAuditEvent, auth)
	}
	e.POST("/Patient/$getstructuredrecord", s.getStructuredRecord, auth)
	e.GET("/Patient/:id/$everything", s.everything, auth)
	e.GET("/:type", s.search, auth)
	e.GET("/:type/:id", s.read, auth)
	// Everything else that looks like a FHIR interaction is a write or an
	// unsupported method: 405 with an OperationOutcome.
	writes := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	for _, p := range []string{"/:type", "/:type/:id", "/Patient/:id/$everything"} {
		e.Match(writes, p, s.methodNotAllowed)
	}
	e.Match([]string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete}, "/Patient/$getstructuredrecord", s.methodNotAllowed)
	return e
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
		if s.cfg.Auth == nil {
			return next(c)
		}
		p, err := s.cfg.Auth.Authenticate(c.Request())
		if err != nil {
			return err
		}
		c.SetRequest(c.Request().WithContext(fhir.WithPrincipal(c.Request().Context(), p)))
		return next(c)
	}
}

func (s *Server) methodNotAllowed(c echo.Context) error {
	c.Response().Header().Set("Allow", "GET")
	if strings.HasSuffix(c.Path(), "$getstructuredrecord") {
		c.Response().Header().Set("Allow", "POST")
	}
	return fhir.Errorf(fhir.CodeMethodNotAllowed, "gpgate is read-only: %s is not supported here", c.Request().Method)
}

func (s *Server) metadata(c echo.Context) error {
	return s.writeJSON(c, http.StatusOK, s.cfg.Capability)
}
