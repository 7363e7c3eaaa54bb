// Package backendauth is gpgate's client side of OAuth 2.0 client
// credentials with a signed JWT client assertion (private_key_jwt): SMART
// Backend Services to an upstream FHIR server, and NHS England's
// application-restricted access to PDS, which is the same flow. The access
// token is cached until shortly before it expires.
package backendauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Options configures a Client.
type Options struct {
	TokenURL string
	ClientID string
	// Key is the private signing key (LoadKey reads one). Its alg decides
	// the assertion's: RS384 / ES384 (SMART), RS512 (NHS England), RS256,
	// ES256; a key without alg signs RS384 (RSA) or by curve (EC).
	Key        jwk.Key
	Scope      string // space-separated scopes asked for ("" asks none)
	HTTPClient *http.Client
	// Refresh is how long before expiry a token is renewed (default 30s).
	Refresh time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Client gets and caches access tokens.
type Client struct {
	opt Options
	alg jwa.SignatureAlgorithm

	mu    sync.Mutex
	token string
	until time.Time // renew at or after
}

// New checks the options and returns a client.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.TokenURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("backendauth: TokenURL must be an absolute http(s) URL")
	}
	if o.ClientID == "" || o.Key == nil {
		return nil, fmt.Errorf("backendauth: ClientID and Key are required")
	}
	alg, err := algOf(o.Key)
	if err != nil {
		return nil, err
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Refresh <= 0 {
		o.Refresh = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{opt: o, alg: alg}, nil
}

// LoadKey reads a private key file: a JWK, or PEM (PKCS#8, SEC 1, PKCS#1).
// A key without kid gets its JWK thumbprint.
func LoadKey(path string) (jwk.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backendauth: %w", err)
	}
	return ParseKey(b)
}

// ParseKey reads a private key given as a JWK or PEM.
func ParseKey(b []byte) (jwk.Key, error) {
	k, err := jwk.ParseKey(b)
	if err != nil {
		if k, err = jwk.ParseKey(b, jwk.WithPEM(true)); err != nil {
			return nil, fmt.Errorf("backendauth: key is neither a JWK nor PEM")
		}
	}
	if _, err := algOf(k); err != nil {
		return nil, err
	}
	if k.KeyID() == "" {
		if err := jwk.AssignKeyID(k); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func algOf(k jwk.Key) (jwa.SignatureAlgorithm, error) {
	var raw any
	if err := k.Raw(&raw); err != nil {
		return "", fmt.Errorf("backendauth: key: %w", err)
	}
	named := jwa.SignatureAlgorithm(k.Algorithm().String())
	switch pk := raw.(type) {
	case *rsa.PrivateKey:
		switch named {
		case "":
			return jwa.RS384, nil
		case jwa.RS256, jwa.RS384, jwa.RS512:
			return named, nil
		}
	case *ecdsa.PrivateKey:
		want := jwa.ES256
		if pk.Curve == elliptic.P384() {
			want = jwa.ES384
		} else if pk.Curve != elliptic.P256() {
			return "", fmt.Errorf("backendauth: EC key must be P-256 or P-384")
		}
		if named == "" || named == want {
			return want, nil
		}
	default:
		return "", fmt.Errorf("backendauth: not an RSA or EC private key")
	}
	return "", fmt.Errorf("backendauth: key alg %s does not fit the key", named)
}

// Token returns a live access token, asking the token endpoint when the
// cached one is missing or about to expire. Concurrent callers share one
// request.
func (c *Client) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opt.Now()
	if c.token != "" && now.Before(c.until) {
		return c.token, nil
	}
	tok, life, err := c.request(ctx, now)
	if err != nil {
		c.opt.Logger.Warn("backendauth: token request failed", "err", err)
		return "", err
	}
	c.token = tok
	c.until = now.Add(life - c.opt.Refresh)
	return tok, nil
}

// Forget drops the cached token (after the upstream refused it).
func (c *Client) Forget() {
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
}

// Assertion signs a client assertion at now: iss = sub = client id, aud =
// token URL, a fresh jti, expiry five minutes on (the most SMART and NHS
// England accept).
func (c *Client) Assertion(now time.Time) (string, error) {
	t := jwt.New()
	_ = t.Set(jwt.IssuerKey, c.opt.ClientID)
	_ = t.Set(jwt.SubjectKey, c.opt.ClientID)
	_ = t.Set(jwt.AudienceKey, c.opt.TokenURL)
	_ = t.Set(jwt.IssuedAtKey, now)
	_ = t.Set(jwt.ExpirationKey, now.Add(5*time.Minute))
	_ = t.Set(jwt.JwtIDKey, uuid.NewString())
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, c.opt.Key.KeyID())
	_ = hdr.Set(jws.TypeKey, "JWT")
	b, err := jwt.Sign(t, jwt.WithKey(c.alg, c.opt.Key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("backendauth: sign assertion: %w", err)
	}
	return string(b), nil
}

func (c *Client) request(ctx context.Context, now time.Time) (string, time.Duration, error) {
	a, err := c.Assertion(now)
	if err != nil {
		return "", 0, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {a},
	}
	if c.opt.Scope != "" {
		form.Set("scope", c.opt.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opt.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.opt.HTTPClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("backendauth: token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("backendauth: token endpoint: %w", err)
	}
	tr, err := ParseTokenResponse(body)
	if resp.StatusCode != http.StatusOK {
		code := ""
		if tr != nil {
			code = tr.Error
		}
		return "", 0, fmt.Errorf("backendauth: token endpoint: HTTP %d %s", resp.StatusCode, code)
	}
	if err != nil {
		return "", 0, err
	}
	life := time.Duration(tr.expires) * time.Second
	return tr.AccessToken, life, nil
}

// TokenResponse is a parsed successful token answer.
type TokenResponse struct {
	AccessToken string
	Error       string
	expires     int64
}

// ExpiresIn is the token's lifetime in seconds.
func (t *TokenResponse) ExpiresIn() int64 { return t.expires }

var errNoToken = errors.New("backendauth: token answer without a bearer access_token and a positive expires_in")

// ParseTokenResponse reads a token endpoint's JSON answer. A success must
// carry a bearer access_token and a positive expires_in (a number, or a
// string of digits as some servers send); an error answer returns its error
// code with a non-nil error.
func ParseTokenResponse(body []byte) (*TokenResponse, error) {
	var raw struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("backendauth: token answer: %w", err)
	}
	tr := &TokenResponse{AccessToken: raw.AccessToken, Error: safeCode(raw.Error)}
	if v, err := json.Number(strings.Trim(string(raw.ExpiresIn), `"`)).Int64(); err == nil {
		tr.expires = v
	}
	if raw.AccessToken == "" || !strings.EqualFold(raw.TokenType, "bearer") || tr.expires <= 0 {
		return tr, errNoToken
	}
	if tr.expires > 24*3600 {
		tr.expires = 24 * 3600 // never trust a token for more than a day
	}
	return tr, nil
}

// safeCode keeps an OAuth error code only when it looks like one (so a
// server's free text never reaches the log).
func safeCode(s string) string {
	if len(s) > 40 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return ""
		}
	}
	return s
}
