package backendauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

type tokenServer struct {
	srv    *httptest.Server
	pub    jwk.Key
	alg    jwa.SignatureAlgorithm
	hits   atomic.Int64
	status int
	jtis   sync.Map
	now    func() time.Time
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := ts.hits.Add(1)
	if ts.status != 0 {
		w.WriteHeader(ts.status)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"free text"}`))
		return
	}
	_ = r.ParseForm()
	tok, err := jwt.Parse([]byte(r.PostForm.Get("client_assertion")), jwt.WithKey(ts.alg, ts.pub),
		jwt.WithIssuer("client-1"), jwt.WithSubject("client-1"), jwt.WithAudience(ts.srv.URL+"/token"), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(ts.now)))
	if err != nil || r.PostForm.Get("scope") != "system/*.rs" || r.PostForm.Get("grant_type") != "client_credentials" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if _, dup := ts.jtis.LoadOrStore(tok.JwtID(), true); dup || tok.Expiration().Sub(tok.IssuedAt()) > 5*time.Minute {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, _ = fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":300}`, n)
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func keyFor(t *testing.T, alg string) (jwk.Key, jwk.Key) {
	t.Helper()
	var raw any
	switch alg {
	case "ES384":
		raw, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES256":
		raw, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		raw, _ = rsa.GenerateKey(rand.Reader, 2048)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if alg == "RS512" || alg == "RS256" {
		_ = k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
	}
	_ = jwk.AssignKeyID(k)
	pub, _ := k.PublicKey()
	return k, pub
}

func TestTokenFlowAndCache(t *testing.T) {
	for _, alg := range []string{"ES384", "ES256", "RS384", "RS512"} {
		t.Run(alg, func(t *testing.T) {
			priv, pub := keyFor(t, alg)
			now := t0
			ts := &tokenServer{pub: pub, alg: jwa.SignatureAlgorithm(alg), now: func() time.Time { return now }}
			ts.srv = httptest.NewServer(ts)
			defer ts.srv.Close()
			c, err := New(Options{TokenURL: ts.srv.URL + "/token", ClientID: "client-1", Key: priv, Scope: "system/*.rs",
				Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			tok, err := c.Token(ctx)
			if err != nil || tok != "tok-1" {
				t.Fatalf("Token = %q, %v", tok, err)
			}
			now = t0.Add(269 * time.Second) // 300s life, renewed 30s early
			if tok, _ := c.Token(ctx); tok != "tok-1" || ts.hits.Load() != 1 {
				t.Fatalf("not cached: %q after %d requests", tok, ts.hits.Load())
			}
			now = t0.Add(270 * time.Second)
			if tok, _ := c.Token(ctx); tok != "tok-2" {
				t.Fatalf("not renewed: %q", tok)
			}
			c.Forget()
			if tok, _ := c.Token(ctx); tok != "tok-3" {
				t.Fatalf("not renewed after Forget: %q", tok)
			}
		})
	}
}

func TestTokenRefused(t *testing.T) {
	priv, pub := keyFor(t, "ES384")
	ts := &tokenServer{pub: pub, alg: jwa.ES384, status: http.StatusUnauthorized}
	ts.srv = httptest.NewServer(ts)
	defer ts.srv.Close()
	c, _ := New(Options{TokenURL: ts.srv.URL + "/token", ClientID: "client-1", Key: priv, Now: func() time.Time { return t0 }})
	for i := 0; i < 2; i++ {
		if _, err := c.Token(context.Background()); err == nil {
			t.Fatal("no error")
		}
	}
	if ts.hits.Load() != 2 {
		t.Fatalf("a refusal was cached: %d requests", ts.hits.Load())
	}
}

func TestParseKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	k, _ := jwk.FromRaw(ec)
	jwkJSON, _ := json.Marshal(k)
	pub, _ := k.PublicKey()
	pubJSON, _ := json.Marshal(pub)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	k521, _ := jwk.FromRaw(p521)
	j521, _ := json.Marshal(k521)
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"PEM PKCS#8", pemKey, false},
		{"JWK", jwkJSON, false},
		{"public key", pubJSON, true},
		{"P-521", j521, true},
		{"garbage", []byte("nope"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && k.KeyID() == "" {
				t.Fatal("no kid")
			}
		})
	}
}

func TestParseTokenResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		exp     int64
		code    string
		wantErr bool
	}{
		{"number", `{"access_token":"a","token_type":"bearer","expires_in":300}`, 300, "", false},
		{"string", `{"access_token":"a","token_type":"Bearer","expires_in":"599"}`, 599, "", false},
		{"capped at a day", `{"access_token":"a","token_type":"bearer","expires_in":999999}`, 86400, "", false},
		{"no expiry", `{"access_token":"a","token_type":"bearer"}`, 0, "", true},
		{"not bearer", `{"access_token":"a","token_type":"mac","expires_in":300}`, 300, "", true},
		{"error", `{"error":"invalid_client"}`, 0, "invalid_client", true},
		{"error with free text", `{"error":"Bad client: x"}`, 0, "", true},
		{"not JSON", `<html>`, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTokenResponse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tr != nil && (tr.ExpiresIn() != tc.exp || tr.Error != tc.code) {
				t.Fatalf("got %+v", tr)
			}
		})
	}
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","token_type":"bearer","expires_in":300}`))
	f.Add([]byte(`{"access_token":"a","token_type":"bearer","expires_in":"1e3"}`))
	f.Add([]byte(`{"error":"invalid_scope"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tr, err := ParseTokenResponse(raw)
		if err == nil && (tr.AccessToken == "" || tr.ExpiresIn() <= 0 || tr.ExpiresIn() > 86400) {
			t.Fatalf("accepted %+v", tr)
		}
	})
}
