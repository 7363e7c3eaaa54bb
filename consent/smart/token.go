package smart

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Form values of the token request.
const (
	GrantClientCredentials = "client_credentials"
	AssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxAssertionLen        = 8 << 10
	maxB2BString           = 256
	maxB2BList             = 8
)

// B2B is the UDAP hl7-b2b extension of a client assertion
// (extensions["hl7-b2b"]): who is asking on whose behalf and why.
type B2B struct {
	Version          string     `json:"version,omitempty"`
	OrganizationID   string     `json:"organization_id,omitempty"`
	OrganizationName string     `json:"organization_name,omitempty"`
	PurposeOfUse     StringList `json:"purpose_of_use,omitempty"`
	SubjectID        string     `json:"subject_id,omitempty"`   // clinician
	SubjectName      string     `json:"subject_name,omitempty"` // clinician's name
	SubjectRole      string     `json:"subject_role,omitempty"`
	ConsentPolicy    StringList `json:"consent_policy,omitempty"`
	ConsentReference StringList `json:"consent_reference,omitempty"`
}

// StringList is a JSON array of strings that also accepts a single string.
type StringList []string

// UnmarshalJSON accepts "x" or ["x", ...].
func (l *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*l = many
	return nil
}

// breakGlass reports a break-the-glass purpose of use (HL7 PurposeOfUse BTG).
func (b *B2B) breakGlass() bool {
	for _, p := range b.PurposeOfUse {
		if p == "BTG" || strings.HasSuffix(p, "|BTG") || strings.HasSuffix(p, "#BTG") {
			return true
		}
	}
	return false
}

func (b *B2B) validate(c *Client) *OAuthError {
	bad := func(d string) *OAuthError { return oauthErr(http.StatusBadRequest, ErrInvalidGrant, d) }
	for _, s := range []string{b.Version, b.OrganizationID, b.OrganizationName, b.SubjectID, b.SubjectName, b.SubjectRole} {
		if len(s) > maxB2BString || hasCtl(s) {
			return bad("hl7-b2b value too long or with control characters")
		}
	}
	for _, l := range []StringList{b.PurposeOfUse, b.ConsentPolicy, b.ConsentReference} {
		if len(l) > maxB2BList {
			return bad("hl7-b2b list too long")
		}
		for _, s := range l {
			if s == "" || len(s) > maxB2BString || hasCtl(s) {
				return bad("hl7-b2b list value empty, too long or with control characters")
			}
		}
	}
	if len(b.ConsentReference) > 1 {
		return bad("at most one consent_reference")
	}
	if id := b.OrganizationID; id != "" && id != c.ODS && id != odsSystem+"|"+c.ODS {
		return bad("organization_id is not the client's organisation")
	}
	return nil
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

const odsSystem = "https://fhir.nhs.uk/Id/ods-organization-code"

// tokenResponse is the RFC 6749 5.1 answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Patient     string `json:"patient,omitempty"`
}

// TokenHandler serves POST [base]/auth/token: client_credentials with a
// private_key_jwt client assertion (SMART Backend Services). Errors are
// RFC 6749 JSON with Cache-Control: no-store.
func (s *Server) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, oerr := s.token(r.Context(), w, r)
		if oerr != nil {
			s.refusal(r.Context(), oerr)
			if oerr.Status >= 500 {
				s.log.Error("smart: token request failed", "err", oerr)
			} else {
				s.log.Info("smart: token request refused", "error", oerr.Code, "description", oerr.Description)
			}
			writeOAuthError(w, oerr)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// readForm reads a POSTed urlencoded form within the size limit; repeated
// parameters are refused (RFC 6749 3.2).
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, *OAuthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, oauthErr(http.StatusMethodNotAllowed, ErrInvalidRequest, "use POST")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	if r.ContentLength > s.maxForm {
		return nil, oauthErr(http.StatusRequestEntityTooLarge, ErrInvalidRequest, "request body too large")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxForm))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauthErr(http.StatusRequestEntityTooLarge, ErrInvalidRequest, "request body too large")
		}
		return nil, invalidRequest("could not read the request body")
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, invalidRequest("malformed form body")
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, invalidRequest("parameter " + trunc(k) + " is repeated")
		}
	}
	return form, nil
}

// assertion is a verified client assertion.
type assertion struct {
	client *Client
	kid    string // the client key that signed it
	jti    string
	exp    time.Time
	b2b    *B2B
}

// authenticate verifies the private_key_jwt client assertion in form as
// SMART Backend Services requires. Every failure is invalid_client (401).
func (s *Server) authenticate(ctx context.Context, form url.Values) (*assertion, *OAuthError) {
	cat, a := form.Get("client_assertion_type"), form.Get("client_assertion")
	if cat == "" && a == "" {
		return nil, invalidClient("client authentication (private_key_jwt) is required", nil)
	}
	if cat != AssertionTypeJWTBearer {
		return nil, invalidClient("client_assertion_type must be "+AssertionTypeJWTBearer, nil)
	}
	if a == "" {
		return nil, invalidClient("client_assertion is missing", nil)
	}
	if len(a) > maxAssertionLen {
		return nil, invalidRequest("client_assertion too large")
	}
	if strings.Count(a, ".") != 2 {
		return nil, invalidClient("client_assertion is not a compact signed JWT", nil)
	}
	msg, err := jws.ParseString(a)
	if err != nil || len(msg.Signatures()) != 1 {
		return nil, invalidClient("client_assertion does not parse", err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if len(h.Critical()) > 0 {
		// RFC 7515 4.1.11: a recipient that does not understand a header
		// parameter listed in crit must reject the JWS; gpgate understands
		// none.
		return nil, refused("bad-assertion", invalidClient("client_assertion names crit header parameters gpgate does not understand", nil))
	}
	alg := h.Algorithm()
	if !assertionAlgs[alg] {
		return nil, invalidClient("client_assertion alg "+trunc(alg.String())+" is not accepted (RS384, ES384, RS256, ES256)", nil)
	}
	kid := h.KeyID()
	if kid == "" {
		return nil, invalidClient("client_assertion header has no kid", nil)
	}
	var pre struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(msg.Payload(), &pre); err != nil || pre.Iss == "" {
		return nil, invalidClient("client_assertion has no iss", err)
	}
	if cid := form.Get("client_id"); cid != "" && cid != pre.Iss {
		return nil, invalidClient("client_id does not match the assertion's iss", nil)
	}
	c, err := s.clients.GetClient(ctx, pre.Iss)
	if err != nil {
		if errors.Is(err, ErrClientNotFound) {
			return nil, refused("unknown-client", invalidClient("unknown client", nil))
		}
		return nil, &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError, Cause: err}
	}
	if !c.Enabled {
		return nil, refusedBy(c, "client-disabled", invalidClient("client is disabled", nil))
	}
	key, err := s.clientKey(ctx, c, kid)
	if err != nil {
		return nil, refusedBy(c, "unknown-key", invalidClient("no key "+trunc(kid)+" registered for the client", err))
	}
	if ka := key.Algorithm().String(); ka != "" && ka != alg.String() {
		return nil, refusedBy(c, "bad-assertion", invalidClient("client_assertion alg does not match the key", nil))
	}
	now := s.now()
	tok, err := jwt.ParseString(a,
		jwt.WithKey(alg, key),
		jwt.WithContext(ctx),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(s.skew),
		jwt.WithIssuer(c.ID),
		jwt.WithSubject(c.ID),
		jwt.WithAudience(s.TokenURL()),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
	)
	if err != nil {
		return nil, refusedBy(c, "bad-assertion", invalidClient(assertionErrDesc(err), err))
	}
	exp := tok.Expiration()
	if exp.After(now.Add(maxAssertionExp + s.skew)) {
		return nil, refusedBy(c, "bad-assertion", invalidClient("client_assertion exp is more than 5 minutes ahead", nil))
	}
	jti := tok.JwtID()
	if len(jti) > 256 {
		return nil, refusedBy(c, "bad-assertion", invalidClient("client_assertion jti too long", nil))
	}
	as := &assertion{client: c, kid: kid, jti: jti, exp: exp}
	if x, ok := tok.Get("extensions"); ok {
		b2b, oerr := decodeB2B(x)
		if oerr != nil {
			return nil, oerr
		}
		as.b2b = b2b
	}
	fresh, err := s.replay.Use(ctx, c.ID, jti, exp.Add(s.skew))
	if err != nil {
		return nil, &OAuthError{Status: http.StatusServiceUnavailable, Code: ErrTemporarilyUnavailable,
			Description: "try again later", Cause: err}
	}
	if !fresh {
		return nil, refusedBy(c, "replayed-assertion", invalidClient("client_assertion jti has been used before", nil))
	}
	return as, nil
}

func decodeB2B(x any) (*B2B, *OAuthError) {
	bad := oauthErr(http.StatusBadRequest, ErrInvalidGrant, "extensions.hl7-b2b is malformed")
	b, err := json.Marshal(x)
	if err != nil {
		return nil, bad
	}
	var ext map[string]json.RawMessage
	if err := json.Unmarshal(b, &ext); err != nil {
		return nil, bad
	}
	raw, ok := ext["hl7-b2b"]
	if !ok {
		return nil, nil
	}
	b2b := new(B2B)
	if err := json.Unmarshal(raw, b2b); err != nil {
		return nil, bad
	}
	return b2b, nil
}

func assertionErrDesc(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return "client_assertion has expired"
	case errors.Is(err, jwt.ErrTokenNotYetValid()):
		return "client_assertion is not yet valid (nbf)"
	case errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return "client_assertion iat is in the future"
	case errors.Is(err, jwt.ErrInvalidIssuer()):
		return "client_assertion iss is not the client"
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return "client_assertion aud is not the token endpoint"
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return "client_assertion lacks exp or jti"
	case jws.IsVerificationError(err):
		return "client_assertion signature does not verify"
	}
	if strings.Contains(err.Error(), `"sub"`) {
		return "client_assertion sub is not the client"
	}
	return "client_assertion is invalid"
}

// clientKey finds the client's public key kid, inline or from its JWKS URL.
func (s *Server) clientKey(ctx context.Context, c *Client, kid string) (jwk.Key, error) {
	if c.JWKSURL != "" {
		return s.jwks.key(ctx, c.JWKSURL, kid)
	}
	set, err := ParseClientJWKS(c.JWKS)
	if err != nil {
		return nil, err
	}
	k, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return k, nil
}

func (s *Server) token(ctx context.Context, w http.ResponseWriter, r *http.Request) (*tokenResponse, *OAuthError) {
	form, oerr := s.readForm(w, r)
	if oerr != nil {
		return nil, oerr
	}
	switch gt := form.Get("grant_type"); gt {
	case GrantClientCredentials:
	case "":
		return nil, invalidRequest("grant_type is required")
	default:
		return nil, oauthErr(http.StatusBadRequest, ErrUnsupportedGrantType, "grant_type must be client_credentials")
	}
	as, oerr := s.authenticate(ctx, form)
	if oerr != nil {
		return nil, oerr
	}
	resp, p, oerr := s.issue(ctx, as, form.Get("scope"))
	if err := s.audit(ctx, as, p, oerr); err != nil && oerr == nil {
		// fail closed: no durable audit of the grant, no token
		return nil, &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError, Cause: err}
	}
	if oerr != nil {
		oerr.client, oerr.authenticated = as.client.ID, true
		return nil, oerr
	}
	if s.events != nil {
		s.events.TokenIssued(ctx, as.client.ID)
	}
	return resp, nil
}

func (s *Server) audit(ctx context.Context, as *assertion, p *fhir.Principal, oerr *OAuthError) error {
	if s.auditor == nil {
		return nil
	}
	e := &fhir.AuditEntry{Time: s.now(), RequestID: fhir.RequestIDFrom(ctx), CorrelationID: fhir.CorrelationIDFrom(ctx),
		SourceAddress: fhir.ClientAddrFrom(ctx), Action: "token-issue",
		Interaction: "token", Outcome: fhir.OutcomeGranted, Rule: "smart-backend-services",
		ClientID: as.client.ID, ConsumerODS: as.client.ODS}
	if p != nil {
		e.Practitioner, e.Role, e.PurposeOfUse, e.TokenID = p.Practitioner, p.Role, p.PurposeOfUse, p.TokenID
		e.BreakGlass, e.PatientID = p.BreakGlass, p.PatientID
	}
	if oerr != nil {
		e.Outcome, e.Code = fhir.OutcomeDenied, fhir.CodeUnauthorized
		if oerr.Status >= 500 {
			e.Outcome, e.Code = fhir.OutcomeError, fhir.CodeInternal
		}
		e.Rule = oerr.Code
	}
	return s.auditor.Record(ctx, e)
}

// issue narrows the requested scope and signs the access token.
func (s *Server) issue(ctx context.Context, as *assertion, scope string) (resp *tokenResponse, p *fhir.Principal, oerr *OAuthError) {
	if strings.TrimSpace(scope) == "" {
		return nil, nil, invalidRequest("scope is required")
	}
	requested, err := ParseScopes(scope)
	if err != nil {
		return nil, nil, oauthErr(http.StatusBadRequest, ErrInvalidScope, err.Error())
	}
	allowed, err := ParseScopes(strings.Join(as.client.Scopes, " "))
	if err != nil {
		return nil, nil, &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError, Cause: err}
	}
	granted, err := Narrow(requested, allowed)
	if err != nil {
		return nil, nil, err.(*OAuthError)
	}
	c, b2b := as.client, as.b2b
	if b2b != nil {
		if oerr := b2b.validate(c); oerr != nil {
			return nil, nil, oerr
		}
	}
	if b2b != nil && len(b2b.ConsentReference) > 0 {
		ref, ok := ConsentID(b2b.ConsentReference[0])
		if !ok {
			return nil, nil, oauthErr(http.StatusBadRequest, ErrInvalidGrant, "consent_reference must name a Consent: id, Consent/id or an absolute URL ending Consent/id")
		}
		b2b.ConsentReference[0] = ref
	}
	var patient string
	if b2b != nil && len(b2b.ConsentReference) > 0 {
		if s.narrower == nil {
			return nil, nil, oauthErr(http.StatusBadRequest, ErrInvalidGrant, "consent_reference is not supported by this server")
		}
		g2, pid, err := s.narrower.Narrow(ctx, c, b2b, granted)
		if err != nil {
			return nil, nil, narrowerErr(err)
		}
		for _, g := range g2 {
			if !coveredBy(g, granted) {
				return nil, nil, &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError,
					Cause: errors.New("narrower widened the scope " + g.String())}
			}
		}
		if len(g2) == 0 {
			return nil, nil, oauthErr(http.StatusBadRequest, ErrInvalidScope, "no requested scope can be granted")
		}
		granted, patient = g2, pid
	}
	for _, g := range granted {
		if g.Context == ContextPatient && patient == "" {
			return nil, nil, oauthErr(http.StatusBadRequest, ErrInvalidScope,
				"patient/ scopes need a consent_reference to a recorded consent to view")
		}
	}
	if patient != "" && !fhir.ValidID(patient) {
		return nil, nil, &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError,
			Cause: errors.New("narrower returned an invalid patient id")}
	}

	now := s.now()
	p = &fhir.Principal{ClientID: c.ID, ConsumerODS: c.ODS, PatientID: patient, TokenID: newJTI()}
	if b2b != nil {
		p.Practitioner, p.Name, p.Role = b2b.SubjectID, b2b.SubjectName, b2b.SubjectRole
		if len(b2b.PurposeOfUse) > 0 {
			p.PurposeOfUse = b2b.PurposeOfUse[0]
		}
		if len(b2b.ConsentReference) > 0 {
			p.ConsentRef = b2b.ConsentReference[0]
		}
		p.BreakGlass = b2b.breakGlass()
	}
	scopeStr := FormatScopes(granted)
	signed, err := s.sign(p, b2b, as.kid, scopeStr, now)
	if err != nil {
		return nil, p, &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError, Cause: err}
	}
	s.log.Info("smart: token issued", "client", c.ID, "jti", p.TokenID, "scope", scopeStr,
		"patient_context", patient != "", "break_glass", p.BreakGlass)
	return &tokenResponse{AccessToken: string(signed), TokenType: "bearer", ExpiresIn: int(s.ttl / time.Second),
		Scope: scopeStr, Patient: patient}, p, nil
}

func coveredBy(g Scope, by []Scope) bool {
	for _, b := range by {
		if b.Covers(g) {
			return true
		}
	}
	return false
}

func narrowerErr(err error) *OAuthError {
	var oe *OAuthError
	if errors.As(err, &oe) {
		return oe
	}
	var fe *fhir.Error
	if errors.As(err, &fe) && fe.Status() < 500 {
		return &OAuthError{Status: http.StatusBadRequest, Code: ErrInvalidGrant, Description: fe.Diagnostics, Cause: err}
	}
	return &OAuthError{Status: http.StatusInternalServerError, Code: ErrServerError, Cause: err}
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// sign makes the access token JWT for p.
func (s *Server) sign(p *fhir.Principal, b2b *B2B, clientKID, scope string, now time.Time) ([]byte, error) {
	ring := s.ring.Load()
	if ring.active == nil {
		return nil, errors.New("no active signing key")
	}
	t := jwt.New()
	set := func(k string, v any) {
		if str, ok := v.(string); ok && str == "" {
			return
		}
		_ = t.Set(k, v)
	}
	set(jwt.IssuerKey, s.issuer)
	set(jwt.SubjectKey, p.ClientID)
	set(jwt.AudienceKey, s.base)
	set(jwt.IssuedAtKey, now)
	set(jwt.ExpirationKey, now.Add(s.ttl))
	set(jwt.JwtIDKey, p.TokenID)
	set(claimClientID, p.ClientID)
	set(claimScope, scope)
	set(claimODS, p.ConsumerODS)
	set(claimPatient, p.PatientID)
	set(claimPurpose, p.PurposeOfUse)
	set(claimSubjectID, p.Practitioner)
	set(claimSubjName, p.Name)
	set(claimSubjRole, p.Role)
	set(claimConsentRef, p.ConsentRef)
	set(claimClientKID, clientKID)
	if b2b != nil {
		set(claimOrgID, b2b.OrganizationID)
	}
	if p.BreakGlass {
		set(claimBreakGlass, true)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, ring.active.kid)
	_ = hdr.Set(jws.TypeKey, tokenType)
	return jwt.Sign(t, jwt.WithKey(ring.active.alg, ring.active.key, jws.WithProtectedHeaders(hdr)))
}

// ConsentID reads a consent_reference: a bare Consent id, "Consent/id", or
// an absolute URL ending "Consent/id" (a version suffix "/_history/n" is
// dropped). ok is false when what remains is not a FHIR logical id.
func ConsentID(ref string) (string, bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, "Consent/"); i >= 0 && (i == 0 || ref[i-1] == '/') {
		ref = ref[i+len("Consent/"):]
	}
	return ref, fhir.ValidID(ref)
}
