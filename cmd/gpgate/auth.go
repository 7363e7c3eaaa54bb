package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/rest"
)

// bearerAuth adapts the SMART verifier to rest.Authenticator.
type bearerAuth struct {
	v     *smart.Verifier
	realm string
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
		return nil, &authError{fe: be.FHIRError(), challenge: be.WWWAuthenticate(a.realm)}
	}
	return nil, fhir.Internal(err)
}

// areaGrant says which type (with which codings) stands for an area when the
// token's scopes are matched to dataset areas.
type areaGrant struct {
	area       fhir.Area
	typ        string
	categories []fhir.Coding
	codes      []fhir.Coding
}

var areaGrants = []areaGrant{
	{area: fhir.AreaDemographics, typ: "Patient"},
	{area: fhir.AreaProblems, typ: "Condition", categories: []fhir.Coding{{System: fhir.ConditionCategorySystem, Code: "problem-list-item"}}},
	{area: fhir.AreaDiagnoses, typ: "Condition", categories: []fhir.Coding{{System: fhir.ConditionCategorySystem, Code: "encounter-diagnosis"}}},
	{area: fhir.AreaMedication, typ: "MedicationStatement"},
	{area: fhir.AreaAllergies, typ: "AllergyIntolerance"},
	{area: fhir.AreaRisks, typ: "Flag"},
	{area: fhir.AreaProcedures, typ: "Procedure"},
	{area: fhir.AreaInvestigations, typ: "Observation", categories: []fhir.Coding{{System: fhir.ObservationCategorySystem, Code: "laboratory"}}},
	{area: fhir.AreaExamination, typ: "Observation", categories: []fhir.Coding{{System: fhir.ObservationCategorySystem, Code: "vital-signs"}}, codes: []fhir.Coding{{System: fhir.LOINC, Code: fhir.LOINCBloodPressurePanel}}},
	{area: fhir.AreaEvents, typ: "Encounter"},
}

// scopeAuthorizer turns the token's SMART scopes into the dataset areas the
// request may see. Granular scopes are honoured per area through the
// categories and codes that define the area; a granular scope on any other
// type grants nothing (fail closed). next, when set, decides further
// (sharing agreements and consent).
type scopeAuthorizer struct {
	next rest.Authorizer
}

func (a scopeAuthorizer) Authorize(ctx context.Context, p *fhir.Principal, req *fhir.Request, meta rest.RecordMeta) (fhir.Decision, error) {
	if p == nil {
		return fhir.Decision{}, fhir.Errorf(fhir.CodeUnauthorized, "an access token is required")
	}
	scopes, err := smart.ParseScopes(joinScopes(p.Scopes))
	if err != nil {
		return fhir.Decision{}, fhir.Errorf(fhir.CodeAccessDenied, "the token's scopes could not be read")
	}
	reqPatient := req.PatientID
	if reqPatient == "" && req.NHS != "" {
		reqPatient = fhir.PatientID(req.NHS)
	}
	interaction := "search"
	if req.Interaction == "read" {
		interaction = "read"
	}
	if req.Type == "AuditEvent" {
		return auditDecision(scopes, p, interaction, req), nil
	}
	if req.Type == "Consent" {
		return consentDecision(scopes), nil
	}
	if req.Type == "Agreement" {
		return adminDecision(scopes, req.Interaction), nil
	}
	var permitted fhir.Areas
	if req.Interaction == "read" || req.Interaction == "search-type" {
		// One type: the type itself must be permitted; granular scopes
		// narrow it to the areas whose codings they match.
		ok, filtered := smart.PermitsType(scopes, smart.Context{Type: req.Type, Interaction: interaction, PatientContext: p.PatientID, RequestPatient: reqPatient})
		if !ok {
			return deny(fhir.CodeAccessDenied, "the token's scopes do not cover "+interaction+" of "+req.Type+" for this patient"), nil
		}
		permitted = req.Areas
		if filtered {
			permitted = 0
			for _, g := range areaGrants {
				if req.Areas.Any(g.area) && smart.Permits(scopes, smart.Context{Type: req.Type, Interaction: interaction, PatientContext: p.PatientID, RequestPatient: reqPatient, Categories: g.categories, Codes: g.codes}) {
					permitted |= g.area
				}
			}
		}
	} else {
		for _, g := range areaGrants {
			if req.Areas.Any(g.area) && smart.Permits(scopes, smart.Context{Type: g.typ, Interaction: interaction, PatientContext: p.PatientID, RequestPatient: reqPatient, Categories: g.categories, Codes: g.codes}) {
				permitted |= g.area
			}
		}
	}
	if permitted&req.Areas == 0 {
		return deny(fhir.CodeAccessDenied, "the token's scopes do not cover this request"), nil
	}
	dec := fhir.Decision{Permit: true, Areas: permitted & req.Areas, Rule: "scope"}
	if a.next != nil {
		nd, err := a.next.Authorize(ctx, p, req, meta)
		if err != nil || !nd.Permit {
			return nd, err
		}
		dec.Areas &= nd.Areas
		dec.Rule = nd.Rule
	}
	return dec, nil
}

// deny is a refusal; why is safe to show the caller.
func deny(code fhir.Code, why string) fhir.Decision {
	return fhir.Decision{Permit: false, Code: code, Rule: why}
}

func joinScopes(s []string) string {
	n := 0
	for _, x := range s {
		n += len(x) + 1
	}
	b := make([]byte, 0, n)
	for i, x := range s {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, x...)
	}
	return string(b)
}

// auditDecision: the audit log is read only with scopes that name AuditEvent
// (a "*" scope for clinical data does not reach it). A patient-context token
// reads only its own patient's accesses.
func auditDecision(scopes []smart.Scope, p *fhir.Principal, interaction string, req *fhir.Request) fhir.Decision {
	need := smart.PermSearch
	if interaction == "read" {
		need = smart.PermRead
	}
	for _, s := range scopes {
		if s.Type != "AuditEvent" || s.Perms&need == 0 {
			continue
		}
		if s.Context == smart.ContextPatient && (p.PatientID == "" || (req.PatientID != "" && req.PatientID != p.PatientID)) {
			continue
		}
		return fhir.Decision{Permit: true, Rule: "scope"}
	}
	return deny(fhir.CodeAccessDenied, "reading the audit log needs a system/AuditEvent scope")
}

// consentDecision: recording a consent to view needs Consent create on a
// system or user token (the agreement checks happen when it is recorded).
func consentDecision(scopes []smart.Scope) fhir.Decision {
	for _, s := range scopes {
		if (s.Type == "Consent" || s.Type == "*") && s.Perms&smart.PermCreate != 0 && s.Context != smart.ContextPatient {
			return fhir.Decision{Permit: true, Rule: "scope"}
		}
	}
	return deny(fhir.CodeAccessDenied, "recording a consent to view needs a system/Consent.c scope")
}

// adminDecision: the agreements admin API needs system scopes that name
// Agreement (no wildcard reaches it): .rs to read, .c to add, .u to change
// status.
func adminDecision(scopes []smart.Scope, interaction string) fhir.Decision {
	need := map[string]smart.Perm{"read": smart.PermRead, "search-type": smart.PermSearch, "create": smart.PermCreate, "update": smart.PermUpdate}[interaction]
	for _, s := range scopes {
		if s.Type == "Agreement" && s.Context == smart.ContextSystem && need != 0 && s.Perms&need == need {
			return fhir.Decision{Permit: true, Rule: "scope"}
		}
	}
	return deny(fhir.CodeAccessDenied, "the agreements admin API needs a system/Agreement scope")
}
