package fhir

import (
	"encoding/json"
	"sort"
	"strings"
)

// IncludeParam is a reference search parameter gpgate follows for _include
// and _revinclude: resources of Source hold, at Path, references to
// resources of Targets. The CapabilityStatement's searchInclude and
// searchRevInclude are generated from IncludeParams, and ParseQuery accepts
// exactly what it lists.
type IncludeParam struct {
	Source  string
	Name    string
	Path    []string // JSON element path to the Reference (arrays are walked)
	Targets []string
}

// Key is the include value form Source:name.
func (p *IncludeParam) Key() string { return p.Source + ":" + p.Name }

// IncludeParams are the references gpgate serves: between the resources of
// the dataset (AreaTable), each an R4 search parameter of its source type.
var IncludeParams = func() []IncludeParam {
	ps := []IncludeParam{
		{"MedicationRequest", "medication", []string{"medicationReference"}, []string{"Medication"}},
		{"MedicationStatement", "medication", []string{"medicationReference"}, []string{"Medication"}},
		{"DiagnosticReport", "result", []string{"result"}, []string{"Observation"}},
		{"DiagnosticReport", "specimen", []string{"specimen"}, []string{"Specimen"}},
		{"DiagnosticReport", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"Observation", "has-member", []string{"hasMember"}, []string{"Observation"}},
		{"Observation", "derived-from", []string{"derivedFrom"}, []string{"Observation"}},
		{"Observation", "specimen", []string{"specimen"}, []string{"Specimen"}},
		{"Observation", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"Condition", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"Encounter", "diagnosis", []string{"diagnosis", "condition"}, []string{"Condition", "Procedure"}},
		{"Procedure", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"MedicationRequest", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"ServiceRequest", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"Flag", "encounter", []string{"encounter"}, []string{"Encounter"}},
		{"Patient", "general-practitioner", []string{"generalPractitioner"}, []string{"Practitioner", "Organization"}},
		{"Patient", "organization", []string{"managingOrganization"}, []string{"Organization"}},
	}
	// Every clinical type points at its Patient: Type:patient (and
	// Type:subject where R4 has it).
	for _, typ := range TypesOf(AllAreas) {
		if _, ok := SearchParams[typ]; !ok || typ == "Patient" {
			continue
		}
		path := "subject"
		switch typ {
		case "AllergyIntolerance", "Immunization":
			path = "patient"
		}
		ps = append(ps, IncludeParam{typ, "patient", []string{path}, []string{"Patient"}})
		if path == "subject" {
			ps = append(ps, IncludeParam{typ, "subject", []string{path}, []string{"Patient"}})
		}
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Key() < ps[j].Key() })
	return ps
}()

// IncludesOf lists the include values (Source:name) whose source is typ,
// for _include on a typ search; RevIncludesOf those that can point at typ,
// for _revinclude.
func IncludesOf(typ string) []string {
	var out []string
	for i := range IncludeParams {
		if IncludeParams[i].Source == typ {
			out = append(out, IncludeParams[i].Key())
		}
	}
	return out
}

// RevIncludesOf lists the include values that can point at typ.
func RevIncludesOf(typ string) []string {
	var out []string
	for i := range IncludeParams {
		if containsString(IncludeParams[i].Targets, typ) {
			out = append(out, IncludeParams[i].Key())
		}
	}
	return out
}

// Include is one parsed _include or _revinclude value.
type Include struct {
	Param   *IncludeParam
	Target  string // the optional third part: only references to this type
	Iterate bool   // :iterate — also follow from what was included
	Rev     bool   // _revinclude
}

// String is the value as a client writes it.
func (inc Include) String() string {
	s := inc.Param.Key()
	if inc.Target != "" {
		s += ":" + inc.Target
	}
	return s
}

// parseInclude reads one _include / _revinclude value for a search on typ.
// A value gpgate does not serve is NOT_IMPLEMENTED, naming what it serves.
func parseInclude(typ, name, modifier, value string) (Include, error) {
	inc := Include{Rev: name == "_revinclude"}
	switch modifier {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return inc, Errorf(CodeInvalidParameter, "%s takes no modifier :%s (only :iterate)", name, safeName(modifier)).At(name)
	}
	parts := strings.Split(value, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return inc, Errorf(CodeInvalidParameter, "%s must be SourceType:parameter[:TargetType]", name).At(name)
	}
	for i := range IncludeParams {
		p := &IncludeParams[i]
		if p.Source == parts[0] && p.Name == parts[1] {
			inc.Param = p
		}
	}
	supported := IncludesOf(typ)
	if inc.Rev {
		supported = RevIncludesOf(typ)
	}
	if inc.Param == nil {
		list := "none"
		if len(supported) > 0 {
			list = strings.Join(supported, ", ")
		}
		return inc, Errorf(CodeNotImplemented, "%s=%s is not supported; on %s gpgate serves: %s", name, safeName(value), typ, list).At(name)
	}
	if len(parts) == 3 {
		if !containsString(inc.Param.Targets, parts[2]) {
			return inc, Errorf(CodeInvalidParameter, "%s: %s does not point at %s", name, inc.Param.Key(), safeName(parts[2])).At(name)
		}
		inc.Target = parts[2]
	}
	// Without :iterate an include starts from the matches: it must be of
	// the searched type (or, reversed, point at it).
	if !inc.Iterate {
		if !inc.Rev && inc.Param.Source != typ {
			return inc, Errorf(CodeInvalidParameter, "_include=%s does not start from %s (a %s search); add :iterate to follow it from included resources", inc, typ, typ).At(name)
		}
		if inc.Rev && !containsString(inc.Param.Targets, typ) {
			return inc, Errorf(CodeInvalidParameter, "_revinclude=%s does not point at %s (a %s search); add :iterate to follow it from included resources", inc, typ, typ).At(name)
		}
	}
	return inc, nil
}

// References returns the relative references ("Type/id") r holds at the
// parameter's path.
func (p *IncludeParam) References(r *Resource) []string {
	if r.Type != p.Source {
		return nil
	}
	var out []string
	var walk func(raw json.RawMessage, path []string)
	walk = func(raw json.RawMessage, path []string) {
		raw = json.RawMessage(strings.TrimSpace(string(raw)))
		if len(raw) == 0 {
			return
		}
		if raw[0] == '[' {
			var items []json.RawMessage
			if json.Unmarshal(raw, &items) == nil {
				for _, it := range items {
					walk(it, path)
				}
			}
			return
		}
		if len(path) == 0 {
			var ref struct {
				Reference string `json:"reference"`
			}
			if json.Unmarshal(raw, &ref) == nil && ref.Reference != "" {
				out = append(out, ref.Reference)
			}
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return
		}
		if v, ok := obj[path[0]]; ok {
			walk(v, path[1:])
		}
	}
	walk(r.JSON, p.Path)
	return out
}

// maxIncludeRounds bounds :iterate.
const maxIncludeRounds = 8

// Included returns what incs add to page from the resources of one
// (already redacted) record: the resources page's references point at
// (_include) and those pointing at page (_revinclude), then, for :iterate
// values, the same from what was added, round by round. Nothing in page is
// returned again, and nothing twice.
func Included(all []*Resource, page []*Resource, incs []Include) []*Resource {
	if len(incs) == 0 || len(page) == 0 {
		return nil
	}
	index := make(map[string]*Resource, len(all))
	for _, r := range all {
		index[r.Type+"/"+r.ID] = r
	}
	seen := make(map[string]bool, len(page))
	for _, r := range page {
		seen[r.Type+"/"+r.ID] = true
	}
	var out []*Resource
	frontier := page
	for round := 0; round < maxIncludeRounds && len(frontier) > 0; round++ {
		var added []*Resource
		add := func(r *Resource) {
			if key := r.Type + "/" + r.ID; !seen[key] {
				seen[key] = true
				added = append(added, r)
			}
		}
		for _, inc := range incs {
			if round > 0 && !inc.Iterate {
				continue
			}
			p := inc.Param
			if !inc.Rev {
				for _, r := range frontier {
					for _, ref := range p.References(r) {
						if t, _, ok := strings.Cut(ref, "/"); !ok || (inc.Target != "" && t != inc.Target) || !containsString(p.Targets, t) {
							continue
						}
						if x := index[ref]; x != nil {
							add(x)
						}
					}
				}
				continue
			}
			targets := map[string]bool{}
			for _, r := range frontier {
				if containsString(p.Targets, r.Type) && (inc.Target == "" || inc.Target == r.Type) {
					targets[r.Type+"/"+r.ID] = true
				}
			}
			if len(targets) == 0 {
				continue
			}
			for _, r := range all {
				if r.Type != p.Source || seen[r.Type+"/"+r.ID] {
					continue
				}
				if !anyIn(References(r.JSON), targets) {
					continue // cheap byte scan first
				}
				if anyIn(p.References(r), targets) {
					add(r)
				}
			}
		}
		out = append(out, added...)
		frontier = added
	}
	return out
}

func anyIn(refs []string, set map[string]bool) bool {
	for _, r := range refs {
		if set[r] {
			return true
		}
	}
	return false
}
