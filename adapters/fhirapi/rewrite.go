package fhirapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// abbrev names a type in local ids (short, so upstream ids fit).
var abbrev = map[string]string{
	"Organization": "org", "Practitioner": "prac", "Condition": "cond", "MedicationStatement": "ms",
	"MedicationRequest": "mr", "Medication": "med", "AllergyIntolerance": "alg", "Flag": "flag",
	"Procedure": "proc", "Observation": "obs", "DiagnosticReport": "dr", "Specimen": "spec",
	"Immunization": "imm", "Encounter": "enc", "ServiceRequest": "sr",
}

var hashEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// maxLocal is how long the local part of a resource id may be: ids are at
// most 64 characters and the patient id with its hyphen takes 18.
const maxLocal = 64 - 18

// localID is the record-local id of an upstream resource: a short type
// prefix and the upstream id, or a hash of both when that would be too long
// or not an id.
func localID(typ, upstream string) string {
	pre := abbrev[typ]
	if pre == "" {
		pre = strings.ToLower(typ)
	}
	if l := pre + "-" + upstream; len(l) <= maxLocal && fhir.ValidID(l) {
		return l
	}
	sum := sha256.Sum256([]byte(typ + "/" + upstream))
	return pre + "-h" + hashEnc.EncodeToString(sum[:15])
}

// profileOf picks the UK Core profile a resource claims: a blood-pressure
// panel claims the BP profile, a laboratory Observation the lab profile.
func profileOf(r *fhir.Resource) string {
	if r.Type == "Observation" {
		if fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
			return fhir.ProfileBloodPressure
		}
		if fhir.HasCoding(r.Ix.Category, fhir.ObservationCategorySystem, "laboratory") {
			return fhir.ProfileObservationLab
		}
	}
	return fhir.ProfileFor(r.Type)
}

// rewriter re-identifies upstream resources: each kept resource gets its
// gpgate id, every reference to a kept resource is rewritten to it, and every
// other reference is dropped (a Reference that also carries an identifier
// keeps the identifier: a logical reference, such as a practice's ODS code).
type rewriter struct {
	base string            // upstream base URL, no trailing slash
	refs map[string]string // "Type/upstreamID" and fullUrl -> "Type/gpgateID"
}

func (w *rewriter) resolve(ref string) (string, bool) {
	if to, ok := w.refs[ref]; ok {
		return to, true
	}
	rel := ref
	if strings.Contains(ref, "://") {
		var ok bool
		if rel, ok = strings.CutPrefix(ref, w.base+"/"); !ok {
			return "", false
		}
	}
	if i := strings.Index(rel, "/_history/"); i >= 0 {
		rel = rel[:i]
	}
	to, ok := w.refs[rel]
	return to, ok
}

// Rewrite returns the resource's JSON with its new id, a meta of profile,
// lastUpdated and security labels only, no narrative, and its references
// rewritten or dropped.
func (w *rewriter) Rewrite(raw []byte, newID, profile string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("fhirapi: resource: %w", err)
	}
	m["id"] = newID
	delete(m, "text")
	meta := map[string]any{"profile": []any{profile}}
	if old, ok := m["meta"].(map[string]any); ok {
		for _, k := range []string{"lastUpdated", "security"} {
			if v, ok := old[k]; ok {
				meta[k] = v
			}
		}
	}
	m["meta"] = meta
	typ, _ := m["resourceType"].(string)
	if typ == "" || !w.keepRef(m) {
		return nil, fmt.Errorf("fhirapi: not a resource")
	}
	w.walk(typ, "", m)
	return json.Marshal(m)
}

// requiredRef names, per resource type, the backbone elements (by path)
// that exist to carry one required reference (R4 cardinality 1..1): when that
// reference is dropped the element goes with it, or the resource would no
// longer be valid.
var requiredRef = map[string]map[string]string{
	"Patient":          {"link": "other"},
	"Encounter":        {"location": "location", "diagnosis": "condition"},
	"Procedure":        {"performer": "actor", "focalDevice": "manipulated"},
	"Immunization":     {"performer": "actor"},
	"DiagnosticReport": {"media": "link"},
	"Medication":       {"ingredient": "itemReference"},
}

// walk rewrites the references under m (the element at path, "" for the
// resource) and reports whether m stays: an element left empty, or one that
// lost its required reference, goes.
func (w *rewriter) walk(typ, path string, m map[string]any) bool {
	for k, v := range m {
		child := k
		if path != "" {
			child = path + "." + k
		}
		switch x := v.(type) {
		case map[string]any:
			if !w.keepRef(x) || !w.walk(typ, child, x) {
				delete(m, k)
				if path != "" && requiredRef[typ][path] == k {
					return false
				}
			}
		case []any:
			out := x[:0]
			for _, it := range x {
				if o, ok := it.(map[string]any); ok {
					if !w.keepRef(o) || !w.walk(typ, child, o) {
						continue
					}
				}
				out = append(out, it)
			}
			if len(out) == 0 {
				delete(m, k)
			} else {
				m[k] = out
			}
		}
	}
	return len(m) > 0
}

// keepRef rewrites o's reference when o is a Reference and reports whether o
// stays. Contained references ("#id") stay as they are.
func (w *rewriter) keepRef(o map[string]any) bool {
	r, ok := o["reference"].(string)
	if !ok {
		return true
	}
	if strings.HasPrefix(r, "#") {
		return true
	}
	if to, ok := w.resolve(r); ok {
		o["reference"] = to
		return true
	}
	delete(o, "reference")
	if _, ok := o["identifier"]; ok {
		delete(o, "display")
		return true
	}
	return false
}
