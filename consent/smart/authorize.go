package smart

import (
	"github.com/gpgate/gpgate/fhir"
)

// Authorizer turns an access token's scopes into what a request may see:
// the dataset areas of a clinical request, or a yes/no for the audit log,
// consents to view and the agreements register. It is the scope half of
// the record-access core's decision; agreements and consent are the other.
//
// Areas are matched to scopes through fhir.AreaTable: an area is permitted
// when some scope permits one of its resource types with the category and
// codes that place a resource in it, so a granular scope
// (patient/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9)
// permits exactly its area (examination) and a granular scope on anything
// else permits nothing (fail closed).
type Authorizer struct{}

// areaGrant is one (area, type) pair of the dataset table with the codings
// that place a resource of the type in the area.
type areaGrant struct {
	area       fhir.Area
	typ        string
	categories []fhir.Coding
	codes      []fhir.Coding
}

var areaGrants = func() []areaGrant {
	var out []areaGrant
	for _, d := range fhir.AreaTable {
		for _, t := range d.Types {
			g := areaGrant{area: d.Area, typ: t.Type, codes: t.Codes}
			if t.Category != "" {
				g.categories = []fhir.Coding{{System: t.CategorySystem, Code: t.Category}}
			}
			out = append(out, g)
		}
	}
	return out
}()

func refuse(code fhir.Code, why string) fhir.Decision {
	return fhir.Decision{Permit: false, Code: code, Rule: why}
}

// Authorize decides req by p's scopes. A refusal is ACCESS_DENIED (or
// UNAUTHORISED without a principal) with a reason safe to show the caller.
func (Authorizer) Authorize(p *fhir.Principal, req *fhir.Request) fhir.Decision {
	if p == nil {
		return refuse(fhir.CodeUnauthorized, "an access token is required")
	}
	ent, err := scopesOf(p.Scopes)
	if err != nil {
		return refuse(fhir.CodeAccessDenied, "the token's scopes could not be read")
	}
	scopes := ent.scopes
	reqPatient := req.PatientID
	if reqPatient == "" && req.NHS != "" {
		reqPatient = fhir.PatientID(req.NHS)
	}
	interaction := "search"
	if req.Interaction == "read" {
		interaction = "read"
	}
	switch req.Type {
	case "AuditEvent":
		return auditDecision(scopes, p, interaction, req)
	case "Consent":
		return consentDecision(scopes, req.Interaction)
	case "Agreement", "Client", "SigningKey":
		return adminDecision(scopes, req.Type, req.Interaction)
	}
	key := decisionKey{samePatient: p.PatientID != "" && reqPatient == p.PatientID, interaction: req.Interaction, typ: req.Type, areas: req.Areas}
	if d, ok := ent.decision(key); ok {
		return d
	}
	d := areaDecision(scopes, p.PatientID, reqPatient, interaction, req)
	ent.remember(key, d)
	return d
}

// areaDecision decides a request for clinical or demographic resources by
// the scopes. It depends only on the scopes and decisionKey (contextOK
// compares the token's patient with the request's, nothing more).
func areaDecision(scopes []Scope, patientContext, reqPatient, interaction string, req *fhir.Request) fhir.Decision {
	ctx := func(typ string, g *areaGrant) Context {
		c := Context{Type: typ, Interaction: interaction, PatientContext: patientContext, RequestPatient: reqPatient}
		if g != nil {
			c.Categories, c.Codes = g.categories, g.codes
		}
		return c
	}
	var permitted fhir.Areas
	if req.Interaction == "read" || req.Interaction == "search-type" {
		// One type: the type itself must be permitted; granular scopes
		// narrow it to the areas whose codings they match.
		ok, filtered := PermitsType(scopes, ctx(req.Type, nil))
		if !ok {
			return refuse(fhir.CodeAccessDenied, "the token's scopes do not cover "+interaction+" of "+req.Type+" for this patient")
		}
		permitted = req.Areas
		if filtered {
			permitted = 0
			for i := range areaGrants {
				g := &areaGrants[i]
				if g.typ == req.Type && req.Areas.Any(g.area) && Permits(scopes, ctx(req.Type, g)) {
					permitted |= g.area
				}
			}
		}
	} else {
		for i := range areaGrants {
			g := &areaGrants[i]
			if req.Areas.Any(g.area) && Permits(scopes, ctx(g.typ, g)) {
				permitted |= g.area
			}
		}
	}
	if permitted&req.Areas == 0 {
		return refuse(fhir.CodeAccessDenied, "the token's scopes do not cover this request")
	}
	return fhir.Decision{Permit: true, Areas: permitted & req.Areas, Rule: "scope"}
}

// auditDecision: the audit log is read only with scopes that name
// AuditEvent (no wildcard reaches it). A patient-context token reads only
// its own patient's accesses.
func auditDecision(scopes []Scope, p *fhir.Principal, interaction string, req *fhir.Request) fhir.Decision {
	need := PermSearch
	if interaction == "read" {
		need = PermRead
	}
	for _, s := range scopes {
		if s.Type != "AuditEvent" || s.Perms&need == 0 {
			continue
		}
		if s.Context == ContextPatient && (p.PatientID == "" || (req.PatientID != "" && req.PatientID != p.PatientID)) {
			continue
		}
		return fhir.Decision{Permit: true, Rule: "scope"}
	}
	return refuse(fhir.CodeAccessDenied, "reading the audit log needs a system/AuditEvent scope")
}

// consentDecision: recording a consent to view needs Consent create on a
// system or user token; reading one back needs Consent read; revoking one,
// Consent delete (the agreement checks happen when it is recorded).
func consentDecision(scopes []Scope, interaction string) fhir.Decision {
	need, what := PermCreate, "recording a consent to view needs a system/Consent.c scope"
	switch interaction {
	case "read":
		need, what = PermRead, "reading a consent to view needs a Consent read scope (system/Consent.r)"
	case "delete":
		need, what = PermDelete, "revoking a consent to view needs a system/Consent.d scope"
	}
	for _, s := range scopes {
		if reaches(s.Type, "Consent") && s.Perms&need != 0 && (s.Context != ContextPatient || need == PermRead) {
			return fhir.Decision{Permit: true, Rule: "scope"}
		}
	}
	return refuse(fhir.CodeAccessDenied, what)
}

// adminDecision: an admin API needs system scopes that name its resource
// literally (Agreement, Client, SigningKey; no wildcard reaches them): .rs
// to read, .c to add, .u to change status or keys.
func adminDecision(scopes []Scope, typ, interaction string) fhir.Decision {
	need := map[string]Perm{"read": PermRead, "search-type": PermSearch, "create": PermCreate, "update": PermUpdate}[interaction]
	for _, s := range scopes {
		if s.Type == typ && s.Context == ContextSystem && need != 0 && s.Perms&need == need {
			return fhir.Decision{Permit: true, Rule: "scope"}
		}
	}
	what := map[string]string{"Agreement": "the agreements admin API", "Client": "the clients admin API", "SigningKey": "signing-key rotation"}[typ]
	return refuse(fhir.CodeAccessDenied, what+" needs a system/"+typ+" scope")
}
