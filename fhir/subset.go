package fhir

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Subsetting: _summary and _elements ask for part of each resource. gpgate
// only ever removes elements from what redaction let leave (so a subset
// stays within the coded-only allowlist) and marks a subsetted resource
// with the SUBSETTED tag, as FHIR R4 asks (search.html#summary).

// SummaryMode is a parsed _summary value.
type SummaryMode string

// The _summary values gpgate serves. "text" (narrative only) is refused:
// gpgate shares no narrative.
const (
	SummaryNone  SummaryMode = ""      // not asked: whole resources
	SummaryTrue  SummaryMode = "true"  // the elements R4 marks isSummary, plus mandatory ones
	SummaryData  SummaryMode = "data"  // everything but text (which redaction already removed)
	SummaryCount SummaryMode = "count" // a searchset with the total and no entries
	SummaryFalse SummaryMode = "false" // whole resources
)

// SubsettedSystem and SubsettedCode tag a resource returned in part.
const (
	SubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SubsettedCode   = "SUBSETTED"
)

// summaryElements are, per resource type, the top-level elements FHIR R4
// marks isSummary (from the R4 StructureDefinitions, as the UK Core 2.6.1
// snapshots carry them; HL7 FHIR R4, CC0), and mandatoryElements those the
// UK Core profiles of the type require (min >= 1 in any of its profiles
// gpgate claims). Choice elements end in [x]. id, meta and implicitRules are
// always kept. TestSubsetTablesMatchUKCore checks both against the shared
// snapshots.
var summaryElements = map[string][]string{
	"Patient":             {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]", "address", "managingOrganization", "link"},
	"Organization":        {"identifier", "active", "type", "name", "partOf"},
	"Practitioner":        {"identifier", "active", "name", "telecom", "address", "gender", "birthDate"},
	"Condition":           {"identifier", "clinicalStatus", "verificationStatus", "code", "bodySite", "subject", "encounter", "onset[x]", "recordedDate", "recorder", "asserter"},
	"MedicationStatement": {"identifier", "basedOn", "partOf", "status", "category", "medication[x]", "subject", "context", "effective[x]", "dateAsserted"},
	"MedicationRequest":   {"status", "intent", "priority", "doNotPerform", "reported[x]", "medication[x]", "subject", "authoredOn", "requester", "performerType", "instantiatesCanonical", "instantiatesUri", "basedOn", "groupIdentifier"},
	"Medication":          {"identifier", "code", "status", "manufacturer", "amount"},
	"AllergyIntolerance":  {"identifier", "clinicalStatus", "verificationStatus", "type", "category", "criticality", "code", "patient", "asserter"},
	"Flag":                {"identifier", "status", "category", "code", "subject", "period", "encounter", "author"},
	"Procedure":           {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf", "status", "statusReason", "category", "code", "subject", "encounter", "performed[x]", "recorder", "asserter", "performer", "location", "reasonCode", "reasonReference", "bodySite", "outcome"},
	"Observation":         {"identifier", "basedOn", "partOf", "status", "code", "subject", "focus", "encounter", "effective[x]", "issued", "performer", "value[x]", "hasMember", "derivedFrom", "component"},
	"DiagnosticReport":    {"identifier", "status", "category", "code", "subject", "encounter", "effective[x]", "issued", "performer", "resultsInterpreter", "media"},
	"Specimen":            {"identifier", "accessionIdentifier", "status", "type", "subject", "receivedTime", "condition"},
	"Immunization":        {"status", "vaccineCode", "patient", "occurrence[x]", "primarySource", "performer", "note", "isSubpotent"},
	"Encounter":           {"identifier", "status", "class", "type", "serviceType", "subject", "episodeOfCare", "participant", "appointment", "reasonCode", "reasonReference", "diagnosis"},
	"ServiceRequest":      {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "replaces", "requisition", "status", "intent", "category", "priority", "doNotPerform", "code", "orderDetail", "quantity[x]", "subject", "encounter", "occurrence[x]", "asNeeded[x]", "authoredOn", "requester", "performerType", "performer", "locationCode", "locationReference", "reasonCode", "reasonReference", "specimen", "bodySite", "patientInstruction"},
}

var mandatoryElements = map[string][]string{
	"Condition":           {"subject"},
	"MedicationStatement": {"status", "medication[x]", "subject"},
	"MedicationRequest":   {"status", "intent", "medication[x]", "subject", "substitution"},
	"Medication":          {"code"},
	"AllergyIntolerance":  {"code", "patient"},
	"Flag":                {"status", "code", "subject"},
	"Procedure":           {"status", "subject"},
	"Observation":         {"status", "category", "code", "subject", "effective[x]", "component"},
	"DiagnosticReport":    {"status", "code"},
	"Immunization":        {"status", "vaccineCode", "patient", "occurrence[x]"},
	"Encounter":           {"status", "class"},
	"ServiceRequest":      {"status", "intent", "subject"},
}

// invariantElements are kept in every subset as well: elements a FHIR or
// UK Core invariant requires together with others (org-1: an Organization
// has a name or an identifier; ait-1/ait-2 and con-3/con-4/con-5:
// clinicalStatus and verificationStatus go together), so a subsetted
// resource is still valid R4.
var invariantElements = map[string][]string{
	"Organization":       {"identifier", "name"},
	"AllergyIntolerance": {"clinicalStatus", "verificationStatus"},
	"Condition":          {"clinicalStatus", "verificationStatus", "category"},
}

// Subset is what of each resource a request asks for: a _summary mode and
// an _elements list. The zero Subset asks for whole resources.
type Subset struct {
	Summary  SummaryMode
	Elements []string // top-level element names (choice elements as name[x] or a typed name)
}

// Whole reports whether the subset leaves resources as they are.
func (s Subset) Whole() bool {
	return len(s.Elements) == 0 && (s.Summary == SummaryNone || s.Summary == SummaryFalse || s.Summary == SummaryData)
}

// ParseSubset reads _summary and _elements (the last value of each wins;
// _elements values may repeat and are comma-separated). _summary=text is
// NOT_IMPLEMENTED (gpgate shares no narrative); anything else unknown is
// INVALID_PARAMETER.
func ParseSubset(typ string, summary, elements []string) (Subset, error) {
	var s Subset
	if len(summary) > 0 {
		switch v := last(summary); v {
		case "true", "false", "data", "count":
			s.Summary = SummaryMode(v)
		case "text":
			return s, Errorf(CodeNotImplemented, "_summary=text is not supported: gpgate shares no narrative (use _summary=true, data or count)").At("_summary")
		default:
			return s, Errorf(CodeInvalidParameter, "_summary must be true, false, data or count").At("_summary")
		}
	}
	for _, v := range elements {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if t, name, ok := strings.Cut(e, "."); ok && t != "" && t[0] >= 'A' && t[0] <= 'Z' { // the R5 form Type.element
				if t != typ && typ != "" {
					continue
				}
				e = name
			}
			if !elementName(e) {
				return s, Errorf(CodeInvalidParameter, "_elements takes comma-separated element names").At("_elements")
			}
			s.Elements = append(s.Elements, e)
		}
	}
	return s, nil
}

func elementName(s string) bool {
	s = strings.TrimSuffix(s, "[x]")
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Apply returns r as the subset asks: the same resource when nothing is
// removed, otherwise a copy with the SUBSETTED tag in meta. It only ever
// removes top-level elements.
func (s Subset) Apply(r *Resource) *Resource {
	if s.Whole() || r.Type == "OperationOutcome" {
		return r
	}
	var keep []string
	if s.Summary == SummaryTrue {
		keep = append(keep, summaryElements[r.Type]...)
	}
	keep = append(keep, s.Elements...)
	keep = append(keep, mandatoryElements[r.Type]...)
	keep = append(keep, invariantElements[r.Type]...)
	out, removed, err := selectElements(r.JSON, func(name string) bool {
		switch name {
		case "resourceType", "id", "meta", "implicitRules":
			return true
		}
		for _, k := range keep {
			if matchElement(k, name) {
				return true
			}
		}
		return false
	})
	if err != nil || !removed {
		return r
	}
	return &Resource{Type: r.Type, ID: r.ID, JSON: out, Ix: r.Ix}
}

// matchElement matches a JSON property name against an element name
// (value[x] matches valueQuantity; valueQuantity matches itself).
func matchElement(def, name string) bool {
	if base, ok := strings.CutSuffix(def, "[x]"); ok {
		return strings.HasPrefix(name, base) && len(name) > len(base) && name[len(base)] >= 'A' && name[len(base)] <= 'Z'
	}
	return name == def
}

// selectElements keeps the top-level properties keep accepts, in their
// order, and tags meta SUBSETTED when any was removed.
func selectElements(js []byte, keep func(string) bool) ([]byte, bool, error) {
	props, err := objectProps(js)
	if err != nil {
		return nil, false, err
	}
	removed := false
	kept := props[:0]
	for _, p := range props {
		if keep(p.name) || (strings.HasPrefix(p.name, "_") && keep(p.name[1:])) {
			kept = append(kept, p)
		} else {
			removed = true
		}
	}
	if !removed {
		return js, false, nil
	}
	hasMeta := false
	for i := range kept {
		if kept[i].name == "meta" {
			hasMeta = true
			m, err := tagSubsetted(kept[i].value)
			if err != nil {
				return nil, false, err
			}
			kept[i].value = m
		}
	}
	if !hasMeta {
		meta, _ := tagSubsetted([]byte("{}"))
		// meta follows id in canonical order.
		at := 0
		for i, p := range kept {
			if p.name == "resourceType" || p.name == "id" {
				at = i + 1
			}
		}
		kept = append(kept[:at], append([]prop{{"meta", meta}}, kept[at:]...)...)
	}
	out := make([]byte, 0, len(js))
	out = append(out, '{')
	for i, p := range kept {
		if i > 0 {
			out = append(out, ',')
		}
		out = AppendJSONString(out, p.name)
		out = append(out, ':')
		out = append(out, p.value...)
	}
	return append(out, '}'), true, nil
}

type prop struct {
	name  string
	value json.RawMessage
}

// objectProps splits a JSON object into its properties, in order, by a
// scan of the bytes (no decoding of the values: this runs per resource on
// the request path).
func objectProps(js []byte) ([]prop, error) {
	i := skipSpace(js, 0)
	if i >= len(js) || js[i] != '{' {
		return nil, errNotObject
	}
	i = skipSpace(js, i+1)
	var out []prop
	if i < len(js) && js[i] == '}' {
		return out, nil
	}
	for {
		if i >= len(js) || js[i] != '"' {
			return nil, errNotObject
		}
		end, ok := scanString(js, i)
		if !ok {
			return nil, errNotObject
		}
		var name string
		if bytes.IndexByte(js[i:end], '\\') < 0 {
			name = string(js[i+1 : end-1])
		} else if err := json.Unmarshal(js[i:end], &name); err != nil {
			return nil, err
		}
		i = skipSpace(js, end)
		if i >= len(js) || js[i] != ':' {
			return nil, errNotObject
		}
		i = skipSpace(js, i+1)
		vend, ok := scanValue(js, i)
		if !ok {
			return nil, errNotObject
		}
		out = append(out, prop{name, js[i:vend]})
		i = skipSpace(js, vend)
		if i >= len(js) {
			return nil, errNotObject
		}
		switch js[i] {
		case ',':
			i = skipSpace(js, i+1)
		case '}':
			return out, nil
		default:
			return nil, errNotObject
		}
	}
}

func skipSpace(js []byte, i int) int {
	for i < len(js) && (js[i] == ' ' || js[i] == '\t' || js[i] == '\n' || js[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at js[i] ('"').
func scanString(js []byte, i int) (int, bool) {
	for j := i + 1; j < len(js); j++ {
		switch js[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// scanValue returns the index after the JSON value starting at js[i].
func scanValue(js []byte, i int) (int, bool) {
	if i >= len(js) {
		return 0, false
	}
	switch js[i] {
	case '"':
		return scanString(js, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(js); j++ {
			switch js[j] {
			case '"':
				end, ok := scanString(js, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(js) && js[j] != ',' && js[j] != '}' && js[j] != ']' && js[j] != ' ' && js[j] != '\t' && js[j] != '\n' && js[j] != '\r' {
		j++
	}
	return j, j > i
}

type subsetError string

func (e subsetError) Error() string { return string(e) }

const errNotObject = subsetError("fhir: not a JSON object")

// tagSubsetted adds the SUBSETTED tag to a meta object (once).
func tagSubsetted(meta []byte) ([]byte, error) {
	props, err := objectProps(meta)
	if err != nil {
		return nil, err
	}
	tag := []byte(`{"system":"` + SubsettedSystem + `","code":"` + SubsettedCode + `"}`)
	found := false
	for i, p := range props {
		if p.name != "tag" {
			continue
		}
		found = true
		if bytes.Contains(p.value, []byte(`"`+SubsettedCode+`"`)) {
			return meta, nil
		}
		v := bytes.TrimSpace(p.value)
		if len(v) < 2 || v[0] != '[' {
			return nil, errNotObject
		}
		nv := append([]byte(nil), v[:len(v)-1]...)
		if len(bytes.TrimSpace(v[1:len(v)-1])) > 0 {
			nv = append(nv, ',')
		}
		nv = append(nv, tag...)
		props[i].value = append(nv, ']')
	}
	if !found {
		// meta's elements in R4 order: versionId, lastUpdated, source,
		// profile, security, tag — tag is last.
		props = append(props, prop{"tag", append(append([]byte{'['}, tag...), ']')})
	}
	out := []byte{'{'}
	for i, p := range props {
		if i > 0 {
			out = append(out, ',')
		}
		out = AppendJSONString(out, p.name)
		out = append(out, ':')
		out = append(out, p.value...)
	}
	return append(out, '}'), nil
}
