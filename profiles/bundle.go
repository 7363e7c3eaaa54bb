package profiles

import (
	"encoding/json"
	"strings"
)

// BundleOption configures CheckBundle.
type BundleOption func(*bundleConfig)

type bundleConfig struct {
	resolve bool
}

// ResolveReferences makes CheckBundle require that every Reference.reference
// in an entry resolves inside the Bundle: "Type/id" to an entry whose fullUrl
// ends in /Type/id, urn:uuid and absolute URLs on the Bundle's own base to an
// entry's fullUrl, "#id" to a contained resource. Use it for collection
// Bundles (a patient's record is closed); a searchset need not be closed.
func ResolveReferences() BundleOption {
	return func(c *bundleConfig) { c.resolve = true }
}

// CheckBundle checks a Bundle: the Bundle's own rules (R4 bdl-* invariants,
// UKCore-Bundle; gpgate's: a searchset has a total, every entry has a
// fullUrl matching its resource and a resource, search.mode is valid), then
// Check on every entry resource, with paths starting at
// "Bundle.entry[i].resource". Input that is not a Bundle is one problem.
func CheckBundle(raw []byte, opts ...BundleOption) []Problem {
	var cfg bundleConfig
	for _, o := range opts {
		o(&cfg)
	}
	root, p := decode(raw)
	if p != nil {
		return []Problem{*p}
	}
	if t := root["resourceType"]; t != "Bundle" {
		return []Problem{{Path: "", Rule: "json", Message: "not a Bundle", Severity: Error}}
	}
	return checkBundle(root, cfg)
}

func checkBundle(root obj, cfg bundleConfig) []Problem {
	c := &checker{}
	entries := asList(root["entry"])

	// The Bundle's own elements, without the entry resources (each is
	// checked on its own below).
	shell := make(obj, len(root))
	for k, v := range root {
		shell[k] = v
	}
	bare := make([]any, len(entries))
	for i, e := range entries {
		eo, ok := e.(obj)
		if !ok {
			bare[i] = e
			continue
		}
		b := make(obj, len(eo))
		for k, v := range eo {
			if k != "resource" {
				b[k] = v
			}
		}
		bare[i] = b
	}
	if _, ok := root["entry"]; ok {
		shell["entry"] = bare
	}
	c.resource(shell, "")

	typ, _ := root["type"].(string)
	if _, ok := root["total"]; ok && typ != "searchset" && typ != "history" {
		c.add("Bundle.total", "bdl-1", Error, "", "total only on a searchset or history Bundle")
	}
	matches := 0
	seen := map[string]int{}
	for i, e := range entries {
		at := "Bundle.entry[" + itoa(i) + "]"
		eo, ok := e.(obj)
		if !ok {
			c.add(at, "json", Error, "", "an entry is a JSON object")
			continue
		}
		if has(eo, "search") && typ != "searchset" {
			c.add(at+".search", "bdl-2", Error, "", "entry.search only in a searchset")
		}
		needReq := typ == "batch" || typ == "transaction" || typ == "history"
		if has(eo, "request") != needReq {
			c.add(at+".request", "bdl-3", Error, "", "entry.request is required in batch, transaction and history Bundles and prohibited otherwise")
		}
		needResp := typ == "batch-response" || typ == "transaction-response" || typ == "history"
		if has(eo, "response") != needResp {
			c.add(at+".response", "bdl-4", Error, "", "entry.response is required in response and history Bundles and prohibited otherwise")
		}
		if typ == "searchset" {
			s, _ := eo["search"].(obj)
			mode, _ := s["mode"].(string)
			if mode == "" {
				c.add(at+".search.mode", "gpgate-search-mode", Warning, "", "a searchset entry says whether it is a match or an include")
			}
			if mode == "match" {
				matches++
			}
		}
		full, _ := eo["fullUrl"].(string)
		res, resOK := eo["resource"].(obj)
		if !resOK {
			if !has(eo, "request") && !has(eo, "response") {
				c.add(at+".resource", "bdl-5", Error, "", "an entry has a resource")
			} else if typ == "searchset" || typ == "collection" {
				c.add(at+".resource", "gpgate-bundle-entry", Error, "", "an entry has a resource")
			}
		}
		if full == "" {
			if resOK {
				c.add(at+".fullUrl", "gpgate-bundle-fullurl", Error, "", "an entry has a fullUrl")
			}
		} else {
			if strings.Contains(full, "/_history/") {
				c.add(at+".fullUrl", "bdl-8", Error, "", "fullUrl is not a version-specific reference")
			}
			if resOK {
				rt, _ := res["resourceType"].(string)
				id, _ := res["id"].(string)
				if !strings.HasPrefix(full, "urn:") && !(full == rt+"/"+id || strings.HasSuffix(full, "/"+rt+"/"+id)) {
					c.add(at+".fullUrl", "gpgate-bundle-fullurl", Error, "", "fullUrl does not end in the entry's %s/%s", rt, id)
				}
			}
			if typ != "history" {
				if j, dup := seen[full]; dup {
					c.add(at+".fullUrl", "bdl-7", Error, "", "fullUrl repeats entry %d's", j)
				} else {
					seen[full] = i
				}
			}
		}
		if resOK {
			if _, ok := res["resourceType"].(string); !ok {
				c.add(at+".resource.resourceType", "json", Error, "", "resourceType is required")
			} else {
				c.resource(res, at+".resource")
			}
		}
	}
	if typ == "searchset" {
		switch t := root["total"].(type) {
		case nil:
			c.add("Bundle.total", "gpgate-searchset-total", Error, "", "a searchset says its total")
		case json.Number:
			n, err := t.Int64()
			if err != nil || n < 0 {
				c.add("Bundle.total", "gpgate-searchset-total", Error, "", "total is an unsignedInt")
			} else if n < int64(matches) {
				c.add("Bundle.total", "gpgate-searchset-total", Error, "", "total %d is less than the %d matches on this page", n, matches)
			}
		default:
			c.add("Bundle.total", "gpgate-searchset-total", Error, "", "total is an unsignedInt")
		}
	}
	if cfg.resolve {
		c.resolveReferences(entries)
	}
	return sortProblems(c.problems)
}

// resolveReferences reports every reference in an entry that does not
// resolve inside the Bundle.
func (c *checker) resolveReferences(entries []any) {
	full := map[string]bool{}
	tails := map[string]bool{}
	bases := map[string]bool{}
	for _, e := range entries {
		eo, _ := e.(obj)
		u, _ := eo["fullUrl"].(string)
		if u == "" {
			continue
		}
		full[u] = true
		if base, tail, ok := splitTail(u); ok {
			tails[tail] = true
			bases[base] = true
		}
	}
	for i, e := range entries {
		eo, _ := e.(obj)
		res, ok := eo["resource"].(obj)
		if !ok {
			continue
		}
		contained := map[string]bool{}
		for _, cr := range asList(res["contained"]) {
			co, _ := cr.(obj)
			if id, _ := co["id"].(string); id != "" {
				contained[id] = true
			}
		}
		at := "Bundle.entry[" + itoa(i) + "].resource"
		eachReference(res, at, func(path, ref string) {
			if !resolves(ref, full, tails, bases, contained) {
				c.add(path, "gpgate-reference-resolvable", Error, "", "reference %s does not resolve to an entry of the Bundle", show(ref))
			}
		})
	}
}

func resolves(ref string, full, tails, bases, contained map[string]bool) bool {
	switch {
	case ref == "":
		return true // identifier-only or display-only references are not checked
	case strings.HasPrefix(ref, "#"):
		return ref == "#" || contained[ref[1:]]
	case full[ref]:
		return true
	case strings.HasPrefix(ref, "urn:"):
		return false
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
		if full[ref] {
			return true
		}
	}
	if strings.Contains(ref, "://") {
		base, _, ok := splitTail(ref)
		// an absolute reference to another server is out of scope
		return ok && !bases[base]
	}
	return tails[ref]
}

// splitTail splits ".../Type/id" into base and "Type/id".
func splitTail(u string) (base, tail string, ok bool) {
	i := strings.LastIndex(u, "/")
	if i <= 0 {
		return "", "", false
	}
	j := strings.LastIndex(u[:i], "/")
	if j < 0 {
		return "", u, true
	}
	return u[:j], u[j+1:], true
}

// eachReference calls fn for every Reference.reference in v (a string
// property named reference on an object), not descending into contained
// resources' own ids.
func eachReference(v any, path string, fn func(path, ref string)) {
	switch x := v.(type) {
	case obj:
		for _, k := range sortedKeys(x) {
			if k == "reference" {
				if s, ok := x[k].(string); ok {
					fn(path+".reference", s)
				}
				continue
			}
			eachReference(x[k], path+"."+k, fn)
		}
	case []any:
		for i, e := range x {
			eachReference(e, path+"["+itoa(i)+"]", fn)
		}
	}
}
