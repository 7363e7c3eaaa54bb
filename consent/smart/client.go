package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Assertion describes a client assertion to sign.
type Assertion struct {
	ClientID string
	TokenURL string        // aud
	Now      time.Time     // iat; exp = Now + TTL
	TTL      time.Duration // default (and at most what gpgate accepts) 5 minutes
	JTI      string        // default: random
	B2B      *B2B          // optional extensions.hl7-b2b
}

// SignAssertion signs a SMART Backend Services client assertion with the
// client's private key (JWK or PEM, see ParsePrivateKey): iss = sub =
// ClientID, aud = TokenURL, iat, exp, jti, kid header.
func SignAssertion(privateKey []byte, a Assertion) (string, error) {
	k, err := ParsePrivateKey(privateKey)
	if err != nil {
		return "", err
	}
	if a.ClientID == "" || a.TokenURL == "" || a.Now.IsZero() {
		return "", fmt.Errorf("smart: Assertion needs ClientID, TokenURL and Now")
	}
	ttl := a.TTL
	if ttl <= 0 {
		ttl = maxAssertionExp
	}
	jti := a.JTI
	if jti == "" {
		jti = newJTI()
	}
	t := jwt.New()
	_ = t.Set(jwt.IssuerKey, a.ClientID)
	_ = t.Set(jwt.SubjectKey, a.ClientID)
	_ = t.Set(jwt.AudienceKey, a.TokenURL)
	_ = t.Set(jwt.IssuedAtKey, a.Now)
	_ = t.Set(jwt.ExpirationKey, a.Now.Add(ttl))
	_ = t.Set(jwt.JwtIDKey, jti)
	if a.B2B != nil {
		_ = t.Set("extensions", map[string]any{"hl7-b2b": a.B2B})
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, k.KeyID())
	_ = hdr.Set(jws.TypeKey, "JWT")
	alg := jwa.SignatureAlgorithm(k.Algorithm().String())
	b, err := jwt.Sign(t, jwt.WithKey(alg, k, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("smart: sign assertion: %w", err)
	}
	return string(b), nil
}

// TokenError is an OAuth error answered by a token endpoint.
type TokenError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("token endpoint: HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

// RequestToken gets an access token with client_credentials and a client
// assertion signed by privateKey (now from the wall clock: this is the
// client side, for `gpgate token` and tests). An error answer from the
// server is a *TokenError.
func RequestToken(ctx context.Context, tokenURL, clientID string, privateKey []byte, scopes []string, b2b *B2B) (token string, expiresIn int, err error) {
	return requestToken(ctx, http.DefaultClient, time.Now(), tokenURL, clientID, privateKey, scopes, b2b)
}

// RequestTokenWith is RequestToken over hc (a private CA, a client
// certificate for mutual TLS).
func RequestTokenWith(ctx context.Context, hc *http.Client, tokenURL, clientID string, privateKey []byte, scopes []string, b2b *B2B) (token string, expiresIn int, err error) {
	return requestToken(ctx, hc, time.Now(), tokenURL, clientID, privateKey, scopes, b2b)
}

func requestToken(ctx context.Context, hc *http.Client, now time.Time, tokenURL, clientID string, privateKey []byte, scopes []string, b2b *B2B) (string, int, error) {
	a, err := SignAssertion(privateKey, Assertion{ClientID: clientID, TokenURL: tokenURL, Now: now, B2B: b2b})
	if err != nil {
		return "", 0, err
	}
	form := url.Values{
		"grant_type":            {GrantClientCredentials},
		"client_assertion_type": {AssertionTypeJWTBearer},
		"client_assertion":      {a},
		"scope":                 {strings.Join(scopes, " ")},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		te := &TokenError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, te)
		return "", 0, te
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", 0, fmt.Errorf("smart: token endpoint answered no access_token")
	}
	return tr.AccessToken, tr.ExpiresIn, nil
}
