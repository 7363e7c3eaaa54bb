package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// ---- paging ----

func (r *runner) checkPaging(ctx context.Context, c *Check) {
	c.Detail = "self/first/last/next/previous links followed to the end: one total on every page, page sizes as asked, no duplicates, the union is the total"
	// The biggest record, and its most populous type.
	p := r.patients[0]
	for _, q := range r.patients {
		if q.count > p.count {
			p = q
		}
	}
	bestType, best := "", 0
	for t, l := range p.byType {
		if rs := r.cs.resource(t); rs != nil && rs.has("search-type") && t != "Patient" && len(l) > best {
			bestType, best = t, len(l)
		}
	}
	paths := []string{"/Patient/" + p.id + "/$everything"}
	if bestType != "" {
		paths = append(paths, "/"+bestType+"?patient="+p.id)
	}
	for _, path := range paths {
		c.Count++
		total := p.count
		if !strings.Contains(path, "$everything") {
			total = best
		}
		count := max(1, (total+7)/8) // at most 8 pages, at least 2 when there are 2 or more
		r.followPages(ctx, c, p, path, count, total)
	}
}

func (r *runner) followPages(ctx context.Context, c *Check, p *patient, path string, count, want int) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := path + sep + "_count=" + fmt.Sprint(count)
	seen := map[string]bool{}
	pages, n := 0, 0
	var last string
	for next != "" {
		res, err := r.pget(ctx, p, next, nil)
		b := r.decodeBundle(c, "paging "+labelOf(path), res, err)
		if b == nil {
			return
		}
		pages++
		if pages > 20 {
			c.fail("%s: more than 20 pages at _count=%d", path, count)
			return
		}
		if b.Total == nil || *b.Total != want {
			c.fail("%s page %d: total %v, want %d", path, pages, b.Total, want)
			return
		}
		m, _ := b.matches()
		for _, raw := range m {
			var h struct {
				ResourceType, ID string
			}
			_ = json.Unmarshal(raw, &h)
			k := h.ResourceType + "/" + h.ID
			if seen[k] {
				c.fail("%s page %d: %s was on an earlier page", path, pages, k)
			}
			seen[k] = true
		}
		n += len(m)
		if b.link("self") == "" || b.link("first") == "" || b.link("last") == "" {
			c.fail("%s page %d: self, first and last links are required", path, pages)
		}
		if (pages > 1) != (b.link("previous") != "") {
			c.fail("%s page %d: previous link present=%v", path, pages, b.link("previous") != "")
		}
		nx := b.link("next")
		if nx != "" && len(m) != count {
			c.fail("%s page %d: %d entries on a page of %d that is not the last", path, pages, len(m), count)
		}
		if nx == "" {
			last = b.link("last")
		}
		next = nx
	}
	if n != want {
		c.fail("%s: %d entries over %d pages, total %d", path, n, pages, want)
	}
	if want > count && pages < 2 {
		c.fail("%s: %d matches at _count=%d on one page", path, want, count)
	}
	// The last link leads to the page that has no next.
	if last != "" {
		res, err := r.pget(ctx, p, last, nil)
		if b := r.decodeBundle(c, "paging last", res, err); b != nil && b.link("next") != "" {
			c.fail("%s: the last link's page has a next link", path)
		}
	}
}

// ---- operations ----

type opDefJSON struct {
	Parameter []opParam `json:"parameter"`
}

func (r *runner) opDef(ctx context.Context, typ, name string) (*opDefJSON, error) {
	rs := r.cs.resource(typ)
	if rs == nil {
		return nil, nil
	}
	for _, op := range rs.Operation {
		if op.Name != name {
			continue
		}
		res, err := r.get(ctx, op.Definition, false, nil)
		if err != nil || res.status != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %v %d", op.Definition, err, res.status)
		}
		var d opDefJSON
		if err := json.Unmarshal(res.body, &d); err != nil {
			return nil, err
		}
		return &d, nil
	}
	return nil, nil
}

func (r *runner) checkEverythingOp(ctx context.Context, c *Check) {
	c.Detail = "$everything honours each input parameter its OperationDefinition declares, and refuses undeclared ones under strict handling"
	d, err := r.opDef(ctx, "Patient", "everything")
	if err != nil {
		c.fail("%v", err)
		return
	}
	if d == nil {
		c.skip("$everything is not declared")
		return
	}
	p := r.patients[0]
	base := "/Patient/" + p.id + "/$everything"
	tok, err := r.ptoken(ctx, p)
	if err != nil {
		c.fail("patient token: %v", err)
		return
	}
	declared := map[string]bool{}
	for _, prm := range d.Parameter {
		if prm.Use != "in" {
			continue
		}
		declared[prm.Name] = true
		c.Count++
		switch prm.Name {
		case "_type":
			types := sortedKeys(p.byType)
			if len(types) == 0 {
				c.fail("_type: the record is empty")
				continue
			}
			t := types[len(types)-1]
			res, outs, err := r.searchAll(ctx, c, base+"?_type="+t+"&_count=1000", strictHdr, tok)
			if err != nil {
				c.fail("_type: %v", err)
				continue
			}
			if ignoredIn(outs, "_type") || len(res) != len(p.byType[t]) {
				c.fail("_type=%s: %d resources, the record has %d of the type", t, len(res), len(p.byType[t]))
			}
			for _, m := range res {
				if m["resourceType"] != t {
					c.fail("_type=%s answered a %v", t, m["resourceType"])
					break
				}
			}
		case "_count", "_offset":
			res, err := r.pget(ctx, p, base+"?_count=2&_offset=1", strictHdr)
			b := r.decodeBundle(c, "$everything _count/_offset", res, err)
			if b == nil {
				continue
			}
			m, _ := b.matches()
			if want := min(2, max(0, p.count-1)); len(m) != want {
				c.fail("_count=2&_offset=1: %d entries, want %d", len(m), want)
			}
		case "_since", "start", "end":
			// A window that holds everything answers the whole record; one
			// that holds nothing dated answers at most the record.
			wide, narrow := "1900-01-01", "2999-01-01"
			if prm.Name == "_since" {
				wide, narrow = "1900-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
			} else if prm.Name == "end" {
				wide, narrow = "2999-12-31", "1800-01-01"
			}
			for _, w := range []struct {
				value string
				all   bool
			}{{wide, true}, {narrow, false}} {
				res, err := r.pget(ctx, p, base+"?"+prm.Name+"="+url.QueryEscape(w.value)+"&_count=1", strictHdr)
				b := r.decodeBundle(c, "$everything "+prm.Name, res, err)
				if b == nil || b.Total == nil {
					c.fail("%s=%s: no searchset with a total", prm.Name, w.value)
					continue
				}
				switch {
				case w.all && prm.Name != "_since" && *b.Total != p.count:
					// (_since leaves out resources without meta.lastUpdated:
					// a source that does not stamp them cannot say they changed)
					c.fail("%s=%s: total %d, the record has %d", prm.Name, w.value, *b.Total, p.count)
				case !w.all && *b.Total > p.count:
					c.fail("%s=%s: total %d, more than the record's %d", prm.Name, w.value, *b.Total, p.count)
				case !w.all && prm.Name == "_since" && *b.Total != 0:
					c.fail("_since in the future: %d resources", *b.Total)
				}
			}
		case "_summary":
			res, err := r.pget(ctx, p, base+"?_summary=count", strictHdr)
			b := r.decodeBundle(c, "$everything _summary=count", res, err)
			if m, _ := (&bundleJSON{}).matchesOf(res.body); b != nil && (b.Total == nil || *b.Total != p.count || m != 0) {
				c.fail("_summary=count: total %v and %d entries, the record has %d", b.Total, m, p.count)
			}
		case "_elements":
			res, err := r.pget(ctx, p, base+"?_elements=id&_count=5", strictHdr)
			r.decodeBundle(c, "$everything _elements", res, err)
		default:
			res, err := r.pget(ctx, p, base+"?"+url.QueryEscape(prm.Name)+"=1", strictHdr)
			if err != nil || res.status != http.StatusOK {
				c.fail("%s is declared but refused under strict handling: %v %d", prm.Name, err, res.status)
			}
		}
	}
	for _, name := range []string{"start", "end", "_since", "_elements", "gpgate-conformance-undeclared"} {
		if declared[name] {
			continue
		}
		c.Count++
		res, err := r.pget(ctx, p, base+"?"+name+"=2020-01-01", strictHdr)
		if err != nil || res.status < 400 || res.status >= 500 {
			c.fail("$everything?%s is not declared but was not refused under strict handling: %v %d", name, err, res.status)
		}
	}
}

// sampleValue is a Parameters value[x] for an OperationDefinition type.
func sampleValue(typ string) (string, any) {
	switch typ {
	case "boolean":
		return "valueBoolean", true
	case "date":
		return "valueDate", "2000-01-01"
	case "code":
		return "valueCode", "active"
	case "Period":
		return "valuePeriod", map[string]string{"start": "2000-01-01"}
	case "positiveInt", "integer", "unsignedInt":
		return "valuePositiveInt", 3
	case "string":
		return "valueString", "x"
	}
	return "", nil
}

func paramJSON(p opParam) map[string]any {
	out := map[string]any{"name": p.Name}
	if len(p.Part) > 0 {
		var parts []any
		for _, pt := range p.Part {
			if pt.Use == "out" {
				continue
			}
			parts = append(parts, paramJSON(pt))
		}
		out["part"] = parts
		return out
	}
	if k, v := sampleValue(p.Type); k != "" {
		out[k] = v
	}
	return out
}

func (r *runner) structured(ctx context.Context, p *patient, params []map[string]any, strict bool) (response, error) {
	body := map[string]any{"resourceType": "Parameters", "parameter": append([]map[string]any{{
		"name": "patientNHSNumber", "valueIdentifier": map[string]string{"system": fhir.NHSNumberSystem, "value": p.nhs}}}, params...)}
	b, _ := json.Marshal(body)
	tok, err := r.ptoken(ctx, p)
	if err != nil {
		return response{}, err
	}
	q := request{method: http.MethodPost, path: "/Patient/$getstructuredrecord", body: b, token: tok, label: "getstructuredrecord"}
	if strict {
		q.header = strictHdr
	}
	return r.do(ctx, q)
}

func listsIn(b *bundleJSON) []map[string]any {
	var out []map[string]any
	for _, e := range b.Entry {
		var o map[string]any
		_ = json.Unmarshal(e.Resource, &o)
		if o["resourceType"] == "List" {
			out = append(out, o)
		}
	}
	return out
}

func (r *runner) checkStructuredOp(ctx context.Context, c *Check) {
	c.Detail = "$getstructuredrecord: each declared section alone gives a collection Bundle with one List, all together one List each; every reference resolves within the Bundle; undeclared parameters are refused under strict handling"
	d, err := r.opDef(ctx, "Patient", "getstructuredrecord")
	if err != nil {
		c.fail("%v", err)
		return
	}
	if d == nil {
		c.skip("$getstructuredrecord is not declared")
		return
	}
	var all []map[string]any
	var sections []opParam
	for _, prm := range d.Parameter {
		if prm.Use == "in" && prm.Name != "patientNHSNumber" {
			sections = append(sections, prm)
		}
	}
	for i, p := range r.patients {
		if i >= 3 {
			break
		}
		for _, s := range sections {
			if i > 0 {
				break // each section alone once
			}
			c.Count++
			res, err := r.structured(ctx, p, []map[string]any{paramJSON(s)}, true)
			b := r.decodeBundle(c, "$getstructuredrecord "+s.Name, res, err, profiles.ResolveReferences())
			if b == nil {
				continue
			}
			if b.Type != "collection" {
				c.fail("%s: Bundle type %q, want collection", s.Name, b.Type)
			}
			if l := listsIn(b); len(l) != 1 {
				c.fail("%s alone: %d Lists, want 1", s.Name, len(l))
			}
			r.resolveWithin(c, "$getstructuredrecord "+s.Name, res.body)
		}
		all = all[:0]
		for _, s := range sections {
			all = append(all, paramJSON(s))
		}
		c.Count++
		res, err := r.structured(ctx, p, all, true)
		b := r.decodeBundle(c, "$getstructuredrecord all sections", res, err, profiles.ResolveReferences())
		if b == nil {
			continue
		}
		if l := listsIn(b); len(l) != len(sections) {
			c.fail("all %d sections: %d Lists", len(sections), len(l))
		}
		r.resolveWithin(c, "$getstructuredrecord all sections", res.body)
	}
	// Undeclared: a GP Connect section gpgate does not declare, and an
	// undeclared part.
	c.Count++
	res, err := r.structured(ctx, r.patients[0], []map[string]any{{"name": "includeImmunisations", "part": []any{map[string]any{"name": "includeNotGiven", "valueBoolean": true}}}}, true)
	if err != nil || res.status < 400 || res.status >= 500 {
		c.fail("an undeclared parameter was not refused under strict handling: %v %d", err, res.status)
	}
	if len(sections) > 0 {
		c.Count++
		res, err := r.structured(ctx, r.patients[0], []map[string]any{{"name": sections[0].Name, "part": []any{map[string]any{"name": "gpgateUndeclaredPart", "valueBoolean": true}}}}, true)
		if err != nil || res.status < 400 || res.status >= 500 {
			c.fail("an undeclared part was not refused under strict handling: %v %d", err, res.status)
		}
	}
}

// resolveWithin: every relative reference in a collection Bundle names an
// entry of it.
func (r *runner) resolveWithin(c *Check, what string, body []byte) {
	var b bundleJSON
	if json.Unmarshal(body, &b) != nil {
		return
	}
	have := map[string]bool{}
	for _, e := range b.Entry {
		var h struct{ ResourceType, ID string }
		_ = json.Unmarshal(e.Resource, &h)
		have[h.ResourceType+"/"+h.ID] = true
	}
	for _, e := range b.Entry {
		for _, ref := range fhir.References(e.Resource) {
			if strings.Contains(ref, "://") || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
				continue
			}
			if !have[ref] {
				c.fail("%s: reference %s does not resolve within the Bundle", what, ref)
				return
			}
		}
	}
}

func (r *runner) checkReferences(ctx context.Context, c *Check) {
	c.Detail = "every reference in a patient's $everything resolves to a resource of that record, and can be read"
	read := map[string]bool{}
	for _, p := range r.patients {
		c.Count++
		bad := 0
		for ref, raw := range p.raw {
			for _, x := range fhir.References(raw) {
				if strings.Contains(x, "://") || strings.HasPrefix(x, "#") || strings.HasPrefix(x, "urn:") {
					continue
				}
				if p.byRef[x] == nil {
					if bad < 3 {
						c.fail("%s: reference %s in %s is not in the record's $everything", p.id, x, ref)
					}
					bad++
					continue
				}
				t, _, _ := strings.Cut(x, "/")
				if !read[t] {
					read[t] = true
					res, err := r.pget(ctx, p, "/"+x, nil)
					if err != nil || res.status != http.StatusOK {
						c.fail("reference %s cannot be read: %v %d", x, err, res.status)
					}
				}
			}
		}
	}
}

// ---- error shapes ----

func (r *runner) checkErrors(ctx context.Context, c *Check) {
	c.Detail = "documented errors: OperationOutcome with the GP Connect code in issue.details and its one status"
	p := r.patients[0]
	tok, err := r.ptoken(ctx, p) // patient-scoped errors come with the patient's own token
	if err != nil {
		c.fail("%v", err)
		return
	}
	stok, err := r.token(ctx)
	if err != nil {
		c.fail("%v", err)
		return
	}
	bad := p.nhs[:9] + string('0'+(p.nhs[9]-'0'+1)%10)
	unknownValid := ""
	for _, n := range demoNHSNumbers(900000, 50) {
		if pt, err := r.findPatient(ctx, n); err == nil && pt == nil {
			unknownValid = n
			break
		}
	}
	sys := url.QueryEscape(fhir.NHSNumberSystem + "|")
	dateParam, dateType := "", ""
	readOnly := ""
	for _, rs := range r.cs.resources() {
		for _, sp := range rs.SearchParam {
			if sp.Type == "date" && dateParam == "" && rs.Type != "AuditEvent" && rs.Type != "Patient" {
				dateParam, dateType = sp.Name, rs.Type
			}
		}
		if rs.has("read") && !rs.has("search-type") && readOnly == "" && rs.Type != "OperationDefinition" {
			readOnly = rs.Type
		}
	}
	type tc struct {
		name   string
		q      request
		status int
		code   fhir.Code
	}
	get := func(path string, hdr map[string]string) request {
		return request{method: http.MethodGet, path: path, token: tok, header: hdr, label: "error"}
	}
	cases := []tc{
		{"invalid NHS number", get("/Patient?identifier="+sys+bad, nil), 400, fhir.CodeInvalidNHSNumber},
		{"NHS number not ten digits", get("/Patient?identifier="+sys+"12345", nil), 400, fhir.CodeInvalidNHSNumber},
		{"wrong identifier system", get("/Patient?identifier="+url.QueryEscape("https://example.org/id|"+p.nhs), nil), 400, fhir.CodeInvalidIdentifier},
		{"unknown resource type", get("/Foo?patient="+p.id, nil), 404, fhir.CodeUnknownResourceType},
		{"unknown resource type read", get("/Foo/"+p.id, nil), 404, fhir.CodeUnknownResourceType},
		{"unknown patient (system token)", request{method: http.MethodGet, path: "/Condition?patient=pconformanceunknown", token: stok, label: "error"}, 403, fhir.CodeNoOrganisationConsent},
		{"clinical data with a system token", request{method: http.MethodGet, path: "/Condition?patient=" + p.id, token: stok, label: "error"}, 403, fhir.CodeNoPatientConsent},
		{"unknown id in a record", get("/Condition/"+p.id+"-conformance-no-such", nil), 404, fhir.CodeNoRecordFound},
		{"bad _count", get("/Condition?patient="+p.id+"&_count=many", nil), 422, fhir.CodeInvalidParameter},
		{"_sort not served", get("/Condition?patient="+p.id+"&_sort=code", nil), 501, fhir.CodeNotImplemented},
		{"bad _sort", get("/Condition?patient="+p.id+"&_sort="+url.QueryEscape("date desc"), nil), 422, fhir.CodeInvalidParameter},
		{"history", get("/Condition/"+p.id+"-x/_history", nil), 501, fhir.CodeNotImplemented},
		{"vread", get("/Patient/"+p.id+"/_history/1", nil), 501, fhir.CodeNotImplemented},
		{"an operation not served", get("/Patient/"+p.id+"/$validate", nil), 501, fhir.CodeNotImplemented},
		{"_has", get("/Condition?patient="+p.id+"&_has:Encounter:diagnosis:status=finished", nil), 501, fhir.CodeNotImplemented},
		{"a modifier not served", get("/Condition?patient="+p.id+"&code:text=x", nil), 501, fhir.CodeNotImplemented},
		{"_summary=text", get("/Condition?patient="+p.id+"&_summary=text", nil), 501, fhir.CodeNotImplemented},
		{"fhirVersion 3.0", get("/metadata", map[string]string{"Accept": "application/fhir+json; fhirVersion=3.0"}), 406, fhir.CodeNotAcceptable},
		{"undeclared parameter, strict", get("/Condition?patient="+p.id+"&gpgate-conformance-undeclared=1", strictHdr), 400, fhir.CodeBadRequest},
		{"Accept XML", get("/metadata", map[string]string{"Accept": "application/fhir+xml"}), 406, fhir.CodeNotAcceptable},
		{"_format xml", get("/Condition?patient="+p.id+"&_format=xml", nil), 406, fhir.CodeNotAcceptable},
		{"write: POST", request{method: http.MethodPost, path: "/Condition", body: []byte(`{"resourceType":"Condition"}`), token: tok, label: "error"}, 405, fhir.CodeMethodNotAllowed},
		{"write: PUT", request{method: http.MethodPut, path: "/Patient/" + p.id, body: []byte(`{"resourceType":"Patient","id":"` + p.id + `"}`), token: tok, label: "error"}, 405, fhir.CodeMethodNotAllowed},
		{"write: DELETE", request{method: http.MethodDelete, path: "/Patient/" + p.id, token: tok, label: "error"}, 405, fhir.CodeMethodNotAllowed},
		{"write: PATCH", request{method: http.MethodPatch, path: "/Condition/" + p.id + "-x", body: []byte(`[]`), ctype: "application/json-patch+json", token: tok, label: "error"}, 405, fhir.CodeMethodNotAllowed},
		{"$getstructuredrecord by GET", get("/Patient/$getstructuredrecord", nil), 405, fhir.CodeMethodNotAllowed},
		{"$getstructuredrecord text/plain", request{method: http.MethodPost, path: "/Patient/$getstructuredrecord", body: []byte("x"), ctype: "text/plain", token: tok, label: "error"}, 415, fhir.CodeUnsupportedMediaType},
		{"$getstructuredrecord not Parameters", request{method: http.MethodPost, path: "/Patient/$getstructuredrecord", body: []byte(`{"resourceType":"Patient"}`), token: tok, label: "error"}, 422, fhir.CodeInvalidResource},
		{"$getstructuredrecord too large", request{method: http.MethodPost, path: "/Patient/$getstructuredrecord", body: bytes.Repeat([]byte(" "), 65<<10), token: tok, label: "error"}, 413, fhir.CodeBodyTooLarge},
		{"$getstructuredrecord invalid NHS number", request{method: http.MethodPost, path: "/Patient/$getstructuredrecord", token: tok, label: "error",
			body: []byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"` + fhir.NHSNumberSystem + `","value":"` + bad + `"}}]}`)}, 400, fhir.CodeInvalidNHSNumber},
	}
	if dateParam != "" {
		cases = append(cases, tc{"bad date", get("/"+dateType+"?patient="+p.id+"&"+dateParam+"=2020-13-45", nil), 422, fhir.CodeInvalidParameter},
			tc{"bad date prefix", get("/"+dateType+"?patient="+p.id+"&"+dateParam+"=zz2020", nil), 422, fhir.CodeInvalidParameter})
	}
	if readOnly != "" {
		cases = append(cases, tc{"search on a read-only type", get("/"+readOnly+"?patient="+p.id, nil), 501, fhir.CodeNotImplemented})
	}
	if unknownValid != "" {
		cases = append(cases, tc{"$getstructuredrecord unknown patient", request{method: http.MethodPost, path: "/Patient/$getstructuredrecord", token: stok, label: "error",
			body: []byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"` + fhir.NHSNumberSystem + `","value":"` + unknownValid + `"}}]}`)}, 403, fhir.CodeNoOrganisationConsent})
	}
	if r.cs.resource("AuditEvent") != nil {
		cases = append(cases, tc{"AuditEvent with a clinical token", get("/AuditEvent?patient="+p.id, nil), 403, fhir.CodeAccessDenied})
	}
	for _, x := range cases {
		res, err := r.do(ctx, x.q)
		r.expectOutcome(c, x.name, res, err, x.status, x.code)
	}
}

// ---- walk ----

// walk fetches what gpgate emits for every patient beyond $everything
// (already fetched): a searchset per type, a read per type, and
// $getstructuredrecord (all sections) for every StructuredEvery-th patient.
func (r *runner) walk(ctx context.Context, c *Check) {
	c.Detail = "every patient: $everything (every page), a searchset and a read per type, $getstructuredrecord for a sample"
	var sections []map[string]any
	if d, err := r.opDef(ctx, "Patient", "getstructuredrecord"); err == nil && d != nil {
		for _, prm := range d.Parameter {
			if prm.Use == "in" && prm.Name != "patientNHSNumber" {
				sections = append(sections, paramJSON(prm))
			}
		}
	}
	for i, p := range r.patients {
		c.Count++
		for _, t := range sortedKeys(p.byType) {
			rs := r.cs.resource(t)
			if rs == nil {
				continue
			}
			if rs.has("search-type") && t != "Patient" {
				res, err := r.pget(ctx, p, "/"+t+"?patient="+p.id+"&_count=20", nil)
				r.decodeBundle(c, "walk "+t+" search", res, err)
			}
			id, _ := p.byType[t][0]["id"].(string)
			res, err := r.pget(ctx, p, "/"+t+"/"+id, nil)
			if err != nil || res.status != http.StatusOK {
				c.fail("walk: read %s/%s: %v %d", t, id, err, res.status)
			} else {
				r.seenResource("walk read", res.body)
			}
		}
		if sections != nil && i%r.o.StructuredEvery == 0 {
			res, err := r.structured(ctx, p, sections, false)
			if b := r.decodeBundle(c, "walk $getstructuredrecord", res, err, profiles.ResolveReferences()); b != nil {
				r.resolveWithin(c, "walk $getstructuredrecord", res.body)
			}
		}
	}
}
