package smart

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// recordedEvents is an Events that keeps what it is told.
type recordedEvents struct {
	mu       sync.Mutex
	issued   []string
	refusals []Refusal
}

func (r *recordedEvents) TokenIssued(_ context.Context, id string) {
	r.mu.Lock()
	r.issued = append(r.issued, id)
	r.mu.Unlock()
}

func (r *recordedEvents) TokenRefused(_ context.Context, x Refusal) {
	r.mu.Lock()
	r.refusals = append(r.refusals, x)
	r.mu.Unlock()
}

func (r *recordedEvents) last() Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.refusals) == 0 {
		return Refusal{}
	}
	return r.refusals[len(r.refusals)-1]
}

// RFC 7515 4.1.11: a JWS naming crit header parameters the recipient does
// not understand is refused; gpgate understands none.
func TestAssertionCritRefused(t *testing.T) {
	f := newFixture(t, nil)
	k, err := ParsePrivateKey(f.priv)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(f.claims())
	for _, tc := range []struct {
		name string
		crit []string
	}{
		{"unknown extension", []string{"x-gpgate-test"}},
		{"b64 (RFC 7797)", []string{"b64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := jws.NewHeaders()
			_ = h.Set(jws.KeyIDKey, k.KeyID())
			_ = h.Set(jws.TypeKey, "JWT")
			for _, c := range tc.crit {
				_ = h.Set(c, true)
			}
			if err := h.Set(jws.CriticalKey, tc.crit); err != nil {
				t.Fatal(err)
			}
			b, err := jws.Sign(payload, jws.WithKey(jwa.ES384, k, jws.WithProtectedHeaders(h)))
			if err != nil {
				t.Fatal(err)
			}
			w := f.post(f.srv.TokenHandler(), tokenForm(string(b), "system/Patient.rs").Encode())
			a := decodeAnswer(t, w)
			if w.Code != http.StatusUnauthorized || a.Error != ErrInvalidClient || !strings.Contains(a.Description, "crit") {
				t.Fatalf("HTTP %d %s %q, want 401 invalid_client about crit", w.Code, a.Error, a.Description)
			}
		})
	}
	// the same assertion without crit is accepted
	f.token("system/Patient.rs", nil)
}

func TestTokenEndpointGetIs405(t *testing.T) {
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		w := httptest.NewRecorder()
		MethodNotAllowed(w, httptest.NewRequest(m, "/auth/token", nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" || !strings.Contains(w.Body.String(), ErrInvalidRequest) {
			t.Errorf("%s: %d Allow %q %s", m, w.Code, w.Header().Get("Allow"), w.Body.String())
		}
	}
	f := newFixture(t, nil)
	req := httptest.NewRequest(http.MethodGet, f.srv.TokenURL(), nil)
	w := httptest.NewRecorder()
	f.srv.TokenHandler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("TokenHandler GET: %d", w.Code)
	}
}

// Disabling a client, or rotating its key, refuses its live tokens on the
// next request (the verified-token cache re-checks the client).
func TestClientChangesReachLiveTokens(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(f *fixture) error
		undo   func(f *fixture) error
		want   string
	}{
		{"disable", func(f *fixture) error { return f.srv.Clients().DisableClient(ctx, "c1") },
			func(f *fixture) error { return f.srv.Clients().EnableClient(ctx, "c1") }, "disabled"},
		{"rotate key", func(f *fixture) error {
			_, pub, _, err := GenerateClientKey("ES256")
			if err != nil {
				return err
			}
			return f.srv.Clients().RotateClientKey(ctx, "c1", pub)
		}, func(f *fixture) error { return f.srv.Clients().RotateClientKey(ctx, "c1", f.pub) }, "rotated"},
		{"rotate key, old key kept (rollover)", func(f *fixture) error {
			_, pub, _, err := GenerateClientKey("ES256")
			if err != nil {
				return err
			}
			var a, b struct {
				Keys []json.RawMessage `json:"keys"`
			}
			_ = json.Unmarshal(f.pub, &a)
			_ = json.Unmarshal(pub, &b)
			both, _ := json.Marshal(map[string]any{"keys": append(a.Keys, b.Keys...)})
			return f.srv.Clients().RotateClientKey(ctx, "c1", both)
		}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			tok := f.token("system/Patient.rs", nil).AccessToken
			if _, err := f.srv.Verifier().VerifyToken(ctx, tok); err != nil {
				t.Fatalf("fresh token: %v", err)
			}
			if err := tc.change(f); err != nil {
				t.Fatal(err)
			}
			_, err := f.srv.Verifier().VerifyToken(ctx, tok)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("token refused after a rollover that kept its key: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("after %s: %v, want a refusal saying %q", tc.name, err, tc.want)
			}
			if err := tc.undo(f); err != nil {
				t.Fatal(err)
			}
			if _, err := f.srv.Verifier().VerifyToken(ctx, tok); err != nil {
				t.Fatalf("after undoing %s: %v", tc.name, err)
			}
		})
	}
}

// A change made behind the Server's back (another node) is seen within
// ClientCheckTTL.
func TestClientChangeElsewhereSeenAfterTTL(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.ClientCheckTTL = 2 * time.Second })
	tok := f.token("system/Patient.rs", nil).AccessToken
	if _, err := f.srv.Verifier().VerifyToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DisableClient(ctx, "c1"); err != nil { // the store itself, not Server.Clients
		t.Fatal(err)
	}
	f.clock.Advance(3 * time.Second)
	if _, err := f.srv.Verifier().VerifyToken(ctx, tok); err == nil {
		t.Fatal("a client disabled elsewhere still verifies after the TTL")
	}
}

func TestSigningKeyRotationKeepsLiveTokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	old := f.token("system/Patient.rs", nil).AccessToken
	out, err := f.srv.Admin().RotateSigningKey(ctx, []byte(`{"alg":"RS384"}`))
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]string
	_ = json.Unmarshal(out, &r)
	if r["kid"] == "" || r["alg"] != "RS384" {
		t.Fatalf("rotate answered %s", out)
	}
	if _, err := f.srv.Verifier().VerifyToken(ctx, old); err != nil {
		t.Fatalf("a token of the retired key no longer verifies: %v", err)
	}
	fresh := f.token("system/Patient.rs", nil).AccessToken
	msg, err := jws.ParseString(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if kid := msg.Signatures()[0].ProtectedHeaders().KeyID(); kid != r["kid"] {
		t.Fatalf("new tokens are signed by %s, want the new key %s", kid, r["kid"])
	}
	if _, err := f.srv.Admin().RotateSigningKey(ctx, []byte(`{"alg":"HS256"}`)); err == nil {
		t.Fatal("HS256 accepted as a signing algorithm")
	}
}

func TestTokenEvents(t *testing.T) {
	ev := &recordedEvents{}
	f := newFixture(t, func(o *Options) { o.Events = ev })
	f.token("system/Patient.rs", nil)
	if len(ev.issued) != 1 || ev.issued[0] != "c1" {
		t.Fatalf("issued %v", ev.issued)
	}
	now := f.clock.Now()
	cases := []struct {
		name   string
		body   string
		reason string
		client string
		authn  bool
	}{
		{"unknown client", tokenForm(f.sign(claims{"iss": "ghost", "sub": "ghost", "aud": f.srv.TokenURL(), "exp": now.Add(time.Minute).Unix(), "jti": "j1"}, nil), "system/Patient.rs").Encode(), "unknown-client", "", false},
		{"bad signature", tokenForm(f.sign(claims{"iss": "c1", "sub": "c1", "aud": "https://elsewhere/token", "exp": now.Add(time.Minute).Unix(), "jti": "j2"}, nil), "system/Patient.rs").Encode(), "bad-assertion", "c1", false},
		{"unknown kid", tokenForm(f.sign(f.claims(), map[string]string{"kid": "nope"}), "system/Patient.rs").Encode(), "unknown-key", "c1", false},
		{"scope escalation", tokenForm(f.sign(f.claims(), nil), "system/Patient.cruds").Encode(), ErrInvalidScope, "c1", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.post(f.srv.TokenHandler(), c.body)
			if w.Code < 400 {
				t.Fatalf("HTTP %d", w.Code)
			}
			got := ev.last()
			if got.Reason != c.reason || got.ClientID != c.client || got.Authenticated != c.authn {
				t.Fatalf("refusal %+v, want reason %s client %q authenticated %v", got, c.reason, c.client, c.authn)
			}
		})
	}
	if err := f.srv.Clients().DisableClient(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	f.post(f.srv.TokenHandler(), tokenForm(f.sign(f.claims(), nil), "system/Patient.rs").Encode())
	if got := ev.last(); got.Reason != "client-disabled" || got.ClientID != "c1" {
		t.Fatalf("disabled client: %+v", got)
	}
}

func TestAdminClients(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	a := f.srv.Admin()
	_, pub, _, _ := GenerateClientKey("ES256")
	body, _ := json.Marshal(map[string]any{"id": "c2", "ods": "B22222", "name": "Second", "jwks": json.RawMessage(pub), "scopes": []string{"system/Patient.rs"}})
	out, err := a.AddClient(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"enabled":true`) {
		t.Fatalf("added client %s", out)
	}
	for _, tc := range []struct {
		name string
		call func() ([]byte, error)
		want string // substring of the answer, or of the error
		err  bool
	}{
		{"list", func() ([]byte, error) { return a.ListClients(ctx) }, `"id":"c2"`, false},
		{"get", func() ([]byte, error) { return a.GetClient(ctx, "c1") }, `"ods":"A12345"`, false},
		{"get unknown", func() ([]byte, error) { return a.GetClient(ctx, "nope") }, "REFERENCE_NOT_FOUND", true},
		{"disable", func() ([]byte, error) { return a.SetClient(ctx, "c2", "disable", nil) }, `"enabled":false`, false},
		{"enable", func() ([]byte, error) { return a.SetClient(ctx, "c2", "enable", nil) }, `"enabled":true`, false},
		{"rotate without keys", func() ([]byte, error) { return a.SetClient(ctx, "c2", "rotate-key", nil) }, "INVALID_PARAMETER", true},
		{"rotate to a private key", func() ([]byte, error) {
			return a.SetClient(ctx, "c2", "rotate-key", []byte(`{"keys":[`+string(f.priv)+`]}`))
		}, "INVALID_PARAMETER", true},
		{"unknown action", func() ([]byte, error) { return a.SetClient(ctx, "c2", "explode", nil) }, "INVALID_PARAMETER", true},
		{"add twice", func() ([]byte, error) { return a.AddClient(ctx, body) }, "already registered", true},
		{"add garbage", func() ([]byte, error) { return a.AddClient(ctx, []byte(`{"id":`)) }, "INVALID_RESOURCE", true},
		{"add unknown field", func() ([]byte, error) { return a.AddClient(ctx, []byte(`{"id":"c3","secret":"x"}`)) }, "INVALID_RESOURCE", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.call()
			got := string(out)
			if err != nil {
				got = err.Error()
			}
			if (err != nil) != tc.err || !strings.Contains(got, tc.want) {
				t.Fatalf("got %s (err %v), want %q", got, err, tc.want)
			}
		})
	}
}

// A client store that stops answering is gpgate's failure, not the
// token's: VerifyToken fails with an error that is not a refusal (no 401
// sending the client for another token, no refused bearer audited).
func TestClientStoreDownIsNotARefusal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *Options) { o.ClientCheckTTL = time.Second })
	tok := f.token("system/Patient.rs", nil).AccessToken
	if _, err := f.srv.Verifier().VerifyToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	f.st.Close()
	f.clock.Advance(2 * time.Second) // the client's cached state is stale: asked again
	_, err := f.srv.Verifier().VerifyToken(ctx, tok)
	var be *BearerError
	if err == nil || errors.As(err, &be) {
		t.Fatalf("with the client store down: %v, want an error that is not a BearerError", err)
	}
}
