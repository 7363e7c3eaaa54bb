package viewer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gpgate/gpgate/viewer"
)

// fakeIdP is an OpenID Connect provider over httptest: discovery, JWKS,
// and a token endpoint that checks the code, the client secret and the
// PKCE verifier, and answers with an ID token built by claims.
type fakeIdP struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	mu     sync.Mutex
	code   string
	chall  string
	nonce  string
	claims func(nonce string) map[string]any
}

func newFakeIdP(t *testing.T) *fakeIdP {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeIdP{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"ES256"}, "response_types_supported": []string{"code"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		id, secret, _ := r.BasicAuth()
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if r.PostFormValue("code") != p.code || p.code == "" || id != "viewer" || secret != "s3cret" ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != p.chall {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		p.code = "" // one use
		sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
		raw, _ := jwt.Signed(sig).Claims(p.claims(p.nonce)).Serialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": raw})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// authorize plays the provider's login page: it records what the viewer
// sent and returns the callback URL the provider would redirect to.
func (p *fakeIdP) authorize(t *testing.T, loc string) (callback, state string) {
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, p.srv.URL+"/authorize") {
		t.Fatalf("login redirect to %q", loc)
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("client_id") != "viewer" {
		t.Fatalf("authorization request lacks PKCE, nonce or state: %v", q)
	}
	p.mu.Lock()
	p.code, p.chall, p.nonce = "code-123", q.Get("code_challenge"), q.Get("nonce")
	p.mu.Unlock()
	return q.Get("redirect_uri") + "?code=code-123&state=" + url.QueryEscape(q.Get("state")), q.Get("state")
}

func TestOIDCSignIn(t *testing.T) {
	now := time.Now()
	good := func(issuer string) func(string) map[string]any {
		return func(nonce string) map[string]any {
			return map[string]any{"iss": issuer, "aud": "viewer", "sub": "user-42", "nonce": nonce,
				"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "name": "Dr Olive Idp",
				"nhsid_useruid": "555000000077", "nhsid_nrbac_roles": []any{map[string]any{"org_code": "RXX01", "role_name": "Consultant"}}}
		}
	}
	with := func(base func(string) map[string]any, f func(map[string]any)) func(string) map[string]any {
		return func(n string) map[string]any { c := base(n); f(c); return c }
	}
	cases := []struct {
		name   string
		claims func(issuer string) func(string) map[string]any
		tamper func(callback string) string
		ok     bool
	}{
		{"good token", good, nil, true},
		{"wrong nonce", func(i string) func(string) map[string]any {
			return with(good(i), func(c map[string]any) { c["nonce"] = "replayed" })
		}, nil, false},
		{"wrong audience", func(i string) func(string) map[string]any {
			return with(good(i), func(c map[string]any) { c["aud"] = "another-app" })
		}, nil, false},
		{"expired token", func(i string) func(string) map[string]any {
			return with(good(i), func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })
		}, nil, false},
		{"other issuer", func(i string) func(string) map[string]any {
			return with(good(i), func(c map[string]any) { c["iss"] = "https://elsewhere.example" })
		}, nil, false},
		{"no organisation claim", func(i string) func(string) map[string]any {
			return with(good(i), func(c map[string]any) { delete(c, "nhsid_nrbac_roles") })
		}, nil, false},
		{"SDS id not digits", func(i string) func(string) map[string]any {
			return with(good(i), func(c map[string]any) { c["nhsid_useruid"] = "abc" })
		}, nil, false},
		{"state tampered", good, func(cb string) string { return strings.Replace(cb, "state=", "state=x", 1) }, false},
		{"provider error", good, func(cb string) string { return cb[:strings.Index(cb, "?")] + "?error=access_denied" }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			idp := newFakeIdP(t)
			idp.claims = c.claims(idp.srv.URL)
			var v *viewer.Viewer
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { v.ServeHTTP(w, r) }))
			defer srv.Close()
			h := &harness{t: t, srv: srv, logs: &syncBuffer{}}
			var err error
			v, err = viewer.New(viewer.Config{Core: &fakeCore{}, Log: slog.New(slog.NewTextHandler(h.logs, nil)),
				OIDC: &viewer.OIDCConfig{Issuer: idp.srv.URL, ClientID: "viewer", ClientSecret: "s3cret",
					RedirectURL: srv.URL + "/viewer/oidc/callback", Label: "Test IdP",
					OrgClaim: "nhsid_nrbac_roles.0.org_code", SDSClaim: "nhsid_useruid", RoleClaim: "nhsid_nrbac_roles.0.role_name"}})
			if err != nil {
				t.Fatal(err)
			}
			b := h.browser()
			if p := b.get("/viewer/signin"); !strings.Contains(p.body, "Sign in with Test IdP") || strings.Contains(p.body, `name="password"`) {
				t.Fatal("sign-in page does not offer (only) the identity provider")
			}
			r := b.get("/viewer/oidc/login")
			if r.status != http.StatusFound {
				t.Fatalf("login: %d", r.status)
			}
			cb, _ := idp.authorize(t, r.loc)
			if c.tamper != nil {
				cb = c.tamper(cb)
			}
			req, _ := http.NewRequest(http.MethodGet, cb, nil)
			r = b.do(req)
			if !c.ok {
				if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "did not complete") {
					t.Fatalf("refused sign-in: %d\n%s", r.status, r.body)
				}
				if p := b.get("/viewer/find"); p.status != http.StatusSeeOther {
					t.Fatal("signed in anyway")
				}
				return
			}
			if r.status != http.StatusOK || !strings.Contains(r.body, `http-equiv="refresh" content="0;url=/viewer/find"`) {
				t.Fatalf("callback: %d\n%s", r.status, r.body)
			}
			p := b.get("/viewer/find")
			if p.status != http.StatusOK || !strings.Contains(p.body, "Dr Olive Idp") || !strings.Contains(p.body, "Consultant, RXX01") {
				t.Fatalf("find page after OIDC sign-in: %d", p.status)
			}
			// the code is single use: replaying the callback fails
			if r := b.do(req); r.status != http.StatusUnauthorized {
				t.Fatalf("replayed callback: %d", r.status)
			}
		})
	}
}
