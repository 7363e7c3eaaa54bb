// Package conformance builds gpgate's CapabilityStatement and
// OperationDefinitions from what is actually registered (the fhir package's
// tables of types, search parameters and operations), and holds the
// black-box conformance suite run against any deployment.
package conformance

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Options describe the deployment the statement speaks for.
type Options struct {
	BaseURL   string
	Version   string            // software version
	Date      time.Time         // publication date
	OAuthURIs map[string]string // SMART oauth-uris: token, introspect, ...; nil when unsecured
	// AuditEvent declares GET /AuditEvent (read and search of the audit log).
	AuditEvent bool
	// Consent declares POST /Consent and GET /Consent/{id} (consent to view).
	Consent bool
	// CORS says browsers may call the API cross-origin (serve --cors-origins).
	CORS bool
}

// LenientParams is what the statement (rest.documentation) says about
// parameters gpgate does not know; the README says the same.
const LenientParams = "Unknown search parameters are ignored, leniently, as FHIR's default handling allows: " +
	"the answer is then wider than asked, and the Bundle names each ignored parameter in an OperationOutcome entry " +
	"(search mode outcome, code UNKNOWN_PARAMETER_IGNORED). Send `Prefer: handling=strict` to have them refused " +
	"(400 BAD_REQUEST) instead. FHIR parameters and modifiers gpgate knows but does not serve (_has, _filter, chained " +
	"parameters, :exact, :missing, ...) are always refused (501 NOT_IMPLEMENTED), never ignored."

// auditSearchParams are the parameters GET /AuditEvent honours.
var auditSearchParams = []searchParam{
	{Name: "patient", Type: "reference", Definition: spBase + "AuditEvent-patient", Documentation: "Whose record was accessed (who viewed my record)"},
	{Name: "agent", Type: "reference", Definition: spBase + "AuditEvent-agent", Documentation: "Client id, clinician SDS user id or consumer ODS code"},
	{Name: "entity", Type: "reference", Definition: spBase + "AuditEvent-entity", Documentation: "Entity reference, e.g. Patient/{id}"},
	{Name: "date", Type: "date", Definition: spBase + "AuditEvent-date", Documentation: "When recorded, with eq/ge/gt/le/lt/sa/eb"},
	{Name: "outcome", Type: "token", Definition: spBase + "AuditEvent-outcome", Documentation: "0 granted, 4 denied, 8 error"},
	{Name: "subtype", Type: "token", Definition: spBase + "AuditEvent-subtype", Documentation: "read, search-type, operation, ..."},
	{Name: "break-glass", Type: "token", Documentation: "true: only break-glass accesses (for review)"},
	{Name: "_cursor", Type: "number", Documentation: "Paging cursor from a Bundle's next link: pages stay stable while new entries arrive (newest first)"},
}

const spBase = "http://hl7.org/fhir/SearchParameter/"

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}
type concept struct {
	Coding []coding `json:"coding"`
}
type extension struct {
	URL       string      `json:"url"`
	ValueURI  string      `json:"valueUri,omitempty"`
	Extension []extension `json:"extension,omitempty"`
}
type interaction struct {
	Code string `json:"code"`
}
type searchParam struct {
	Name          string `json:"name"`
	Definition    string `json:"definition,omitempty"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}
type operation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}
type resource struct {
	Type             string        `json:"type"`
	Profile          string        `json:"profile,omitempty"`
	Interaction      []interaction `json:"interaction"`
	Versioning       string        `json:"versioning,omitempty"`
	ReadHistory      bool          `json:"readHistory"`
	ConditionalRead  string        `json:"conditionalRead,omitempty"`
	SearchInclude    []string      `json:"searchInclude,omitempty"`
	SearchRevInclude []string      `json:"searchRevInclude,omitempty"`
	SearchParam      []searchParam `json:"searchParam,omitempty"`
	Operation        []operation   `json:"operation,omitempty"`
}
type security struct {
	Extension   []extension `json:"extension,omitempty"`
	Cors        bool        `json:"cors"`
	Service     []concept   `json:"service,omitempty"`
	Description string      `json:"description,omitempty"`
}
type rest struct {
	Mode          string        `json:"mode"`
	Documentation string        `json:"documentation,omitempty"`
	Security      *security     `json:"security,omitempty"`
	Resource      []resource    `json:"resource"`
	Interaction   []interaction `json:"interaction,omitempty"`
	SearchParam   []searchParam `json:"searchParam,omitempty"`
	Operation     []operation   `json:"operation,omitempty"`
}
type capabilityStatement struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	URL          string `json:"url"`
	Version      string `json:"version"`
	Name         string `json:"name"`
	Title        string `json:"title"`
	Status       string `json:"status"`
	Date         string `json:"date"`
	Publisher    string `json:"publisher"`
	Kind         string `json:"kind"`
	Software     struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"software"`
	Implementation struct {
		Description string `json:"description"`
		URL         string `json:"url"`
	} `json:"implementation"`
	FHIRVersion string   `json:"fhirVersion"`
	Format      []string `json:"format"`
	Rest        []rest   `json:"rest"`
}

// CapabilityStatement returns the statement as JSON bytes.
func CapabilityStatement(o Options) []byte {
	cs := capabilityStatement{
		ResourceType: "CapabilityStatement",
		ID:           "gpgate",
		URL:          o.BaseURL + "/metadata",
		Version:      o.Version,
		Name:         "GPGate",
		Title:        "gpgate FHIR R4 GP record gateway",
		Status:       "active",
		Date:         o.Date.UTC().Format("2006-01-02"),
		Publisher:    "gpgate",
		Kind:         "instance",
		FHIRVersion:  "4.0.1",
		Format:       []string{"json", "application/fhir+json"},
	}
	cs.Software.Name, cs.Software.Version = "gpgate", o.Version
	cs.Implementation.Description = "gpgate: view-only, coded-only GP record gateway (UK Core R4)"
	cs.Implementation.URL = o.BaseURL

	r := rest{Mode: "server", Documentation: "gpgate is view only and shares coded data only. Searches are within one patient " +
		"(patient, or the Patient/{id}/{type} compartment), by GET or POST {type}/_search; HEAD answers every GET. " + LenientParams}
	if o.OAuthURIs != nil {
		sec := &security{Cors: o.CORS, Description: "SMART Backend Services (client_credentials + private_key_jwt); every clinical request needs a bearer token."}
		oauth := extension{URL: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"}
		keys := make([]string, 0, len(o.OAuthURIs))
		for k := range o.OAuthURIs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			oauth.Extension = append(oauth.Extension, extension{URL: k, ValueURI: o.OAuthURIs[k]})
		}
		sec.Extension = []extension{oauth}
		sec.Service = []concept{{Coding: []coding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR", Display: "SMART-on-FHIR"}}}}
		r.Security = sec
	}
	for _, typ := range fhir.ReadableTypes {
		res := resource{Type: typ, Profile: fhir.ProfileFor(typ), Interaction: []interaction{{Code: "read"}}, Versioning: "no-version", ConditionalRead: "not-supported"}
		if defs, ok := fhir.SearchParams[typ]; ok {
			res.Interaction = append(res.Interaction, interaction{Code: "search-type"})
			res.SearchInclude = fhir.IncludesOf(typ)
			res.SearchRevInclude = fhir.RevIncludesOf(typ)
			for _, d := range append(append([]fhir.SearchParam(nil), defs...), fhir.CommonParams...) {
				res.SearchParam = append(res.SearchParam, searchParam{Name: d.Name, Definition: d.Definition, Type: string(d.Type), Documentation: d.Doc})
			}
		}
		for _, op := range fhir.Operations {
			if op.Type == typ {
				res.Operation = append(res.Operation, operation{Name: op.Name, Definition: Canonical(o.BaseURL, op)})
			}
		}
		r.Resource = append(r.Resource, res)
	}
	if o.AuditEvent {
		r.Resource = append(r.Resource, resource{Type: "AuditEvent", Profile: fhir.ProfileAuditEvent,
			Interaction: []interaction{{Code: "read"}, {Code: "search-type"}}, Versioning: "no-version", ConditionalRead: "not-supported",
			SearchParam: auditSearchParams})
	}
	if o.Consent {
		r.Resource = append(r.Resource, resource{Type: "Consent", Profile: fhir.ProfileConsent,
			Interaction: []interaction{{Code: "create"}, {Code: "read"}, {Code: "delete"}}, Versioning: "no-version", ConditionalRead: "not-supported"})
	}
	// gpgate serves its own OperationDefinitions (OperationDefinitions) at
	// their canonicals: read by id, nothing else.
	r.Resource = append(r.Resource, resource{Type: "OperationDefinition", Interaction: []interaction{{Code: "read"}},
		Versioning: "no-version", ConditionalRead: "not-supported"})
	r.SearchParam = []searchParam{
		{Name: "_count", Type: "number", Documentation: "Page size (default 50, at most 1000)"},
		{Name: "_sort", Type: "string", Documentation: "date, -date (default), _lastUpdated or -_lastUpdated"},
		{Name: "_offset", Type: "number", Documentation: "Paging offset, as used in next/previous links"},
		{Name: "_summary", Type: "token", Documentation: "count (the total, no entries), true (the elements R4 marks summary, plus mandatory ones; tagged SUBSETTED), data or false (whole resources: gpgate shares no narrative, so text is not served)"},
		{Name: "_elements", Type: "string", Documentation: "Only these top-level elements (comma-separated), plus mandatory ones; tagged SUBSETTED"},
		{Name: "_total", Type: "token", Documentation: "Accepted; the total is always given, and exact"},
		{Name: "_format", Type: "token", Documentation: "json or application/fhir+json (overrides Accept); anything else is 406"},
	}
	cs.Rest = []rest{r}
	b, _ := json.Marshal(cs) // plain structs: cannot fail
	return b
}
