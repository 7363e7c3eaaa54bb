package rest

import (
	"net"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// Security configures the security headers and the caller's address.
type Security struct {
	// HSTS sends Strict-Transport-Security on answers over TLS (max-age of
	// two years, includeSubDomains). Never sent over plain HTTP.
	HSTS bool
	// OwnCSP are path prefixes whose handlers set their own
	// Content-Security-Policy and framing rules (the viewer); every other
	// answer gets default-src 'none'; frame-ancestors 'none'.
	OwnCSP []string
	// TrustedProxies are the networks of balancers in front of gpgate
	// (HAProxy, a hospital's reverse proxy). A request whose TCP peer is
	// in one of them is taken to come from the address the proxy appended
	// to X-Forwarded-For (the right-most address not itself trusted); any
	// other request comes from its TCP peer, and a forwarding header it
	// carries is ignored. Empty: the TCP peer, always.
	TrustedProxies []*net.IPNet
}

// ipExtractor is how the caller's address is found: the TCP peer, or
// through the trusted proxies' X-Forwarded-For (echo's extractor, which
// walks the header from the right and stops at the first untrusted hop).
func (sec Security) ipExtractor() echo.IPExtractor {
	if len(sec.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range sec.TrustedProxies {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// HeaderCorrelationID echoes a caller's own X-Request-ID back beside
// gpgate's request id (X-Request-ID).
const HeaderCorrelationID = "X-Correlation-ID"

// correlate runs first: a caller's X-Request-ID is kept as its correlation
// id (audited beside gpgate's own request id, never instead of it), and the
// caller's network address — the TCP peer, or the address a trusted
// proxy forwarded (never a forwarding header an untrusted caller wrote) —
// is put in the request context for rate limits and the audit.
func (s *Server) correlate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := r.Context()
		if id := r.Header.Get(echo.HeaderXRequestID); id != "" {
			if validRequestID(id) {
				ctx = fhir.WithCorrelationID(ctx, id)
				c.Response().Header().Set(HeaderCorrelationID, id)
			}
			r.Header.Del(echo.HeaderXRequestID) // gpgate makes its own
		}
		ctx = fhir.WithClientAddr(ctx, c.RealIP())
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// peerIP is the IP of a RemoteAddr (host:port).
func peerIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// secure sets the security headers every answer carries.
func (s *Server) secure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if c.Request().TLS != nil && s.cfg.Security.HSTS {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		if !s.ownsCSP(c.Request().URL.Path) {
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
			h.Set("X-Frame-Options", "DENY")
		}
		return next(c)
	}
}

func (s *Server) ownsCSP(path string) bool {
	for _, p := range s.cfg.Security.OwnCSP {
		if path == p || strings.HasPrefix(path, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}
