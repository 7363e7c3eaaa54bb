package smart

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

func TestTokenFlow(t *testing.T) {
	f := newFixture(t, nil)
	b2b := map[string]any{"hl7-b2b": map[string]any{"organization_id": "A12345", "purpose_of_use": []string{"TREAT"},
		"subject_id": "G1234567", "subject_name": "Dr A Test", "subject_role": "http://snomed.info/sct|309394004"}}
	a := f.token("system/Patient.rs system/Observation.read", claims{"extensions": b2b})
	if a.TokenType != "bearer" || a.ExpiresIn != 300 || a.Scope != "system/Patient.rs system/Observation.read" {
		t.Fatalf("answer = %+v", a)
	}
	p, err := f.srv.Verifier().Verify(context.Background(), a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := fhir.Principal{ClientID: "c1", ConsumerODS: "A12345", Practitioner: "G1234567", Role: "http://snomed.info/sct|309394004",
		Name: "Dr A Test", PurposeOfUse: "TREAT", Scopes: []string{"system/Patient.rs", "system/Observation.read"}, TokenID: p.TokenID}
	if p.TokenID == "" || !equalPrincipal(*p, want) {
		t.Fatalf("principal = %+v\nwant %+v", *p, want)
	}
	// the token is a JWT signed by gpgate's published key, typ at+jwt
	msg, err := jws.ParseString(a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.Type() != "at+jwt" || h.Algorithm() != jwa.ES384 {
		t.Errorf("header typ %q alg %q", h.Type(), h.Algorithm())
	}
	w := httptest.NewRecorder()
	f.srv.JWKSHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, f.srv.JWKSURL(), nil))
	set, err := jwk.Parse(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	k, ok := set.LookupKeyID(h.KeyID())
	if !ok {
		t.Fatalf("kid %s not in JWKS %s", h.KeyID(), w.Body.String())
	}
	if _, err := jws.Verify([]byte(a.AccessToken), jws.WithKey(jwa.ES384, k)); err != nil {
		t.Errorf("token does not verify with the published key: %v", err)
	}
	if strings.Contains(w.Body.String(), `"d"`) {
		t.Error("JWKS publishes private key material")
	}
	// expired: advance past exp + skew
	f.clock.Advance(5*time.Minute + 31*time.Second)
	_, err = f.srv.Verifier().Verify(context.Background(), a.AccessToken)
	var be *BearerError
	if !errors.As(err, &be) || be.Code != ErrInvalidToken {
		t.Fatalf("expired token: err = %v", err)
	}
}

func equalPrincipal(a, b fhir.Principal) bool {
	return reflect.DeepEqual(a, b)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestTokenRejections(t *testing.T) {
	f := newFixture(t, nil)
	ok := func() claims { return f.claims() }
	with := func(k string, v any) claims { c := ok(); c[k] = v; return c }
	without := func(k string) claims { c := ok(); delete(c, k); return c }
	now := f.clock.Now()
	const scope = "system/Patient.rs"

	otherKey, _, _, err := GenerateClientKey("ES384")
	if err != nil {
		t.Fatal(err)
	}
	ok2, err := ParsePrivateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = ok2.Set(jwk.KeyIDKey, f.kid) // another key claiming the registered kid

	// A second client, disabled.
	privD, pubD, _, _ := GenerateClientKey("ES256")
	if err := f.st.AddClient(context.Background(), &Client{ID: "off", ODS: "B22222", JWKS: pubD, Scopes: testScopes, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.DisableClient(context.Background(), "off"); err != nil {
		t.Fatal(err)
	}
	kD, _ := ParsePrivateKey(privD)

	pubSet, _ := jwk.Parse(f.pub)
	pubKey, _ := pubSet.Key(0)
	pubPEM, _ := jwk.Pem(pubKey)

	reused := f.sign(ok(), nil)
	if w := f.post(f.srv.TokenHandler(), tokenForm(reused, scope).Encode()); w.Code != 200 {
		t.Fatalf("first use of the assertion: %d %s", w.Code, w.Body.String())
	}
	valid := f.sign(ok(), nil)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(with("sub", "c1 ")) + "." + parts[2]
	tamperedExp := parts[0] + "." + b64(with("scope", "x")) + "." + parts[2]

	hs := func(key []byte) string {
		c := ok()
		payload, _ := json.Marshal(c)
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, f.kid)
		b, err := jws.Sign(payload, jws.WithKey(jwa.HS256, key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	none := b64(map[string]string{"alg": "none", "kid": f.kid, "typ": "JWT"}) + "." + b64(ok()) + "."

	big := f.sign(with("pad", strings.Repeat("x", 9000)), nil)
	huge := strings.Repeat("a", 20000)

	type tc struct {
		name   string
		body   string
		status int
		code   string
	}
	form := func(a string) string { return tokenForm(a, scope).Encode() }
	cases := []tc{
		{"wrong audience", form(f.sign(with("aud", "https://other.test/token"), nil)), 401, ErrInvalidClient},
		{"audience is the FHIR base", form(f.sign(with("aud", testBase), nil)), 401, ErrInvalidClient},
		{"expired assertion", form(f.sign(with("exp", now.Add(-time.Minute).Unix()), nil)), 401, ErrInvalidClient},
		{"exp more than 5 minutes ahead", form(f.sign(with("exp", now.Add(6*time.Minute).Unix()), nil)), 401, ErrInvalidClient},
		{"future nbf", form(f.sign(with("nbf", now.Add(2*time.Minute).Unix()), nil)), 401, ErrInvalidClient},
		{"future iat", form(f.sign(with("iat", now.Add(2*time.Minute).Unix()), nil)), 401, ErrInvalidClient},
		{"no exp", form(f.sign(without("exp"), nil)), 401, ErrInvalidClient},
		{"no jti", form(f.sign(without("jti"), nil)), 401, ErrInvalidClient},
		{"reused jti", form(reused), 401, ErrInvalidClient},
		{"unknown kid", form(f.sign(ok(), map[string]string{"kid": "nope"})), 401, ErrInvalidClient},
		{"no kid", form(signWith(t, mustRaw(t, f.priv), jwa.ES384, ok(), nil)), 401, ErrInvalidClient},
		{"alg none", form(none), 401, ErrInvalidClient},
		{"HS256 with the public JWKS bytes", form(hs(f.pub)), 401, ErrInvalidClient},
		{"HS256 with the public key PEM", form(hs(pubPEM)), 401, ErrInvalidClient},
		{"ES256 header on an ES384 key", form(f.sign(ok(), map[string]string{"alg": "ES256"})), 401, ErrInvalidClient},
		{"tampered payload", form(tampered), 401, ErrInvalidClient},
		{"tampered payload 2", form(tamperedExp), 401, ErrInvalidClient},
		{"signed by another key with the same kid", form(signWith(t, ok2, jwa.ES384, ok(), nil)), 401, ErrInvalidClient},
		{"iss is not sub", form(f.sign(with("sub", "c2"), nil)), 401, ErrInvalidClient},
		{"unknown client", form(f.sign(claims{"iss": "ghost", "sub": "ghost", "aud": f.srv.TokenURL(), "exp": now.Add(time.Minute).Unix(), "jti": "j"}, nil)), 401, ErrInvalidClient},
		{"client_id differs from iss", form(f.sign(ok(), nil)) + "&client_id=c2", 401, ErrInvalidClient},
		{"disabled client", form(signWith(t, kD, jwa.ES256, claims{"iss": "off", "sub": "off", "aud": f.srv.TokenURL(), "exp": now.Add(time.Minute).Unix(), "jti": "j"}, nil)), 401, ErrInvalidClient},
		{"no client authentication", url.Values{"grant_type": {GrantClientCredentials}, "scope": {scope}}.Encode(), 401, ErrInvalidClient},
		{"wrong client_assertion_type", strings.Replace(form(f.sign(ok(), nil)), "jwt-bearer", "saml2-bearer", 1), 401, ErrInvalidClient},
		{"JWS JSON serialization", form(`{"payload":"e30","signatures":[]}`), 401, ErrInvalidClient},
		{"oversized assertion", form(big), 400, ErrInvalidRequest},
		{"oversized body", "grant_type=client_credentials&client_assertion=" + huge, 413, ErrInvalidRequest},
		{"wrong grant_type", strings.Replace(form(f.sign(ok(), nil)), "client_credentials", "authorization_code", 1), 400, ErrUnsupportedGrantType},
		{"no grant_type", url.Values{"client_assertion_type": {AssertionTypeJWTBearer}, "client_assertion": {f.sign(ok(), nil)}, "scope": {scope}}.Encode(), 400, ErrInvalidRequest},
		{"repeated parameter", form(f.sign(ok(), nil)) + "&scope=system/Consent.c", 400, ErrInvalidRequest},
		{"no scope", tokenForm(f.sign(ok(), nil), "").Encode(), 400, ErrInvalidRequest},
		{"scope escalation: more permissions", tokenForm(f.sign(ok(), nil), "system/Patient.cruds").Encode(), 400, ErrInvalidScope},
		{"scope escalation: v1 write", tokenForm(f.sign(ok(), nil), "system/Patient.write").Encode(), 400, ErrInvalidScope},
		{"scope escalation: other context", tokenForm(f.sign(ok(), nil), "user/Patient.rs").Encode(), 400, ErrInvalidScope},
		{"scope escalation: one of two", tokenForm(f.sign(ok(), nil), "system/Patient.rs system/Consent.cu").Encode(), 400, ErrInvalidScope},
		{"malformed scope", tokenForm(f.sign(ok(), nil), "openid").Encode(), 400, ErrInvalidScope},
		{"patient scope without consent", tokenForm(f.sign(ok(), nil), "patient/Observation.rs").Encode(), 400, ErrInvalidScope},
		{"consent_reference without a Narrower", form(f.sign(with("extensions", map[string]any{"hl7-b2b": map[string]any{"consent_reference": []string{"Consent/1"}}}), nil)), 400, ErrInvalidGrant},
		{"organization_id of another organisation", form(f.sign(with("extensions", map[string]any{"hl7-b2b": map[string]any{"organization_id": "B22222"}}), nil)), 400, ErrInvalidGrant},
		{"malformed hl7-b2b", form(f.sign(with("extensions", map[string]any{"hl7-b2b": 7}), nil)), 400, ErrInvalidGrant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.post(f.srv.TokenHandler(), c.body)
			a := decodeAnswer(t, w)
			if w.Code != c.status || a.Error != c.code {
				t.Fatalf("HTTP %d %q (%s), want %d %q", w.Code, a.Error, a.Description, c.status, c.code)
			}
			if a.AccessToken != "" || strings.Contains(w.Body.String(), "access_token") {
				t.Fatal("an error answer carries a token")
			}
			t.Logf("%d %s: %s", w.Code, a.Error, a.Description)
			if a.Description == "" {
				t.Error("no error_description")
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		w := httptest.NewRecorder()
		f.srv.TokenHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, f.srv.TokenURL(), nil))
		if a := decodeAnswer(t, w); w.Code != 405 || a.Error != ErrInvalidRequest {
			t.Fatalf("HTTP %d %+v", w.Code, a)
		}
	})
	t.Run("JSON body", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, f.srv.TokenURL(), strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		f.srv.TokenHandler().ServeHTTP(w, req)
		if a := decodeAnswer(t, w); w.Code != 400 || a.Error != ErrInvalidRequest {
			t.Fatalf("HTTP %d %+v", w.Code, a)
		}
	})
}

func mustRaw(t *testing.T, priv []byte) any {
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	return raw
}
