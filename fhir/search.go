package fhir

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ParamType is a FHIR search parameter type.
type ParamType string

const (
	ParamToken     ParamType = "token"
	ParamDate      ParamType = "date"
	ParamReference ParamType = "reference"
	ParamNumber    ParamType = "number"
)

// SearchParam describes one supported search parameter of one resource type.
// The CapabilityStatement is generated from this table, and ParseQuery
// accepts exactly what it lists, so what is declared is what is honoured.
type SearchParam struct {
	Name       string
	Type       ParamType
	Definition string // canonical of the R4 SearchParameter
	Doc        string
}

const spBase = "http://hl7.org/fhir/SearchParameter/"

func sp(name string, t ParamType, def, doc string) SearchParam {
	return SearchParam{Name: name, Type: t, Definition: spBase + def, Doc: doc}
}

var (
	pPatient     = sp("patient", ParamReference, "clinical-patient", "The patient (Patient/id or id)")
	pCode        = sp("code", ParamToken, "clinical-code", "Code, as system|code, |code, system| or code")
	pDate        = sp("date", ParamDate, "clinical-date", "Clinical date with eq/ne/gt/lt/ge/le/sa/eb/ap prefixes")
	pID          = sp("_id", ParamToken, "Resource-id", "Logical id")
	pLastUpdated = sp("_lastUpdated", ParamDate, "Resource-lastUpdated", "meta.lastUpdated with prefixes")
)

// CommonParams are accepted by every search.
var CommonParams = []SearchParam{pID, pLastUpdated}

// SearchParams lists, per searchable resource type, the parameters served.
var SearchParams = map[string][]SearchParam{
	"Patient": {sp("identifier", ParamToken, "Patient-identifier", "NHS number as https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN")},
	"Condition": {pPatient, pCode,
		sp("category", ParamToken, "Condition-category", "problem-list-item or encounter-diagnosis"),
		sp("clinical-status", ParamToken, "Condition-clinical-status", "active | inactive | resolved ..."),
		sp("onset-date", ParamDate, "Condition-onset-date", "Onset date with prefixes")},
	"AllergyIntolerance": {pPatient, pCode, pDate,
		sp("clinical-status", ParamToken, "AllergyIntolerance-clinical-status", "active | inactive | resolved"),
		sp("category", ParamToken, "AllergyIntolerance-category", "food | medication | environment | biologic")},
	"MedicationStatement": {sp("patient", ParamReference, "clinical-patient", "The patient"), pCode,
		sp("status", ParamToken, "medications-status", "active | completed | stopped ..."),
		sp("category", ParamToken, "MedicationStatement-category", "Category of the statement"),
		sp("effective", ParamDate, "MedicationStatement-effective", "Effective date with prefixes")},
	"MedicationRequest": {pPatient, pCode,
		sp("status", ParamToken, "medications-status", "active | completed | stopped ..."),
		sp("intent", ParamToken, "MedicationRequest-intent", "plan (authorisation) | order (issue)"),
		sp("category", ParamToken, "MedicationRequest-category", "Category of the request"),
		sp("authoredon", ParamDate, "MedicationRequest-authoredon", "Date authored with prefixes")},
	"Observation": {pPatient, pCode, pDate,
		sp("category", ParamToken, "Observation-category", "laboratory | vital-signs ..."),
		sp("status", ParamToken, "Observation-status", "final | amended ...")},
	"DiagnosticReport": {pPatient, pCode, pDate,
		sp("category", ParamToken, "DiagnosticReport-category", "Service category"),
		sp("status", ParamToken, "DiagnosticReport-status", "final | preliminary ...")},
	"Encounter": {pPatient, pDate,
		sp("status", ParamToken, "Encounter-status", "finished | in-progress ...")},
	"Flag":      {pPatient, pDate},
	"Procedure": {pPatient, pCode, pDate, sp("status", ParamToken, "Procedure-status", "completed ...")},
	"ServiceRequest": {pPatient, pCode,
		sp("category", ParamToken, "ServiceRequest-category", "Referral category"),
		sp("status", ParamToken, "ServiceRequest-status", "active | completed ..."),
		sp("intent", ParamToken, "ServiceRequest-intent", "order | plan ..."),
		sp("authoredon", ParamDate, "ServiceRequest-authored", "Date authored with prefixes")},
	"Specimen": {sp("patient", ParamReference, "Specimen-patient", "The patient")},
	"Immunization": {pPatient, pDate,
		sp("vaccine-code", ParamToken, "Immunization-vaccine-code", "Vaccine product administered, as system|code"),
		sp("status", ParamToken, "Immunization-status", "completed | entered-in-error | not-done")},
}

// ReadableTypes lists every resource type that can be read by id: the
// types of the dataset table.
var ReadableTypes = TypesOf(AllAreas)

// IsReadable reports whether gpgate serves the type.
func IsReadable(t string) bool {
	for _, x := range ReadableTypes {
		if x == t {
			return true
		}
	}
	return false
}

// Paging and result parameters accepted on every search.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// ResultParams are the result-shaping parameters every search accepts.
var ResultParams = []string{"_count", "_offset", "_sort", "_summary", "_elements", "_include", "_revinclude", "_total", "_format", "_pretty"}

// unsupportedParams are FHIR R4 search and result parameters gpgate does not
// serve. Ignoring them would answer more than was asked, so they are
// NOT_IMPLEMENTED whatever the handling.
var unsupportedParams = map[string]string{
	"_has":           "reverse chaining (_has)",
	"_filter":        "the _filter parameter",
	"_text":          "text search (_text)",
	"_content":       "content search (_content)",
	"_query":         "named queries (_query)",
	"_list":          "list search (_list)",
	"_contained":     "contained resource search (_contained)",
	"_containedType": "contained resource search (_containedType)",
	"_tag":           "search by tag (_tag)",
	"_profile":       "search by profile (_profile)",
	"_security":      "search by security label (_security)",
	"_source":        "search by source (_source)",
	"_type":          "_type on a type search (it is an $everything parameter)",
}

// fhirModifiers are the R4 search modifiers: a known one gpgate does not
// serve on a parameter is NOT_IMPLEMENTED, anything else INVALID_PARAMETER.
var fhirModifiers = map[string]bool{
	"missing": true, "exact": true, "contains": true, "text": true, "in": true, "not-in": true,
	"below": true, "above": true, "type": true, "identifier": true, "of-type": true, "not": true,
	"iterate": true, "code-text": true, "text-advanced": true,
}

// sortable are the R4 search parameters a _sort could name; gpgate sorts by
// date and _lastUpdated only.
func sortKey(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && (elementName(s) || strings.HasPrefix(s, "_") && elementName(s[1:]) || strings.Contains(s, "-"))
}

// Query is a parsed search: AND across Filters, OR within one filter.
type Query struct {
	Type    string
	Patient string // Patient logical id, "" when not given
	NHS     NHSNumber
	Filters []Filter
	Count   int
	Offset  int
	Sort    string   // "", "date", "-date", "_lastUpdated", "-_lastUpdated"
	Ignored []string // unknown parameters ignored under lenient handling
	// Subset is what of each resource to return (_summary, _elements);
	// _summary=count returns no resources at all.
	Subset Subset
	// Includes are the _include and _revinclude values, in request order.
	Includes []Include
	// Cursored marks a search paged by cursor (the audit log: stable while
	// entries arrive) rather than offset; Next is the _cursor of the next
	// page, "" on the last.
	Cursored bool
	Next     string
}

// CountOnly reports _summary=count: the total, no resources.
func (q *Query) CountOnly() bool { return q.Subset.Summary == SummaryCount }

// Filter is one parameter occurrence: the resource matches when any value does.
type Filter struct {
	Param  string
	Tokens []Coding
	Dates  []DatePredicate
	Not    bool // :not modifier on a token
}

// DatePredicate is a prefix and a date range.
type DatePredicate struct {
	Prefix string
	Value  DateRange
}

// ParseQuery parses URL query values for a search on typ. Under strict
// handling unknown parameters are an error; otherwise they are ignored and
// named in Query.Ignored.
func ParseQuery(typ string, v url.Values, strict bool) (*Query, error) {
	defs, ok := SearchParams[typ]
	if !ok {
		return nil, Errorf(CodeNotImplemented, "search is not supported on %s", safeName(typ))
	}
	q := &Query{Type: typ, Count: DefaultCount}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic errors and Ignored
	sub, err := ParseSubset(typ, v["_summary"], v["_elements"])
	if err != nil {
		return nil, err
	}
	q.Subset = sub
	for _, key := range keys {
		vals := v[key]
		name, modifier, _ := strings.Cut(key, ":")
		if what, ok := unsupportedParams[name]; ok {
			return nil, Errorf(CodeNotImplemented, "%s is not supported", what).At(name)
		}
		if strings.Contains(name, ".") {
			return nil, Errorf(CodeNotImplemented, "chained search (%s) is not supported", safeName(key)).At(safeName(name))
		}
		switch name {
		case "_summary", "_elements":
			continue // ParseSubset
		case "_total":
			switch last(vals) {
			case "none", "estimate", "accurate":
				continue // the total is always given, and exact
			}
			return nil, Errorf(CodeInvalidParameter, "_total must be none, estimate or accurate").At("_total")
		case "_include", "_revinclude":
			for _, raw := range vals {
				for _, one := range strings.Split(raw, ",") {
					inc, err := parseInclude(typ, name, modifier, strings.TrimSpace(one))
					if err != nil {
						return nil, err
					}
					q.Includes = append(q.Includes, inc)
				}
			}
			continue
		case "_count":
			n, err := strconv.Atoi(last(vals))
			if err != nil || n < 0 {
				return nil, Errorf(CodeInvalidParameter, "_count must be a non-negative integer").At("_count")
			}
			q.Count = min(n, MaxCount)
			continue
		case "_offset":
			n, err := strconv.Atoi(last(vals))
			if err != nil || n < 0 || n > 1<<30 {
				return nil, Errorf(CodeInvalidParameter, "_offset must be a non-negative integer").At("_offset")
			}
			q.Offset = n
			continue
		case "_sort":
			s := last(vals)
			switch s {
			case "date", "-date", "_lastUpdated", "-_lastUpdated":
				q.Sort = s
			default:
				if keys := strings.Split(s, ","); len(keys) > 0 && all(keys, sortKey) {
					return nil, Errorf(CodeNotImplemented, "_sort=%s is not supported: gpgate sorts by one of date, -date, _lastUpdated and -_lastUpdated", safeName(s)).At("_sort")
				}
				return nil, Errorf(CodeInvalidParameter, "_sort supports date, -date, _lastUpdated and -_lastUpdated").At("_sort")
			}
			continue
		case "_format", "_pretty":
			continue // content negotiation happens in the HTTP layer
		}
		def, known := findParam(defs, name)
		if !known {
			if strict {
				return nil, Errorf(CodeBadRequest, "unknown search parameter %q for %s (Prefer: handling=strict)", safeName(name), typ).At(safeName(name))
			}
			q.Ignored = append(q.Ignored, safeName(key))
			continue
		}
		if modifier != "" && !(def.Type == ParamToken && modifier == "not") &&
			!(def.Type == ParamReference && modifier == "Patient") {
			if fhirModifiers[modifier] || (def.Type == ParamReference && IsReadable(modifier)) {
				return nil, Errorf(CodeNotImplemented, "modifier :%s is not supported on %s", safeName(modifier), name).At(name)
			}
			return nil, Errorf(CodeInvalidParameter, "%s is not a search modifier", safeName(modifier)).At(name)
		}
		for _, raw := range vals {
			if err := q.add(def, modifier, raw); err != nil {
				return nil, err
			}
		}
	}
	if typ == "Patient" && q.NHS == "" && !q.hasFilter("_id") {
		return nil, Errorf(CodeInvalidParameter, "Patient search needs identifier=%s|<NHS number> or _id", NHSNumberSystem).At("identifier")
	}
	return q, nil
}

func (q *Query) hasFilter(p string) bool {
	for _, f := range q.Filters {
		if f.Param == p {
			return true
		}
	}
	return false
}

func findParam(defs []SearchParam, name string) (SearchParam, bool) {
	for _, d := range defs {
		if d.Name == name {
			return d, true
		}
	}
	for _, d := range CommonParams {
		if d.Name == name {
			return d, true
		}
	}
	return SearchParam{}, false
}

func last(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

const maxParamValue = 1024

func (q *Query) add(def SearchParam, modifier, raw string) error {
	if len(raw) > maxParamValue {
		return Errorf(CodeInvalidParameter, "value of %s is too long", def.Name).At(def.Name)
	}
	if raw == "" {
		return Errorf(CodeInvalidParameter, "%s has an empty value", def.Name).At(def.Name)
	}
	switch def.Name {
	case "patient":
		id := strings.TrimPrefix(raw, "Patient/")
		if !ValidID(id) {
			return Errorf(CodeInvalidParameter, "patient must be a Patient id or Patient/id").At("patient")
		}
		if q.Patient != "" && q.Patient != id {
			return Errorf(CodeInvalidParameter, "patient given twice with different values").At("patient")
		}
		q.Patient = id
		return nil
	case "identifier":
		if modifier != "" { // identifier:not would otherwise be read as identifier
			return Errorf(CodeInvalidParameter, "modifier :%s is not supported on identifier", safeName(modifier)).At("identifier")
		}
		sys, val, hasBar := strings.Cut(raw, "|")
		if !hasBar || sys != NHSNumberSystem {
			return Errorf(CodeInvalidIdentifier, "identifier must be %s|<NHS number>", NHSNumberSystem).At("identifier")
		}
		n, err := ParseNHSNumber(val)
		if err != nil {
			return err
		}
		if q.NHS != "" && q.NHS != n {
			return Errorf(CodeInvalidParameter, "identifier given twice with different values").At("identifier")
		}
		q.NHS = n
		return nil
	}
	f := Filter{Param: def.Name, Not: modifier == "not"}
	for _, part := range splitComma(raw) {
		switch def.Type {
		case ParamToken:
			c, err := parseToken(def.Name, part)
			if err != nil {
				return err
			}
			f.Tokens = append(f.Tokens, c)
		case ParamDate:
			p, err := parseDatePredicate(def.Name, part)
			if err != nil {
				return err
			}
			f.Dates = append(f.Dates, p)
		}
	}
	q.Filters = append(q.Filters, f)
	return nil
}

// splitComma splits on commas not escaped with a backslash (FHIR search escaping).
func splitComma(s string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '|' || s[i+1] == '$' || s[i+1] == '\\'):
			b.WriteByte(s[i+1])
			i++
		case s[i] == ',':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(s[i])
		}
	}
	return append(out, b.String())
}

func parseToken(name, s string) (Coding, error) {
	if s == "" {
		return Coding{}, Errorf(CodeInvalidParameter, "%s has an empty value", name).At(name)
	}
	sys, code, bar := strings.Cut(s, "|")
	if !bar {
		return Coding{Code: s}, nil
	}
	if sys == "" && code == "" {
		return Coding{}, Errorf(CodeInvalidParameter, "%s must be system|code, |code, system| or code", name).At(name)
	}
	if sys == "" {
		sys = noSystem
	}
	return Coding{System: sys, Code: code}, nil
}

// noSystem marks "|code": the code must have no system.
const noSystem = "\x00none"

var datePrefixes = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

func parseDatePredicate(name, s string) (DatePredicate, error) {
	p := DatePredicate{Prefix: "eq"}
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		pre := s[:2]
		ok := false
		for _, x := range datePrefixes {
			if x == pre {
				ok = true
			}
		}
		if !ok {
			return p, Errorf(CodeInvalidParameter, "%s has an unknown prefix %q (use eq, ne, gt, lt, ge, le, sa, eb or ap)", name, safeName(pre)).At(name)
		}
		p.Prefix, s = pre, s[2:]
	}
	d, err := ParseDate(s)
	if err != nil {
		return p, Errorf(CodeInvalidParameter, "%s: %q is not a FHIR date or dateTime", name, truncate(safeName(s), 40)).At(name)
	}
	p.Value = d
	return p, nil
}

// Match reports whether r satisfies every filter of q (the type and patient
// are the caller's to check).
func (q *Query) Match(r *Resource) bool {
	for i := range q.Filters {
		if !q.Filters[i].Match(r) {
			return false
		}
	}
	return true
}

// Match reports whether r satisfies one filter.
func (f *Filter) Match(r *Resource) bool {
	ix := &r.Ix
	switch f.Param {
	case "code", "vaccine-code":
		return f.Not != anyToken(f.Tokens, ix.Code)
	case "category":
		return f.Not != anyToken(f.Tokens, ix.Category)
	case "clinical-status":
		return f.Not != anyToken(f.Tokens, []Coding{{System: "", Code: ix.ClinicalStatus}})
	case "status":
		return f.Not != anyPlain(f.Tokens, ix.Status)
	case "intent":
		return f.Not != anyPlain(f.Tokens, ix.Intent)
	case "_id":
		return f.Not != anyPlain(f.Tokens, r.ID)
	case "_lastUpdated":
		return anyDate(f.Dates, DateRange{ix.LastUpdated, ix.LastUpdated.Add(1)}, !ix.LastUpdated.IsZero())
	case "date", "onset-date", "authoredon", "effective":
		return anyDate(f.Dates, DateRange{ix.Start, ix.End}, !ix.Start.IsZero() || !ix.End.IsZero())
	}
	return false
}

func anyToken(want []Coding, have []Coding) bool {
	for _, w := range want {
		for _, h := range have {
			if w.Code != "" && w.Code != h.Code {
				continue
			}
			switch w.System {
			case "":
			case noSystem:
				if h.System != "" {
					continue
				}
			default:
				// clinical-status codes are indexed without a system
				if h.System != "" && h.System != w.System {
					continue
				}
			}
			return true
		}
	}
	return false
}

func anyPlain(want []Coding, have string) bool {
	for _, w := range want {
		if w.Code == have {
			return true
		}
	}
	return false
}

func anyDate(preds []DatePredicate, r DateRange, has bool) bool {
	if !has {
		return false
	}
	for _, p := range preds {
		if p.Matches(r) {
			return true
		}
	}
	return false
}

// Matches applies FHIR R4 date search semantics: the parameter and the
// resource value are both ranges.
func (p DatePredicate) Matches(r DateRange) bool {
	ps, pe := p.Value.Start, p.Value.End
	rs, re := r.Start, r.End
	if re.IsZero() {
		re = rs.Add(1)
	}
	contained := !rs.Before(ps) && !re.After(pe)
	switch p.Prefix {
	case "eq":
		return contained
	case "ne":
		return !contained
	case "gt":
		return re.After(pe)
	case "lt":
		return rs.Before(ps)
	case "ge":
		return re.After(pe) || contained
	case "le":
		return rs.Before(ps) || contained
	case "sa":
		return !rs.Before(pe)
	case "eb":
		return !re.After(ps)
	case "ap":
		return rs.Before(pe) && re.After(ps)
	}
	return false
}

func all(ss []string, f func(string) bool) bool {
	for _, s := range ss {
		if !f(s) {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a FHIR logical id: [A-Za-z0-9\-\.]{1,64}.
// Path tricks ("..", "/", "%2F") fail.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// safeName trims caller-supplied names before they are echoed in diagnostics.
func safeName(s string) string {
	s = truncate(s, 64)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// SortResources applies the query's sort; the default is newest first by
// clinical date, which is what a clinician reading a record expects.
func (q *Query) SortResources(rs []*Resource) {
	switch q.Sort {
	case "date":
		SortByDateAsc(rs)
	case "_lastUpdated":
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Ix.LastUpdated.Before(rs[j].Ix.LastUpdated) })
	case "-_lastUpdated":
		SortByLastUpdatedDesc(rs)
	default:
		SortByDateDesc(rs)
	}
}
