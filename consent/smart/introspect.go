package smart

import (
	"net/http"
)

// introspection is the RFC 7662 answer for an active token.
type introspection struct {
	Active           bool   `json:"active"`
	Scope            string `json:"scope,omitempty"`
	ClientID         string `json:"client_id,omitempty"`
	TokenType        string `json:"token_type,omitempty"`
	Exp              int64  `json:"exp,omitempty"`
	Iat              int64  `json:"iat,omitempty"`
	Sub              string `json:"sub,omitempty"`
	Aud              string `json:"aud,omitempty"`
	Iss              string `json:"iss,omitempty"`
	JTI              string `json:"jti,omitempty"`
	Patient          string `json:"patient,omitempty"`
	ConsumerODS      string `json:"consumer_ods,omitempty"`
	PurposeOfUse     string `json:"purpose_of_use,omitempty"`
	SubjectID        string `json:"subject_id,omitempty"`
	SubjectName      string `json:"subject_name,omitempty"`
	SubjectRole      string `json:"subject_role,omitempty"`
	OrganizationID   string `json:"organization_id,omitempty"`
	ConsentReference string `json:"consent_reference,omitempty"`
	BreakGlass       bool   `json:"break_glass,omitempty"`
}

// IntrospectHandler serves POST [base]/auth/introspect (RFC 7662). The
// caller authenticates as a registered, enabled client with the same
// private_key_jwt assertion as at the token endpoint (aud = the token
// URL). Any such client may introspect any gpgate token: the claims are
// no more than the bearer of the token can already read. An invalid,
// expired or foreign token answers {"active":false}.
func (s *Server) IntrospectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form, oerr := s.readForm(w, r)
		if oerr == nil {
			_, oerr = s.authenticate(r.Context(), form)
		}
		if oerr == nil && form.Get("token") == "" {
			oerr = invalidRequest("token is required")
		}
		if oerr != nil {
			if oerr.Status >= 500 {
				s.log.Error("smart: introspection failed", "err", oerr)
			}
			writeOAuthError(w, oerr)
			return
		}
		at, err := s.verifier.VerifyToken(r.Context(), form.Get("token"))
		if err != nil {
			writeJSON(w, http.StatusOK, introspection{Active: false})
			return
		}
		p := at.Principal
		out := introspection{Active: true, Scope: FormatScopes(at.Scopes), ClientID: p.ClientID, TokenType: "Bearer",
			Exp: at.Expires.Unix(), Iat: at.IssuedAt.Unix(), Sub: at.Subject, Aud: at.Audience, Iss: at.Issuer,
			JTI: p.TokenID, Patient: p.PatientID, ConsumerODS: p.ConsumerODS, PurposeOfUse: p.PurposeOfUse,
			SubjectID: p.Practitioner, SubjectName: p.Name, SubjectRole: p.Role, ConsentReference: p.ConsentRef,
			BreakGlass: p.BreakGlass}
		if at.B2B != nil {
			out.OrganizationID = at.B2B.OrganizationID
		}
		if at.IssuedAt.IsZero() {
			out.Iat = 0
		}
		writeJSON(w, http.StatusOK, out)
	})
}
