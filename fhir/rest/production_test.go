package rest

import (
	"crypto/tls"

	"context"
	"github.com/labstack/echo/v4"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// adminCore is a fakeCore with the admin operations.
type adminCore struct {
	fakeCore
	exported string
}

func (a *adminCore) Clients(_ context.Context, _ *fhir.Principal, interaction, id, action string, body []byte) ([]byte, error) {
	return []byte(`{"ok":true}`), a.note("clients "+interaction+" "+id+" "+action, body)
}
func (a *adminCore) RotateSigningKey(_ context.Context, _ *fhir.Principal, body []byte) ([]byte, error) {
	return []byte(`{"kid":"k2"}`), a.note("rotate", body)
}
func (a *adminCore) VerifyAudit(context.Context, *fhir.Principal) ([]byte, error) {
	return []byte(`{"ok":true}`), a.note("verify", nil)
}
func (a *adminCore) ExportAudit(_ context.Context, _ *fhir.Principal, since time.Time, w io.Writer) (int, error) {
	if err := a.note("export "+since.Format("2006-01-02"), nil); err != nil {
		return 0, err
	}
	_, _ = io.WriteString(w, a.exported)
	return strings.Count(a.exported, "\n"), nil
}
func (a *adminCore) AdminRevokeConsent(_ context.Context, _ *fhir.Principal, id string) (*fhir.Resource, error) {
	return a.res, a.note("admin-revoke "+id, nil)
}

func (a *adminCore) base() *fakeCore { return &a.fakeCore }

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type observed struct {
	mu   sync.Mutex
	seen []string
}

func (o *observed) ObserveRequest(method, route string, status int, _ time.Duration) {
	o.mu.Lock()
	o.seen = append(o.seen, method+" "+route+" "+http.StatusText(status))
	o.mu.Unlock()
}

func newProdServer(t *testing.T, core Core, mod func(*Config)) http.Handler {
	t.Helper()
	if ac, ok := core.(interface{ base() *fakeCore }); ok && ac.base().res == nil {
		ac.base().res, _ = fhir.NewResource([]byte(`{"resourceType":"Condition","id":"pabc-c1"}`))
	}
	cfg := Config{BaseURL: "http://gp.test", Core: core, Auth: fakeAuth{}, Capability: []byte(`{"resourceType":"CapabilityStatement"}`),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func serveReq(h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestSecurityHeaders(t *testing.T) {
	h := newProdServer(t, &adminCore{fakeCore: fakeCore{}}, func(c *Config) {
		c.Security = Security{HSTS: true, OwnCSP: []string{"/viewer"}}
		c.Mount = func(e *echoEcho) { e.GET("/viewer/*", func(c echoContext) error { return c.String(200, "viewer") }) }
	})
	for _, tc := range []struct {
		name, path string
		tls        bool
		csp, hsts  bool
	}{
		{"FHIR over TLS", "/metadata", true, true, true},
		{"FHIR over plain HTTP", "/metadata", false, true, false},
		{"error answer", "/Nope/x/y/z", true, true, true},
		{"viewer keeps its own CSP", "/viewer/home", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.path, nil)
			if tc.tls {
				req.TLS = &tlsState
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			hd := w.Header()
			if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("nosniff/referrer headers missing: %v", hd)
			}
			if got := strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'"); got != tc.csp {
				t.Errorf("CSP %q, want frame-ancestors 'none': %v", hd.Get("Content-Security-Policy"), tc.csp)
			}
			if got := strings.HasPrefix(hd.Get("Strict-Transport-Security"), "max-age="); got != tc.hsts {
				t.Errorf("HSTS %q, want set: %v", hd.Get("Strict-Transport-Security"), tc.hsts)
			}
		})
	}
}

// A caller's X-Request-ID is its correlation id; gpgate's request id is its own.
func TestCorrelationID(t *testing.T) {
	var gotReq, gotCorr, gotAddr string
	core := &adminCore{}
	h := newProdServer(t, core, func(c *Config) {
		c.Mount = func(e *echoEcho) {
			e.GET("/probe", func(c echoContext) error {
				ctx := c.Request().Context()
				gotReq, gotCorr, gotAddr = fhir.RequestIDFrom(ctx), fhir.CorrelationIDFrom(ctx), fhir.ClientAddrFrom(ctx)
				return c.NoContent(204)
			})
		}
	})
	w := serveReq(h, "GET", "/probe", "", "X-Request-ID", "caller-123", "X-Forwarded-For", "203.0.113.9")
	if gotCorr != "caller-123" || gotReq == "" || gotReq == "caller-123" {
		t.Fatalf("request id %q, correlation %q", gotReq, gotCorr)
	}
	if w.Header().Get("X-Request-ID") != gotReq || w.Header().Get(HeaderCorrelationID) != "caller-123" {
		t.Fatalf("answer headers %v", w.Header())
	}
	if gotAddr != "192.0.2.1" { // httptest's RemoteAddr; X-Forwarded-For is never believed
		t.Fatalf("client address %q", gotAddr)
	}
	serveReq(h, "GET", "/probe", "", "X-Request-ID", "bad id with spaces")
	if gotCorr != "" || gotReq == "" {
		t.Fatalf("an unusable X-Request-ID: request id %q, correlation %q", gotReq, gotCorr)
	}
}

func TestRateLimits(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var mu sync.Mutex
	refusals := map[string]int{}
	core := &adminCore{}
	h := newProdServer(t, core, func(c *Config) {
		c.Limits = Limits{PerAddress: 2, AddressBurst: 3, PerClient: 1, ClientBurst: 2, Now: clock.Now,
			Refused: func(_ context.Context, kind, client, addr string) {
				mu.Lock()
				refusals[kind+"/"+client+"/"+addr]++
				mu.Unlock()
			}}
	})
	t.Run("per client: 429 with Retry-After, then recovery", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if w := serveReq(h, "GET", "/Condition/pabc-c1", ""); w.Code != 200 {
				t.Fatalf("request %d: %d", i, w.Code)
			}
		}
		w := serveReq(h, "GET", "/Condition/pabc-c1", "")
		if w.Code != http.StatusTooManyRequests || codeIn(t, w.Body.Bytes()) != string(fhir.CodeTooManyRequests) {
			t.Fatalf("third request: %d %s", w.Code, w.Body)
		}
		if ra := w.Header().Get("Retry-After"); ra != "1" {
			t.Fatalf("Retry-After %q", ra)
		}
		clock.Advance(1100 * time.Millisecond)
		if w := serveReq(h, "GET", "/Condition/pabc-c1", ""); w.Code != 200 {
			t.Fatalf("after waiting: %d %s", w.Code, w.Body)
		}
	})
	t.Run("per address, before authentication", func(t *testing.T) {
		clock.Advance(10 * time.Second)
		for i := 0; i < 3; i++ {
			serveReq(h, "GET", "/metadata", "")
		}
		w := serveReq(h, "GET", "/metadata", "")
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Fatalf("fourth request from one address: %d", w.Code)
		}
		clock.Advance(time.Second)
		if w := serveReq(h, "GET", "/metadata", ""); w.Code != 200 {
			t.Fatalf("after waiting: %d", w.Code)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if refusals["client/c/192.0.2.1"] != 1 || refusals["address//192.0.2.1"] != 1 {
		t.Fatalf("refusals reported %v", refusals)
	}
}

// A balancer's health checks share its address with every request it
// forwards: probes are outside the limits, so a busy node is not taken
// out of service for being busy.
func TestRateLimitsSpareProbes(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	h := newProdServer(t, &adminCore{}, func(c *Config) {
		c.Limits = Limits{PerAddress: 1, AddressBurst: 1, Now: clock.Now, Probes: []string{"/readyz"}}
		c.Mount = func(e *echoEcho) { e.GET("/readyz", func(c echoContext) error { return c.NoContent(200) }) }
	})
	serveReq(h, "GET", "/metadata", "")
	if w := serveReq(h, "GET", "/metadata", ""); w.Code != http.StatusTooManyRequests {
		t.Fatalf("second request in the second: %d", w.Code)
	}
	for i := 0; i < 5; i++ {
		if w := serveReq(h, "GET", "/readyz", ""); w.Code != 200 {
			t.Fatalf("probe %d from a limited address: %d", i, w.Code)
		}
	}
}

// The caller's address is the TCP peer unless the peer is a trusted
// proxy; then it is the right-most X-Forwarded-For hop not itself trusted.
func TestTrustedProxies(t *testing.T) {
	_, lb, _ := net.ParseCIDR("10.0.0.0/30")
	for _, tc := range []struct {
		name, peer, xff string
		trusted         bool
		want            string
	}{
		{"no proxies: the peer, the header ignored", "198.51.100.7:4000", "203.0.113.9", false, "198.51.100.7"},
		{"a trusted proxy: the address it appended", "10.0.0.1:4000", "203.0.113.9", true, "203.0.113.9"},
		{"a trusted proxy: a caller's forged hop before it is not believed", "10.0.0.1:4000", "192.0.2.66, 203.0.113.9", true, "203.0.113.9"},
		{"an untrusted peer's header is ignored", "198.51.100.7:4000", "203.0.113.9", true, "198.51.100.7"},
		{"a trusted proxy without the header: the proxy", "10.0.0.2:4000", "", true, "10.0.0.2"},
		{"loopback is not trusted unless named", "127.0.0.1:4000", "203.0.113.9", true, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := newProdServer(t, &adminCore{}, func(c *Config) {
				if tc.trusted {
					c.Security.TrustedProxies = []*net.IPNet{lb}
				}
				c.Mount = func(e *echoEcho) {
					e.GET("/probe", func(c echoContext) error {
						got = fhir.ClientAddrFrom(c.Request().Context())
						return c.NoContent(204)
					})
				}
			})
			req := httptest.NewRequest("GET", "/probe", nil)
			req.RemoteAddr = tc.peer
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			req.Header.Set("X-Real-IP", "192.0.2.99") // never believed
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got != tc.want {
				t.Fatalf("caller's address %q, want %q", got, tc.want)
			}
		})
	}
}

// blockingCore holds reads until released, to fill the concurrency bound.
type blockingCore struct {
	adminCore
	entered chan struct{}
	release chan struct{}
}

func (b *blockingCore) Read(ctx context.Context, p *fhir.Principal, typ, id string) (*fhir.Resource, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeCore.Read(ctx, p, typ, id)
}

func TestClientConcurrencyBound(t *testing.T) {
	core := &blockingCore{entered: make(chan struct{}, 4), release: make(chan struct{})}
	h := newProdServer(t, core, func(c *Config) { c.Limits = Limits{ClientConcurrent: 2} })
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); codes <- serveReq(h, "GET", "/Condition/pabc-c1", "").Code }()
	}
	<-core.entered
	<-core.entered
	if w := serveReq(h, "GET", "/Condition/pabc-c1", ""); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a third concurrent request: %d", w.Code)
	}
	close(core.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a request within the bound: %d", c)
		}
	}
	if w := serveReq(h, "GET", "/Condition/pabc-c1", ""); w.Code != 200 {
		t.Fatalf("after the others finished: %d", w.Code)
	}
}

func TestObserverSeesRoutePatterns(t *testing.T) {
	o := &observed{}
	h := newProdServer(t, &adminCore{}, func(c *Config) { c.Observer = o })
	serveReq(h, "GET", "/Condition/pabc-c1", "")
	serveReq(h, "GET", "/Patient/pabc/$everything", "")
	serveReq(h, "DELETE", "/Condition/pabc-c1", "")
	want := []string{"GET /:type/:id OK", "GET /Patient/:id/$everything Internal Server Error", "DELETE /:type/:id Method Not Allowed"}
	o.mu.Lock()
	defer o.mu.Unlock()
	if strings.Join(o.seen, "|") != strings.Join(want, "|") {
		t.Fatalf("observed %q, want %q", o.seen, want)
	}
	for _, s := range o.seen {
		if strings.Contains(s, "pabc") {
			t.Fatalf("a patient id reached the metrics: %s", s)
		}
	}
}

func TestAdminRoutes(t *testing.T) {
	core := &adminCore{exported: "{\"resourceType\":\"AuditEvent\"}\n"}
	h := newProdServer(t, core, nil)
	for _, tc := range []struct {
		method, path, body string
		status             int
		call, ctype        string
	}{
		{"GET", "/admin/clients", "", 200, "clients search-type  ", "application/json"},
		{"POST", "/admin/clients", `{"id":"x"}`, 201, "clients create  ", "application/json"},
		{"GET", "/admin/clients/c1", "", 200, "clients read c1 ", "application/json"},
		{"POST", "/admin/clients/c1/disable", "", 200, "clients update c1 disable", "application/json"},
		{"POST", "/admin/clients/c1/rotate-key", `{"keys":[]}`, 200, "clients update c1 rotate-key", "application/json"},
		{"POST", "/admin/signing-keys/rotate", "", 200, "rotate", "application/json"},
		{"GET", "/admin/audit/verify", "", 200, "verify", "application/json"},
		{"GET", "/admin/audit/export?since=2026-01-02", "", 200, "export 2026-01-02", "application/x-ndjson"},
		{"DELETE", "/admin/consents/cons-1", "", 200, "admin-revoke cons-1", "application/fhir+json"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			core.calls = nil
			w := serveReq(h, tc.method, tc.path, tc.body)
			if w.Code != tc.status || len(core.calls) != 1 || core.calls[0] != tc.call {
				t.Fatalf("%d %v, want %d %q: %s", w.Code, core.calls, tc.status, tc.call, w.Body)
			}
			if !strings.HasPrefix(w.Header().Get("Content-Type"), tc.ctype) {
				t.Fatalf("Content-Type %q", w.Header().Get("Content-Type"))
			}
			if tc.ctype == "application/x-ndjson" && (w.Result().Trailer.Get(TrailerExportCount) != "1" || w.Body.String() != core.exported) {
				t.Fatalf("export: trailer %v body %q", w.Result().Trailer, w.Body.String())
			}
		})
	}
	if w := serveReq(h, "GET", "/admin/audit/export?since=yesterday", ""); w.Code != 422 {
		t.Fatalf("a bad since: %d", w.Code)
	}
	core.err = fhir.Errorf(fhir.CodeAccessDenied, "no")
	if w := serveReq(h, "GET", "/admin/audit/export", ""); w.Code != 403 || codeIn(t, w.Body.Bytes()) != "ACCESS_DENIED" {
		t.Fatalf("a refused export: %d %s", w.Code, w.Body)
	}
	// a core without the admin operations
	plain := newProdServer(t, &fakeCore{}, nil)
	if w := serveReq(plain, "GET", "/admin/clients", ""); w.Code != 501 {
		t.Fatalf("admin on a core without it: %d", w.Code)
	}
}

type (
	echoEcho    = echo.Echo
	echoContext = echo.Context
)

var tlsState = tls.ConnectionState{HandshakeComplete: true}
