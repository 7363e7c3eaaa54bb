package smart

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const testBase = "https://gpgate.test/fhir"

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

type fixture struct {
	t     testing.TB
	srv   *Server
	st    *BoltStore
	clock *fakeClock
	priv  []byte // c1's private JWK
	kid   string
	pub   []byte
}

var testScopes = []string{"system/*.rs", "system/Consent.c", "patient/*.rs", "user/Observation.read"}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	clock := &fakeClock{t: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	st, err := OpenBolt(filepath.Join(t.TempDir(), "smart.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Now = clock.Now
	t.Cleanup(func() { st.Close() })
	o := Options{Clients: st, Keys: st, BaseURL: testBase, Now: clock.Now, Logger: discardLogger()}
	if mod != nil {
		mod(&o)
	}
	srv, err := NewServer(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, kid, err := GenerateClientKey("ES384")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddClient(context.Background(), &Client{ID: "c1", ODS: "A12345", Name: "Test EPR", JWKS: pub,
		Scopes: testScopes, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, srv: srv, st: st, clock: clock, priv: priv, kid: kid, pub: pub}
}

// claims is a client assertion under construction.
type claims map[string]any

func (f *fixture) claims() claims {
	now := f.clock.Now()
	return claims{"iss": "c1", "sub": "c1", "aud": f.srv.TokenURL(), "iat": now.Unix(),
		"exp": now.Add(4 * time.Minute).Unix(), "jti": newJTI()}
}

// sign signs c with the fixture's client key (kid and alg may be
// overridden through hdr).
func (f *fixture) sign(c claims, hdr map[string]string) string {
	f.t.Helper()
	k, err := ParsePrivateKey(f.priv)
	if err != nil {
		f.t.Fatal(err)
	}
	alg := jwa.ES384
	if a, ok := hdr["alg"]; ok {
		alg = jwa.SignatureAlgorithm(a)
	}
	if len(hdr) > 0 {
		// the raw key, so jws takes kid from hdr rather than from the JWK
		var raw any
		if err := k.Raw(&raw); err != nil {
			f.t.Fatal(err)
		}
		h := map[string]string{"kid": k.KeyID()}
		for n, v := range hdr {
			if n != "alg" {
				h[n] = v
			}
		}
		return signWith(f.t, raw, alg, c, h)
	}
	return signWith(f.t, k, alg, c, nil)
}

func signWith(t testing.TB, key any, alg jwa.SignatureAlgorithm, c claims, hdr map[string]string) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if k, ok := key.(interface{ KeyID() string }); ok {
		_ = h.Set(jws.KeyIDKey, k.KeyID())
	}
	_ = h.Set(jws.TypeKey, "JWT")
	for k, v := range hdr {
		_ = h.Set(k, v)
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tokenForm(assertion, scope string) url.Values {
	return url.Values{"grant_type": {GrantClientCredentials}, "client_assertion_type": {AssertionTypeJWTBearer},
		"client_assertion": {assertion}, "scope": {scope}}
}

func (f *fixture) post(h http.Handler, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, f.srv.TokenURL(), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Patient     string `json:"patient"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func decodeAnswer(t testing.TB, w *httptest.ResponseRecorder) tokenAnswer {
	t.Helper()
	var a tokenAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, w.Body.String())
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return a
}

// token gets a token for scope, failing the test if none is issued.
func (f *fixture) token(scope string, extra claims) tokenAnswer {
	f.t.Helper()
	c := f.claims()
	for k, v := range extra {
		c[k] = v
	}
	w := f.post(f.srv.TokenHandler(), tokenForm(f.sign(c, nil), scope).Encode())
	a := decodeAnswer(f.t, w)
	if w.Code != http.StatusOK || a.AccessToken == "" {
		f.t.Fatalf("token: HTTP %d %s", w.Code, w.Body.String())
	}
	return a
}

var _ = jwt.New
