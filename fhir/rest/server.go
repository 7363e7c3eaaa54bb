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
	// CORSOrigins are the browser origins (scheme://host[:port], or "*")
	// allowed to call the API, for browser-based SMART apps. Empty: no CORS
	// headers, and browsers refuse cross-origin calls.
	CORSOrigins []string
	// Mount lets cmd add routes owned by other packages (auth endpoints)
	// to the same echo instance and middleware chain. Routes it adds are
	// outside the FHIR API's authentication: they authenticate themselves.
	Mount func(e *echo.Echo)
	// Production guards: security headers (security.go), rate limits
	// (ratelimit.go), request metrics (observe.go).
	Security Security
	Limits   Limits
	Observer Observer
	// EntryCacheBytes bounds the cache of rendered Bundle entries
	// (entrycache.go): 0 is DefaultEntryCacheBytes, negative turns it off.
	EntryCacheBytes int
}

// Server holds the wired dependencies of the handlers.
type Server struct {
	cfg  Config
	core Core
	log  *slog.Logger
	now  func() time.Time
	lim  *limiters
	ents *entryCache // nil: every Bundle spliced afresh
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
	if cfg.EntryCacheBytes == 0 {
		cfg.EntryCacheBytes = DefaultEntryCacheBytes
	}
	s.ents = newEntryCache(cfg.EntryCacheBytes)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = cfg.Security.ipExtractor()
	// HEAD is served on every GET route, with the GET route's handler and
	// middleware: the headers a GET would answer, no body (net/http drops
	// it: the handler sees a GET, the connection a HEAD).
	e.OnAddRouteHandler = func(host string, r echo.Route, h echo.HandlerFunc, mw []echo.MiddlewareFunc) {
		if r.Method == http.MethodGet {
			e.Add(http.MethodHead, r.Path, asGet(h), mw...)
		}
	}
	// Middleware order lives here and only here:
	// correlation id and peer address -> request id -> recover -> gzip ->
	// metrics -> access log -> security headers -> CORS -> per-address rate
	// limit -> body limit -> timeout context, then on the FHIR routes:
	// negotiation (FHIR JSON only) -> authentication -> per-client rate and
	// concurrency limit. Mounted routes (the token endpoint, the viewer)
	// negotiate their own media types. gzip is outside the access log,
	// which renders errors, so errors are compressed like answers.
	e.Use(s.correlate)
	e.Use(s.requestID)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		s.log.Error("panic", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
		return fhir.Internal(err)
	}}))
	e.Use(gzipWhenAsked())
	e.Use(s.observe)
	e.Use(s.accessLog)
	e.Use(s.secure)
	if len(cfg.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  cfg.CORSOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete},
			AllowHeaders:  []string{"Authorization", "Content-Type", "Accept", "Prefer", "If-None-Match", echo.HeaderXRequestID},
			ExposeHeaders: []string{"Location", "ETag", "Last-Modified", "Content-Location", "WWW-Authenticate", echo.HeaderXRequestID},
			MaxAge:        600,
		}))
	}
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
	// Interactions FHIR defines that gpgate does not serve answer
	// NOT_IMPLEMENTED naming the interaction; writes answer
	// METHOD_NOT_ALLOWED naming it (gpgate is view only). Neither needs a
	// token: neither touches a record.
	if !hasRoute(e, http.MethodGet, "/") { // a mounted face (the viewer) may own the root
		e.GET("/", s.unsupported("search-system"))
	}
	e.POST("/", s.unsupported("search-system"))
	e.Match([]string{http.MethodGet, http.MethodPost}, "/_search", s.unsupported("search-system"))
	e.GET("/_history", s.unsupported("history-system"))
	e.GET("/:type/_history", s.unsupported("history-type"))
	e.GET("/:type/:id/_history", s.unsupported("history-instance"))
	e.GET("/:type/:id/_history/:vid", s.unsupported("vread"))
	e.Match([]string{http.MethodGet, http.MethodPost}, "/:type/:id/:sub", s.instanceSub)
	e.Match([]string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, "/:type", s.write)
	e.Match([]string{http.MethodPut, http.MethodPatch, http.MethodDelete}, "/:type/:id", s.write)
	e.POST("/:type/:id", s.write) // create with an id, or a type-level operation
	e.Match([]string{http.MethodPut, http.MethodPatch, http.MethodDelete}, "/Patient/:id/$everything", s.write)
	e.Match([]string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete}, "/Patient/$getstructuredrecord", s.methodNotAllowed)
	e.Match([]string{http.MethodPut, http.MethodPatch}, "/Consent/:id", s.write)
	return e, nil
}

func hasRoute(e *echo.Echo, method, path string) bool {
	for _, r := range e.Routes() {
		if r.Method == method && r.Path == path {
			return true
		}
	}
	return false
}

// asGet runs a GET handler for a HEAD request.
func asGet(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request().Clone(c.Request().Context())
		r.Method = http.MethodGet
		c.SetRequest(r)
		return h(c)
	}
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
	{http.MethodPost, "/Patient/:id/$everything", func(s *Server) echo.HandlerFunc { return s.everything }},
	{http.MethodGet, "/Patient/:id/:type", func(s *Server) echo.HandlerFunc { return s.compartment }},
	{http.MethodPost, "/Patient/:id/:type/_search", func(s *Server) echo.HandlerFunc { return s.compartment }},
	{http.MethodGet, "/:type", func(s *Server) echo.HandlerFunc { return s.search }},
	{http.MethodPost, "/:type/_search", func(s *Server) echo.HandlerFunc { return s.search }},
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
		start, method := s.now(), c.Request().Method // a HEAD runs as a GET
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
			"method", method,
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
	allow := "GET, HEAD"
	switch {
	case strings.HasSuffix(c.Path(), "$getstructuredrecord"):
		allow = "POST"
	case strings.HasPrefix(c.Path(), "/Consent"):
		allow = "GET, HEAD, POST, DELETE"
	}
	c.Response().Header().Set("Allow", allow)
	return fhir.Errorf(fhir.CodeMethodNotAllowed, "%s is not supported here (Allow: %s)", c.Request().Method, allow)
}

// write answers the write interactions: gpgate is view only. It names the
// interaction FHIR would call the request, and a POST to a $name is an
// operation gpgate does not serve.
func (s *Server) write(c echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if typ == "" { // a route with the type in its path (/Consent/:id)
		typ, _, _ = strings.Cut(strings.TrimPrefix(c.Path(), "/"), "/")
	}
	if op, ok := operationName(typ, id); ok {
		return notImplementedOperation(op)
	}
	if typ == "Consent" && id != "" && c.Request().Method != http.MethodDelete {
		c.Response().Header().Set("Allow", "GET, HEAD, DELETE")
		return fhir.Errorf(fhir.CodeMethodNotAllowed, "update of a Consent is not supported: record a new one (POST /Consent) and revoke the old (DELETE /Consent/{id})")
	}
	interaction := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[c.Request().Method]
	if id == "" && c.Request().Method != http.MethodPost {
		interaction = "conditional " + interaction
	}
	if c.Request().Method == http.MethodPost && id != "" {
		interaction = "create with a client-assigned id"
	}
	allow := "GET, HEAD"
	if strings.HasSuffix(c.Path(), "$everything") {
		allow = "GET, HEAD, POST"
	} else if typ == "Consent" {
		allow = "GET, HEAD, DELETE"
	}
	c.Response().Header().Set("Allow", allow)
	return fhir.Errorf(fhir.CodeMethodNotAllowed, "%s is not supported: gpgate is view only", interaction)
}

// unsupported answers a FHIR interaction gpgate does not serve.
func (s *Server) unsupported(interaction string) echo.HandlerFunc {
	why := map[string]string{
		"search-system":    "search across resource types is not supported: search one type, within one patient (GET /{type}?patient=...)",
		"history-system":   "history is not supported: gpgate keeps no versions of the records it fetches",
		"history-type":     "history is not supported: gpgate keeps no versions of the records it fetches",
		"history-instance": "history is not supported: gpgate keeps no versions of the records it fetches",
		"vread":            "vread is not supported: gpgate keeps no versions of the records it fetches (read the current one)",
	}[interaction]
	return func(c echo.Context) error {
		if c.Request().Method == http.MethodPost && c.Path() == "/" {
			return fhir.Errorf(fhir.CodeNotImplemented, "batch and transaction are not supported: send each read or search on its own")
		}
		return fhir.Errorf(fhir.CodeNotImplemented, "%s", why)
	}
}

// instanceSub answers /{type}/{id}/{sub} for what gpgate does not serve:
// instance operations other than Patient $everything, history, and
// compartments other than Patient's.
func (s *Server) instanceSub(c echo.Context) error {
	sub := c.Param("sub")
	switch {
	case strings.HasPrefix(sub, "$"):
		return notImplementedOperation(sub)
	case sub == "_history":
		return fhir.Errorf(fhir.CodeNotImplemented, "history is not supported: gpgate keeps no versions of the records it fetches")
	case fhir.IsReadable(c.Param("type")) && (fhir.IsReadable(sub) || sub == "_search"):
		return fhir.Errorf(fhir.CodeNotImplemented, "compartment search is supported on the Patient compartment only (GET /Patient/{id}/{type})")
	}
	return fhir.Errorf(fhir.CodeUnknownResourceType, "no such endpoint")
}

// operationName reports whether a path segment names an operation ($name).
func operationName(segs ...string) (string, bool) {
	for _, s := range segs {
		if strings.HasPrefix(s, "$") {
			return s, true
		}
	}
	return "", false
}

func notImplementedOperation(op string) error {
	return fhir.Errorf(fhir.CodeNotImplemented, "operation %s is not supported (gpgate serves Patient/{id}/$everything and Patient/$getstructuredrecord)", truncate(op, 40))
}

func (s *Server) metadata(c echo.Context) error {
	return s.writeJSON(c, http.StatusOK, s.cfg.Capability)
}
