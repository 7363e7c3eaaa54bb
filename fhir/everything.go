package fhir

import (
	"bytes"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EverythingRequest is a parsed Patient/{id}/$everything: the whole record
// the caller may see, as a paged searchset.
type EverythingRequest struct {
	PatientID string
	Types     map[string]bool // _type: only these types (nil: all)
	Since     time.Time       // _since: meta.lastUpdated at or after
	Start     time.Time       // start: care dates on or after (undated resources stay)
	End       time.Time       // end: care dates on or before (undated resources stay)
	Query     *Query          // paging (_count, _offset) and ignored parameters
}

// EverythingParams are the input parameters $everything honours (the
// OperationDefinition is generated from them).
var EverythingParams = []SectionPart{
	{"_type", "code", "Only resources of these types (comma-separated)"},
	{"_since", "instant", "Only resources updated (meta.lastUpdated) at or after this instant; resources the source does not stamp with meta.lastUpdated are left out"},
	{"start", "date", "Only resources with care dates on or after this date (undated resources such as the Patient are always included)"},
	{"end", "date", "Only resources with care dates on or before this date (undated resources are always included)"},
	{"_count", "integer", "Page size (default 50, at most 1000)"},
	{"_offset", "integer", "Paging offset, as used in the Bundle's links"},
	{"_summary", "code", "count: the total only; true: the elements R4 marks summary; data: whole resources (gpgate shares no narrative)"},
	{"_elements", "string", "Only these top-level elements of each resource (comma-separated; mandatory elements are kept)"},
}

// EverythingValues turns the body of POST Patient/{id}/$everything into
// the parameters of ParseEverything: a Parameters resource
// (application/fhir+json; _type valueCode or valueString, repeatable; _since
// valueInstant or valueDateTime; start, end valueDate or valueDateTime;
// _count, _offset valueInteger or valuePositiveInt) or, when every value is
// primitive, application/x-www-form-urlencoded. An empty body asks for
// everything. A value of the wrong type is INVALID_PARAMETER; a body that is
// not a Parameters resource INVALID_RESOURCE.
func EverythingValues(body []byte, form bool) (url.Values, error) {
	v := url.Values{}
	if len(bytes.TrimSpace(body)) == 0 {
		return v, nil
	}
	if form {
		fv, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, Errorf(CodeInvalidParameter, "the form body could not be parsed")
		}
		return fv, nil
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name          string  `json:"name"`
			ValueCode     *string `json:"valueCode"`
			ValueString   *string `json:"valueString"`
			ValueURI      *string `json:"valueUri"`
			ValueInstant  *string `json:"valueInstant"`
			ValueDateTime *string `json:"valueDateTime"`
			ValueDate     *string `json:"valueDate"`
			ValueInteger  *int    `json:"valueInteger"`
			ValuePosInt   *int    `json:"valuePositiveInt"`
			ValueUnsigned *int    `json:"valueUnsignedInt"`
		} `json:"parameter"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil || dec.More() {
		return nil, Errorf(CodeInvalidResource, "the body is not a JSON Parameters resource")
	}
	if p.ResourceType != "Parameters" {
		return nil, Errorf(CodeInvalidResource, "the body must be a Parameters resource")
	}
	for _, prm := range p.Parameter {
		name := safeName(prm.Name)
		str := func(ps ...*string) (string, bool) {
			for _, s := range ps {
				if s != nil {
					return *s, true
				}
			}
			return "", false
		}
		var val string
		ok := false
		switch prm.Name {
		case "_type":
			val, ok = str(prm.ValueCode, prm.ValueString, prm.ValueURI)
		case "_since":
			val, ok = str(prm.ValueInstant, prm.ValueDateTime)
		case "start", "end":
			val, ok = str(prm.ValueDate, prm.ValueDateTime)
		case "_count", "_offset":
			for _, n := range []*int{prm.ValueInteger, prm.ValuePosInt, prm.ValueUnsigned} {
				if n != nil {
					val, ok = strconv.Itoa(*n), true
				}
			}
		default:
			// Unknown parameters go on to ParseEverything's lenient or
			// strict handling, with any primitive value.
			val, ok = str(prm.ValueCode, prm.ValueString, prm.ValueURI, prm.ValueInstant, prm.ValueDateTime, prm.ValueDate)
			ok = true
		}
		if !ok {
			return nil, Errorf(CodeInvalidParameter, "parameter %s has a value of the wrong type", name).At(name)
		}
		v.Add(prm.Name, val)
	}
	return v, nil
}

// ParseEverything reads the parameters of $everything: _type, _since,
// start, end, _count, _offset. Unknown parameters are ignored (and named in
// Query.Ignored) unless strict, when they are BAD_REQUEST.
func ParseEverything(patientID string, v url.Values, strict bool) (*EverythingRequest, error) {
	if !ValidID(patientID) {
		return nil, Errorf(CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	e := &EverythingRequest{PatientID: patientID, Query: &Query{Type: "Patient", Patient: patientID, Count: DefaultCount}}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sub, err := ParseSubset("", v["_summary"], v["_elements"])
	if err != nil {
		return nil, err
	}
	e.Query.Subset = sub
	for _, k := range keys {
		val := last(v[k])
		switch k {
		case "_summary", "_elements":
		case "_count", "_offset":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 1<<30 {
				return nil, Errorf(CodeInvalidParameter, "%s must be a non-negative integer", k).At(k)
			}
			if k == "_count" {
				e.Query.Count = min(n, MaxCount)
			} else {
				e.Query.Offset = n
			}
		case "_type":
			e.Types = map[string]bool{}
			for _, t := range strings.Split(strings.Join(v[k], ","), ",") {
				t = strings.TrimSpace(t)
				if !IsReadable(t) {
					return nil, Errorf(CodeInvalidParameter, "_type names a type that is not served").At("_type")
				}
				e.Types[t] = true
			}
		case "_since":
			t, err := ParseInstantLoose(val)
			if err != nil || val == "" {
				return nil, Errorf(CodeInvalidParameter, "_since must be an instant (YYYY-MM-DDThh:mm:ss+zz:zz)").At("_since")
			}
			e.Since = t
		case "start", "end":
			d, err := ParseDate(val)
			if err != nil {
				return nil, Errorf(CodeInvalidParameter, "%s must be a date", k).At(k)
			}
			if k == "start" {
				e.Start = d.Start
			} else {
				e.End = d.End
			}
		case "_format", "_pretty":
		default:
			if strict {
				return nil, Errorf(CodeBadRequest, "unknown parameter %q for $everything (Prefer: handling=strict)", safeName(k))
			}
			e.Query.Ignored = append(e.Query.Ignored, safeName(k))
		}
	}
	if !e.Start.IsZero() && !e.End.IsZero() && e.End.Before(e.Start) {
		return nil, Errorf(CodeInvalidParameter, "end is before start").At("end")
	}
	return e, nil
}

// Match reports whether r is in the answer: its type asked for, updated
// since _since, and its care dates overlapping [start, end] (a resource
// without a care date, such as the Patient or a Medication, always is).
func (e *EverythingRequest) Match(r *Resource) bool {
	if e.Types != nil && !e.Types[r.Type] {
		return false
	}
	if !e.Since.IsZero() && (r.Ix.LastUpdated.IsZero() || r.Ix.LastUpdated.Before(e.Since)) {
		return false
	}
	if r.Ix.Start.IsZero() && r.Ix.End.IsZero() {
		return true
	}
	end := r.Ix.End
	if end.IsZero() {
		end = r.Ix.Start
	}
	if !e.Start.IsZero() && end.Before(e.Start) {
		return false
	}
	if !e.End.IsZero() && !r.Ix.Start.IsZero() && !r.Ix.Start.Before(e.End) {
		return false
	}
	return true
}

// Page is one page of a search: the resources of the page, how many match
// in all, the query as applied (paging, ignored parameters) and warnings
// about the record (withheld items, areas unavailable).
type Page struct {
	Resources []*Resource
	// Included are the resources _include and _revinclude added (search
	// mode include); they are not counted in Total.
	Included []*Resource
	Total    int
	Query    *Query
	Warnings []Issue
	// Areas the decision let this answer draw from, and those of them it
	// could draw from as the summary view only.
	Areas, Summary Areas
}

// PageOf cuts the page of all that q asks for.
func PageOf(all []*Resource, q *Query) []*Resource {
	if q.Offset >= len(all) {
		return nil
	}
	end := min(len(all), q.Offset+q.Count)
	return all[q.Offset:end]
}

// Collection is a $getstructuredrecord answer: the resources of a
// collection Bundle, in order, and its warnings.
type Collection struct {
	Resources []*Resource
	Warnings  []Issue
}
