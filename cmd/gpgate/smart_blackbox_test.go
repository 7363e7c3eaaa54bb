package main

// Black-box tests of SMART Backend Services over HTTP: a real gpgate on a
// free port, consumer systems registered with the `gpgate clients` verbs
// and sharing agreements stored (the demo agreements, and one added with
// `gpgate agreements add`) before it starts, and every request made as a
// client would make it. The server here is its own small region (30
// patients, generated in well under a second) because the client registry
// is a bbolt file the running server holds: extra clients (other
// algorithms, a narrow client, a disabled one, a rotated one) must be
// registered before it starts.
//
// Consent is enforced: a system token reads demographics only; clinical
// data is read with patient-context tokens issued over HTTP against a
// consent to view recorded with POST /Consent.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// The consumer systems registered besides the demo clients (demo-ehr:
// ES384, RXX01, system/*.rs patient/*.rs system/Consent.c).
const (
	sbCondClient    = "condition-reader" // ES256, RXX06: Conditions only (system/Condition.rs patient/Condition.rs system/Consent.c)
	sbRS384Client   = "rs384-epr"        // RS384, RXX03 (blood-pressure-only agreement), system/Patient.rs
	sbRS256Client   = "rs256-epr"        // RS256, RXX04, system/Patient.rs
	sbDisabled      = "retired-epr"      // ES384, RXX05, registered then disabled
	sbRotated       = "rotated-epr"      // ES256, RXX06, key rotated before the server starts
	sbODS           = "RXX06"            // given an all-areas agreement with `gpgate agreements add`
	sbCondScopes    = "system/Condition.rs patient/Condition.rs system/Consent.c"
	sbTokenLifetime = 300
)

// sbEnv is the running server and what the tests know about it.
type sbEnv struct {
	*testServer
	tokenURL string
	keys     map[string][]byte // client id -> private JWK (as written by keygen)
	oldKey   []byte            // sbRotated's key before rotation
	demoPub  []byte            // demo-ehr's registered public JWKS

	// gpgate's own signing key, read from the store before the server
	// started, to forge tokens that differ from a real one in one way.
	signKey any
	signKID string

	// A patient-context token of demo-ehr bound to patA (patient/*.rs),
	// issued over HTTP against consentID, a consent to view demo-ehr
	// recorded with POST /Consent.
	patientTok   string
	consentID    string
	patA, patB   demo.Notable
	conditionTok string // condition-reader's patient/Condition.rs token for patA, against its own consent
}

// sbRun runs the gpgate command line in-process.
func sbRun(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

// sbRegister makes a key with `gpgate clients keygen` and registers the
// client with `gpgate clients add`; it returns the private key.
func sbRegister(t testing.TB, data, id, alg, ods, scopes string) []byte {
	t.Helper()
	priv := filepath.Join(data, id+".jwk")
	code, pub, stderr := sbRun(t, "clients", "keygen", "--out", priv, "--alg", alg)
	if code != 0 {
		t.Fatalf("keygen %s: %d %s", alg, code, stderr)
	}
	pubFile := filepath.Join(data, id+".jwks.json")
	if err := os.WriteFile(pubFile, []byte(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := sbRun(t, "clients", "add", "--data", data, "--id", id, "--ods", ods, "--name", id,
		"--jwks", pubFile, "--scopes", scopes); code != 0 {
		t.Fatalf("clients add %s: %d %s", id, code, stderr)
	}
	b, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startSmartEnv generates a small region, stores its sharing agreements,
// registers the clients, prepares gpgate's signing key, serves the region on
// a free port until the test ends, and obtains the patient-context tokens
// over HTTP (POST /Consent, then /auth/token with consent_reference).
func startSmartEnv(t *testing.T) *sbEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	sum, err := demoRegion(ctx, demoOpts{data: dir, seed: 1, practices: 3, patients: 30, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoClient(ctx, dir); err != nil {
		t.Fatal(err)
	}
	// The demo agreements (RXX01 active with every area), and one more
	// through the admin verb: every practice shares everything with RXX06.
	if err := demoAgreements(ctx, dir, sum); err != nil {
		t.Fatal(err)
	}
	for _, p := range sum.Practices {
		if code, out, stderr := sbRun(t, "agreements", "add", "--data", dir, "--provider", p.ODS, "--consumers", sbODS, "--areas", "all"); code != 0 || !strings.Contains(out, "added") {
			t.Fatalf("agreements add: %d %s %s", code, out, stderr)
		}
	}
	env := &sbEnv{keys: map[string][]byte{}}
	env.keys[demoClientID], err = os.ReadFile(filepath.Join(dir, demoKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	env.keys[sbCondClient] = sbRegister(t, dir, sbCondClient, "ES256", sbODS, sbCondScopes)
	env.keys[sbRS384Client] = sbRegister(t, dir, sbRS384Client, "RS384", "RXX03", "system/Patient.rs")
	env.keys[sbRS256Client] = sbRegister(t, dir, sbRS256Client, "RS256", "RXX04", "system/Patient.rs")
	env.keys[sbDisabled] = sbRegister(t, dir, sbDisabled, "ES384", "RXX05", "system/*.rs")
	if code, out, stderr := sbRun(t, "clients", "disable", "--data", dir, "--id", sbDisabled); code != 0 || !strings.Contains(out, "disabled") {
		t.Fatalf("clients disable: %d %s %s", code, out, stderr)
	}
	env.oldKey = sbRegister(t, dir, sbRotated, "ES256", sbODS, "system/Patient.rs")
	newKey := filepath.Join(dir, "rotated-new.jwk")
	code, newPub, stderr := sbRun(t, "clients", "keygen", "--out", newKey, "--alg", "ES256")
	if code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	_ = os.WriteFile(filepath.Join(dir, "rotated-new.jwks.json"), []byte(newPub), 0o600)
	if code, _, stderr := sbRun(t, "clients", "rotate-key", "--data", dir, "--id", sbRotated, "--jwks", filepath.Join(dir, "rotated-new.jwks.json")); code != 0 {
		t.Fatalf("rotate-key: %s", stderr)
	}
	env.keys[sbRotated], _ = os.ReadFile(newKey)

	patients, err := listPatients(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr := sbFreeAddr(t)
	base := "http://" + addr
	env.tokenURL = base + smart.PathToken
	env.testServer = &testServer{base: base, dir: dir, summary: sum, patients: patients, knownIDs: map[string]bool{}}
	for _, n := range patients {
		env.knownIDs[fhir.PatientID(n)] = true
	}
	env.patA = env.notable(t, demo.NotableTypical)
	env.patB = env.notable(t, demo.NotableNoAllergies)
	env.prepareKeys(t, dir, base)
	t.Cleanup(sbServe(t, dir, addr))

	env.consentID = env.consentAs(t, demoClientID, env.patA.PatientID)
	env.patientTok = env.mustPatientToken(t, demoClientID, env.consentID, "patient/*.rs", env.patA.PatientID)
	env.conditionTok = env.mustPatientToken(t, sbCondClient, env.consentAs(t, sbCondClient, env.patA.PatientID), "patient/Condition.rs", env.patA.PatientID)
	return env
}

// sbFreeAddr is a free local port, so the base URL (the tokens' iss and
// aud) is known before the server starts and stays the same across a
// restart.
func sbFreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// sbServe serves dir at addr until the returned stop is called; stop waits
// for the server to release the data directory.
func sbServe(t testing.TB, dir, addr string) (stop func()) {
	t.Helper()
	sctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		errc <- serve(sctx, serveOpts{data: dir, listen: addr}, slog.New(slog.NewJSONHandler(io.Discard, nil)), func(u string) { ready <- u })
	}()
	select {
	case u := <-ready:
		if u != "http://"+addr {
			cancel()
			t.Fatalf("served at %s, want http://%s", u, addr)
		}
	case err := <-errc:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start")
	}
	done := false
	return func() {
		if done {
			return
		}
		done = true
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// prepareKeys opens the (not yet served) state file as gpgate would, which
// makes gpgate's signing key, and keeps that key for forging tokens.
func (env *sbEnv) prepareKeys(t *testing.T, dir, base string) {
	t.Helper()
	ctx := context.Background()
	st, err := smart.OpenBolt(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := smart.NewServer(ctx, smart.Options{Clients: st, Keys: st, BaseURL: base, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()

	keys, err := st.SigningKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("signing keys: %v (%d)", err, len(keys))
	}
	k, err := jwk.ParseKey(keys[0].JWK)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Raw(&env.signKey); err != nil {
		t.Fatal(err)
	}
	env.signKID = keys[0].KID
	pk, _ := smart.ParsePrivateKey(env.keys[demoClientID])
	pub, _ := jwk.PublicKeyOf(pk)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	env.demoPub, _ = json.Marshal(set)
}

// sbConsentBody is a minimal UK Core Consent for POST /Consent: the patient
// by reference, the clinician by SDS user id.
func sbConsentBody(patientID string) []byte {
	return []byte(`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/` + patientID + `"},` +
		`"performer":[{"identifier":{"system":"` + consent.SDSUserSystem + `","value":"` + demoClinician + `"}}]}`)
}

// postConsent POSTs a Consent with bearer.
func (env *sbEnv) postConsent(t testing.TB, bearer string, body []byte) response {
	t.Helper()
	return env.do(t, http.MethodPost, "/Consent", body, "Authorization", bearer)
}

// consentAs records a consent to view for patientID as client (with its
// own system/Consent.c token) and returns the Consent id.
func (env *sbEnv) consentAs(t testing.TB, client, patientID string) string {
	t.Helper()
	r := env.postConsent(t, "Bearer "+env.mustToken(t, client, "system/Consent.c"), sbConsentBody(patientID))
	var c struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &c); r.status != http.StatusCreated || err != nil || c.ResourceType != "Consent" || c.ID == "" {
		t.Fatalf("POST /Consent as %s: %d %s", client, r.status, truncateBody(r.body))
	}
	if loc := r.header.Get("Location"); loc != env.base+"/Consent/"+c.ID {
		t.Errorf("Location %q, want %s/Consent/%s", loc, env.base, c.ID)
	}
	return c.ID
}

// b2bAssertion signs a client assertion for client carrying hl7-b2b.
func (env *sbEnv) b2bAssertion(t testing.TB, client string, b2b *smart.B2B) string {
	t.Helper()
	a, err := smart.SignAssertion(env.keys[client], smart.Assertion{ClientID: client, TokenURL: env.tokenURL, Now: time.Now(), TTL: 4 * time.Minute, B2B: b2b})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// patientTokenAs asks /auth/token for a token for client naming consentID
// as its consent_reference.
func (env *sbEnv) patientTokenAs(t testing.TB, client, consentID, scope string) (response, sbAnswer) {
	t.Helper()
	a := env.b2bAssertion(t, client, &smart.B2B{Version: "1", SubjectID: demoClinician, ConsentReference: smart.StringList{consentID}})
	return env.tokenFor(t, sbForm(a, scope).Encode())
}

// mustPatientToken is patientTokenAs that must succeed with a token bound
// to patientID.
func (env *sbEnv) mustPatientToken(t testing.TB, client, consentID, scope, patientID string) string {
	t.Helper()
	r, a := env.patientTokenAs(t, client, consentID, scope)
	if r.status != http.StatusOK || a.AccessToken == "" || a.Patient != patientID {
		t.Fatalf("patient token for %s (consent %s, %q): %d %s", client, consentID, scope, r.status, truncateBody(r.body))
	}
	return a.AccessToken
}

// sbAnswer is a token endpoint answer, success or error.
type sbAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Patient     string `json:"patient"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func sbForm(assertion, scope string) url.Values {
	return url.Values{"grant_type": {smart.GrantClientCredentials}, "client_assertion_type": {smart.AssertionTypeJWTBearer},
		"client_assertion": {assertion}, "scope": {scope}}
}

// postForm POSTs an urlencoded body (no bearer token) to an /auth endpoint.
func (env *sbEnv) postForm(t testing.TB, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

// tokenFor posts a token request and decodes the answer.
func (env *sbEnv) tokenFor(t testing.TB, body string) (response, sbAnswer) {
	t.Helper()
	r := env.postForm(t, smart.PathToken, body)
	var a sbAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("token answer is not JSON (%d): %s", r.status, truncateBody(r.body))
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	return r, a
}

// assertion signs a fresh, valid client assertion for id with its key.
func (env *sbEnv) assertion(t testing.TB, id string) string {
	t.Helper()
	a, err := smart.SignAssertion(env.keys[id], smart.Assertion{ClientID: id, TokenURL: env.tokenURL, Now: time.Now(), TTL: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (env *sbEnv) mustToken(t testing.TB, id, scope string) string {
	t.Helper()
	r, a := env.tokenFor(t, sbForm(env.assertion(t, id), scope).Encode())
	if r.status != http.StatusOK || a.AccessToken == "" {
		t.Fatalf("token for %s %q: %d %s", id, scope, r.status, truncateBody(r.body))
	}
	return a.AccessToken
}

// claims of a client assertion of demo-ehr, valid for 4 minutes.
func (env *sbEnv) claims() map[string]any {
	now := time.Now()
	return map[string]any{"iss": demoClientID, "sub": demoClientID, "aud": env.tokenURL, "iat": now.Unix(),
		"exp": now.Add(4 * time.Minute).Unix(), "jti": sbJTI()}
}

func sbJTI() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func sbB64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sbSign signs claims as a compact JWS; hdr adds protected headers (kid,
// typ). key is a jwk.Key (its kid goes in the header) or a raw key.
func sbSign(t testing.TB, key any, alg jwa.SignatureAlgorithm, claims map[string]any, hdr map[string]string) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if k, ok := key.(jwk.Key); ok && k.KeyID() != "" {
		_ = h.Set(jws.KeyIDKey, k.KeyID())
	}
	for n, v := range hdr {
		_ = h.Set(n, v)
	}
	b, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// demoKey is demo-ehr's private key, as a JWK and raw.
func (env *sbEnv) demoKey(t testing.TB) (jwk.Key, any) {
	t.Helper()
	k, err := smart.ParsePrivateKey(env.keys[demoClientID])
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	if err := k.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	return k, raw
}

// noData fails when a refusal carries a token or any of the patient's data.
func noData(t testing.TB, r response, patients ...demo.Notable) {
	t.Helper()
	body := string(r.body)
	if strings.Contains(body, "access_token") {
		t.Fatalf("refusal carries an access token: %s", truncateBody(r.body))
	}
	if strings.Contains(body, `"Bundle"`) || strings.Contains(body, `"entry"`) {
		t.Fatalf("refusal carries a Bundle: %s", truncateBody(r.body))
	}
	for _, p := range patients {
		if strings.Contains(body, p.NHS) || strings.Contains(body, p.PatientID) {
			t.Fatalf("refusal names the patient: %s", truncateBody(r.body))
		}
	}
}

// TestSmartBackendServices runs the whole SMART Backend Services flow and
// every rejection the issue lists against one real server.
func TestSmartBackendServices(t *testing.T) {
	env := startSmartEnv(t)
	t.Run("discovery, token, data, introspection", env.testFlow)
	t.Run("every registered algorithm", env.testAlgorithms)
	t.Run("token endpoint rejections", env.testTokenRejections)
	t.Run("replayed assertion", env.testReplay)
	t.Run("resource server rejections", env.testBearerRejections)
	t.Run("scope-limited token", env.testScopeLimited)
	t.Run("granular scope", env.testGranular)
	t.Run("patient context", env.testPatientContext)
	t.Run("introspection", env.testIntrospection)
	t.Run("gpgate token", env.testTokenCLI)
}

func (env *sbEnv) testFlow(t *testing.T) {
	// Discovery: smart-configuration and the CapabilityStatement agree.
	r := env.get(t, smart.PathConfiguration, "Authorization", "")
	if r.status != http.StatusOK {
		t.Fatalf("smart-configuration: %d", r.status)
	}
	var cfg struct {
		TokenEndpoint string   `json:"token_endpoint"`
		Introspection string   `json:"introspection_endpoint"`
		JWKSURI       string   `json:"jwks_uri"`
		GrantTypes    []string `json:"grant_types_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		AuthAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		Scopes        []string `json:"scopes_supported"`
		Capabilities  []string `json:"capabilities"`
	}
	if err := json.Unmarshal(r.body, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.TokenEndpoint != env.tokenURL || cfg.Introspection != env.base+smart.PathIntrospect || cfg.JWKSURI != env.base+smart.PathJWKS {
		t.Fatalf("endpoints %+v", cfg)
	}
	for _, want := range [][]string{
		{strings.Join(cfg.GrantTypes, " "), "client_credentials"},
		{strings.Join(cfg.AuthMethods, " "), "private_key_jwt"},
		{strings.Join(cfg.AuthAlgs, " "), "RS384", "ES384", "RS256", "ES256"},
		{strings.Join(cfg.Capabilities, " "), "client-confidential-asymmetric", "permission-v1", "permission-v2", "permission-patient"},
	} {
		for _, w := range want[1:] {
			if !strings.Contains(" "+want[0]+" ", " "+w+" ") {
				t.Errorf("smart-configuration lacks %s in %q", w, want[0])
			}
		}
	}
	if len(cfg.Scopes) == 0 {
		t.Error("no scopes_supported")
	}
	meta := env.get(t, "/metadata", "Authorization", "")
	var cs struct {
		Rest []struct {
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(meta.body, &cs); err != nil || len(cs.Rest) == 0 {
		t.Fatalf("metadata: %v", err)
	}
	uris := map[string]string{}
	for _, e := range cs.Rest[0].Security.Extension {
		if strings.HasSuffix(e.URL, "/oauth-uris") {
			for _, x := range e.Extension {
				uris[x.URL] = x.ValueURI
			}
		}
	}
	if uris["token"] != cfg.TokenEndpoint || uris["introspect"] != cfg.Introspection {
		t.Fatalf("CapabilityStatement oauth-uris %v, smart-configuration %s %s", uris, cfg.TokenEndpoint, cfg.Introspection)
	}

	// Token: client_credentials with a private_key_jwt assertion.
	tr, a := env.tokenFor(t, sbForm(env.assertion(t, demoClientID), "system/Patient.rs system/Condition.rs").Encode())
	if tr.status != http.StatusOK || a.AccessToken == "" {
		t.Fatalf("token: %d %s", tr.status, truncateBody(tr.body))
	}
	if !strings.EqualFold(a.TokenType, "bearer") || a.ExpiresIn <= 0 || a.ExpiresIn > sbTokenLifetime || a.Scope != "system/Patient.rs system/Condition.rs" || a.Patient != "" {
		t.Fatalf("token answer %+v", a)
	}
	if ct := tr.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("token Content-Type %q", ct)
	}

	// The token is a JWT signed by a key published at jwks_uri.
	jr := env.get(t, smart.PathJWKS, "Authorization", "")
	set, err := jwk.Parse(jr.body)
	if err != nil || jr.status != 200 {
		t.Fatalf("jwks: %d %v", jr.status, err)
	}
	if bytes.Contains(jr.body, []byte(`"d"`)) {
		t.Fatal("JWKS publishes private key material")
	}
	msg, err := jws.ParseString(a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	kid := msg.Signatures()[0].ProtectedHeaders().KeyID()
	k, ok := set.LookupKeyID(kid)
	if !ok {
		t.Fatalf("token kid %s is not published", kid)
	}
	if _, err := jws.Verify([]byte(a.AccessToken), jws.WithKey(msg.Signatures()[0].ProtectedHeaders().Algorithm(), k)); err != nil {
		t.Fatalf("token does not verify with the published key: %v", err)
	}

	// Data with the token: a system token identifies the patient
	// (demographics) and reads nothing clinical without consent to view.
	b := decodeBundle(t, env.get(t, patientSearch(env.patA.NHS), "Authorization", "Bearer "+a.AccessToken))
	if len(b.Entry) != 1 || !strings.Contains(string(b.Entry[0].Resource), env.patA.PatientID) {
		t.Fatalf("Patient search: %d entries", len(b.Entry))
	}
	r = env.get(t, "/Condition?patient="+env.patA.PatientID, "Authorization", "Bearer "+a.AccessToken)
	expectOutcome(t, r, http.StatusForbidden, fhir.CodeNoPatientConsent)
	noData(t, r, env.patA)
	// Observation is outside the granted scopes.
	expectOutcome(t, env.get(t, "/Observation?patient="+env.patA.PatientID, "Authorization", "Bearer "+a.AccessToken), http.StatusForbidden, fhir.CodeAccessDenied)
	// Recording a consent to view needs system/Consent.c.
	expectOutcome(t, env.postConsent(t, "Bearer "+a.AccessToken, sbConsentBody(env.patA.PatientID)), http.StatusForbidden, fhir.CodeAccessDenied)

	// Consent to view, then a patient-context token against it.
	cid := env.consentAs(t, demoClientID, env.patA.PatientID)
	pr, pa := env.patientTokenAs(t, demoClientID, cid, "patient/Condition.rs patient/Patient.rs")
	if pr.status != http.StatusOK || pa.Patient != env.patA.PatientID || pa.ExpiresIn <= 0 || pa.ExpiresIn > sbTokenLifetime ||
		!strings.Contains(" "+pa.Scope+" ", " patient/Condition.rs ") || !strings.Contains(" "+pa.Scope+" ", " patient/Patient.rs ") {
		t.Fatalf("patient token: %d %s", pr.status, truncateBody(pr.body))
	}
	conds := decodeBundle(t, env.get(t, "/Condition?patient="+env.patA.PatientID, "Authorization", "Bearer "+pa.AccessToken))
	if conds.Total == nil || *conds.Total == 0 {
		t.Fatal("no Conditions")
	}

	// Introspection of the live token.
	ir := env.postForm(t, smart.PathIntrospect, url.Values{"client_assertion_type": {smart.AssertionTypeJWTBearer},
		"client_assertion": {env.assertion(t, demoClientID)}, "token": {a.AccessToken}}.Encode())
	var in map[string]any
	if err := json.Unmarshal(ir.body, &in); err != nil || ir.status != 200 || in["active"] != true || in["client_id"] != demoClientID || in["scope"] != a.Scope {
		t.Fatalf("introspection: %d %s", ir.status, truncateBody(ir.body))
	}
}

func (env *sbEnv) testAlgorithms(t *testing.T) {
	for _, c := range []struct{ client, scope, alg string }{
		{demoClientID, "system/Patient.rs", "ES384"},
		{sbCondClient, "system/Condition.rs system/Consent.c", "ES256"},
		{sbRS384Client, "system/Patient.rs", "RS384"},
		{sbRS256Client, "system/Patient.rs", "RS256"},
		{sbRotated, "system/Patient.rs", "ES256 (rotated key)"},
	} {
		t.Run(c.alg, func(t *testing.T) {
			a := env.assertion(t, c.client)
			msg, _ := jws.ParseString(a)
			if got := msg.Signatures()[0].ProtectedHeaders().Algorithm().String(); !strings.HasPrefix(c.alg, got) {
				t.Fatalf("assertion signed with %s", got)
			}
			r, ans := env.tokenFor(t, sbForm(a, c.scope).Encode())
			if r.status != 200 || ans.Scope != c.scope {
				t.Fatalf("%d %s", r.status, truncateBody(r.body))
			}
			if c.client != sbCondClient {
				decodeBundle(t, env.get(t, patientSearch(env.patA.NHS), "Authorization", "Bearer "+ans.AccessToken))
				return
			}
			// condition-reader's clinical read: its system token records a
			// consent to view, and a patient token (its assertion again
			// signed with ES256) reads the Conditions.
			cr := env.postConsent(t, "Bearer "+ans.AccessToken, sbConsentBody(env.patA.PatientID))
			var cs struct{ ID string }
			if err := json.Unmarshal(cr.body, &cs); cr.status != http.StatusCreated || err != nil || cs.ID == "" {
				t.Fatalf("POST /Consent: %d %s", cr.status, truncateBody(cr.body))
			}
			pa := env.b2bAssertion(t, c.client, &smart.B2B{SubjectID: demoClinician, ConsentReference: smart.StringList{cs.ID}})
			if m, _ := jws.ParseString(pa); m.Signatures()[0].ProtectedHeaders().Algorithm() != jwa.ES256 {
				t.Fatal("patient-token assertion not signed with ES256")
			}
			pr, pans := env.tokenFor(t, sbForm(pa, "patient/Condition.rs").Encode())
			if pr.status != 200 || pans.Patient != env.patA.PatientID {
				t.Fatalf("patient token: %d %s", pr.status, truncateBody(pr.body))
			}
			decodeBundle(t, env.get(t, "/Condition?patient="+env.patA.PatientID, "Authorization", "Bearer "+pans.AccessToken))
		})
	}
}

func (env *sbEnv) testTokenRejections(t *testing.T) {
	key, raw := env.demoKey(t)
	ok := env.claims
	with := func(k string, v any) map[string]any { c := ok(); c[k] = v; return c }
	without := func(k string) map[string]any { c := ok(); delete(c, k); return c }
	now := time.Now()
	sign := func(c map[string]any) string { return sbSign(t, key, jwa.ES384, c, nil) }

	valid := sign(ok())
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + sbB64(with("exp", now.Add(3*time.Minute).Unix())) + "." + parts[2]
	none := sbB64(map[string]string{"alg": "none", "kid": key.KeyID(), "typ": "JWT"}) + "." + sbB64(ok()) + "."
	pubSet, _ := jwk.Parse(env.demoPub)
	pubKey, _ := pubSet.Key(0)
	pubPEM, _ := jwk.Pem(pubKey)
	hs := func(secret []byte) string {
		return sbSign(t, secret, jwa.HS256, ok(), map[string]string{"kid": key.KeyID()})
	}
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	dk, _ := smart.ParsePrivateKey(env.keys[sbDisabled])
	disabled := sbSign(t, dk, jwa.ES384, map[string]any{"iss": sbDisabled, "sub": sbDisabled, "aud": env.tokenURL,
		"exp": now.Add(time.Minute).Unix(), "jti": sbJTI()}, nil)
	ok2, _ := smart.ParsePrivateKey(env.oldKey)
	oldRotated := sbSign(t, ok2, jwa.ES256, map[string]any{"iss": sbRotated, "sub": sbRotated, "aud": env.tokenURL,
		"exp": now.Add(time.Minute).Unix(), "jti": sbJTI()}, nil)
	b2b := func(m map[string]any) map[string]any {
		if _, ok := m["subject_id"]; !ok {
			m["subject_id"] = demoClinician // the clinician the consents name
		}
		return with("extensions", map[string]any{"hl7-b2b": m})
	}
	// A live consent to view of patA, recorded by condition-reader (RXX06):
	// demo-ehr (RXX01) may not name it.
	otherOrg := env.consentAs(t, sbCondClient, env.patA.PatientID)

	const scope = "system/Patient.rs"
	form := func(a string) string { return sbForm(a, scope).Encode() }
	scoped := func(client, s string) string { return sbForm(env.assertion(t, client), s).Encode() }
	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"wrong audience", form(sign(with("aud", "https://elsewhere.example/auth/token"))), 401, smart.ErrInvalidClient},
		{"audience is the FHIR base, not the token URL", form(sign(with("aud", env.base))), 401, smart.ErrInvalidClient},
		{"expired assertion", form(sign(with("exp", now.Add(-2*time.Minute).Unix()))), 401, smart.ErrInvalidClient},
		{"exp more than 5 minutes ahead", form(sign(with("exp", now.Add(10*time.Minute).Unix()))), 401, smart.ErrInvalidClient},
		{"iat in the future", form(sign(with("iat", now.Add(3*time.Minute).Unix()))), 401, smart.ErrInvalidClient},
		{"nbf in the future", form(sign(with("nbf", now.Add(3*time.Minute).Unix()))), 401, smart.ErrInvalidClient},
		{"no exp", form(sign(without("exp"))), 401, smart.ErrInvalidClient},
		{"no jti", form(sign(without("jti"))), 401, smart.ErrInvalidClient},
		{"unknown kid", form(sbSign(t, raw, jwa.ES384, ok(), map[string]string{"kid": "not-a-registered-kid"})), 401, smart.ErrInvalidClient},
		{"no kid", form(sbSign(t, raw, jwa.ES384, ok(), nil)), 401, smart.ErrInvalidClient},
		{"alg none", form(none), 401, smart.ErrInvalidClient},
		{"HS256 keyed with the public JWKS", form(hs(env.demoPub)), 401, smart.ErrInvalidClient},
		{"HS256 keyed with the public key PEM", form(hs(pubPEM)), 401, smart.ErrInvalidClient},
		{"tampered payload", form(tampered), 401, smart.ErrInvalidClient},
		{"signed by another key claiming the registered kid", form(sbSign(t, other, jwa.ES384, ok(), map[string]string{"kid": key.KeyID()})), 401, smart.ErrInvalidClient},
		{"iss is not sub", form(sign(with("sub", sbCondClient))), 401, smart.ErrInvalidClient},
		{"unknown client", form(sign(with("iss", "ghost-epr"))), 401, smart.ErrInvalidClient},
		{"client_id differs from iss", form(valid) + "&client_id=" + sbCondClient, 401, smart.ErrInvalidClient},
		{"disabled client", form(disabled), 401, smart.ErrInvalidClient},
		{"rotated-out key", form(oldRotated), 401, smart.ErrInvalidClient},
		{"no client authentication", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}.Encode(), 401, smart.ErrInvalidClient},
		{"wrong client_assertion_type", strings.Replace(form(sign(ok())), "jwt-bearer", "saml2-bearer", 1), 401, smart.ErrInvalidClient},
		{"oversized assertion", form(sign(with("pad", strings.Repeat("x", 9000)))), 400, smart.ErrInvalidRequest},
		{"oversized body", "grant_type=client_credentials&client_assertion=" + strings.Repeat("a", 20000), 413, smart.ErrInvalidRequest},
		{"wrong grant_type", strings.Replace(form(sign(ok())), "client_credentials", "authorization_code", 1), 400, smart.ErrUnsupportedGrantType},
		{"repeated parameter", form(sign(ok())) + "&scope=system/Condition.rs", 400, smart.ErrInvalidRequest},
		{"no scope", sbForm(sign(ok()), "").Encode(), 400, smart.ErrInvalidRequest},
		{"scope escalation: write on an allowed type", scoped(demoClientID, "system/Patient.cruds"), 400, smart.ErrInvalidScope},
		{"scope escalation: v1 write", scoped(demoClientID, "system/*.write"), 400, smart.ErrInvalidScope},
		{"scope escalation: user context", scoped(demoClientID, "user/Patient.rs"), 400, smart.ErrInvalidScope},
		{"scope escalation: another type", scoped(sbCondClient, "system/Observation.rs"), 400, smart.ErrInvalidScope},
		{"scope escalation: wildcard", scoped(sbCondClient, "system/*.rs"), 400, smart.ErrInvalidScope},
		{"scope escalation: a wildcard client asks for the audit log", scoped(demoClientID, "system/AuditEvent.rs"), 400, smart.ErrInvalidScope},
		{"scope escalation: a wildcard client asks for the agreements register", scoped(demoClientID, "system/Agreement.rs"), 400, smart.ErrInvalidScope},
		{"scope escalation: a wildcard client asks for its patients' audit", scoped(demoClientID, "patient/AuditEvent.rs"), 400, smart.ErrInvalidScope},
		{"scope escalation: one of two", scoped(sbCondClient, "system/Condition.rs system/Patient.rs"), 400, smart.ErrInvalidScope},
		{"malformed scope", scoped(demoClientID, "openid fhirUser"), 400, smart.ErrInvalidScope},
		{"patient/ scope without consent_reference", scoped(demoClientID, "patient/*.rs"), 400, smart.ErrInvalidScope},
		{"consent_reference to an unknown consent", sbForm(sign(b2b(map[string]any{"consent_reference": "no-such-consent"})), "patient/*.rs").Encode(), 400, smart.ErrInvalidGrant},
		{"consent_reference that is not an id", sbForm(sign(b2b(map[string]any{"consent_reference": "Consent/../x"})), "patient/*.rs").Encode(), 400, smart.ErrInvalidGrant},
		{"consent_reference to another organisation's consent", sbForm(sign(b2b(map[string]any{"consent_reference": otherOrg})), "patient/*.rs").Encode(), 400, smart.ErrInvalidGrant},
		{"two consent_references", sbForm(sign(b2b(map[string]any{"consent_reference": []string{env.consentID, env.consentID}})), "patient/*.rs").Encode(), 400, smart.ErrInvalidGrant},
		{"consent_reference with system/ scopes only", sbForm(sign(b2b(map[string]any{"consent_reference": env.consentID})), "system/Patient.rs").Encode(), 400, smart.ErrInvalidScope},
		{"consent_reference, scope outside the client's", sbForm(sign(b2b(map[string]any{"consent_reference": env.consentID})), "patient/*.cruds").Encode(), 400, smart.ErrInvalidScope},
		{"organization_id of another organisation", form(sign(b2b(map[string]any{"organization_id": "Y99001"}))), 400, smart.ErrInvalidGrant},
		{"malformed hl7-b2b", form(sign(b2b(map[string]any{"purpose_of_use": 7}))), 400, smart.ErrInvalidGrant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, a := env.tokenFor(t, c.body)
			if r.status != c.status || a.Error != c.code {
				t.Fatalf("HTTP %d %q (%s), want %d %q", r.status, a.Error, a.Description, c.status, c.code)
			}
			if a.Description == "" {
				t.Error("no error_description")
			}
			noData(t, r)
		})
	}
}

func (env *sbEnv) testReplay(t *testing.T) {
	a := env.assertion(t, demoClientID)
	if r, ans := env.tokenFor(t, sbForm(a, "system/Patient.rs").Encode()); r.status != 200 || ans.AccessToken == "" {
		t.Fatalf("first use: %d %s", r.status, truncateBody(r.body))
	}
	r, ans := env.tokenFor(t, sbForm(a, "system/Patient.rs").Encode())
	if r.status != 401 || ans.Error != smart.ErrInvalidClient {
		t.Fatalf("replay: %d %s", r.status, truncateBody(r.body))
	}
	noData(t, r)
	// The same jti in a newly signed assertion is still a replay.
	c := env.claims()
	msg, _ := jws.ParseString(a)
	var first map[string]any
	_ = json.Unmarshal(msg.Payload(), &first)
	c["jti"] = first["jti"]
	k, _ := env.demoKey(t)
	r, ans = env.tokenFor(t, sbForm(sbSign(t, k, jwa.ES384, c, nil), "system/Patient.rs").Encode())
	if r.status != 401 || ans.Error != smart.ErrInvalidClient {
		t.Fatalf("reused jti: %d %s", r.status, truncateBody(r.body))
	}
}

// forge signs an access token like gpgate's with key and kid.
func (env *sbEnv) forge(t testing.TB, key any, kid string, mod func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": env.base, "aud": env.base, "sub": demoClientID, "client_id": demoClientID,
		"consumer_ods": demoClientODS, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": sbJTI(), "scope": "system/*.rs"}
	if mod != nil {
		mod(c)
	}
	return sbSign(t, key, jwa.ES384, c, map[string]string{"kid": kid, "typ": "at+jwt"})
}

func (env *sbEnv) testBearerRejections(t *testing.T) {
	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	realTok := env.mustToken(t, demoClientID, "system/Patient.rs")
	parts := strings.Split(realTok, ".")
	var claims map[string]any
	pl, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(pl, &claims)
	claims["scope"] = "system/*.rs"
	widened := parts[0] + "." + sbB64(claims) + "." + parts[2]
	jwks := env.get(t, smart.PathJWKS, "Authorization", "").body
	hs := sbSign(t, jwks, jwa.HS256, map[string]any{"iss": env.base, "aud": env.base, "sub": demoClientID, "client_id": demoClientID,
		"exp": time.Now().Add(time.Minute).Unix(), "jti": sbJTI(), "scope": "system/*.rs"}, map[string]string{"kid": env.signKID, "typ": "at+jwt"})
	none := sbB64(map[string]string{"alg": "none", "kid": env.signKID, "typ": "at+jwt"}) + "." + parts[1] + "."
	now := time.Now()

	// Control: a token forged with gpgate's own key and nothing wrong is
	// accepted, so each refusal below is for the one thing changed.
	control := env.forge(t, env.signKey, env.signKID, nil)
	decodeBundle(t, env.get(t, patientSearch(env.patA.NHS), "Authorization", "Bearer "+control))

	cases := []struct {
		name, auth string
		status     int
		code       fhir.Code
		challenge  string // in WWW-Authenticate
	}{
		{"no token", "", 401, fhir.CodeUnauthorized, "Bearer"},
		{"another scheme", "Basic ZGVtbzpkZW1v", 401, fhir.CodeUnauthorized, "Bearer"},
		{"garbage", "Bearer not-a-token", 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"malformed header", "Bearer a b", 400, fhir.CodeBadRequest, `error="invalid_request"`},
		{"another issuer (unknown key and iss)", "Bearer " + env.forge(t, other, "other-issuer-key", set("iss", "https://other-issuer.example/fhir")), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"unknown key claiming gpgate's kid", "Bearer " + env.forge(t, other, env.signKID, nil), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"gpgate's key, another iss", "Bearer " + env.forge(t, env.signKey, env.signKID, set("iss", "https://other-issuer.example/fhir")), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"gpgate's key, another audience", "Bearer " + env.forge(t, env.signKey, env.signKID, set("aud", "https://other-server.example/fhir")), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"expired", "Bearer " + env.forge(t, env.signKey, env.signKID, func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		}), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"not yet valid", "Bearer " + env.forge(t, env.signKey, env.signKID, set("nbf", now.Add(3*time.Minute).Unix())), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"tampered payload (scope widened)", "Bearer " + widened, 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"alg none", "Bearer " + none, 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"HS256 keyed with the published JWKS", "Bearer " + hs, 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"client assertion as bearer", "Bearer " + env.assertion(t, demoClientID), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
		{"oversized token", "Bearer " + strings.Repeat("a", 9000), 401, fhir.CodeUnauthorized, `error="invalid_token"`},
	}
	paths := []string{patientSearch(env.patA.NHS), "/Condition?patient=" + env.patA.PatientID, "/Patient/" + env.patA.PatientID + "/$everything"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range paths {
				r := env.get(t, p, "Authorization", c.auth)
				expectOutcome(t, r, c.status, c.code)
				// RFC 6750 makes the challenge a MUST on 401; on the
				// 400 for a malformed header gpgate sends none today, and
				// one, if sent, must name the error.
				ch := r.header.Get("WWW-Authenticate")
				if (c.status == 401 || ch != "") && (!strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, c.challenge)) {
					t.Fatalf("WWW-Authenticate %q, want %s", ch, c.challenge)
				}
				noData(t, r, env.patA)
			}
		})
	}
}

type sbEntry struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Category     []struct {
		Coding []fhir.Coding `json:"coding"`
	} `json:"category"`
}

// matches decodes the match entries of a searchset.
func matches(t testing.TB, b *bundle) []sbEntry {
	t.Helper()
	var out []sbEntry
	for _, e := range b.Entry {
		if e.Search != nil && e.Search.Mode == "outcome" {
			continue
		}
		var x sbEntry
		if err := json.Unmarshal(e.Resource, &x); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func (env *sbEnv) testScopeLimited(t *testing.T) {
	p := env.patA
	bearer := "Bearer " + env.conditionTok // patient/Condition.rs, bound to patA
	// What a patient/*.rs token for the same patient sees, for comparison.
	allConds := matches(t, decodeBundle(t, env.get(t, "/Condition?patient="+p.PatientID+"&_count=1000")))
	allObs := decodeBundle(t, env.get(t, "/Observation?patient="+p.PatientID+"&_count=1"))
	everything := decodeBundle(t, env.get(t, "/Patient/"+p.PatientID+"/$everything?_count=0"))
	if len(allConds) == 0 || allObs.Total == nil || *allObs.Total == 0 {
		t.Fatalf("patient %s needs Conditions and Observations for this test", p.PatientID)
	}

	t.Run("the system/Condition.rs token reads no Condition", func(t *testing.T) {
		r := env.get(t, "/Condition?patient="+p.PatientID, "Authorization", "Bearer "+env.mustToken(t, sbCondClient, "system/Condition.rs"))
		expectOutcome(t, r, http.StatusForbidden, fhir.CodeNoPatientConsent)
		noData(t, r, p)
	})
	t.Run("Condition search", func(t *testing.T) {
		got := matches(t, decodeBundle(t, env.get(t, "/Condition?patient="+p.PatientID+"&_count=1000", "Authorization", bearer)))
		if len(got) != len(allConds) {
			t.Fatalf("%d Conditions, the system token sees %d", len(got), len(allConds))
		}
		r := env.get(t, "/Condition/"+allConds[0].ID, "Authorization", bearer)
		if r.status != 200 {
			t.Fatalf("Condition read: %d", r.status)
		}
	})
	for _, path := range []string{
		"/Observation?patient=" + p.PatientID,
		"/MedicationStatement?patient=" + p.PatientID,
		"/Patient/" + p.PatientID,
		patientSearch(p.NHS),
	} {
		t.Run("refused "+path, func(t *testing.T) {
			r := env.get(t, path, "Authorization", bearer)
			expectOutcome(t, r, http.StatusForbidden, fhir.CodeAccessDenied)
			noData(t, r, p)
		})
	}
	t.Run("$everything holds only Conditions", func(t *testing.T) {
		b := decodeBundle(t, env.get(t, "/Patient/"+p.PatientID+"/$everything?_count=1000", "Authorization", bearer))
		got := matches(t, b)
		for _, e := range got {
			if e.ResourceType != "Condition" {
				t.Fatalf("$everything with system/Condition.rs returned a %s", e.ResourceType)
			}
		}
		if len(got) != len(allConds) || b.Total == nil || *b.Total != len(allConds) {
			t.Fatalf("$everything: %d entries (total %v), want the %d Conditions", len(got), b.Total, len(allConds))
		}
		if *everything.Total <= len(allConds) {
			t.Fatalf("the full record (%d) should be larger than its Conditions (%d)", *everything.Total, len(allConds))
		}
	})
}

func (env *sbEnv) testGranular(t *testing.T) {
	p := env.patB
	// A patient token narrowed at request to the laboratory Observations
	// (the agreement would allow every Observation).
	r, a := env.patientTokenAs(t, demoClientID, env.consentAs(t, demoClientID, p.PatientID), "patient/Observation.rs?category=laboratory")
	if r.status != http.StatusOK || a.Scope != "patient/Observation.rs?category=laboratory" || a.Patient != p.PatientID {
		t.Fatalf("granular patient token: %d %s", r.status, truncateBody(r.body))
	}
	tok := a.AccessToken
	all := matches(t, decodeBundle(t, env.get(t, "/Observation?patient="+p.PatientID+"&_count=1000")))
	lab := 0
	for _, o := range all {
		if hasCategory(o, "laboratory") {
			lab++
		}
	}
	if lab == 0 || lab == len(all) {
		t.Fatalf("patient %s has %d of %d laboratory Observations; the test needs some of each", p.PatientID, lab, len(all))
	}
	got := matches(t, decodeBundle(t, env.get(t, "/Observation?patient="+p.PatientID+"&_count=1000", "Authorization", "Bearer "+tok)))
	if len(got) != lab {
		t.Fatalf("granular token sees %d Observations, want the %d laboratory ones", len(got), lab)
	}
	for _, o := range got {
		if !hasCategory(o, "laboratory") {
			t.Fatalf("Observation %s is not laboratory", o.ID)
		}
	}
	expectOutcome(t, env.get(t, "/Condition?patient="+p.PatientID, "Authorization", "Bearer "+tok), http.StatusForbidden, fhir.CodeAccessDenied)
}

func hasCategory(e sbEntry, code string) bool {
	for _, c := range e.Category {
		for _, cd := range c.Coding {
			if cd.Code == code {
				return true
			}
		}
	}
	return false
}

func (env *sbEnv) testPatientContext(t *testing.T) {
	a, b := env.patA, env.patB
	bearer := "Bearer " + env.patientTok
	bConds := matches(t, decodeBundle(t, env.get(t, "/Condition?patient="+b.PatientID+"&_count=1")))
	if len(bConds) == 0 {
		t.Fatalf("patient %s has no Conditions", b.PatientID)
	}
	t.Run("own patient", func(t *testing.T) {
		for _, path := range []string{
			"/Patient/" + a.PatientID,
			"/Condition?patient=" + a.PatientID,
			"/Patient/" + a.PatientID + "/$everything?_count=5",
		} {
			if r := env.get(t, path, "Authorization", bearer); r.status != 200 || !strings.Contains(string(r.body), a.PatientID) {
				t.Fatalf("%s: %d %s", path, r.status, truncateBody(r.body))
			}
		}
		b := decodeBundle(t, env.get(t, patientSearch(a.NHS), "Authorization", bearer))
		if len(b.Entry) != 1 {
			t.Fatalf("own Patient search: %d entries", len(b.Entry))
		}
	})
	structured := func(nhs string) []byte {
		return []byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"` +
			fhir.NHSNumberSystem + `","value":"` + nhs + `"}},{"name":"includeAllergies","part":[{"name":"includeResolvedAllergies","valueBoolean":true}]}]}`)
	}
	for _, c := range []struct {
		name, method, path string
		body               []byte
	}{
		{"read", "GET", "/Patient/" + b.PatientID, nil},
		{"read of a resource", "GET", "/Condition/" + bConds[0].ID, nil},
		{"search", "GET", "/Condition?patient=" + b.PatientID, nil},
		{"search by NHS number", "GET", patientSearch(b.NHS), nil},
		{"$everything", "GET", "/Patient/" + b.PatientID + "/$everything", nil},
		{"$getstructuredrecord", "POST", "/Patient/$getstructuredrecord", structured(b.NHS)},
	} {
		t.Run("another patient: "+c.name, func(t *testing.T) {
			r := env.do(t, c.method, c.path, c.body, "Authorization", bearer)
			expectOutcome(t, r, http.StatusForbidden, fhir.CodeAccessDenied)
			noData(t, r, b)
		})
	}
	t.Run("own patient's $getstructuredrecord", func(t *testing.T) {
		r := env.do(t, "POST", "/Patient/$getstructuredrecord", structured(a.NHS), "Authorization", bearer)
		if r.status != 200 || !strings.Contains(string(r.body), a.PatientID) {
			t.Fatalf("%d %s", r.status, truncateBody(r.body))
		}
	})
}

func (env *sbEnv) testIntrospection(t *testing.T) {
	live := env.mustToken(t, sbRS384Client, "system/Patient.rs")
	introspect := func(assertion, token string) (response, map[string]any) {
		v := url.Values{"client_assertion_type": {smart.AssertionTypeJWTBearer}, "client_assertion": {assertion}}
		if token != "" {
			v.Set("token", token)
		}
		r := env.postForm(t, smart.PathIntrospect, v.Encode())
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("not JSON (%d): %s", r.status, truncateBody(r.body))
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Error("introspection answer lacks Cache-Control: no-store")
		}
		return r, m
	}
	t.Run("live token", func(t *testing.T) {
		r, m := introspect(env.assertion(t, demoClientID), live)
		if r.status != 200 || m["active"] != true || m["client_id"] != sbRS384Client || m["scope"] != "system/Patient.rs" ||
			m["iss"] != env.base || m["sub"] != sbRS384Client || m["exp"] == nil || m["consumer_ods"] != "RXX03" {
			t.Fatalf("%d %v", r.status, m)
		}
	})
	t.Run("patient-context token", func(t *testing.T) {
		r, m := introspect(env.assertion(t, demoClientID), env.patientTok)
		if r.status != 200 || m["active"] != true || m["patient"] != env.patA.PatientID || m["consent_reference"] != env.consentID {
			t.Fatalf("%d %v", r.status, m)
		}
	})
	inactive := map[string]string{
		"garbage":        "garbage",
		"another issuer": env.forge(t, mustECKey(t), "other-issuer-key", nil),
		"expired": env.forge(t, env.signKey, env.signKID, func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-10*time.Minute).Unix(), time.Now().Add(-5*time.Minute).Unix()
		}),
	}
	for name, tok := range inactive {
		t.Run(name, func(t *testing.T) {
			r, m := introspect(env.assertion(t, demoClientID), tok)
			if r.status != 200 || len(m) != 1 || m["active"] != false {
				t.Fatalf("%d %v, want exactly {\"active\":false}", r.status, m)
			}
		})
	}
	t.Run("unauthenticated caller", func(t *testing.T) {
		r, m := introspect("not-an-assertion", live)
		if r.status != 401 || m["error"] != smart.ErrInvalidClient || m["active"] != nil || m["scope"] != nil {
			t.Fatalf("%d %v", r.status, m)
		}
	})
	t.Run("disabled caller", func(t *testing.T) {
		dk, _ := smart.ParsePrivateKey(env.keys[sbDisabled])
		a := sbSign(t, dk, jwa.ES384, map[string]any{"iss": sbDisabled, "sub": sbDisabled, "aud": env.tokenURL,
			"exp": time.Now().Add(time.Minute).Unix(), "jti": sbJTI()}, nil)
		r, m := introspect(a, live)
		if r.status != 401 || m["error"] != smart.ErrInvalidClient || m["active"] != nil {
			t.Fatalf("%d %v", r.status, m)
		}
	})
	t.Run("no token", func(t *testing.T) {
		r, m := introspect(env.assertion(t, demoClientID), "")
		if r.status != 400 || m["error"] != smart.ErrInvalidRequest {
			t.Fatalf("%d %v", r.status, m)
		}
	})
}

func mustECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (env *sbEnv) testTokenCLI(t *testing.T) {
	keyFile := filepath.Join(env.dir, demoKeyFile)
	t.Run("token works", func(t *testing.T) {
		code, out, stderr := sbRun(t, "token", "--base", env.base, "--client", demoClientID, "--key", keyFile,
			"--scope", "system/Patient.rs system/Condition.rs", "--org", demoClientODS, "--purpose", "TREAT", "--subject-id", "G1234567")
		tok := strings.TrimSpace(out)
		if code != 0 || tok == "" || strings.ContainsAny(tok, " \n") {
			t.Fatalf("gpgate token: %d %q %s", code, out, stderr)
		}
		b := decodeBundle(t, env.get(t, patientSearch(env.patA.NHS), "Authorization", "Bearer "+tok))
		if len(b.Entry) != 1 {
			t.Fatalf("%d entries", len(b.Entry))
		}
		expectOutcome(t, env.get(t, "/Observation?patient="+env.patA.PatientID, "Authorization", "Bearer "+tok), http.StatusForbidden, fhir.CodeAccessDenied)
		// the hl7-b2b claims are bound to the token
		r := env.postForm(t, smart.PathIntrospect, url.Values{"client_assertion_type": {smart.AssertionTypeJWTBearer},
			"client_assertion": {env.assertion(t, demoClientID)}, "token": {tok}}.Encode())
		var m map[string]any
		_ = json.Unmarshal(r.body, &m)
		if m["active"] != true || m["subject_id"] != "G1234567" || m["purpose_of_use"] != "TREAT" || m["organization_id"] != demoClientODS {
			t.Fatalf("introspection of the CLI token: %v", m)
		}
	})
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"scope escalation", []string{"--scope", "system/*.cruds"}, smart.ErrInvalidScope},
		{"another organisation", []string{"--scope", "system/Patient.rs", "--org", "Y99001"}, smart.ErrInvalidGrant},
		{"patient scope without consent", []string{"--scope", "patient/*.rs"}, smart.ErrInvalidScope},
		{"disabled client", []string{"--scope", "system/Patient.rs", "--client", sbDisabled, "--key", filepath.Join(env.dir, sbDisabled+".jwk")}, smart.ErrInvalidClient},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"token", "--base", env.base, "--client", demoClientID, "--key", keyFile}, c.args...)
			code, out, stderr := sbRun(t, args...)
			if code == 0 || out != "" || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want a failure naming %s", code, out, stderr, c.want)
			}
		})
	}
	t.Run("usage", func(t *testing.T) {
		if code, out, _ := sbRun(t, "token", "--base", env.base); code != 2 || out != "" {
			t.Fatalf("exit %d %q", code, out)
		}
	})
}

// TestClientsCLIRoundTrip drives `gpgate clients` on a fresh data directory:
// keygen, add, list, disable, enable, rotate-key and the refusals.
func TestClientsCLIRoundTrip(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keygen := func(name, alg string) (priv, pubFile, kid string) {
		t.Helper()
		priv = filepath.Join(dir, name+".jwk")
		args := []string{"clients", "keygen", "--out", priv}
		if alg != "" {
			args = append(args, "--alg", alg)
		}
		code, out, stderr := sbRun(t, args...)
		if code != 0 {
			t.Fatalf("keygen: %d %s", code, stderr)
		}
		set, err := jwk.Parse([]byte(out))
		if err != nil || set.Len() != 1 {
			t.Fatalf("keygen printed no JWKS: %v %q", err, out)
		}
		k, _ := set.Key(0)
		if strings.Contains(out, `"d"`) || strings.Contains(out, `"p"`) {
			t.Fatal("keygen printed private key material")
		}
		if !strings.Contains(stderr, k.KeyID()) {
			t.Errorf("stderr does not name kid %s: %s", k.KeyID(), stderr)
		}
		st, err := os.Stat(priv)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("private key file: %v %v", err, st)
		}
		pk, err := smart.ParsePrivateKey(mustRead(t, priv))
		if err != nil || pk.KeyID() != k.KeyID() {
			t.Fatalf("private key does not match the JWKS: %v", err)
		}
		want := alg
		if want == "" {
			want = "ES384"
		}
		if pk.Algorithm().String() != want {
			t.Errorf("alg %s, want %s", pk.Algorithm(), want)
		}
		pubFile = filepath.Join(dir, name+".jwks.json")
		if err := os.WriteFile(pubFile, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		return priv, pubFile, k.KeyID()
	}
	_, pub1, kid1 := keygen("k1", "")
	_, pub2, kid2 := keygen("k2", "RS256")

	list := func() string {
		t.Helper()
		code, out, stderr := sbRun(t, "clients", "list", "--data", data)
		if code != 0 {
			t.Fatalf("list: %d %s", code, stderr)
		}
		return out
	}
	row := func(out, id string) []string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				return f
			}
		}
		return nil
	}
	storedKIDs := func(id string) string {
		t.Helper()
		st, err := smart.OpenBolt(filepath.Join(data, stateFile))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		c, err := st.GetClient(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return string(c.JWKS)
	}

	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring of stdout
		check  func(t *testing.T)
	}{
		{"add", []string{"add", "--id", "epr-1", "--ods", "RAB12", "--name", "Test-EPR", "--jwks", pub1, "--scopes", "system/Patient.rs system/Condition.rs"}, 0, "client epr-1 registered for RAB12", func(t *testing.T) {
			f := row(list(), "epr-1")
			if len(f) < 6 || f[1] != "RAB12" || !strings.Contains(strings.Join(f, " "), "true system/Patient.rs system/Condition.rs") {
				t.Fatalf("list row %q", f)
			}
			if k := storedKIDs("epr-1"); !strings.Contains(k, kid1) {
				t.Fatalf("stored JWKS %s lacks kid %s", k, kid1)
			}
		}},
		{"add a second with a JWKS URL", []string{"add", "--id", "epr-2", "--ods", "RAB13", "--name", "Second-EPR", "--jwks-url", "https://epr.example/jwks.json", "--scopes", "system/*.rs"}, 0, "registered", func(t *testing.T) {
			if row(list(), "epr-2") == nil {
				t.Fatal("epr-2 not listed")
			}
		}},
		{"add the same id again", []string{"add", "--id", "epr-1", "--ods", "RAB12", "--jwks", pub1, "--scopes", "system/Patient.rs"}, 1, "", nil},
		{"add with an invalid scope", []string{"add", "--id", "epr-3", "--ods", "RAB14", "--jwks", pub1, "--scopes", "openid"}, 1, "", nil},
		{"add with a bad ODS code", []string{"add", "--id", "epr-3", "--ods", "x", "--jwks", pub1, "--scopes", "system/Patient.rs"}, 1, "", nil},
		{"add with a private key as JWKS", []string{"add", "--id", "epr-3", "--ods", "RAB14", "--jwks", filepath.Join(dir, "k1.jwk"), "--scopes", "system/Patient.rs"}, 1, "", nil},
		{"add with both JWKS and URL", []string{"add", "--id", "epr-3", "--ods", "RAB14", "--jwks", pub1, "--jwks-url", "https://epr.example/jwks.json", "--scopes", "system/Patient.rs"}, 1, "", nil},
		{"disable", []string{"disable", "--id", "epr-1"}, 0, "client epr-1 disabled", func(t *testing.T) {
			if f := row(list(), "epr-1"); len(f) < 4 || f[3] != "false" {
				t.Fatalf("after disable: %q", f)
			}
		}},
		{"enable", []string{"enable", "--id", "epr-1"}, 0, "client epr-1 enabled", func(t *testing.T) {
			if f := row(list(), "epr-1"); len(f) < 4 || f[3] != "true" {
				t.Fatalf("after enable: %q", f)
			}
		}},
		{"rotate-key", []string{"rotate-key", "--id", "epr-1", "--jwks", pub2}, 0, "client epr-1 keys replaced", func(t *testing.T) {
			k := storedKIDs("epr-1")
			if !strings.Contains(k, kid2) || strings.Contains(k, kid1) {
				t.Fatalf("after rotation the stored JWKS is %s", k)
			}
		}},
		{"disable an unknown client", []string{"disable", "--id", "ghost"}, 1, "", nil},
		{"rotate-key of an unknown client", []string{"rotate-key", "--id", "ghost", "--jwks", pub2}, 1, "", nil},
		{"unknown subcommand", []string{"frobnicate"}, 2, "", nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			args := append([]string{"clients", s.args[0]}, s.args[1:]...)
			if s.args[0] != "frobnicate" {
				args = append(args, "--data", data)
			}
			code, out, stderr := sbRun(t, args...)
			if code != s.code || !strings.Contains(out, s.stdout) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q", code, s.code, out, stderr)
			}
			if s.check != nil {
				s.check(t)
			}
		})
	}
	if f := row(list(), "epr-2"); len(f) < 4 || f[3] != "true" {
		t.Fatalf("epr-2 changed: %q", f)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
