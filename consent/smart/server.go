package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"go.etcd.io/bbolt"
)

// Endpoint paths, relative to the FHIR base URL (Options.BaseURL). The lead
// mounts the handlers at exactly these paths under the base.
const (
	PathConfiguration = "/.well-known/smart-configuration"
	PathToken         = "/auth/token"
	PathIntrospect    = "/auth/introspect"
	PathJWKS          = "/auth/jwks"
)

// MaxTokenTTL is the longest access-token lifetime gpgate issues.
const MaxTokenTTL = 5 * time.Minute

// maxAssertionExp is how far ahead a client assertion's exp may be.
const maxAssertionExp = 5 * time.Minute

// Narrower narrows a patient-context token request against recorded consent
// (consent to view): given the client, the assertion's hl7-b2b extension
// (with a consent_reference) and the scopes already checked against the
// client's allowed scopes, it returns the scopes to grant (each must be
// covered by a requested one: a wider answer is refused) and the patient
// the token is bound to. An *OAuthError chooses the error answered; a
// 4xx *fhir.Error becomes invalid_grant with its diagnostics; anything else
// is a server_error.
type Narrower interface {
	Narrow(ctx context.Context, client *Client, b2b *B2B, requested []Scope) (granted []Scope, patientID string, err error)
}

// Auditor records token issuance decisions (same shape as the audit
// package's). Issuance fails closed when recording a grant fails.
type Auditor interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
}

// Options configure a Server.
type Options struct {
	// Stores. Either Clients and Keys (any implementation), or DB (an open
	// bbolt database, shared is fine), or Path (a bbolt file the server
	// opens and Close closes), in that order of preference.
	Clients ClientStore
	Keys    KeyStore
	DB      *bbolt.DB
	Path    string

	// BaseURL is the FHIR base URL (no trailing slash), e.g.
	// https://gpgate.example.nhs.uk/fhir. It is the audience of access
	// tokens and the endpoints live under it (PathToken, ...); the client
	// assertion's aud must be BaseURL+PathToken. Required.
	BaseURL string
	// Issuer is the iss of access tokens; default BaseURL.
	Issuer string

	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()

	// TokenTTL is the access-token lifetime: default and at most 5 minutes.
	TokenTTL time.Duration
	// SigningAlg is the algorithm of a newly made signing key: ES384
	// (default) or RS384.
	SigningAlg string
	// ClockSkew is the tolerance on exp, nbf and iat (assertions and
	// tokens); default 30s, at most 2 minutes.
	ClockSkew time.Duration
	// MaxFormBytes limits token and introspection bodies; default 16 KiB.
	// A larger body is answered 413 invalid_request.
	MaxFormBytes int64
	// ScopesSupported is advertised in the SMART configuration; default a
	// generic list (system/, user/ and patient/ read and search).
	ScopesSupported []string

	Narrower    Narrower     // optional: consent-to-view narrowing
	Auditor     Auditor      // optional: records token issuance
	ReplayCache ReplayCache  // default: in-memory, 100 000 entries
	HTTPClient  *http.Client // JWKS URL fetches; default 5 s timeout
	// JWKSCacheTTL is how long a fetched client JWKS is used; default 5 min.
	JWKSCacheTTL time.Duration
	// VerifierCacheSize bounds the Verifier's cache; default 10 000.
	VerifierCacheSize int
	// Events, when set, is told of every token issued and refused (for
	// metrics, and for the aggregated audit of refused authentications).
	Events Events
	// ClientCheckTTL bounds how long a change to a client made outside
	// this Server (another node) takes to reach token verification;
	// default 5 s. Changes made through Server.Clients apply at once.
	ClientCheckTTL time.Duration
}

// Server is gpgate's SMART Backend Services authorization server.
type Server struct {
	clients   ClientStore
	keys      KeyStore
	closer    func() error
	base      string
	issuer    string
	now       func() time.Time
	log       *slog.Logger
	ttl       time.Duration
	alg       string
	skew      time.Duration
	maxForm   int64
	scopesSup []string
	narrower  Narrower
	auditor   Auditor
	replay    ReplayCache
	jwks      *jwksCache

	ring     atomic.Pointer[keyRing]
	rotateMu sync.Mutex
	verifier *Verifier

	reloadMu   sync.Mutex
	lastReload time.Time

	events  Events
	clState *clientStates
}

// NewServer builds the server and makes sure a signing key exists (making
// and storing one on first start).
func NewServer(ctx context.Context, o Options) (*Server, error) {
	if o.BaseURL == "" || !(strings.HasPrefix(o.BaseURL, "https://") || strings.HasPrefix(o.BaseURL, "http://")) {
		return nil, errors.New("smart: Options.BaseURL must be an absolute http(s) URL")
	}
	s := &Server{
		base:      strings.TrimRight(o.BaseURL, "/"),
		issuer:    o.Issuer,
		now:       o.Now,
		log:       o.Logger,
		ttl:       o.TokenTTL,
		alg:       o.SigningAlg,
		skew:      o.ClockSkew,
		maxForm:   o.MaxFormBytes,
		scopesSup: o.ScopesSupported,
		narrower:  o.Narrower,
		auditor:   o.Auditor,
		replay:    o.ReplayCache,
		events:    o.Events,
	}
	switch {
	case o.Clients != nil && o.Keys != nil:
		s.clients, s.keys = o.Clients, o.Keys
	case o.Clients != nil || o.Keys != nil:
		return nil, errors.New("smart: give both Options.Clients and Options.Keys, or neither")
	case o.DB != nil:
		st, err := NewBoltStore(o.DB)
		if err != nil {
			return nil, err
		}
		s.clients, s.keys = st, st
	case o.Path != "":
		st, err := OpenBolt(o.Path)
		if err != nil {
			return nil, err
		}
		s.clients, s.keys, s.closer = st, st, st.Close
	default:
		return nil, errors.New("smart: no store (Options.Clients/Keys, DB or Path)")
	}
	if s.issuer == "" {
		s.issuer = s.base
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.ttl <= 0 || s.ttl > MaxTokenTTL {
		s.ttl = MaxTokenTTL
	}
	if s.alg == "" {
		s.alg = DefaultAlg
	}
	if s.alg != "ES384" && s.alg != "RS384" {
		return nil, fmt.Errorf("smart: SigningAlg must be ES384 or RS384, not %q", s.alg)
	}
	if s.skew <= 0 {
		s.skew = 30 * time.Second
	}
	if s.skew > 2*time.Minute {
		s.skew = 2 * time.Minute
	}
	if s.maxForm <= 0 {
		s.maxForm = 16 << 10
	}
	if len(s.scopesSup) == 0 {
		s.scopesSup = []string{"system/*.rs", "system/*.read", "user/*.rs", "user/*.read", "patient/*.rs", "patient/*.read", "system/Patient.rs", "system/Consent.c"}
	}
	if s.replay == nil {
		s.replay = NewMemoryReplayCache(100_000, s.now)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	ttl := o.JWKSCacheTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	s.jwks = newJWKSCache(hc, ttl, s.now)
	r, err := loadRing(ctx, s.keys, s.alg, s.now(), s.retain(), true)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.ring.Store(r)
	s.verifier = newVerifier(VerifierOptions{
		Issuer: s.issuer, Audience: s.base, Now: s.now, Logger: s.log,
		ClockSkew: s.skew, CacheSize: o.VerifierCacheSize,
	}, s.currentRing)
	s.clState = newClientStates(s.clients, o.ClientCheckTTL, s.now)
	s.verifier.check = s.clState.check
	return s, nil
}

// retain is how long a retired key stays published: its last tokens must
// keep verifying until they expire.
func (s *Server) retain() time.Duration { return s.ttl + s.skew + time.Minute }

// currentRing is the verifier's view of the keys: on a kid it does not know
// it re-reads the KeyStore (at most every 10 s), so a rotation made by
// another node is seen.
func (s *Server) currentRing(ctx context.Context, kid string) *keyRing {
	r := s.ring.Load()
	if _, ok := r.pub[kid]; ok || kid == "" {
		return r
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if r2 := s.ring.Load(); r2 != r {
		return r2
	}
	now := s.now()
	if now.Sub(s.lastReload) < 10*time.Second {
		return r
	}
	s.lastReload = now
	r2, err := loadRing(ctx, s.keys, s.alg, now, s.retain(), false)
	if err != nil || r2.active == nil {
		return r
	}
	s.ring.Store(r2)
	return r2
}

// Close closes the store if the server opened it (Options.Path).
func (s *Server) Close() error {
	if s.closer != nil {
		return s.closer()
	}
	return nil
}

// Clients is the client registry (for the admin verbs). A change made
// through it (disable, enable, rotate-key) reaches token verification at
// once: the next request with a token of a disabled client, or of a key no
// longer registered, is refused.
func (s *Server) Clients() ClientStore { return invalidating{s.clients, s.clState} }

// Verifier is the resource-server token verifier bound to this server's
// keys (a rotation is seen at once).
func (s *Server) Verifier() *Verifier { return s.verifier }

// RotateSigningKey makes a new signing key of alg ("" = Options.SigningAlg)
// and makes it active; the previous key is still published (and its tokens
// verify) until they have all expired. Keys retired longer ago are dropped.
func (s *Server) RotateSigningKey(ctx context.Context, alg string) (kid string, err error) {
	if alg == "" {
		alg = s.alg
	}
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	now := s.now()
	keys, err := s.keys.SigningKeys(ctx)
	if err != nil {
		return "", err
	}
	sk, err := newSigningKey(alg, now)
	if err != nil {
		return "", err
	}
	keys = pruneKeys(keys, now, s.retain())
	for i := range keys {
		if keys[i].Retired.IsZero() {
			keys[i].Retired = now
		}
	}
	keys = append(keys, sk)
	if err := s.keys.SetSigningKeys(ctx, keys); err != nil {
		return "", err
	}
	r, err := buildRing(keys, now, s.retain())
	if err != nil {
		return "", err
	}
	s.ring.Store(r)
	s.log.Info("smart: signing key rotated", "kid", sk.KID, "alg", alg)
	return sk.KID, nil
}

// ReloadKeys re-reads the signing keys from the KeyStore (another node may
// have rotated them) and drops keys whose retention has passed. With
// several nodes on one KeyStore, call it every minute or so: a node signs
// with the active key it last loaded. Rotate on one node only.
func (s *Server) ReloadKeys(ctx context.Context) error {
	r, err := loadRing(ctx, s.keys, s.alg, s.now(), s.retain(), true)
	if err != nil {
		return err
	}
	s.ring.Store(r)
	return nil
}

// TokenURL, IntrospectURL and JWKSURL are the absolute endpoint URLs.
func (s *Server) TokenURL() string      { return s.base + PathToken }
func (s *Server) IntrospectURL() string { return s.base + PathIntrospect }
func (s *Server) JWKSURL() string       { return s.base + PathJWKS }

// OAuthURIs are the endpoints for the CapabilityStatement's
// rest.security oauth-uris extension (sub-extensions "token" and
// "introspect"); JWKS and Configuration are there for completeness.
type OAuthURIs struct {
	Token         string
	Introspect    string
	JWKS          string
	Configuration string
}

// OAuthURIs returns the absolute endpoint URLs.
func (s *Server) OAuthURIs() OAuthURIs {
	return OAuthURIs{Token: s.TokenURL(), Introspect: s.IntrospectURL(), JWKS: s.JWKSURL(), Configuration: s.base + PathConfiguration}
}

type smartConfiguration struct {
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	TokenEndpoint            string   `json:"token_endpoint"`
	IntrospectionEndpoint    string   `json:"introspection_endpoint"`
	GrantTypes               []string `json:"grant_types_supported"`
	TokenAuthMethods         []string `json:"token_endpoint_auth_methods_supported"`
	TokenAuthSigningAlgs     []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionAuthMethods []string `json:"introspection_endpoint_auth_methods_supported"`
	IntrospectionAuthAlgs    []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	ScopesSupported          []string `json:"scopes_supported"`
	ResponseTypesSupported   []string `json:"response_types_supported"`
	Capabilities             []string `json:"capabilities"`
}

var signingAlgs = []string{"RS384", "ES384", "RS256", "ES256"}

// Configuration renders GET [base]/.well-known/smart-configuration for
// the FHIR base URL baseURL ("" = Options.BaseURL; give the same URL, since
// the token endpoint checks assertions against Options.BaseURL+PathToken).
// There is no authorization endpoint (backend services only), so neither
// authorization_endpoint nor code_challenge_methods_supported is given.
// The issuer is the iss of gpgate's access tokens (Options.Issuer).
func (s *Server) Configuration(baseURL string) []byte {
	base := strings.TrimRight(baseURL, "/")
	if base == "" {
		base = s.base
	}
	c := smartConfiguration{
		Issuer:                   s.issuer,
		JWKSURI:                  base + PathJWKS,
		TokenEndpoint:            base + PathToken,
		IntrospectionEndpoint:    base + PathIntrospect,
		GrantTypes:               []string{"client_credentials"},
		TokenAuthMethods:         []string{"private_key_jwt"},
		TokenAuthSigningAlgs:     signingAlgs,
		IntrospectionAuthMethods: []string{"private_key_jwt"},
		IntrospectionAuthAlgs:    signingAlgs,
		ScopesSupported:          s.scopesSup,
		ResponseTypesSupported:   []string{"token"},
		Capabilities: []string{"client-confidential-asymmetric", "permission-v1", "permission-v2",
			"permission-patient", "permission-user"},
	}
	b, _ := json.Marshal(c) // strings only
	return b
}

// ConfigurationHandler serves Configuration(Options.BaseURL) on GET.
func (s *Server) ConfigurationHandler() http.Handler {
	body := s.Configuration("")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	})
}

// JWKSHandler serves gpgate's public signing keys (the active key and the
// retired ones whose tokens may still be live) on GET.
func (s *Server) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = w.Write(s.ring.Load().jwks)
	})
}
