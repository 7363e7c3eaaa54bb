package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func wantInvalidToken(t *testing.T, err error) *BearerError {
	t.Helper()
	var be *BearerError
	if !errors.As(err, &be) || be.Code != ErrInvalidToken || be.Description == "" {
		t.Fatalf("err = %v, want invalid_token with a description", err)
	}
	return be
}

// forge signs an access token with the given key, mimicking gpgate's.
func forge(t *testing.T, key any, kid string, c claims) string {
	t.Helper()
	payload := c
	h := map[string]string{"kid": kid, "typ": "at+jwt"}
	return signWith(t, key, jwa.ES384, payload, h)
}

func TestVerifierRejections(t *testing.T) {
	f := newFixture(t, nil)
	v := f.srv.Verifier()
	ctx := context.Background()
	good := f.token("system/Patient.rs", nil).AccessToken
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	base := func() claims {
		return claims{"iss": testBase, "sub": "c1", "client_id": "c1", "aud": testBase, "iat": now.Unix(),
			"exp": now.Add(time.Minute).Unix(), "jti": "x", "scope": "system/*.cruds"}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	activeKID := f.srv.ring.Load().active.kid
	activeKey := f.srv.ring.Load().active.key
	with := func(k string, val any) claims { c := base(); c[k] = val; return c }
	parts := strings.Split(good, ".")
	payload, _ := jws.ParseString(good)
	_ = payload

	cases := []struct {
		name, token string
	}{
		{"garbage", "abc"},
		{"another issuer's key, same kid", forge(t, other, activeKID, base())},
		{"another issuer's key, own kid", forge(t, other, "evil", base())},
		{"wrong iss", forge(t, activeKey, activeKID, with("iss", "https://evil.test"))},
		{"wrong aud", forge(t, activeKey, activeKID, with("aud", "https://other.test/fhir"))},
		{"expired", forge(t, activeKey, activeKID, with("exp", now.Add(-time.Minute).Unix()))},
		{"nbf in the future", forge(t, activeKey, activeKID, with("nbf", now.Add(time.Minute).Unix()))},
		{"no exp", func() string { c := base(); delete(c, "exp"); return forge(t, activeKey, activeKID, c) }()},
		{"client_id is not sub", forge(t, activeKey, activeKID, with("client_id", "c2"))},
		{"bad scope claim", forge(t, activeKey, activeKID, with("scope", "openid"))},
		{"tampered payload", parts[0] + "." + b64(base()) + "." + parts[2]},
		{"alg none", b64(map[string]string{"alg": "none", "kid": activeKID, "typ": "at+jwt"}) + "." + b64(base()) + "."},
		{"client assertion replayed as a token", f.sign(f.claims(), nil)},
		{"typ JWT", signWith(t, activeKey, jwa.ES384, base(), map[string]string{"kid": activeKID, "typ": "JWT"})},
	}
	hs, err := jws.Sign([]byte(`{"iss":"`+testBase+`"}`), jws.WithKey(jwa.HS256, f.srv.ring.Load().jwks))
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct{ name, token string }{"HS256 with the published JWKS", string(hs)})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(ctx, c.token)
			be := wantInvalidToken(t, err)
			t.Log(be.Description)
			if h := be.WWWAuthenticate("gpgate"); !strings.HasPrefix(h, `Bearer realm="gpgate", error="invalid_token", error_description="`) {
				t.Fatalf("WWW-Authenticate = %s", h)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := v.Verify(ctx, "")
		if err != ErrNoToken {
			t.Fatalf("err = %v", err)
		}
		if h := ErrNoToken.WWWAuthenticate("gpgate"); h != `Bearer realm="gpgate"` {
			t.Fatalf("WWW-Authenticate = %s", h)
		}
	})
	t.Run("forged with the real key is accepted (control)", func(t *testing.T) {
		if _, err := v.Verify(ctx, forge(t, activeKey, activeKID, base())); err != nil {
			t.Fatalf("control token rejected: %v", err)
		}
	})
}

func TestVerifierCache(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.VerifierCacheSize = 4 })
	v := f.srv.Verifier()
	ctx := context.Background()
	var toks []string
	for i := 0; i < 6; i++ {
		toks = append(toks, f.token("system/Patient.rs", nil).AccessToken)
	}
	for _, tok := range toks {
		a, err := v.VerifyToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		b, err := v.VerifyToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatal("second verification did not come from the cache")
		}
	}
	v.mu.RLock()
	n := len(v.cache)
	v.mu.RUnlock()
	if n > 4 {
		t.Fatalf("cache holds %d entries, bound 4", n)
	}
	// the copy Verify returns is the caller's
	p, _ := v.Verify(ctx, toks[5])
	p.ClientID = "changed"
	if p2, _ := v.Verify(ctx, toks[5]); p2.ClientID != "c1" {
		t.Fatal("Verify returned the cached principal itself")
	}
	// a cached token expires with the clock
	f.clock.Advance(6 * time.Minute)
	if _, err := v.Verify(ctx, toks[5]); err == nil {
		t.Fatal("expired cached token accepted")
	}
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	old := f.token("system/Patient.rs", nil).AccessToken
	oldKID := f.srv.ring.Load().active.kid
	kid, err := f.srv.RotateSigningKey(ctx, "RS384")
	if err != nil {
		t.Fatal(err)
	}
	if kid == oldKID {
		t.Fatal("rotation kept the kid")
	}
	standalone, err := NewVerifier(ctx, VerifierOptions{Keys: f.st, Audience: testBase, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	neu := f.token("system/Patient.rs", nil).AccessToken
	msg, _ := jws.ParseString(neu)
	if h := msg.Signatures()[0].ProtectedHeaders(); h.KeyID() != kid || h.Algorithm() != jwa.RS384 {
		t.Fatalf("new token signed by %s/%s", h.KeyID(), h.Algorithm())
	}
	for _, v := range []*Verifier{f.srv.Verifier(), standalone} {
		for _, tok := range []string{old, neu} {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatalf("after rotation: %v", err)
			}
		}
	}
	jwks := func() string {
		w := httptest.NewRecorder()
		f.srv.JWKSHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, f.srv.JWKSURL(), nil))
		return w.Body.String()
	}
	if s := jwks(); !strings.Contains(s, oldKID) || !strings.Contains(s, kid) {
		t.Fatalf("JWKS after rotation lacks a key: %s", s)
	}
	// after the retention the old key is gone
	f.clock.Advance(10 * time.Minute)
	if err := f.srv.ReloadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if s := jwks(); strings.Contains(s, oldKID) || !strings.Contains(s, kid) {
		t.Fatalf("JWKS after retention: %s", s)
	}
	// a restart keeps the active key
	srv2, err := NewServer(ctx, Options{Clients: f.st, Keys: f.st, BaseURL: testBase, Now: f.clock.Now, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if srv2.ring.Load().active.kid != kid {
		t.Fatal("restart made a new key")
	}
}

func TestStandaloneVerifierPicksUpRotation(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	v, err := NewVerifier(ctx, VerifierOptions{Keys: f.st, Audience: testBase, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * time.Second)
	if _, err := f.srv.RotateSigningKey(ctx, ""); err != nil {
		t.Fatal(err)
	}
	tok := f.token("system/Patient.rs", nil).AccessToken
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("standalone verifier did not reload: %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	f := newFixture(t, nil)
	var got *fhir.Principal
	h := f.srv.Verifier().Middleware("gpgate", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = fhir.PrincipalFrom(r.Context())
	}))
	tok := f.token("system/Patient.rs", nil).AccessToken
	cases := []struct {
		name, auth string
		status     int
		challenge  string
	}{
		{"ok", "Bearer " + tok, 200, ""},
		{"missing", "", 401, `Bearer realm="gpgate"`},
		{"basic", "Basic dXNlcjpwdw==", 401, `Bearer realm="gpgate"`},
		{"invalid", "Bearer abc.def.ghi", 401, `Bearer realm="gpgate", error="invalid_token", error_description=`},
		{"malformed header", "Bearer a b", 400, `Bearer realm="gpgate", error="invalid_request"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(http.MethodGet, testBase+"/Patient", nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != c.status {
				t.Fatalf("HTTP %d, want %d", w.Code, c.status)
			}
			wa := w.Header().Get("WWW-Authenticate")
			if c.challenge == "" {
				if got == nil || got.ClientID != "c1" || wa != "" {
					t.Fatalf("principal %v, challenge %q", got, wa)
				}
				return
			}
			if got != nil || !strings.HasPrefix(wa, c.challenge) {
				t.Fatalf("principal %v, challenge %q, want prefix %q", got, wa, c.challenge)
			}
			if !strings.Contains(w.Body.String(), "OperationOutcome") {
				t.Fatalf("body %s", w.Body.String())
			}
		})
	}
}

var _ = jwt.New

func TestBearerErrorStatus(t *testing.T) {
	cases := []struct {
		e      *BearerError
		status int
		header string
	}{
		{ErrNoToken, 401, `Bearer realm="r"`},
		{&BearerError{Code: ErrInvalidToken, Description: `bad "token"` + "\n"}, 401, `Bearer realm="r", error="invalid_token", error_description="bad  token  "`},
		{&BearerError{Code: ErrInvalidRequest, Description: "x"}, 400, `Bearer realm="r", error="invalid_request", error_description="x"`},
		{&BearerError{Code: ErrInsufficientScope, Description: "x"}, 403, `Bearer realm="r", error="insufficient_scope", error_description="x"`},
	}
	for _, c := range cases {
		t.Run(c.e.Error(), func(t *testing.T) {
			if c.e.Status() != c.status || c.e.FHIRError().Status() != c.status {
				t.Fatalf("status %d / %d, want %d", c.e.Status(), c.e.FHIRError().Status(), c.status)
			}
			if h := c.e.WWWAuthenticate("r"); h != c.header {
				t.Fatalf("header %s, want %s", h, c.header)
			}
		})
	}
}
