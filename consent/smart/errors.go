package smart

import (
	"encoding/json"
	"github.com/gpgate/gpgate/fhir"
	"net/http"
	"strings"
)

// OAuth 2.0 (RFC 6749 section 5.2) and RFC 6750 error codes.
const (
	ErrInvalidRequest         = "invalid_request"
	ErrInvalidClient          = "invalid_client"
	ErrInvalidGrant           = "invalid_grant"
	ErrInvalidScope           = "invalid_scope"
	ErrUnauthorizedClient     = "unauthorized_client"
	ErrUnsupportedGrantType   = "unsupported_grant_type"
	ErrServerError            = "server_error"
	ErrTemporarilyUnavailable = "temporarily_unavailable"
	ErrInvalidToken           = "invalid_token"
	ErrInsufficientScope      = "insufficient_scope"
)

// OAuthError is an RFC 6749 error response: the token and introspection
// endpoints answer it as JSON {error, error_description} with Status and
// Cache-Control: no-store. A Narrower may return one to choose the error;
// Description is shown to the caller, Cause only logged.
type OAuthError struct {
	Status      int
	Code        string
	Description string
	Cause       error

	// for Events: why, in a word from a small fixed set, and which
	// registered client (never an unregistered name a caller claimed)
	reason        string
	client        string
	authenticated bool
}

// refused tags a refusal with its reason for Events.
func refused(reason string, e *OAuthError) *OAuthError {
	e.reason = reason
	return e
}

// refusedBy tags a refusal of a registered client.
func refusedBy(c *Client, reason string, e *OAuthError) *OAuthError {
	e.reason, e.client = reason, c.ID
	return e
}

func (e *OAuthError) Error() string {
	s := e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *OAuthError) Unwrap() error { return e.Cause }

func oauthErr(status int, code, desc string) *OAuthError {
	return &OAuthError{Status: status, Code: code, Description: desc}
}

func invalidClient(desc string, cause error) *OAuthError {
	return &OAuthError{Status: http.StatusUnauthorized, Code: ErrInvalidClient, Description: desc, Cause: cause}
}

func invalidRequest(desc string) *OAuthError {
	return oauthErr(http.StatusBadRequest, ErrInvalidRequest, desc)
}

func writeNoStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	writeNoStore(w)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeOAuthError(w http.ResponseWriter, e *OAuthError) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	body := struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description}
	if e.Code == ErrServerError {
		body.Description = "" // never leak internal detail
	}
	writeJSON(w, status, body)
}

// BearerError is a resource-server authentication failure (RFC 6750). Code
// is "" when the request carried no token at all (the challenge then has no
// error attribute), else invalid_token, invalid_request or
// insufficient_scope. Description is safe to show the caller.
type BearerError struct {
	Code        string
	Description string
}

// ErrNoToken is the error for a request without an access token.
var ErrNoToken = &BearerError{}

func (e *BearerError) Error() string {
	if e.Code == "" {
		return "no bearer token"
	}
	return e.Code + ": " + e.Description
}

// Status is the HTTP status RFC 6750 gives the error.
func (e *BearerError) Status() int {
	switch e.Code {
	case ErrInvalidRequest:
		return http.StatusBadRequest
	case ErrInsufficientScope:
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// WWWAuthenticate renders the WWW-Authenticate header value:
// Bearer realm="..." (no error for a missing token), or
// Bearer realm="...", error="invalid_token", error_description="...".
func (e *BearerError) WWWAuthenticate(realm string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	if realm != "" {
		b.WriteString(` realm="` + quotable(realm) + `"`)
		sep = ", "
	}
	if e.Code != "" {
		b.WriteString(sep + `error="` + e.Code + `"`)
		if e.Description != "" {
			b.WriteString(`, error_description="` + quotable(e.Description) + `"`)
		}
	}
	return b.String()
}

// quotable keeps only the characters RFC 6750 allows in a quoted value
// (%x20-21 / %x23-5B / %x5D-7E).
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}

// FHIRError maps the error to gpgate's coded error for an OperationOutcome
// body: UNAUTHORISED (401) for a missing or invalid token, BAD_REQUEST
// (400) for a malformed request, ACCESS_DENIED (403) for insufficient
// scope. Set the WWW-Authenticate header from WWWAuthenticate as well.
func (e *BearerError) FHIRError() *fhir.Error {
	desc := e.Description
	if desc == "" {
		desc = "an access token is required"
	}
	switch e.Code {
	case ErrInvalidRequest:
		return fhir.Errorf(fhir.CodeBadRequest, "%s", desc)
	case ErrInsufficientScope:
		return fhir.Errorf(fhir.CodeAccessDenied, "%s", desc)
	}
	return fhir.Errorf(fhir.CodeUnauthorized, "%s", desc)
}
