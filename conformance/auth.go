package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// parseKey reads a private key as a JWK or PEM.
func parseKey(b []byte) (jwk.Key, error) {
	s := strings.TrimSpace(string(b))
	var k jwk.Key
	var err error
	if strings.HasPrefix(s, "-----BEGIN") {
		k, err = jwk.ParseKey([]byte(s), jwk.WithPEM(true))
	} else {
		k, err = jwk.ParseKey([]byte(s))
	}
	if err != nil {
		return nil, fmt.Errorf("conformance: the client key is not a JWK or PEM private key: %w", err)
	}
	return k, nil
}

// algOf picks the signing algorithm: the key's own alg, else ES384 for EC
// and RS384 for RSA (what SMART Backend Services requires servers to take).
func algOf(k jwk.Key) jwa.SignatureAlgorithm {
	if a := k.Algorithm().String(); a != "" {
		return jwa.SignatureAlgorithm(a)
	}
	if k.KeyType() == jwa.EC {
		return jwa.ES384
	}
	return jwa.RS384
}

// assertion is a client assertion to sign; zero fields take defaults.
type assertion struct {
	clientID, aud, jti string
	iat, exp           time.Time
	b2b                map[string]any // extensions.hl7-b2b, optional
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func signAssertion(k jwk.Key, a assertion) (string, error) {
	t := jwt.New()
	_ = t.Set(jwt.IssuerKey, a.clientID)
	_ = t.Set(jwt.SubjectKey, a.clientID)
	_ = t.Set(jwt.AudienceKey, a.aud)
	_ = t.Set(jwt.IssuedAtKey, a.iat)
	_ = t.Set(jwt.ExpirationKey, a.exp)
	jti := a.jti
	if jti == "" {
		jti = newJTI()
	}
	_ = t.Set(jwt.JwtIDKey, jti)
	if a.b2b != nil {
		_ = t.Set("extensions", map[string]any{"hl7-b2b": a.b2b})
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, k.KeyID())
	_ = hdr.Set(jws.TypeKey, "JWT")
	b, err := jwt.Sign(t, jwt.WithKey(algOf(k), k, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("conformance: sign assertion: %w", err)
	}
	return string(b), nil
}

// foreignKey is a fresh P-384 key carrying kid: an assertion it signs must
// be refused.
func foreignKey(kid string) (jwk.Key, error) {
	pk, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	k, err := jwk.FromRaw(pk)
	if err != nil {
		return nil, err
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.ES384)
	return k, nil
}

type tokenAnswer struct {
	status      int
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenRequest posts a client_credentials request with the assertion.
func (r *runner) tokenRequest(ctx context.Context, tokenURL string, form url.Values) (*tokenAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := r.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var ta tokenAnswer
	_ = json.NewDecoder(res.Body).Decode(&ta)
	ta.status = res.StatusCode
	r.mu.Lock()
	r.rep.Requests++
	r.mu.Unlock()
	return &ta, nil
}

func clientForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
}

// tokenURL is the token endpoint from SMART discovery.
func (r *runner) tokenURL(ctx context.Context) (string, error) {
	res, err := r.do(ctx, request{method: http.MethodGet, path: "/.well-known/smart-configuration", header: map[string]string{"Accept": "application/json"}})
	if err != nil {
		return "", err
	}
	var sc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(res.body, &sc); err != nil || sc.TokenEndpoint == "" {
		return "", fmt.Errorf("smart-configuration has no token_endpoint (status %d)", res.status)
	}
	return sc.TokenEndpoint, nil
}

// obtain gets a token for a client.
func (r *runner) obtain(ctx context.Context, clientID string, key []byte, scope string, b2b map[string]any) (string, time.Duration, error) {
	k, err := parseKey(key)
	if err != nil {
		return "", 0, err
	}
	tu, err := r.tokenURL(ctx)
	if err != nil {
		return "", 0, err
	}
	now := r.o.Now()
	a, err := signAssertion(k, assertion{clientID: clientID, aud: tu, iat: now, exp: now.Add(4 * time.Minute), b2b: b2b})
	if err != nil {
		return "", 0, err
	}
	ta, err := r.tokenRequest(ctx, tu, clientForm(a, scope))
	if err != nil {
		return "", 0, err
	}
	if ta.status != http.StatusOK || ta.AccessToken == "" {
		return "", 0, fmt.Errorf("token endpoint: HTTP %d %s %s", ta.status, ta.Error, ta.Description)
	}
	return ta.AccessToken, time.Duration(ta.ExpiresIn) * time.Second, nil
}

// token returns the suite's clinical token, renewed at half its life.
func (r *runner) token(ctx context.Context) (string, error) {
	return r.cachedToken(ctx, r.o.ClientID, r.o.Key, r.o.Scope)
}

func (r *runner) cachedToken(ctx context.Context, clientID string, key []byte, scope string) (string, error) {
	return r.cached(clientID+" "+scope, func() (string, time.Duration, error) {
		return r.obtain(ctx, clientID, key, scope, nil)
	})
}

func (r *runner) cached(key string, get func() (string, time.Duration, error)) (string, error) {
	r.mu.Lock()
	tc, ok := r.tokens[key]
	r.mu.Unlock()
	if ok && r.o.Now().Before(tc.until) {
		return tc.tok, nil
	}
	tok, ttl, err := get()
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.tokens[key] = tokenCache{tok: tok, until: r.o.Now().Add(ttl / 2)}
	r.mu.Unlock()
	return tok, nil
}

// SDSUserSystem is the identifier system of a clinician's SDS user id.
const SDSUserSystem = "https://fhir.nhs.uk/Id/sds-user-id"

// ptoken returns a patient-context token for p, as a clinician's EPR holds
// one: a consent to view recorded with POST /Consent (system/Consent.c),
// then patient/*.rs bound to that Consent and the clinician (hl7-b2b).
func (r *runner) ptoken(ctx context.Context, p *patient) (string, error) {
	return r.cached("patient "+p.id, func() (string, time.Duration, error) {
		sys, err := r.cachedToken(ctx, r.o.ClientID, r.o.Key, "system/Consent.c")
		if err != nil {
			return "", 0, err
		}
		body, _ := json.Marshal(map[string]any{
			"resourceType": "Consent", "status": "active",
			"patient":   map[string]string{"reference": "Patient/" + p.id},
			"performer": []any{map[string]any{"identifier": map[string]string{"system": SDSUserSystem, "value": r.o.Clinician}}},
		})
		res, err := r.do(ctx, request{method: http.MethodPost, path: "/Consent", body: body, token: sys, label: "Consent"})
		if err != nil {
			return "", 0, err
		}
		if res.status != http.StatusCreated {
			return "", 0, fmt.Errorf("POST /Consent: status %d: %s", res.status, short(res.body))
		}
		var c struct {
			ResourceType, ID string
		}
		if json.Unmarshal(res.body, &c) != nil || c.ResourceType != "Consent" || c.ID == "" {
			return "", 0, fmt.Errorf("POST /Consent did not answer a Consent with an id")
		}
		r.seenResource("POST /Consent", res.body)
		return r.obtain(ctx, r.o.ClientID, r.o.Key, r.o.PatientScope, map[string]any{"subject_id": r.o.Clinician, "consent_reference": []string{c.ID}})
	})
}
