package smart

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

var update = flag.Bool("update", false, "rewrite golden files")

type fakeNarrower struct {
	granted string
	patient string
	err     error
	got     *B2B
}

func (n *fakeNarrower) Narrow(ctx context.Context, c *Client, b2b *B2B, requested []Scope) ([]Scope, string, error) {
	n.got = b2b
	if n.err != nil {
		return nil, "", n.err
	}
	ss, err := ParseScopes(n.granted)
	return ss, n.patient, err
}

func consentExt(ref string) claims {
	return claims{"extensions": map[string]any{"hl7-b2b": map[string]any{
		"organization_id": odsSystem + "|A12345", "purpose_of_use": "TREAT", "subject_id": "G1",
		"consent_reference": []string{ref}}}}
}

func TestNarrowerFlow(t *testing.T) {
	n := &fakeNarrower{granted: "patient/Observation.rs?category=vital-signs", patient: "pabc"}
	f := newFixture(t, func(o *Options) { o.Narrower = n })
	ctx := context.Background()
	a := f.token("patient/Observation.rs", consentExt("Consent/c1"))
	if a.Patient != "pabc" || a.Scope != "patient/Observation.rs?category=vital-signs" {
		t.Fatalf("answer %+v", a)
	}
	if n.got == nil || n.got.ConsentReference[0] != "c1" || n.got.PurposeOfUse[0] != "TREAT" {
		t.Fatalf("narrower saw %+v", n.got)
	}
	at, err := f.srv.Verifier().VerifyToken(ctx, a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	p := at.Principal
	if p.PatientID != "pabc" || p.ConsentRef != "c1" || p.Practitioner != "G1" || p.BreakGlass {
		t.Fatalf("principal %+v", p)
	}
	bp := Context{Type: "Observation", Interaction: "read", PatientContext: p.PatientID, Categories: []fhir.Coding{vitalSigns}}
	bp.RequestPatient = "pabc"
	if !Permits(at.Scopes, bp) {
		t.Fatal("own patient's vital signs refused")
	}
	bp.RequestPatient = "pother"
	if Permits(at.Scopes, bp) {
		t.Fatal("a patient/ scope was used for another patient")
	}
	bp.RequestPatient, bp.Categories = "pabc", []fhir.Coding{laboratory}
	if Permits(at.Scopes, bp) {
		t.Fatal("granular scope let a laboratory result through")
	}

	cases := []struct {
		name    string
		n       fakeNarrower
		request string
		status  int
		code    string
	}{
		{"narrower widens", fakeNarrower{granted: "patient/*.rs", patient: "pabc"}, "patient/Observation.rs", 500, ErrServerError},
		{"narrower refuses (fhir error)", fakeNarrower{err: fhir.Errorf(fhir.CodeNoPatientConsent, "no consent to view")}, "patient/Observation.rs", 400, ErrInvalidGrant},
		{"narrower refuses (oauth error)", fakeNarrower{err: &OAuthError{Status: 400, Code: ErrInvalidScope, Description: "no"}}, "patient/Observation.rs", 400, ErrInvalidScope},
		{"narrower fails", fakeNarrower{err: errors.New("db down")}, "patient/Observation.rs", 500, ErrServerError},
		{"narrower gives no patient", fakeNarrower{granted: "patient/Observation.rs"}, "patient/Observation.rs", 400, ErrInvalidScope},
		{"narrower gives nothing", fakeNarrower{granted: "", patient: "pabc"}, "patient/Observation.rs", 400, ErrInvalidScope},
		{"requested beyond allowed", fakeNarrower{granted: "patient/Observation.rs", patient: "pabc"}, "patient/Observation.cruds", 400, ErrInvalidScope},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			*n = c.n
			cl := f.claims()
			for k, v := range consentExt("Consent/c1") {
				cl[k] = v
			}
			w := f.post(f.srv.TokenHandler(), tokenForm(f.sign(cl, nil), c.request).Encode())
			a := decodeAnswer(t, w)
			if w.Code != c.status || a.Error != c.code || a.AccessToken != "" {
				t.Fatalf("HTTP %d %s %s", w.Code, a.Error, a.Description)
			}
			if c.status == 500 && a.Description != "" {
				t.Fatalf("server_error leaks %q", a.Description)
			}
		})
	}
}

func TestBreakGlassAndAudit(t *testing.T) {
	var entries []*fhir.AuditEntry
	fail := false
	aud := auditFunc(func(ctx context.Context, e *fhir.AuditEntry) error {
		if fail {
			return errors.New("disk full")
		}
		entries = append(entries, e)
		return nil
	})
	f := newFixture(t, func(o *Options) { o.Auditor = aud })
	a := f.token("system/Patient.rs", claims{"extensions": map[string]any{"hl7-b2b": map[string]any{"purpose_of_use": []string{"http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"}}}})
	p, err := f.srv.Verifier().Verify(context.Background(), a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !p.BreakGlass {
		t.Fatal("BTG purpose did not set BreakGlass")
	}
	if len(entries) != 1 || entries[0].Outcome != fhir.OutcomeGranted || entries[0].TokenID != p.TokenID || !entries[0].BreakGlass {
		t.Fatalf("audit %+v", entries)
	}
	w := f.post(f.srv.TokenHandler(), tokenForm(f.sign(f.claims(), nil), "system/Patient.cruds").Encode())
	if w.Code != 400 || len(entries) != 2 || entries[1].Outcome != fhir.OutcomeDenied {
		t.Fatalf("denial: HTTP %d, audit %+v", w.Code, entries)
	}
	fail = true
	w = f.post(f.srv.TokenHandler(), tokenForm(f.sign(f.claims(), nil), "system/Patient.rs").Encode())
	if a := decodeAnswer(t, w); w.Code != 500 || a.AccessToken != "" {
		t.Fatalf("audit failure: HTTP %d %s", w.Code, w.Body.String())
	}
}

type auditFunc func(ctx context.Context, e *fhir.AuditEntry) error

func (f auditFunc) Record(ctx context.Context, e *fhir.AuditEntry) error { return f(ctx, e) }

func TestIntrospection(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token("system/Patient.rs", claims{"extensions": map[string]any{"hl7-b2b": map[string]any{"subject_id": "G1", "organization_id": "A12345"}}}).AccessToken
	introspect := func(assertion, token string) (*httptest.ResponseRecorder, map[string]any) {
		form := url.Values{"client_assertion_type": {AssertionTypeJWTBearer}, "client_assertion": {assertion}, "token": {token}}
		w := f.post(f.srv.IntrospectHandler(), form.Encode())
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, w.Body.String())
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Error("no Cache-Control: no-store")
		}
		return w, m
	}
	w, m := introspect(f.sign(f.claims(), nil), tok)
	if w.Code != 200 || m["active"] != true || m["scope"] != "system/Patient.rs" || m["client_id"] != "c1" ||
		m["sub"] != "c1" || m["subject_id"] != "G1" || m["organization_id"] != "A12345" || m["exp"] == nil || m["iat"] == nil {
		t.Fatalf("HTTP %d %v", w.Code, m)
	}
	w, m = introspect(f.sign(f.claims(), nil), "not-a-token")
	if w.Code != 200 || len(m) != 1 || m["active"] != false {
		t.Fatalf("garbage: HTTP %d %v", w.Code, m)
	}
	w, m = introspect("bad", tok)
	if w.Code != 401 || m["error"] != ErrInvalidClient || m["active"] != nil {
		t.Fatalf("unauthenticated: HTTP %d %v", w.Code, m)
	}
	w, m = introspect(f.sign(f.claims(), nil), "")
	if w.Code != 400 || m["error"] != ErrInvalidRequest {
		t.Fatalf("no token: HTTP %d %v", w.Code, m)
	}
	f.clock.Advance(6 * time.Minute)
	w, m = introspect(f.sign(f.claims(), nil), tok)
	if w.Code != 200 || m["active"] != false {
		t.Fatalf("expired: HTTP %d %v", w.Code, m)
	}
}

func TestJWKSURLClientAndRequestToken(t *testing.T) {
	priv, pub, _, err := GenerateClientKey("RS384")
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	var jwks atomic.Value
	jwks.Store(pub)
	keysrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(jwks.Load().([]byte))
	}))
	defer keysrv.Close()

	// a real HTTP server whose base URL is only known once started
	var h atomic.Value
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().(http.Handler).ServeHTTP(w, r) }))
	defer hs.Close()
	base := hs.URL + "/fhir"
	st, err := OpenBolt(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock := &fakeClock{t: time.Now()}
	srv, err := NewServer(context.Background(), Options{Clients: st, Keys: st, BaseURL: base, Logger: discardLogger(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir"+PathToken, srv.TokenHandler())
	h.Store(http.Handler(mux))
	if err := st.AddClient(context.Background(), &Client{ID: "urlclient", ODS: "C33333", JWKSURL: keysrv.URL + "/jwks.json",
		Scopes: []string{"system/*.rs"}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		tok, exp, err := RequestToken(ctx, srv.TokenURL(), "urlclient", priv, []string{"system/Patient.rs"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if exp != 300 {
			t.Fatalf("expires_in %d", exp)
		}
		if _, err := srv.Verifier().Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (cached)", n)
	}
	_, _, err = RequestToken(ctx, srv.TokenURL(), "urlclient", priv, []string{"system/Patient.cruds"}, nil)
	var te *TokenError
	if !errors.As(err, &te) || te.Status != 400 || te.Code != ErrInvalidScope {
		t.Fatalf("err = %v", err)
	}
	// a key the client has not published: one refetch (after the 30 s
	// floor), then refused without fetching again
	clock.Advance(31 * time.Second)
	other, _, _, _ := GenerateClientKey("ES256")
	_, _, err = RequestToken(ctx, srv.TokenURL(), "urlclient", other, []string{"system/Patient.rs"}, nil)
	if !errors.As(err, &te) || te.Status != 401 || te.Code != ErrInvalidClient {
		t.Fatalf("err = %v", err)
	}
	_, _, err = RequestToken(ctx, srv.TokenURL(), "urlclient", other, []string{"system/Patient.rs"}, nil)
	if !errors.As(err, &te) || te.Code != ErrInvalidClient {
		t.Fatalf("err = %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refetch for the unknown kid, rate-limited)", n)
	}
}

func TestConfigurationGolden(t *testing.T) {
	f := newFixture(t, nil)
	got := f.srv.Configuration("")
	var pretty map[string]any
	if err := json.Unmarshal(got, &pretty); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(pretty, "", "  ")
	b = append(b, '\n')
	path := filepath.Join("testdata", "smart-configuration.golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(want) != string(b) {
		t.Fatalf("configuration differs from %s:\n%s", path, b)
	}
	if u := f.srv.OAuthURIs(); u.Token != testBase+"/auth/token" || u.Introspect != testBase+"/auth/introspect" || u.JWKS != testBase+"/auth/jwks" {
		t.Fatalf("OAuthURIs %+v", u)
	}
	w := httptest.NewRecorder()
	f.srv.ConfigurationHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, testBase+PathConfiguration, nil))
	if w.Code != 200 || w.Body.String() != string(got) || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("handler: HTTP %d %s", w.Code, w.Body.String())
	}
}

func TestClientStore(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	_, pub, _, _ := GenerateClientKey("")
	privJWK, _, _, _ := GenerateClientKey("")
	bad := []struct {
		name string
		c    Client
	}{
		{"no id", Client{ODS: "A1234", JWKS: pub, Scopes: testScopes}},
		{"bad id", Client{ID: "a b", ODS: "A1234", JWKS: pub, Scopes: testScopes}},
		{"bad ods", Client{ID: "x", ODS: "a1", JWKS: pub, Scopes: testScopes}},
		{"no keys", Client{ID: "x", ODS: "A1234", Scopes: testScopes}},
		{"both keys", Client{ID: "x", ODS: "A1234", JWKS: pub, JWKSURL: "https://k.test/jwks", Scopes: testScopes}},
		{"private key in JWKS", Client{ID: "x", ODS: "A1234", JWKS: []byte(`{"keys":[` + string(privJWK) + `]}`), Scopes: testScopes}},
		{"symmetric key", Client{ID: "x", ODS: "A1234", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}`), Scopes: testScopes}},
		{"http JWKS URL", Client{ID: "x", ODS: "A1234", JWKSURL: "http://keys.example.com/jwks", Scopes: testScopes}},
		{"no scopes", Client{ID: "x", ODS: "A1234", JWKS: pub}},
		{"bad scope", Client{ID: "x", ODS: "A1234", JWKS: pub, Scopes: []string{"openid"}}},
		{"duplicate", Client{ID: "c1", ODS: "A1234", JWKS: pub, Scopes: testScopes}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			err := f.st.AddClient(ctx, &c.c)
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Status() != 400 {
				t.Fatalf("err = %v, want a 400 *fhir.Error", err)
			}
		})
	}
	if _, err := f.st.GetClient(ctx, "ghost"); !errors.Is(err, ErrClientNotFound) {
		t.Fatalf("GetClient(ghost) = %v", err)
	}
	if err := f.st.DisableClient(ctx, "ghost"); !errors.Is(err, ErrClientNotFound) {
		t.Fatalf("DisableClient(ghost) = %v", err)
	}
	// rotate c1's key: the old key stops working, the new one works
	newPriv, newPub, _, _ := GenerateClientKey("ES256")
	if err := f.st.RotateClientKey(ctx, "c1", newPub); err != nil {
		t.Fatal(err)
	}
	w := f.post(f.srv.TokenHandler(), tokenForm(f.sign(f.claims(), nil), "system/Patient.rs").Encode())
	if w.Code != 401 {
		t.Fatalf("old key after rotation: HTTP %d", w.Code)
	}
	f.priv = newPriv
	k, _ := ParsePrivateKey(newPriv)
	w = f.post(f.srv.TokenHandler(), tokenForm(signWith(t, k, "ES256", f.claims(), nil), "system/Patient.rs").Encode())
	if w.Code != 200 {
		t.Fatalf("new key after rotation: HTTP %d %s", w.Code, w.Body.String())
	}
	if err := f.st.RotateClientKey(ctx, "c1", privJWK); err == nil {
		t.Fatal("rotated to a private key")
	}
	if err := f.st.AddClient(ctx, &Client{ID: "c0", ODS: "Z9999", JWKSURL: "http://127.0.0.1:9/jwks", Scopes: testScopes}); err != nil {
		t.Fatal(err)
	}
	list, err := f.st.ListClients(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "c0" || list[1].ID != "c1" || list[0].Created.IsZero() {
		t.Fatalf("ListClients = %v, %v", list, err)
	}
	if err := f.st.EnableClient(ctx, "c0"); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.st.GetClient(ctx, "c0"); !c.Enabled {
		t.Fatal("EnableClient did not enable")
	}
}

func TestGenerateAndParseKeys(t *testing.T) {
	for _, alg := range []string{"", "ES384", "ES256", "RS384", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			priv, pub, kid, err := GenerateClientKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			set, err := ParseClientJWKS(pub)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := set.LookupKeyID(kid); !ok || strings.Contains(string(pub), `"d":`) {
				t.Fatalf("public JWKS %s", pub)
			}
			k, err := ParsePrivateKey(priv)
			if err != nil || k.KeyID() != kid {
				t.Fatalf("ParsePrivateKey: %v kid %s", err, k.KeyID())
			}
			want := alg
			if want == "" {
				want = "ES384"
			}
			if k.Algorithm().String() != want {
				t.Fatalf("alg %s", k.Algorithm())
			}
			a, err := SignAssertion(priv, Assertion{ClientID: "c", TokenURL: "https://t", Now: time.Unix(1700000000, 0)})
			if err != nil || strings.Count(a, ".") != 2 {
				t.Fatalf("SignAssertion: %v", err)
			}
		})
	}
	if _, _, _, err := GenerateClientKey("HS256"); err == nil {
		t.Fatal("HS256 key generated")
	}
	if _, err := ParsePrivateKey([]byte("nope")); err == nil {
		t.Fatal("parsed garbage")
	}
}
