package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// paramPaths maps an HL7 SearchParameter canonical (the part after
// /SearchParameter/) to the elements it searches, per resource type ("" for
// any). "a>b" follows reference a to its target's element b. A declared
// parameter whose definition is not here is exercised for acceptance only.
var paramPaths = map[string]map[string][]string{
	"clinical-patient":                   {"": {"subject", "patient"}},
	"Specimen-patient":                   {"": {"subject"}},
	"clinical-code":                      {"": {"code"}, "MedicationStatement": {"medicationCodeableConcept"}, "MedicationRequest": {"medicationCodeableConcept"}},
	"clinical-date":                      {"AllergyIntolerance": {"recordedDate"}, "Observation": {"effective[x]"}, "DiagnosticReport": {"effective[x]"}, "Encounter": {"period"}, "Flag": {"period"}, "Procedure": {"performed[x]"}},
	"Resource-id":                        {"": {"id"}},
	"Resource-lastUpdated":               {"": {"meta.lastUpdated"}},
	"Patient-identifier":                 {"": {"identifier"}},
	"Condition-category":                 {"": {"category"}},
	"Condition-clinical-status":          {"": {"clinicalStatus"}},
	"Condition-onset-date":               {"": {"onset[x]"}},
	"AllergyIntolerance-clinical-status": {"": {"clinicalStatus"}},
	"AllergyIntolerance-category":        {"": {"category"}},
	"medications-status":                 {"": {"status"}},
	"MedicationStatement-category":       {"": {"category"}},
	"MedicationStatement-effective":      {"": {"effective[x]"}},
	"MedicationRequest-intent":           {"": {"intent"}},
	"MedicationRequest-category":         {"": {"category"}},
	"MedicationRequest-authoredon":       {"": {"authoredOn"}},
	"Observation-category":               {"": {"category"}},
	"Observation-status":                 {"": {"status"}},
	"DiagnosticReport-category":          {"": {"category"}},
	"DiagnosticReport-status":            {"": {"status"}},
	"Encounter-status":                   {"": {"status"}},
	"Procedure-status":                   {"": {"status"}},
	"ServiceRequest-category":            {"": {"category"}},
	"ServiceRequest-status":              {"": {"status"}},
	"ServiceRequest-intent":              {"": {"intent"}},
	"ServiceRequest-authored":            {"": {"authoredOn"}},
	"AuditEvent-date":                    {"": {"recorded"}},
	"AuditEvent-outcome":                 {"": {"outcome"}},
	"AuditEvent-subtype":                 {"": {"subtype"}},
	"AuditEvent-entity":                  {"": {"entity.what"}},
	"AuditEvent-patient":                 {"": {"entity.what"}},
}

func pathsFor(def, typ string) []string {
	i := strings.LastIndex(def, "/SearchParameter/")
	if i < 0 {
		return nil
	}
	m := paramPaths[def[i+len("/SearchParameter/"):]]
	if p, ok := m[typ]; ok {
		return p
	}
	return m[""]
}

// values returns the values at a dotted element path; "x[x]" matches any
// choice type of x; arrays are flattened; "a>b" resolves reference a in rec.
func values(o map[string]any, path string, rec map[string]map[string]any) []any {
	if ref, rest, ok := strings.Cut(path, ">"); ok {
		var out []any
		for _, v := range values(o, ref, rec) {
			m, _ := v.(map[string]any)
			s, _ := m["reference"].(string)
			if t := rec[s]; t != nil {
				out = append(out, values(t, rest, rec)...)
			}
		}
		return out
	}
	cur := []any{o}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			for k, v := range m {
				if k == seg || (strings.HasSuffix(seg, "[x]") && strings.HasPrefix(k, strings.TrimSuffix(seg, "[x]")) && len(k) > len(seg)-3 && k[len(seg)-3] >= 'A' && k[len(seg)-3] <= 'Z') {
					if l, ok := v.([]any); ok {
						next = append(next, l...)
					} else {
						next = append(next, v)
					}
				}
			}
		}
		cur = next
	}
	return cur
}

type token struct{ system, code string }

func tokensOf(v any) []token {
	switch x := v.(type) {
	case string:
		return []token{{"", x}}
	case bool:
		return []token{{"", fmt.Sprint(x)}}
	case map[string]any:
		if cs, ok := x["coding"].([]any); ok {
			var out []token
			for _, c := range cs {
				out = append(out, tokensOf(c)...)
			}
			return out
		}
		sys, _ := x["system"].(string)
		if code, ok := x["code"].(string); ok {
			return []token{{sys, code}}
		}
		if val, ok := x["value"].(string); ok {
			return []token{{sys, val}}
		}
	}
	return nil
}

func tokenMatch(want token, have []token) bool {
	for _, h := range have {
		if h.code == want.code && (want.system == "" || h.system == "" || h.system == want.system) {
			return true
		}
	}
	return false
}

// span is a date value's range [lo, hi); open ends are zero.
type span struct{ lo, hi time.Time }

func spansOf(v any) []span {
	switch x := v.(type) {
	case string:
		d, err := fhir.ParseDate(x)
		if err != nil {
			return nil
		}
		return []span{{d.Start, d.End}}
	case map[string]any:
		var s span
		if st, ok := x["start"].(string); ok {
			if d, err := fhir.ParseDate(st); err == nil {
				s.lo = d.Start
			}
		}
		if en, ok := x["end"].(string); ok {
			if d, err := fhir.ParseDate(en); err == nil {
				s.hi = d.End
			}
		}
		if !s.lo.IsZero() || !s.hi.IsZero() {
			return []span{s}
		}
	}
	return nil
}

func refsOf(v any) []string {
	m, _ := v.(map[string]any)
	if s, ok := m["reference"].(string); ok {
		return []string{s}
	}
	return nil
}

// searchAll runs a search and follows next links to the end; the total of
// every page must equal the matches collected.
func (r *runner) searchAll(ctx context.Context, c *Check, path string, header map[string]string, tok string) ([]map[string]any, []json.RawMessage, error) {
	var all []map[string]any
	var outcomes []json.RawMessage
	next := path
	total := -1
	for pages := 0; next != ""; pages++ {
		if pages > 200 {
			return nil, nil, fmt.Errorf("%s: more than 200 pages", path)
		}
		q := request{method: http.MethodGet, path: next, header: header, token: tok, label: labelOf(path)}
		if tok == "" {
			t, err := r.token(ctx)
			if err != nil {
				return nil, nil, err
			}
			q.token = t
		}
		res, err := r.do(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		if res.status != http.StatusOK {
			return nil, nil, fmt.Errorf("%s: status %d: %s", next, res.status, short(res.body))
		}
		var b bundleJSON
		if err := json.Unmarshal(res.body, &b); err != nil || b.ResourceType != "Bundle" || b.Type != "searchset" {
			return nil, nil, fmt.Errorf("%s: not a searchset Bundle", next)
		}
		r.seenResource("search "+labelOf(path), res.body)
		if b.Total == nil {
			return nil, nil, fmt.Errorf("%s: no total", next)
		}
		// The audit log grows while it is read (the suite's own requests
		// are audited): its total may rise between pages.
		if total >= 0 && *b.Total != total && !strings.HasPrefix(path, "/AuditEvent") {
			return nil, nil, fmt.Errorf("%s: total changed between pages (%d, %d)", path, total, *b.Total)
		}
		total = *b.Total
		m, o := b.matches()
		outcomes = append(outcomes, o...)
		for _, raw := range m {
			var x map[string]any
			_ = json.Unmarshal(raw, &x)
			all = append(all, x)
		}
		next = b.link("next")
	}
	if len(all) != total && !strings.HasPrefix(path, "/AuditEvent") {
		return nil, nil, fmt.Errorf("%s: total %d but %d matches over the pages", path, total, len(all))
	}
	return all, outcomes, nil
}

func idsOf(l []map[string]any) map[string]bool {
	out := map[string]bool{}
	for _, o := range l {
		out[fmt.Sprint(o["resourceType"])+"/"+fmt.Sprint(o["id"])] = true
	}
	return out
}

func refOf(o map[string]any) string { return fmt.Sprint(o["resourceType"]) + "/" + fmt.Sprint(o["id"]) }

// ignoredIn reports whether an outcome entry names the parameter as ignored.
func ignoredIn(outcomes []json.RawMessage, name string) bool {
	for _, o := range outcomes {
		if strings.Contains(string(o), string(fhir.WarnUnknownParamIgnored)) && strings.Contains(string(o), `"`+name) {
			return true
		}
	}
	return false
}

var strictHdr = map[string]string{"Prefer": "handling=strict"}

// pool is the resources a parameter of a type is exercised on, with the
// base query that scopes a search to their patient.
type pool struct {
	base string
	tok  string
	res  []map[string]any
	rec  map[string]map[string]any
}

func (r *runner) pools(ctx context.Context, c *Check, typ string) []pool {
	var out []pool
	switch typ {
	case "AuditEvent":
		if r.o.AuditClientID == "" {
			return nil
		}
		tok, err := r.cachedToken(ctx, r.o.AuditClientID, r.o.AuditKey, "system/AuditEvent.rs")
		if err != nil {
			c.fail("auditor token: %v", err)
			return nil
		}
		res, _, err := r.searchAll(ctx, c, "/AuditEvent?_count=200", nil, tok)
		if err != nil {
			c.fail("AuditEvent search: %v", err)
			return nil
		}
		if len(res) > 200 {
			res = res[:200]
		}
		out = append(out, pool{base: "", tok: tok, res: res, rec: map[string]map[string]any{}})
	case "Patient":
		for _, p := range r.patients {
			out = append(out, pool{base: "identifier=" + url.QueryEscape(fhir.NHSNumberSystem+"|"+p.nhs), res: p.byType["Patient"], rec: p.byRef})
		}
	default:
		for _, p := range r.patients {
			tok, err := r.ptoken(ctx, p)
			if err != nil {
				c.fail("patient token for %s: %v", p.id, err)
				continue
			}
			out = append(out, pool{base: "patient=" + p.id, tok: tok, res: p.byType[typ], rec: p.byRef})
		}
	}
	return out
}

func (r *runner) checkSearchParams(ctx context.Context, c *Check) {
	c.Detail = "every search parameter the CapabilityStatement declares is accepted under Prefer: handling=strict and, where its SearchParameter definition is known, honoured: the searched-for resource is found, every match satisfies it, :not and the opposite date prefix exclude it"
	for _, rs := range r.cs.resources() {
		if !rs.has("search-type") {
			continue
		}
		pools := r.pools(ctx, c, rs.Type)
		if len(pools) == 0 {
			c.skip("%s: no pool of resources to search (AuditEvent needs --audit-client)", rs.Type)
			continue
		}
		for _, sp := range rs.SearchParam {
			c.Count++
			if err := r.exerciseParam(ctx, c, rs.Type, sp, pools); err != nil {
				c.fail("%s?%s: %v", rs.Type, sp.Name, err)
			}
		}
	}
}

func join(base, q string) string {
	if base == "" {
		return q
	}
	return base + "&" + q
}

func (r *runner) exerciseParam(ctx context.Context, c *Check, typ string, sp capParam, pools []pool) error {
	paths := pathsFor(sp.Definition, typ)
	// The parameter that scopes every search to a patient is checked by its
	// own use (checkPatientTotals); identifier likewise scopes Patient.
	if (sp.Name == "patient" && typ != "AuditEvent") || (typ == "Patient" && sp.Name == "identifier") {
		return nil
	}
	for _, pl := range pools {
		for _, o := range pl.res {
			var vs []any
			for _, p := range paths {
				vs = append(vs, values(o, p, pl.rec)...)
			}
			if len(vs) == 0 {
				continue
			}
			switch sp.Type {
			case "token":
				for _, v := range vs {
					for _, t := range tokensOf(v) {
						if t.code == "" {
							continue
						}
						return r.exerciseToken(ctx, typ, sp, paths, pl, o, t)
					}
				}
			case "date":
				for _, v := range vs {
					for _, s := range spansOf(v) {
						if s.lo.IsZero() {
							continue
						}
						return r.exerciseDate(ctx, typ, sp, paths, pl, o, s)
					}
				}
			case "reference":
				for _, v := range vs {
					for _, ref := range refsOf(v) {
						return r.exerciseRef(ctx, typ, sp, paths, pl, o, ref)
					}
				}
			}
		}
	}
	if len(paths) > 0 {
		c.skip("%s?%s: no resource with a value for it in the patients exercised: checked for acceptance only", typ, sp.Name)
	}
	return r.accepted(ctx, typ, sp, pools[0])
}

// accepted: the parameter is taken under strict handling and not reported
// as ignored.
func (r *runner) accepted(ctx context.Context, typ string, sp capParam, pl pool) error {
	val := map[string]string{"token": "true", "date": "ge1900-01-01", "reference": "Patient/x", "number": "1", "string": "x", "quantity": "1", "uri": "x"}[sp.Type]
	if val == "" {
		val = "x"
	}
	if typ != "Patient" && typ != "AuditEvent" && sp.Type == "reference" {
		val = strings.TrimPrefix(pl.base, "patient=")
	}
	_, outs, err := r.searchAll(ctx, nil, "/"+typ+"?"+join(pl.base, url.QueryEscape(sp.Name)+"="+url.QueryEscape(val)), strictHdr, pl.tok)
	if err != nil {
		return fmt.Errorf("not accepted under strict handling: %v", err)
	}
	if ignoredIn(outs, sp.Name) {
		return fmt.Errorf("declared but reported as ignored")
	}
	return nil
}

func (r *runner) exerciseToken(ctx context.Context, typ string, sp capParam, paths []string, pl pool, o map[string]any, t token) error {
	val := t.code
	if t.system != "" {
		val = t.system + "|" + t.code
	}
	res, outs, err := r.searchAll(ctx, nil, "/"+typ+"?"+join(pl.base, url.QueryEscape(sp.Name)+"="+url.QueryEscape(val)+"&_count=1000"), strictHdr, pl.tok)
	if err != nil {
		return err
	}
	if ignoredIn(outs, sp.Name) {
		return fmt.Errorf("declared but reported as ignored")
	}
	if !idsOf(res)[refOf(o)] {
		return fmt.Errorf("%s=%s does not find %s, which has it", sp.Name, val, refOf(o))
	}
	for _, m := range res {
		var have []token
		for _, p := range paths {
			for _, v := range values(m, p, pl.rec) {
				have = append(have, tokensOf(v)...)
			}
		}
		if len(have) > 0 && !tokenMatch(t, have) {
			return fmt.Errorf("%s=%s matched %s, which does not have it", sp.Name, val, refOf(m))
		}
	}
	notRes, _, err := r.searchAll(ctx, nil, "/"+typ+"?"+join(pl.base, url.QueryEscape(sp.Name+":not")+"="+url.QueryEscape(val)+"&_count=1000"), strictHdr, pl.tok)
	if err != nil {
		return nil // a CapabilityStatement does not claim modifiers: :not may be refused
	}
	if idsOf(notRes)[refOf(o)] {
		return fmt.Errorf("%s:not=%s still finds %s", sp.Name, val, refOf(o))
	}
	return nil
}

func (r *runner) exerciseDate(ctx context.Context, typ string, sp capParam, paths []string, pl pool, o map[string]any, s span) error {
	day := s.lo.UTC().Format("2006-01-02")
	d, _ := fhir.ParseDate(day)
	spansIn := func(m map[string]any) []span {
		var out []span
		for _, p := range paths {
			for _, v := range values(m, p, pl.rec) {
				out = append(out, spansOf(v)...)
			}
		}
		return out
	}
	ge, outs, err := r.searchAll(ctx, nil, "/"+typ+"?"+join(pl.base, url.QueryEscape(sp.Name)+"=ge"+day+"&_count=1000"), strictHdr, pl.tok)
	if err != nil {
		return err
	}
	if ignoredIn(outs, sp.Name) {
		return fmt.Errorf("declared but reported as ignored")
	}
	if !idsOf(ge)[refOf(o)] {
		return fmt.Errorf("%s=ge%s does not find %s, dated from %s", sp.Name, day, refOf(o), s.lo.Format(time.RFC3339))
	}
	for _, m := range ge {
		ok, any := false, false
		for _, x := range spansIn(m) {
			any = true
			ok = ok || x.hi.IsZero() || x.hi.After(d.Start)
		}
		if any && !ok {
			return fmt.Errorf("%s=ge%s matched %s, which ends before that day", sp.Name, day, refOf(m))
		}
	}
	lt, _, err := r.searchAll(ctx, nil, "/"+typ+"?"+join(pl.base, url.QueryEscape(sp.Name)+"=lt"+day+"&_count=1000"), strictHdr, pl.tok)
	if err != nil {
		return err
	}
	if idsOf(lt)[refOf(o)] && !s.lo.Before(d.Start) {
		return fmt.Errorf("%s=lt%s finds %s, which starts on that day", sp.Name, day, refOf(o))
	}
	for _, m := range lt {
		ok, any := false, false
		for _, x := range spansIn(m) {
			any = true
			ok = ok || x.lo.IsZero() || x.lo.Before(d.Start)
		}
		if any && !ok {
			return fmt.Errorf("%s=lt%s matched %s, which starts after that day", sp.Name, day, refOf(m))
		}
	}
	return nil
}

func (r *runner) exerciseRef(ctx context.Context, typ string, sp capParam, paths []string, pl pool, o map[string]any, ref string) error {
	res, outs, err := r.searchAll(ctx, nil, "/"+typ+"?"+join(pl.base, url.QueryEscape(sp.Name)+"="+url.QueryEscape(ref)+"&_count=1000"), strictHdr, pl.tok)
	if err != nil {
		return err
	}
	if ignoredIn(outs, sp.Name) {
		return fmt.Errorf("declared but reported as ignored")
	}
	if !idsOf(res)[refOf(o)] {
		return fmt.Errorf("%s=%s does not find %s, which refers to it", sp.Name, ref, refOf(o))
	}
	for _, m := range res {
		found := false
		for _, p := range paths {
			for _, v := range values(m, p, pl.rec) {
				for _, x := range refsOf(v) {
					found = found || x == ref || strings.HasSuffix(x, "/"+ref)
				}
			}
		}
		if !found {
			return fmt.Errorf("%s=%s matched %s, which does not refer to it", sp.Name, ref, refOf(m))
		}
	}
	return nil
}

// checkPatientTotals: T?patient=X finds exactly the T resources of X's
// $everything, for every searchable type.
func (r *runner) checkPatientTotals(ctx context.Context, c *Check) {
	c.Detail = "for every searchable type, ?patient= finds exactly the resources of that type in the patient's $everything, each referring to the patient"
	for _, rs := range r.cs.resources() {
		if !rs.has("search-type") || rs.Type == "Patient" || rs.Type == "AuditEvent" {
			continue
		}
		declared := false
		for _, sp := range rs.SearchParam {
			declared = declared || sp.Name == "patient"
		}
		if !declared {
			c.fail("%s is searchable but does not declare the patient parameter every search needs", rs.Type)
			continue
		}
		for i, p := range r.patients {
			if i >= 3 {
				break
			}
			c.Count++
			tok, err := r.ptoken(ctx, p)
			if err != nil {
				c.fail("patient token: %v", err)
				continue
			}
			res, _, err := r.searchAll(ctx, c, "/"+rs.Type+"?patient="+p.id+"&_count=1000", nil, tok)
			if err != nil {
				c.fail("%s?patient=%s: %v", rs.Type, p.id, err)
				continue
			}
			want := len(p.byType[rs.Type])
			if len(res) != want {
				c.fail("%s?patient=%s: %d matches, $everything has %d", rs.Type, p.id, len(res), want)
			}
			for _, m := range res {
				if p.byRef[refOf(m)] == nil {
					c.fail("%s?patient=%s matched %s, not in the patient's $everything", rs.Type, p.id, refOf(m))
					break
				}
			}
		}
	}
}

// probeParams are R4 parameters a server might honour without declaring:
// each must be declared, or refused under strict handling.
var probeParams = []string{
	"encounter", "subject", "identifier", "verification-status", "severity", "recorded-date", "abatement-date",
	"asserter", "based-on", "performer", "requester", "value-quantity", "code-value-concept", "context",
	"_text", "_content", "_has", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained",
	"_list", "_tag", "_profile", "_security", "_source", "_query", "gpgate-conformance-undeclared",
}

// refusedParams are FHIR R4 parameters that, not served, are refused
// (501 NOT_IMPLEMENTED) under either handling rather than ignored.
var refusedParams = map[string]bool{
	"_text": true, "_content": true, "_has": true, "_contained": true, "_list": true, "_tag": true,
	"_profile": true, "_security": true, "_source": true, "_query": true, "_filter": true,
}

func (r *runner) checkUndeclared(ctx context.Context, c *Check) {
	c.Detail = "a parameter not declared (R4's common ones and a made-up one) is 400 BAD_REQUEST under Prefer: handling=strict, and named in an outcome entry otherwise; FHIR's own parameters not served are 501 NOT_IMPLEMENTED either way"
	p := r.patients[0]
	rest := map[string]bool{}
	for _, sp := range r.cs.Rest[0].SearchParam {
		rest[sp.Name] = true
	}
	for _, rs := range r.cs.resources() {
		if !rs.has("search-type") || rs.Type == "AuditEvent" {
			continue
		}
		declared := map[string]bool{}
		for _, sp := range rs.SearchParam {
			declared[sp.Name] = true
		}
		base := "patient=" + p.id
		tok, err := r.ptoken(ctx, p)
		if err != nil {
			c.fail("patient token: %v", err)
			return
		}
		if rs.Type == "Patient" {
			base = "identifier=" + url.QueryEscape(fhir.NHSNumberSystem+"|"+p.nhs)
		}
		for _, name := range probeParams {
			if declared[name] || rest[name] || ((name == "_include" || name == "_revinclude") && (len(rs.SearchInclude) > 0 || len(rs.SearchRevInclude) > 0)) {
				continue // includes: checkIncludes
			}
			c.Count++
			path := "/" + rs.Type + "?" + base + "&" + url.QueryEscape(name) + "=x"
			if refusedParams[name] {
				// FHIR's own parameters gpgate does not serve are refused
				// whatever the handling: ignoring them would answer more
				// than was asked.
				for _, h := range []map[string]string{strictHdr, nil} {
					res, err := r.do(ctx, request{method: http.MethodGet, path: path, header: h, token: tok, label: "error"})
					r.expectOutcomeQuiet(c, rs.Type+"?"+name, res, err, http.StatusNotImplemented, fhir.CodeNotImplemented)
				}
				continue
			}
			res, err := r.do(ctx, request{method: http.MethodGet, path: path, header: strictHdr, token: tok, label: "error"})
			r.expectOutcomeQuiet(c, rs.Type+"?"+name+" (strict)", res, err, http.StatusBadRequest, fhir.CodeBadRequest)
			res, err = r.do(ctx, request{method: http.MethodGet, path: path + "&_count=1", token: tok, label: "ignored"})
			var b bundleJSON
			if err != nil || res.status != http.StatusOK || json.Unmarshal(res.body, &b) != nil {
				c.fail("%s?%s (lenient): %v status %d", rs.Type, name, err, res.status)
				continue
			}
			r.seenResource("lenient "+rs.Type, res.body)
			if _, outs := b.matches(); !ignoredIn(outs, name) {
				c.fail("%s?%s (lenient): not named in an outcome entry as ignored", rs.Type, name)
			}
		}
	}
}

// expectOutcomeQuiet is expectOutcome without counting.
func (r *runner) expectOutcomeQuiet(c *Check, what string, res response, err error, status int, code fhir.Code) {
	n := c.Count
	r.expectOutcome(c, what, res, err, status, code)
	c.Count = n
}
