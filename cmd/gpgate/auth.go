package main

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
)

// bearerAuth adapts the SMART verifier to rest.Authenticator. A refused
// authentication (no token, a forged, expired or revoked one) is counted
// and audited in aggregate (refusals: one entry per address and reason per
// window), so a caller cannot flood the audit log with garbage tokens.
type bearerAuth struct {
	v        *smart.Verifier
	realm    string
	refusals *access.Refusals // nil: not audited
	observe  func(reason string)
}

// bearerReason is a refusal's reason, from a small fixed set.
func bearerReason(be *smart.BearerError) string {
	switch {
	case be.Code == "":
		return "no-token"
	case be.Code == smart.ErrInvalidRequest:
		return "malformed-authorization"
	case strings.Contains(be.Description, "expired"):
		return "expired-token"
	case strings.Contains(be.Description, "disabled"), strings.Contains(be.Description, "no longer registered"):
		return "client-disabled"
	case strings.Contains(be.Description, "rotated"):
		return "client-key-rotated"
	}
	return "invalid-token"
}

// authError carries the RFC 6750 challenge alongside the coded error the
// renderer turns into an OperationOutcome.
type authError struct {
	fe        *fhir.Error
	challenge string
}

func (e *authError) Error() string     { return e.fe.Error() }
func (e *authError) Unwrap() error     { return e.fe }
func (e *authError) Challenge() string { return e.challenge }

func (a bearerAuth) Authenticate(r *http.Request) (*fhir.Principal, error) {
	tok, err := smart.BearerToken(r)
	if err == nil {
		var at *smart.AccessToken
		if at, err = a.v.VerifyToken(r.Context(), tok); err == nil {
			p := *at.Principal
			return &p, nil
		}
	}
	var be *smart.BearerError
	if errors.As(err, &be) {
		reason := bearerReason(be)
		if a.observe != nil {
			a.observe(reason)
		}
		if a.refusals != nil {
			a.refusals.Refused(access.RefusedBearer, "", fhir.ClientAddrFrom(r.Context()), reason)
		}
		return nil, &authError{fe: be.FHIRError(), challenge: be.WWWAuthenticate(a.realm)}
	}
	return nil, fhir.Internal(err)
}

// narrower issues patient-context tokens only against a live consent to
// view, through the record-access core, with scopes cut down to what the
// agreements share now (fhir.AreaScopes of the grant).
type narrower struct{ core *access.Core }

func (n narrower) Narrow(ctx context.Context, client *smart.Client, b2b *smart.B2B, requested []smart.Scope) ([]smart.Scope, string, error) {
	if b2b == nil || len(b2b.ConsentReference) == 0 {
		return nil, "", &smart.OAuthError{Status: 400, Code: "invalid_grant", Description: "a patient-context token needs consent_reference"}
	}
	p := &fhir.Principal{ClientID: client.ID, ConsumerODS: client.ODS, Practitioner: b2b.SubjectID}
	g, err := n.core.PatientContext(ctx, p, b2b.ConsentReference[0])
	if err != nil {
		return nil, "", err
	}
	areas := g.Areas
	if g.Summary != 0 {
		areas |= fhir.AreaSummary
	}
	allowed, err := smart.ParseScopes(strings.Join(fhir.AreaScopes(areas), " "))
	if err != nil {
		return nil, "", err
	}
	var granted []smart.Scope
	for _, a := range allowed {
		for _, r := range requested {
			switch {
			case r.Covers(a):
				granted = appendScope(granted, a)
			case a.Covers(r):
				granted = appendScope(granted, r)
			}
		}
	}
	if len(granted) == 0 {
		return nil, "", &smart.OAuthError{Status: 400, Code: "invalid_scope", Description: "none of the requested scopes is shared by the agreement"}
	}
	return granted, g.PatientID, nil
}

func appendScope(l []smart.Scope, s smart.Scope) []smart.Scope {
	for _, x := range l {
		if x.String() == s.String() {
			return l
		}
	}
	return append(l, s)
}
