package smart

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Access-token claims beyond the registered ones.
const (
	claimClientID   = "client_id"
	claimScope      = "scope"
	claimODS        = "consumer_ods"
	claimPatient    = "patient"
	claimPurpose    = "purpose_of_use"
	claimSubjectID  = "subject_id"
	claimSubjName   = "subject_name"
	claimSubjRole   = "subject_role"
	claimOrgID      = "organization_id"
	claimConsentRef = "consent_reference"
	claimBreakGlass = "break_glass"
	claimClientKID  = "client_kid" // the kid of the client key whose assertion got the token
	tokenType       = "at+jwt"     // RFC 9068 typ of gpgate's access tokens
	maxBearerLen    = 8 << 10
)

// AccessToken is a verified access token. It is shared by the cache: treat
// it and its Principal as read-only.
type AccessToken struct {
	Principal *fhir.Principal
	Scopes    []Scope
	Issuer    string
	Audience  string
	Subject   string
	IssuedAt  time.Time
	Expires   time.Time
	B2B       *B2B // the bound hl7-b2b claims, nil when none
	// ClientKID is the kid of the client key whose assertion got the
	// token ("" in tokens from before it was recorded).
	ClientKID string
}

// tokenCheck re-checks a verified (or cached) token against state that may
// change while it lives: its client disabled, the client's key rotated.
type tokenCheck func(ctx context.Context, at *AccessToken) error

// VerifierOptions configure a standalone Verifier (one not made by
// Server.Verifier, e.g. on a resource-server node).
type VerifierOptions struct {
	Keys      KeyStore         // where gpgate's signing keys are; required by NewVerifier
	Issuer    string           // expected iss; default Audience
	Audience  string           // expected aud: the FHIR base URL; required
	Now       func() time.Time // default time.Now
	Logger    *slog.Logger
	ClockSkew time.Duration // default 30 s
	CacheSize int           // verified-token cache bound; default 10 000
}

type ringFunc func(ctx context.Context, kid string) *keyRing

// Verifier verifies gpgate access tokens for the resource server. Verified
// tokens are cached by SHA-256 of the token until they expire: a warm
// verification is a hash and a map lookup, a cold one one signature
// verification.
type Verifier struct {
	iss, aud string
	now      func() time.Time
	log      *slog.Logger
	skew     time.Duration
	ring     ringFunc
	max      int

	mu    sync.RWMutex
	cache map[[32]byte]*AccessToken

	check tokenCheck // nil: none (a standalone Verifier)
}

func newVerifier(o VerifierOptions, ring ringFunc) *Verifier {
	v := &Verifier{iss: o.Issuer, aud: strings.TrimRight(o.Audience, "/"), now: o.Now, log: o.Logger,
		skew: o.ClockSkew, ring: ring, max: o.CacheSize}
	if v.iss == "" {
		v.iss = v.aud
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	if v.skew <= 0 {
		v.skew = 30 * time.Second
	}
	if v.max <= 0 {
		v.max = 10_000
	}
	v.cache = make(map[[32]byte]*AccessToken)
	return v
}

// NewVerifier makes a Verifier that reads gpgate's public keys from
// o.Keys, re-reading them (at most every 10 s) when a token names a kid it
// does not know, so a rotation on another node is picked up.
func NewVerifier(ctx context.Context, o VerifierOptions) (*Verifier, error) {
	if o.Keys == nil || o.Audience == "" {
		return nil, errors.New("smart: VerifierOptions.Keys and Audience are required")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	sr := &storeRing{ks: o.Keys, now: now}
	if err := sr.load(ctx); err != nil {
		return nil, err
	}
	return newVerifier(o, sr.get), nil
}

type storeRing struct {
	ks   KeyStore
	now  func() time.Time
	mu   sync.Mutex
	last time.Time
	ring atomic.Pointer[keyRing]
}

const storeRetain = MaxTokenTTL + 3*time.Minute

func (s *storeRing) load(ctx context.Context) error {
	r, err := loadRing(ctx, s.ks, "", s.now(), storeRetain, false)
	if err != nil {
		return err
	}
	s.ring.Store(r)
	s.last = s.now()
	return nil
}

func (s *storeRing) get(ctx context.Context, kid string) *keyRing {
	r := s.ring.Load()
	if _, ok := r.pub[kid]; ok {
		return r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r2 := s.ring.Load(); r2 != r {
		return r2
	}
	if s.now().Sub(s.last) < 10*time.Second {
		return r
	}
	if err := s.load(ctx); err != nil {
		s.last = s.now() // do not hammer a failing store
		return r
	}
	return s.ring.Load()
}

// BearerToken extracts the access token from the Authorization header:
// ErrNoToken when there is none, an invalid_request *BearerError when the
// header is not "Bearer <token>".
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken // another scheme: challenge with Bearer, no error
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", &BearerError{Code: ErrInvalidRequest, Description: "malformed Authorization header"}
	}
	return tok, nil
}

// Verify verifies bearer and returns its principal (a copy the caller may
// change). Errors are *BearerError: ErrNoToken for an empty token, else
// invalid_token with a caller-safe description.
func (v *Verifier) Verify(ctx context.Context, bearer string) (*fhir.Principal, error) {
	at, err := v.VerifyToken(ctx, bearer)
	if err != nil {
		return nil, err
	}
	p := *at.Principal
	return &p, nil
}

func invalidToken(desc string) *BearerError {
	return &BearerError{Code: ErrInvalidToken, Description: desc}
}

// VerifyToken is Verify returning the whole verified token (shared; do not
// modify), with its parsed scopes for Permits.
func (v *Verifier) VerifyToken(ctx context.Context, bearer string) (*AccessToken, error) {
	if bearer == "" {
		return nil, ErrNoToken
	}
	if len(bearer) > maxBearerLen {
		return nil, invalidToken("token too large")
	}
	sum := sha256.Sum256([]byte(bearer))
	now := v.now()
	v.mu.RLock()
	at, ok := v.cache[sum]
	v.mu.RUnlock()
	if ok {
		if now.Before(at.Expires.Add(v.skew)) {
			if v.check != nil {
				if berr := v.check(ctx, at); berr != nil {
					return nil, berr
				}
			}
			return at, nil
		}
		v.mu.Lock()
		delete(v.cache, sum)
		v.mu.Unlock()
		return nil, invalidToken("token has expired")
	}
	at, berr := v.verify(ctx, bearer, now)
	if berr != nil {
		return nil, berr
	}
	v.put(sum, at, now)
	if v.check != nil {
		if berr := v.check(ctx, at); berr != nil {
			return nil, berr
		}
	}
	return at, nil
}

func (v *Verifier) put(sum [32]byte, at *AccessToken, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= v.max {
		for k, e := range v.cache {
			if !now.Before(e.Expires.Add(v.skew)) {
				delete(v.cache, k)
			}
		}
		// still full: drop an arbitrary tenth (map order is random)
		for k := range v.cache {
			if len(v.cache) < v.max-v.max/10 {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[sum] = at
}

var (
	errUnknownKID = errors.New("unknown signing key")
	errWrongTyp   = errors.New("not an access token")
	errWrongAlg   = errors.New("algorithm does not match the key")
)

type ringKeyProvider struct {
	v *Verifier
}

func (kp ringKeyProvider) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	if h.Type() != tokenType {
		return errWrongTyp
	}
	kid := h.KeyID()
	k, ok := kp.v.ring(ctx, kid).pub[kid]
	if !ok {
		return errUnknownKID
	}
	if h.Algorithm() != k.alg {
		return errWrongAlg
	}
	sink.Key(k.alg, k.key)
	return nil
}

func (v *Verifier) verify(ctx context.Context, bearer string, now time.Time) (*AccessToken, *BearerError) {
	if strings.Count(bearer, ".") != 2 {
		return nil, invalidToken("token is not a signed JWT")
	}
	tok, err := jwt.ParseString(bearer,
		jwt.WithKeyProvider(ringKeyProvider{v}),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(v.skew),
		jwt.WithIssuer(v.iss),
		jwt.WithAudience(v.aud),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
	)
	if err != nil {
		return nil, invalidToken(tokenErrDesc(err))
	}
	at := &AccessToken{Issuer: tok.Issuer(), Audience: v.aud, Subject: tok.Subject(),
		IssuedAt: tok.IssuedAt(), Expires: tok.Expiration()}
	str := func(name string) string {
		x, _ := tok.Get(name)
		s, _ := x.(string)
		return s
	}
	at.ClientKID = str(claimClientKID)
	p := &fhir.Principal{
		ClientID:     str(claimClientID),
		ConsumerODS:  str(claimODS),
		Practitioner: str(claimSubjectID),
		Role:         str(claimSubjRole),
		Name:         str(claimSubjName),
		PurposeOfUse: str(claimPurpose),
		PatientID:    str(claimPatient),
		ConsentRef:   str(claimConsentRef),
		TokenID:      tok.JwtID(),
	}
	if x, ok := tok.Get(claimBreakGlass); ok {
		p.BreakGlass, _ = x.(bool)
	}
	if p.ClientID == "" || p.ClientID != at.Subject {
		return nil, invalidToken("token does not name its client")
	}
	scopes, err := ParseScopes(str(claimScope))
	if err != nil || len(scopes) == 0 {
		return nil, invalidToken("token scope is invalid")
	}
	at.Scopes = scopes
	p.Scopes = make([]string, len(scopes))
	for i, s := range scopes {
		p.Scopes[i] = s.String()
	}
	if p.Practitioner != "" || p.PurposeOfUse != "" || p.ConsentRef != "" || str(claimOrgID) != "" {
		at.B2B = &B2B{OrganizationID: str(claimOrgID), SubjectID: p.Practitioner, SubjectName: p.Name,
			SubjectRole: p.Role}
		if p.PurposeOfUse != "" {
			at.B2B.PurposeOfUse = StringList{p.PurposeOfUse}
		}
		if p.ConsentRef != "" {
			at.B2B.ConsentReference = StringList{p.ConsentRef}
		}
	}
	at.Principal = p
	return at, nil
}

func tokenErrDesc(err error) string {
	switch {
	case errors.Is(err, errUnknownKID):
		return "token is signed by an unknown key"
	case errors.Is(err, errWrongTyp):
		return "token is not a gpgate access token"
	case errors.Is(err, errWrongAlg):
		return "token algorithm does not match its key"
	case errors.Is(err, jwt.ErrTokenExpired()):
		return "token has expired"
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return "token is not yet valid"
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return "token has the wrong issuer"
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return "token has the wrong audience"
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return "token lacks a required claim"
	case jws.IsVerificationError(err):
		return "token signature is invalid"
	}
	return "token is malformed or its signature is invalid"
}

// Middleware verifies the bearer token of each request: on success the
// principal is put in the request context (fhir.WithPrincipal); on failure
// it answers the RFC 6750 status with WWW-Authenticate and the error as
// writeErr renders it (nil: an UNAUTHORISED OperationOutcome).
func (v *Verifier) Middleware(realm string, writeErr func(w http.ResponseWriter, r *http.Request, e *BearerError), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := BearerToken(r)
		var p *fhir.Principal
		if err == nil {
			p, err = v.Verify(r.Context(), tok)
		}
		if err != nil {
			be, ok := err.(*BearerError)
			if !ok {
				be = invalidToken("token could not be verified")
			}
			w.Header().Set("WWW-Authenticate", be.WWWAuthenticate(realm))
			if writeErr != nil {
				writeErr(w, r, be)
				return
			}
			fe := be.FHIRError()
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(fe.Status())
			_, _ = w.Write(fe.OperationOutcome())
			return
		}
		next.ServeHTTP(w, r.WithContext(fhir.WithPrincipal(r.Context(), p)))
	})
}
