// Package viewer is the Shared Record Viewer: the GP record in a browser
// for clinicians without an integrated EPR, served under /viewer/. It is a
// face of the record-access core like the FHIR API: it signs clinicians in
// (local accounts or OpenID Connect), builds a *fhir.Principal for each of
// their requests and asks the core (Core), which decides and audits; it
// never reaches a source, a store or the policy itself. Pages are rendered
// on the server with html/template from the coded fields the templates
// pick (codes with their display terms, dates, quantities, statuses), never
// from free text; a few small JavaScript modules only enhance them.
package viewer

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	_ "time/tzdata" // UK local time on machines without a zoneinfo database

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/viewer/users"
)

// Base is the path the viewer is served under.
const Base = "/viewer"

// ClientID names the viewer in the principal of every request it makes.
const ClientID = "gpgate-viewer"

// Users is the store of local clinician accounts, as the viewer reads it.
type Users interface {
	// User returns the account, or an error wrapping users.ErrNotFound.
	User(ctx context.Context, username string) (*users.User, error)
}

// Config configures a Viewer. Core is required, and at least one of Users
// and OIDC.
type Config struct {
	Core  Core
	Users Users       // local accounts; nil turns local sign-in off
	OIDC  *OIDCConfig // optional OpenID Connect sign-in
	Log   *slog.Logger
	Now   func() time.Time

	// InsecureCookies drops the Secure attribute (and the __Host- prefix)
	// from cookies, for plain http on loopback only (development, tests).
	InsecureCookies bool
	// IdleTimeout (default 15 min) and MaxSession (default 8 h) end sessions.
	IdleTimeout, MaxSession time.Duration
	// SystemScopes are the scopes of the principal before consent, the
	// equivalent of a system token (default: find a patient, record and
	// revoke consent).
	SystemScopes []string
	// ClientIP names the address a request came from, for rate limits
	// (default: the host of RemoteAddr). Set it when behind a proxy.
	ClientIP func(*http.Request) string
	// SignInLimits override the failed sign-in limits (zero: defaults).
	SignInLimits Limits
	// PasswordParams are the Argon2id parameters accounts are hashed with
	// (default users.DefaultParams): an unknown username costs one
	// verification under them, as a wrong password does.
	PasswordParams users.Params
	Location       *time.Location // dates shown in (default Europe/London)
	PageSize       int            // rows per page of long lists (default 50)
}

// DefaultSystemScopes are the scopes a viewer session holds before consent:
// find a patient, record a consent to view and revoke it (end access).
var DefaultSystemScopes = []string{"system/Patient.rs", "system/Consent.c", "system/Consent.d"}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Viewer serves the Shared Record Viewer. It is an http.Handler for paths
// under Base.
type Viewer struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	loc      *time.Location
	mux      *http.ServeMux
	sessions *sessions
	limits   *limiter
	pages    *pages
	csrfKey  []byte
	oidc     *oidcClient
	hashSem  chan struct{}
	cookie   cookieNames
}

// New builds a Viewer. It refuses a configuration without a core or without
// any way to sign in.
func New(cfg Config) (*Viewer, error) {
	if cfg.Core == nil {
		return nil, errors.New("viewer: a record-access core is required")
	}
	if cfg.Users == nil && cfg.OIDC == nil {
		return nil, errors.New("viewer: local accounts or OpenID Connect are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	if cfg.MaxSession <= 0 {
		cfg.MaxSession = 8 * time.Hour
	}
	if len(cfg.SystemScopes) == 0 {
		cfg.SystemScopes = DefaultSystemScopes
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteHost
	}
	if cfg.PasswordParams == (users.Params{}) {
		cfg.PasswordParams = users.DefaultParams
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Europe/London")
		if err != nil {
			return nil, fmt.Errorf("viewer: %w", err)
		}
		cfg.Location = loc
	}
	v := &Viewer{
		cfg:     cfg,
		log:     cfg.Log.With("face", "viewer"),
		now:     cfg.Now,
		loc:     cfg.Location,
		hashSem: make(chan struct{}, 2), // Argon2id memory is bounded by concurrent sign-ins
		cookie:  newCookieNames(!cfg.InsecureCookies),
	}
	v.csrfKey = make([]byte, 32)
	if _, err := rand.Read(v.csrfKey); err != nil {
		return nil, err
	}
	v.sessions = newSessions(cfg.IdleTimeout, cfg.MaxSession, cfg.Now)
	v.limits = newLimiter(cfg.SignInLimits, cfg.Now)
	p, err := parsePages(v)
	if err != nil {
		return nil, err
	}
	v.pages = p
	if cfg.OIDC != nil {
		c, err := newOIDCClient(context.Background(), cfg.OIDC)
		if err != nil {
			return nil, err
		}
		v.oidc = c
	}
	v.routes()
	return v, nil
}

func (v *Viewer) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET "+Base+"/static/", http.StripPrefix(Base+"/static/", staticHandler(static)))

	m.HandleFunc("GET "+Base+"/{$}", v.home)
	m.HandleFunc("GET "+Base+"/signin", v.signInPage)
	m.HandleFunc("POST "+Base+"/signin", v.signIn)
	m.HandleFunc("GET "+Base+"/oidc/login", v.oidcLogin)
	m.HandleFunc("GET "+Base+"/oidc/callback", v.oidcCallback)
	m.HandleFunc("POST "+Base+"/signout", v.authed(v.signOut))

	m.HandleFunc("GET "+Base+"/find", v.authed(v.findPage))
	m.HandleFunc("POST "+Base+"/find", v.authed(v.find))
	m.HandleFunc("GET "+Base+"/patient", v.authed(v.patientPage))
	m.HandleFunc("POST "+Base+"/consent", v.authed(v.consent))
	m.HandleFunc("POST "+Base+"/end", v.authed(v.endAccess))
	m.HandleFunc("GET "+Base+"/record/{view}", v.authed(v.record))
	m.HandleFunc("GET "+Base+"/print", v.authed(v.print))
	m.HandleFunc(Base+"/", v.notFound)
	v.mux = m
}

// ServeHTTP serves a request under Base.
func (v *Viewer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := v.now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	securityHeaders(sw.Header(), !v.cfg.InsecureCookies)
	defer func() {
		if rec := recover(); rec != nil {
			v.log.Error("viewer panic", "panic", fmt.Sprint(rec))
			if !sw.wrote {
				v.fail(sw, r, nil, fhir.Internal(fmt.Errorf("panic")))
			}
		}
		_, pattern := v.mux.Handler(r)
		// the route pattern, never the path or query: no identifiers in logs
		v.log.Info("viewer request", "method", r.Method, "route", pattern, "status", sw.status,
			"ms", v.now().Sub(start).Milliseconds(), "request_id", fhir.RequestIDFrom(r.Context()))
	}()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(sw, r.Body, maxForm) // forms here are a few fields
	}
	v.mux.ServeHTTP(sw, r)
}

// maxForm bounds a POST body.
const maxForm = 16 << 10

// securityHeaders are set on every response: a CSP without inline script or
// style, no framing, no sniffing, no referrer, and no caching of anything
// but static assets (which override Cache-Control).
func securityHeaders(h http.Header, secure bool) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

func staticHandler(files fs.FS) http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "private, max-age=300")
		w.Header().Del("Pragma")
		fsrv.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (v *Viewer) home(w http.ResponseWriter, r *http.Request) {
	if s := v.sessions.get(v.sessionID(r)); s != nil {
		http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Base+"/signin", http.StatusSeeOther)
}

func (v *Viewer) notFound(w http.ResponseWriter, r *http.Request) {
	v.render(w, r, http.StatusNotFound, "message", &page{Title: "Page not found",
		Message: &message{Kind: "error", Heading: "Page not found", Body: "There is no page at this address."}})
}
