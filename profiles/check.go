package profiles

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Check checks one resource: the R4 base rules of its type, every profile
// it claims in meta.profile, gpgate's coded-only rule (CodedOnly) and
// identifier rules.
// A Bundle is checked as CheckBundle checks it, with default options.
// It returns nil when the resource satisfies them all.
func Check(r *fhir.Resource) []Problem {
	if r == nil {
		return []Problem{{Path: "", Rule: "json", Message: "no resource", Severity: Error}}
	}
	return CheckJSON(r.JSON)
}

// CheckJSON is Check on raw JSON. Input that is not a JSON object with a
// resourceType is one problem, never a panic.
func CheckJSON(raw []byte) []Problem {
	root, p := decode(raw)
	if p != nil {
		return []Problem{*p}
	}
	if t, _ := root["resourceType"].(string); t == "Bundle" {
		return checkBundle(root, bundleConfig{})
	}
	c := &checker{}
	c.resource(root, "")
	return sortProblems(c.problems)
}

func decode(raw []byte) (obj, *Problem) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, &Problem{Rule: "json", Message: "not valid JSON: " + err.Error(), Severity: Error}
	}
	if d.More() {
		return nil, &Problem{Rule: "json", Message: "trailing data after the JSON object", Severity: Error}
	}
	root, ok := v.(obj)
	if !ok {
		return nil, &Problem{Rule: "json", Message: "a resource is a JSON object", Severity: Error}
	}
	if t, ok := root["resourceType"].(string); !ok || t == "" {
		return nil, &Problem{Path: "", Rule: "json", Message: "resourceType is required", Severity: Error}
	}
	return root, nil
}

// resource checks one resource object; prefix is its path inside a Bundle
// ("Bundle.entry[3].resource"), or "" at the top, where the path starts
// with the resource type.
func (c *checker) resource(res obj, prefix string) {
	typ, _ := res["resourceType"].(string)
	path := prefix
	if path == "" {
		path = typ
	}
	root := node{path: path, v: res}

	applied := map[*profile]bool{}
	claimed := claimedProfiles(res)
	if base := baseOf[typ]; base != nil {
		for i := range base.rules {
			if base.rules[i].base {
				c.apply(base, &base.rules[i], root)
			}
		}
		if len(claimed) == 0 {
			c.add(path+".meta.profile", "gpgate-profile-claimed", Warning, "", "%s claims no UK Core profile (expected %s)", typ, base.url)
		}
	}
	for i, u := range claimed {
		at := path + ".meta.profile[" + itoa(i) + "]"
		canon, _, _ := strings.Cut(u, "|")
		p := table[canon]
		switch {
		case p == nil:
			c.add(at, "gpgate-profile-known", Error, "", "claimed profile %q is not one gpgate checks, so it cannot be claimed", u)
		case p.typ != typ:
			c.add(at, "gpgate-profile-type", Error, p.url, "%s is a profile on %s, not %s", p.name(), p.typ, typ)
		case !applied[p]:
			applied[p] = true
			for j := range p.rules {
				c.apply(p, &p.rules[j], root)
			}
			if p.check != nil {
				p.check(c, res, path)
			}
		}
	}
	if inv := invariants[typ]; inv != nil {
		inv(c, res, path)
	}
	c.generic(res, path, "", true)
	c.codedOnly(res, prefix)
}

func claimedProfiles(res obj) []string {
	m, _ := res["meta"].(obj)
	l, _ := m["profile"].([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// generic walks the whole resource for the rules that hold on any element:
// identifier systems, extension shape. key is the property v was found
// under; isRoot marks a resource (top level or contained). The coded-only
// rule is CodedOnly's (coded.go), which decides by R4 type, not by name.
func (c *checker) generic(v any, path, key string, isRoot bool) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			c.generic(e, path+"["+itoa(i)+"]", key, false)
		}
	case obj:
		if !isRoot {
			c.object(x, path, key)
		}
		for _, k := range sortedKeys(x) {
			if k == "resourceType" {
				continue
			}
			e := x[k]
			p := path + "." + k
			if k == "contained" {
				if l, ok := e.([]any); ok {
					for i, r := range l {
						if ro, ok := r.(obj); ok {
							c.generic(ro, p+"["+itoa(i)+"]", k, true)
						}
					}
					continue
				}
			}
			c.generic(e, p, k, false)
		}
	}
}

// object applies the per-datatype rules to one non-resource object.
func (c *checker) object(x obj, path, key string) {
	// Extensions: url required (Extension.url 1..1), ext-1 value xor nested.
	if key == "extension" || key == "modifierExtension" {
		if u, _ := x["url"].(string); u == "" {
			c.add(path+".url", "Extension.url", Error, "", "an extension needs a url")
		}
		hasValue := false
		for k := range x {
			if strings.HasPrefix(k, "value") && len(k) > 5 && k[5] >= 'A' && k[5] <= 'Z' {
				hasValue = true
			}
		}
		nested, _ := x["extension"].([]any)
		if hasValue == (len(nested) > 0) {
			c.add(path, "ext-1", Error, "", "an extension has either a value or nested extensions, not both and not neither")
		}
	}
	// Identifier systems gpgate relies on, wherever they appear (Patient,
	// Organization, Practitioner, and Reference.identifier).
	sys, _ := x["system"].(string)
	if sys == "" || key != "identifier" {
		return
	}
	val, hasVal := x["value"].(string)
	if !hasVal {
		// a missing value is the table's (Patient.identifier:nhsNumber.value, ...)
		if _, present := x["value"]; present {
			c.add(path+".value", "gpgate-identifier", Error, "", "an identifier value is a string")
		} else if strings.HasPrefix(sys, "https://fhir.nhs.uk/Id/") && sys != fhir.NHSNumberSystem && sys != fhir.ODSSystem && sys != odsSiteSystem {
			c.add(path+".value", "gpgate-identifier", Error, "", "an identifier with system %s needs a value", sys)
		}
		return
	}
	switch sys {
	case fhir.NHSNumberSystem:
		if !fhir.ValidNHSNumber(val) {
			// never quote the value: it is a patient identifier
			c.add(path+".value", "gpgate-nhs-number", Error, "", "an NHS number is ten digits with a valid Modulus 11 check digit")
		}
	case fhir.ODSSystem, odsSiteSystem:
		if !odsCode(val) {
			c.add(path+".value", "gpgate-ods-code", Error, "", "an ODS code is 3 to 12 upper-case letters and digits, found %s", show(x["value"]))
		}
	case sdsUserSystem, sdsRoleProfileSys:
		if !sdsID(val) {
			c.add(path+".value", "gpgate-sds-id", Error, "", "an SDS identifier is letters and digits, found %s", show(x["value"]))
		}
	}
}

func odsCode(s string) bool {
	if len(s) < 3 || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			return false
		}
	}
	return true
}

func sdsID(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}
