package conformance

import (
	"encoding/json"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// HL7's canonical of the operation gpgate's $everything is derived from.
const hl7PatientEverything = "http://hl7.org/fhir/OperationDefinition/Patient-everything"

type opParam struct {
	Name          string    `json:"name"`
	Use           string    `json:"use"`
	Min           int       `json:"min"`
	Max           string    `json:"max"`
	Documentation string    `json:"documentation,omitempty"`
	Type          string    `json:"type,omitempty"`
	Part          []opParam `json:"part,omitempty"`
}

type operationDefinition struct {
	ResourceType string    `json:"resourceType"`
	ID           string    `json:"id"`
	URL          string    `json:"url"`
	Version      string    `json:"version,omitempty"`
	Name         string    `json:"name"`
	Title        string    `json:"title"`
	Status       string    `json:"status"`
	Kind         string    `json:"kind"`
	Date         string    `json:"date,omitempty"`
	Publisher    string    `json:"publisher"`
	Description  string    `json:"description"`
	AffectsState bool      `json:"affectsState"`
	Code         string    `json:"code"`
	Base         string    `json:"base,omitempty"`
	Resource     []string  `json:"resource"`
	System       bool      `json:"system"`
	Type         bool      `json:"type"`
	Instance     bool      `json:"instance"`
	Parameter    []opParam `json:"parameter"`
}

// EverythingParams are the input parameters GET /Patient/{id}/$everything
// honours (fhir.EverythingParams).
var EverythingParams = func() []string {
	var out []string
	for _, p := range fhir.EverythingParams {
		out = append(out, p.Name)
	}
	return out
}()

// Canonical returns the absolute canonical of an operation's definition on
// the deployment at base: relative definitions are resolved against it.
func Canonical(base string, op fhir.Operation) string {
	if strings.Contains(op.Definition, "://") {
		return op.Definition
	}
	return strings.TrimSuffix(base, "/") + "/" + op.Definition
}

// OperationDefinitions returns gpgate's OperationDefinition for every
// operation in fhir.Operations, keyed by the path it is served at (for
// rest.Config.Static). Each names, at its canonical, exactly the parameters
// the server honours, so the CapabilityStatement built from the same
// Options and the served definitions agree.
func OperationDefinitions(o Options) map[string][]byte {
	out := make(map[string][]byte, len(fhir.Operations))
	for _, op := range fhir.Operations {
		if strings.Contains(op.Definition, "://") {
			continue // an external canonical: not ours to serve
		}
		out["/"+op.Definition] = OperationDefinition(o, op)
	}
	return out
}

// OperationDefinition renders the definition of one operation.
func OperationDefinition(o Options, op fhir.Operation) []byte {
	id := op.Definition[strings.LastIndexByte(op.Definition, '/')+1:]
	d := operationDefinition{
		ResourceType: "OperationDefinition",
		ID:           id,
		URL:          Canonical(o.BaseURL, op),
		Version:      o.Version,
		Status:       "active",
		Kind:         "operation",
		Publisher:    "gpgate",
		Code:         op.Name,
		Resource:     []string{op.Type},
		Type:         !op.Instance,
		Instance:     op.Instance,
	}
	if !o.Date.IsZero() {
		d.Date = o.Date.UTC().Format("2006-01-02")
	}
	switch op.Name {
	case "everything":
		d.Name, d.Title = "GPGatePatientEverything", "gpgate Patient $everything"
		d.Base = hl7PatientEverything
		d.Description = "The patient's whole record (every area the token's scopes permit) as a paged searchset Bundle. " +
			"gpgate honours HL7's _type, _since, start, end and _count (and _offset in paging links)."
		for _, p := range fhir.EverythingParams {
			max := "1"
			if p.Name == "_type" {
				max = "*"
			}
			d.Parameter = append(d.Parameter, opParam{Name: p.Name, Use: "in", Min: 0, Max: max, Type: p.Type, Documentation: p.Doc})
		}
		d.Parameter = append(d.Parameter, opParam{Name: "return", Use: "out", Min: 1, Max: "1", Type: "Bundle", Documentation: "A searchset Bundle with total and paging links"})
	case "getstructuredrecord":
		d.Name, d.Title = "GPGateGetStructuredRecord", "gpgate Patient $getstructuredrecord"
		d.Description = "GP Connect Access Record: Structured style retrieval of a patient's record by NHS number, adapted to UK Core R4: " +
			"a collection Bundle with the Patient, practice and usual GP, and one List per requested section; every reference resolves within it."
		d.AffectsState = false
		d.Parameter = []opParam{{Name: "patientNHSNumber", Use: "in", Min: 1, Max: "1", Type: "Identifier",
			Documentation: "The NHS number, system https://fhir.nhs.uk/Id/nhs-number (Modulus 11 checked)"}}
		for _, s := range fhir.Sections {
			p := opParam{Name: s.Param, Use: "in", Min: 0, Max: "1", Documentation: s.Doc}
			for _, pt := range s.Parts {
				p.Part = append(p.Part, opParam{Name: pt.Name, Use: "in", Min: 0, Max: "1", Type: pt.Type, Documentation: pt.Doc})
			}
			if len(p.Part) == 0 {
				// opd-1: a parameter has a type or parts. The section is
				// included when the parameter is present.
				p.Type = "boolean"
				p.Documentation += " (include the section: valueBoolean true)"
			}
			d.Parameter = append(d.Parameter, p)
		}
		d.Parameter = append(d.Parameter, opParam{Name: "return", Use: "out", Min: 1, Max: "1", Type: "Bundle",
			Documentation: "A collection Bundle (UK Core) with one List per requested section"})
	default:
		d.Name, d.Title = "GPGate"+op.Name, "gpgate "+op.Type+" $"+op.Name
		d.Description = "gpgate operation $" + op.Name
		d.Parameter = []opParam{{Name: "return", Use: "out", Min: 1, Max: "1", Type: "Bundle"}}
	}
	b, _ := json.Marshal(d) // plain structs: cannot fail
	return b
}
