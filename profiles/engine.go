package profiles

import (
	"encoding/json"

	"fmt"
	"github.com/gpgate/gpgate/fhir"
	"sort"
	"strconv"
	"strings"
)

type obj = map[string]any

// node is one element instance found by walking an element id.
type node struct {
	path string // FHIRPath with indexes
	key  string // JSON property name (for a choice, "valueQuantity")
	v    any
	// extOnly marks a primitive present only by its extensions (the JSON
	// "_name" form, e.g. a data-absent-reason): it counts for cardinality
	// but has no value to check.
	extOnly bool
}

// checker collects problems for one resource.
type checker struct {
	problems []Problem
}

func (c *checker) add(path, rule string, sev Severity, profile, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Rule: rule, Message: fmt.Sprintf(format, args...), Severity: sev, Profile: profile})
}

// splitID splits an element id into its segments after the resource type:
// "Observation.component:SystolicBP.value[x]" -> [component:SystolicBP value[x]].
func splitID(id string) []string {
	parts := strings.Split(id, ".")
	return parts[1:]
}

// children returns the instances of one segment ("name", "name[x]" or
// "name:slice") in a parent object, arrays expanded.
func children(parent node, seg string) []node {
	p, ok := parent.v.(obj)
	if !ok {
		return nil
	}
	name, slice, _ := strings.Cut(seg, ":")
	var keys []string
	if prefix, ok := strings.CutSuffix(name, "[x]"); ok {
		for k := range p {
			if len(k) > len(prefix) && strings.HasPrefix(k, prefix) && k[len(prefix)] >= 'A' && k[len(prefix)] <= 'Z' {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
	} else if _, ok := p[name]; ok {
		keys = []string{name}
	}
	// A primitive may be present by its extensions alone ("_name").
	var extOnly []string
	for k := range p {
		base, ok := strings.CutPrefix(k, "_")
		if !ok {
			continue
		}
		if _, plain := p[base]; plain {
			continue
		}
		if prefix, ok := strings.CutSuffix(name, "[x]"); ok {
			if len(base) > len(prefix) && strings.HasPrefix(base, prefix) && base[len(prefix)] >= 'A' && base[len(prefix)] <= 'Z' {
				extOnly = append(extOnly, k)
			}
		} else if base == name {
			extOnly = append(extOnly, k)
		}
	}
	sort.Strings(extOnly)
	var match func(any) bool
	if slice != "" {
		match = slices[name+":"+slice]
		if match == nil { // a slice gpgate does not cover matches nothing
			return nil
		}
	}
	var out []node
	for _, k := range keys {
		switch v := p[k].(type) {
		case []any:
			for i, e := range v {
				if match == nil || match(e) {
					out = append(out, node{path: parent.path + "." + k + "[" + strconv.Itoa(i) + "]", key: k, v: e})
				}
			}
		case nil:
			// JSON null is not a value
		default:
			if match == nil || match(v) {
				out = append(out, node{path: parent.path + "." + k, key: k, v: v})
			}
		}
	}
	if slice == "" {
		for _, k := range extOnly {
			out = append(out, node{path: parent.path + "." + k[1:], key: k[1:], v: p[k], extOnly: true})
		}
	}
	return out
}

// walk returns every instance of the element reached by segs from roots.
func walk(roots []node, segs []string) []node {
	cur := roots
	for _, s := range segs {
		var next []node
		for _, n := range cur {
			next = append(next, children(n, s)...)
		}
		if len(next) == 0 {
			return nil
		}
		cur = next
	}
	return cur
}

// apply checks one table row against a resource.
func (c *checker) apply(p *profile, r *rule, root node) {
	segs := splitID(r.el)
	if len(segs) == 0 {
		return
	}
	parents := walk([]node{root}, segs[:len(segs)-1])
	last := segs[len(segs)-1]
	url := p.url
	if r.base {
		url = ""
	}
	for _, parent := range parents {
		kids := children(parent, last)
		where := parent.path + "." + last
		if len(kids) < r.min {
			if r.min == 1 {
				c.add(where, r.el, Error, url, "%s is required", elementName(r.el))
			} else {
				c.add(where, r.el, Error, url, "%s needs at least %d, has %d", elementName(r.el), r.min, len(kids))
			}
		}
		if r.absent && len(kids) > 0 {
			c.add(kids[0].path, r.el, Error, url, "%s is not allowed by %s", elementName(r.el), p.name())
		}
		if r.max > 0 && len(kids) > r.max {
			c.add(kids[r.max].path, r.el, Error, url, "%s allows at most %d, has %d", elementName(r.el), r.max, len(kids))
		}
		for _, k := range kids {
			if !k.extOnly {
				c.value(p, r, url, k)
			}
		}
	}
}

// value checks one instance against the row's type, fixed value and binding.
func (c *checker) value(p *profile, r *rule, url string, k node) {
	if r.typ != "" {
		name := strings.TrimSuffix(elementName(r.el), "[x]")
		if i := strings.LastIndex(name, "."); i >= 0 {
			name = name[i+1:]
		}
		if k.key != name+r.typ {
			c.add(k.path, r.el, Error, url, "%s must be a %s, found %s", elementName(r.el), r.typ, k.key)
			return
		}
	}
	if r.fixed != "" {
		if s, ok := primitive(k.v); !ok || s != r.fixed {
			c.add(k.path, r.el, Error, url, "must be %q (fixed by %s), found %s", r.fixed, p.name(), show(k.v))
		}
	}
	if r.vs != nil {
		c.binding(r, url, k)
	}
}

// binding checks a code, Coding or CodeableConcept against a value set.
func (c *checker) binding(r *rule, url string, k node) {
	v := r.vs
	weak := Error
	if r.ext {
		weak = Warning
	}
	switch x := k.v.(type) {
	case string:
		if !v.hasCode(x) {
			c.add(k.path, r.el, Error, url, "code %q is not in %s", x, v.url)
		}
	case obj:
		var codings []any
		if cs, ok := x["coding"].([]any); ok {
			codings = cs
		} else if _, ok := x["system"]; ok { // a Coding
			codings = []any{x}
		}
		found, hint := false, ""
		for i, e := range codings {
			cd, _ := e.(obj)
			sys, _ := cd["system"].(string)
			code, _ := cd["code"].(string)
			if h, ok := legacySystems[sys]; ok {
				hint = "; " + sys + " is " + h
			}
			in, known := v.hasCoding(sys, code)
			if in {
				found = true
			} else if known {
				path := k.path
				if _, ok := x["coding"]; ok {
					path += ".coding[" + strconv.Itoa(i) + "]"
				}
				c.add(path, r.el, Error, url, "code %q is not in %s", code, v.url)
				found = true // reported once, as a bad code
			}
		}
		if !found {
			c.add(k.path, r.el, weak, url, "no coding from %s%s", v.url, hint)
		}
	default:
		c.add(k.path, r.el, Error, url, "expected a code bound to %s, found %s", v.url, show(k.v))
	}
}

// legacySystems are code systems of earlier UK Core releases that sources
// still send, with what replaced them; named in the message so the fix is
// obvious.
var legacySystems = map[string]string{
	"https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus": "the pre-2.0 UK Core system; UK Core 2.6.1 uses " + fhir.NHSNumberVerificationSystem,
}

// elementName is the element id without slice names, for messages.
func elementName(id string) string {
	segs := strings.Split(id, ".")
	for i, s := range segs {
		if n, sl, ok := strings.Cut(s, ":"); ok {
			segs[i] = n + "(" + sl + ")"
		}
	}
	return strings.Join(segs, ".")
}

func primitive(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// show renders a value briefly for a message. Values are codes and
// structure, never patient identifiers: messages about NHS numbers do not
// quote them.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return strconv.Quote(x)
	case obj:
		return "an object"
	case []any:
		return "a list"
	}
	s, _ := primitive(v)
	return s
}

// Slice discriminators.

func fieldIs(field, value string) func(any) bool {
	return func(v any) bool {
		o, ok := v.(obj)
		if !ok {
			return false
		}
		s, _ := o[field].(string)
		return s == value
	}
}

func conceptHas(system, code string) func(any) bool {
	return func(v any) bool {
		o, _ := v.(obj)
		cs, _ := o["coding"].([]any)
		for _, e := range cs {
			cd, _ := e.(obj)
			s, _ := cd["system"].(string)
			k, _ := cd["code"].(string)
			if s == system && k == code {
				return true
			}
		}
		return false
	}
}

func componentCode(loinc string) func(any) bool {
	has := conceptHas("http://loinc.org", loinc)
	return func(v any) bool {
		o, _ := v.(obj)
		return has(o["code"])
	}
}
