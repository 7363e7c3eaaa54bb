package conformance

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ---- what FHIR clients send ----

// checkClientInteractions: the same search by GET, by POST _search and as
// a compartment answers the same total; _summary=count answers it with no
// entries; $everything by POST answers what GET does; HEAD answers GET's
// status and headers without a body; gzip when asked.
func (r *runner) checkClientInteractions(ctx context.Context, c *Check) {
	c.Detail = "GET, POST _search and Patient/{id}/{type} agree; _summary=count; $everything by POST; HEAD; gzip"
	p := r.patients[0]
	typ := ""
	for _, t := range sortedKeys(p.byType) {
		if rs := r.cs.resource(t); rs != nil && rs.has("search-type") && t != "Patient" {
			typ = t
			break
		}
	}
	if typ == "" {
		c.skip("no searchable type in the first patient's record")
		return
	}
	tok, err := r.ptoken(ctx, p)
	if err != nil {
		c.fail("%v", err)
		return
	}
	totalOf := func(what string, res response, err error) int {
		b := r.decodeBundle(c, what, res, err)
		if b == nil || b.Total == nil {
			if b != nil {
				c.fail("%s: no total", what)
			}
			return -1
		}
		return *b.Total
	}
	want := len(p.byType[typ])
	for _, q := range []struct {
		what string
		req  request
	}{
		{"GET " + typ, request{method: http.MethodGet, path: "/" + typ + "?patient=" + p.id + "&_count=5"}},
		{"POST " + typ + "/_search", request{method: http.MethodPost, path: "/" + typ + "/_search", body: []byte("patient=" + p.id + "&_count=5"), ctype: "application/x-www-form-urlencoded"}},
		{"Patient/{id}/" + typ, request{method: http.MethodGet, path: "/Patient/" + p.id + "/" + typ + "?_count=5"}},
		{"_summary=count", request{method: http.MethodGet, path: "/" + typ + "?patient=" + p.id + "&_summary=count"}},
	} {
		c.Count++
		q.req.token, q.req.label = tok, "interactions"
		res, err := r.do(ctx, q.req)
		if got := totalOf(q.what, res, err); got >= 0 && got != want {
			c.fail("%s: total %d, the record holds %d", q.what, got, want)
		}
		if q.what == "_summary=count" && len(bundleEntries(res.body)) > 0 {
			m, _ := (&bundleJSON{}).matchesOf(res.body)
			if m > 0 {
				c.fail("_summary=count answered %d entries", m)
			}
		}
	}
	c.Count++
	res, err := r.do(ctx, request{method: http.MethodPost, path: "/Patient/" + p.id + "/$everything", token: tok, label: "interactions",
		body: []byte(`{"resourceType":"Parameters","parameter":[{"name":"_count","valueInteger":5}]}`)})
	if got := totalOf("$everything by POST", res, err); got >= 0 && got != p.count {
		c.fail("$everything by POST: total %d, GET gave %d", got, p.count)
	}
	// HEAD mirrors GET.
	c.Count++
	read := "/Patient/" + p.id
	get, err1 := r.do(ctx, request{method: http.MethodGet, path: read, token: tok, label: "interactions"})
	head, err2 := r.do(ctx, request{method: http.MethodHead, path: read, token: tok, label: "interactions"})
	switch {
	case err1 != nil || err2 != nil:
		c.fail("HEAD %s: %v %v", read, err1, err2)
	case head.status != get.status || len(head.body) != 0 || head.header.Get("ETag") != get.header.Get("ETag"):
		c.fail("HEAD %s: %d with %d bytes, ETag %q; GET %d, ETag %q", read, head.status, len(head.body), head.header.Get("ETag"), get.status, get.header.Get("ETag"))
	}
	// gzip when asked (the client does not decompress: the header is explicit).
	c.Count++
	gz, err := r.do(ctx, request{method: http.MethodGet, path: "/Patient/" + p.id + "/$everything?_count=50", token: tok, label: "interactions",
		header: map[string]string{"Accept-Encoding": "gzip"}})
	if err != nil || gz.status != http.StatusOK || gz.header.Get("Content-Encoding") != "gzip" {
		c.fail("Accept-Encoding gzip: %v %d, Content-Encoding %q", err, gz.status, gz.header.Get("Content-Encoding"))
	} else if zr, err := gzip.NewReader(bytes.NewReader(gz.body)); err != nil {
		c.fail("gzip answer: %v", err)
	} else if b, err := io.ReadAll(zr); err != nil || !json.Valid(b) {
		c.fail("gzip answer does not decompress to JSON: %v", err)
	}
}

// matchesOf counts the match entries of a Bundle.
func (*bundleJSON) matchesOf(raw []byte) (int, error) {
	var b bundleJSON
	if err := json.Unmarshal(raw, &b); err != nil {
		return 0, err
	}
	m, _ := b.matches()
	return len(m), nil
}

// checkIncludes: every _include the CapabilityStatement declares adds, as
// search mode include, exactly the resources the matches point at that
// the record (as $everything gave it) holds.
func (r *runner) checkIncludes(ctx context.Context, c *Check) {
	c.Detail = "every declared searchInclude: the resources referenced at that parameter, mode include, from the record"
	tested := 0
	for _, rs := range r.cs.resources() {
		for _, inc := range rs.SearchInclude {
			src, name, ok := strings.Cut(inc, ":")
			if !ok || src != rs.Type || name == "patient" || name == "subject" {
				continue
			}
			for _, p := range r.patients {
				if len(p.byType[src]) == 0 {
					continue
				}
				c.Count++
				tested++
				who := "patient=" + p.id
				if src == "Patient" {
					who = "_id=" + p.id
				}
				res, err := r.pget(ctx, p, "/"+src+"?"+who+"&_count=1000&_include="+url.QueryEscape(inc), strictHdr)
				b := r.decodeBundle(c, "_include="+inc, res, err)
				if b == nil {
					break
				}
				var parsed struct {
					Entry []struct {
						Resource json.RawMessage `json:"resource"`
						Search   struct {
							Mode string `json:"mode"`
						} `json:"search"`
					} `json:"entry"`
				}
				_ = json.Unmarshal(res.body, &parsed)
				included := map[string]bool{}
				for _, e := range parsed.Entry {
					var h struct{ ResourceType, ID string }
					_ = json.Unmarshal(e.Resource, &h)
					if e.Search.Mode == "include" {
						key := h.ResourceType + "/" + h.ID
						if p.byRef[key] == nil {
							c.fail("_include=%s included %s, which $everything did not give", inc, key)
						}
						included[key] = true
					}
				}
				for _, e := range parsed.Entry {
					if e.Search.Mode != "match" {
						continue
					}
					var m map[string]any
					_ = json.Unmarshal(e.Resource, &m)
					for _, ref := range refsAt(m, name) {
						if p.byRef[ref] != nil && !included[ref] {
							c.fail("_include=%s: %s is referenced and in the record, not included", inc, ref)
						}
					}
				}
				break // one patient with the source type is enough
			}
		}
	}
	if tested == 0 {
		c.skip("the CapabilityStatement declares no searchInclude the records exercise")
	}
}

// includeElement maps include parameter names to the element holding the
// reference (R4 search parameter paths of gpgate's types).
var includeElement = map[string][]string{
	"medication": {"medicationReference"}, "result": {"result"}, "specimen": {"specimen"}, "encounter": {"encounter"},
	"has-member": {"hasMember"}, "derived-from": {"derivedFrom"}, "diagnosis": {"diagnosis", "condition"},
	"general-practitioner": {"generalPractitioner"}, "organization": {"managingOrganization"},
}

// refsAt returns the references of a resource at an include parameter's
// element.
func refsAt(m map[string]any, param string) []string {
	path := includeElement[param]
	var out []string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				walk(e, path)
			}
		case map[string]any:
			if len(path) == 0 {
				if s, ok := x["reference"].(string); ok {
					out = append(out, s)
				}
				return
			}
			walk(x[path[0]], path[1:])
		}
	}
	if len(path) > 0 {
		walk(m, path)
	}
	return out
}
