package viewer

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gpgate/gpgate/fhir"
)

// OIDCConfig turns on OpenID Connect sign-in (authorization code flow with
// PKCE and a nonce) for organisations with an identity provider, e.g. NHS
// Care Identity Service 2. Claims name the clinician's organisation (an ODS
// code), SDS user id and role; a token without all three signs no one in.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string   // https://host/viewer/oidc/callback
	Scopes       []string // default openid, profile
	Label        string   // the button: "Sign in with ..." (default "your organisation's identity service")

	// Claim paths, dot-separated, numbers index arrays
	// (e.g. "nhsid_nrbac_roles.0.org_code"). Defaults: org, sds_user_id,
	// role, name.
	OrgClaim, SDSClaim, RoleClaim, NameClaim string

	// HTTPClient talks to the provider (default http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock ID tokens are checked against (default time.Now).
	Now func() time.Time
}

type oidcClient struct {
	cfg   OIDCConfig
	label string
	mu    sync.Mutex
	prov  *oidc.Provider // discovered on first use, so a provider that is down at start does not stop gpgate
	oauth *oauth2.Config
	ver   *oidc.IDTokenVerifier
}

func newOIDCClient(ctx context.Context, c *OIDCConfig) (*oidcClient, error) {
	cfg := *c
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("viewer: OpenID Connect needs an issuer, a client id and a redirect URL")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile"}
	}
	if cfg.OrgClaim == "" {
		cfg.OrgClaim = "org"
	}
	if cfg.SDSClaim == "" {
		cfg.SDSClaim = "sds_user_id"
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "role"
	}
	if cfg.NameClaim == "" {
		cfg.NameClaim = "name"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	label := cfg.Label
	if label == "" {
		label = "your organisation's identity service"
	}
	return &oidcClient{cfg: cfg, label: label}, nil
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.cfg.HTTPClient)
}

func (o *oidcClient) provider(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.prov == nil {
		p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
		if err != nil {
			return nil, nil, err
		}
		o.prov = p
		o.oauth = &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret,
			RedirectURL: o.cfg.RedirectURL, Endpoint: p.Endpoint(), Scopes: o.cfg.Scopes}
		o.ver = p.VerifierContext(o.ctx(context.Background()), &oidc.Config{ClientID: o.cfg.ClientID, Now: o.cfg.Now})
	}
	return o.oauth, o.ver, nil
}

// oidcLogin sends the browser to the provider. state, nonce and the PKCE
// verifier travel in a short-lived MACed cookie (SameSite=Lax: it must come
// back on the provider's cross-site redirect).
func (v *Viewer) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if v.oidc == nil {
		v.notFound(w, r)
		return
	}
	oc, _, err := v.oidc.provider(r.Context())
	if err != nil {
		v.log.Error("viewer oidc discovery failed", "err", err)
		v.render(w, r, http.StatusBadGateway, "signin", v.signInData(w, r, "oidc", ""))
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	val := state + "." + nonce + "." + verifier
	v.cookie.set(w, v.cookie.oidc, val+"."+v.mac("oidc", val), 600, http.SameSiteLaxMode)
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (v *Viewer) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if v.oidc == nil {
		v.notFound(w, r)
		return
	}
	a, err := v.oidcAccount(r)
	v.cookie.clear(w, v.cookie.oidc)
	if err != nil {
		v.log.Warn("viewer oidc sign-in refused", "err", err)
		v.render(w, r, http.StatusUnauthorized, "signin", v.signInData(w, r, "oidc", ""))
		return
	}
	v.startSession(w, r, *a)
	v.log.Info("viewer sign-in", "method", "oidc", "org", a.Org)
	// A SameSite=Strict cookie set during a cross-site redirect chain is not
	// sent on a further redirect of that chain: continue with a same-site
	// navigation instead.
	v.render(w, r, http.StatusOK, "continue", &page{Title: "Signed in", Next: Base + "/find"})
}

func (v *Viewer) oidcAccount(r *http.Request) (*account, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("provider answered error %.64q", e)
	}
	c, err := r.Cookie(v.cookie.oidc)
	if err != nil {
		return nil, errors.New("no sign-in in progress (cookie missing)")
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 || subtle.ConstantTimeCompare([]byte(parts[3]), []byte(v.mac("oidc", strings.Join(parts[:3], ".")))) != 1 {
		return nil, errors.New("sign-in cookie not ours")
	}
	state, nonce, verifier := parts[0], parts[1], parts[2]
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		return nil, errors.New("state mismatch")
	}
	code := q.Get("code")
	if code == "" {
		return nil, errors.New("no code")
	}
	oc, ver, err := v.oidc.provider(r.Context())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(v.oidc.ctx(r.Context()), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("no id_token")
	}
	idt, err := ver.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("nonce mismatch")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	return v.oidc.account(idt.Subject, claims)
}

// account maps ID token claims to a clinician; organisation, SDS user id
// and role are required and checked like a local account's.
func (o *oidcClient) account(subject string, claims map[string]any) (*account, error) {
	a := &account{Username: subject,
		Org:   strings.ToUpper(claimString(claims, o.cfg.OrgClaim)),
		SDSID: claimString(claims, o.cfg.SDSClaim),
		Role:  claimString(claims, o.cfg.RoleClaim),
		Name:  claimString(claims, o.cfg.NameClaim)}
	if !fhir.ValidODS(a.Org) {
		return nil, errors.New("organisation claim missing or not an ODS code")
	}
	if !validSDSID(a.SDSID) {
		return nil, errors.New("SDS user id claim missing or malformed")
	}
	if a.Role == "" || len(a.Role) > 64 {
		return nil, errors.New("role claim missing")
	}
	if len(a.Name) > 128 {
		a.Name = a.Name[:128]
	}
	return a, nil
}

func validSDSID(s string) bool {
	if len(s) < 6 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// claimString follows a dotted path through the claims; a number indexes
// an array. Numbers found are rendered as integers (SDS ids may arrive so).
func claimString(claims map[string]any, path string) string {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			cur = x[part]
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return ""
			}
			cur = x[i]
		default:
			return ""
		}
	}
	switch x := cur.(type) {
	case string:
		return strings.TrimSpace(x)
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10)
		}
	}
	return ""
}
