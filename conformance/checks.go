package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// capStatement is what the suite reads of the CapabilityStatement.
type capStatement struct {
	ResourceType string   `json:"resourceType"`
	FHIRVersion  string   `json:"fhirVersion"`
	Kind         string   `json:"kind"`
	Format       []string `json:"format"`
	Rest         []struct {
		Mode     string `json:"mode"`
		Security *struct {
			Extension []struct {
				URL       string `json:"url"`
				Extension []struct {
					URL      string `json:"url"`
					ValueURI string `json:"valueUri"`
				} `json:"extension"`
			} `json:"extension"`
			Service []struct {
				Coding []struct {
					Code string `json:"code"`
				} `json:"coding"`
			} `json:"service"`
		} `json:"security"`
		Resource    []capResource `json:"resource"`
		SearchParam []capParam    `json:"searchParam"`
	} `json:"rest"`
}

type capResource struct {
	Type        string `json:"type"`
	Profile     string `json:"profile"`
	Interaction []struct {
		Code string `json:"code"`
	} `json:"interaction"`
	SearchParam      []capParam `json:"searchParam"`
	SearchInclude    []string   `json:"searchInclude"`
	SearchRevInclude []string   `json:"searchRevInclude"`
	Operation        []struct {
		Name       string `json:"name"`
		Definition string `json:"definition"`
	} `json:"operation"`
}

type capParam struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
	Type       string `json:"type"`
}

func (c *capResource) has(interaction string) bool {
	for _, i := range c.Interaction {
		if i.Code == interaction {
			return true
		}
	}
	return false
}

func (cs *capStatement) resources() []capResource {
	if cs == nil || len(cs.Rest) == 0 {
		return nil
	}
	return cs.Rest[0].Resource
}

func (cs *capStatement) resource(typ string) *capResource {
	for i, r := range cs.resources() {
		if r.Type == typ {
			return &cs.resources()[i]
		}
	}
	return nil
}

// patient is a patient the suite exercises, with its whole record as
// $everything answered it.
type patient struct {
	nhs, id string
	byType  map[string][]map[string]any
	byRef   map[string]map[string]any
	raw     map[string]json.RawMessage
	count   int
}

type bundleJSON struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

func (b *bundleJSON) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// matches returns the match-mode entries and the outcome entries.
func (b *bundleJSON) matches() (match, outcome []json.RawMessage) {
	for _, e := range b.Entry {
		if e.Search != nil && e.Search.Mode == "outcome" {
			outcome = append(outcome, e.Resource)
			continue
		}
		match = append(match, e.Resource)
	}
	return match, outcome
}

func isFHIRJSON(res response) bool {
	return strings.HasPrefix(res.header.Get("Content-Type"), "application/fhir+json")
}

func short(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// decodeBundle checks a 200 FHIR JSON Bundle answer and runs it through the
// UK Core check.
func (r *runner) decodeBundle(c *Check, what string, res response, err error, opts ...profiles.BundleOption) *bundleJSON {
	if err != nil {
		c.fail("%s: %v", what, err)
		return nil
	}
	if res.status != http.StatusOK {
		c.fail("%s: status %d, want 200: %s", what, res.status, short(res.body))
		return nil
	}
	if !isFHIRJSON(res) {
		c.fail("%s: Content-Type %q, want application/fhir+json", what, res.header.Get("Content-Type"))
	}
	var b bundleJSON
	if err := json.Unmarshal(res.body, &b); err != nil || b.ResourceType != "Bundle" {
		c.fail("%s: not a Bundle: %s", what, short(res.body))
		return nil
	}
	r.seenResource(what, res.body, opts...)
	return &b
}

// expectOutcome checks an error answer: status, an OperationOutcome with
// the GP Connect (Spine) code in issue.details, valid UK Core.
func (r *runner) expectOutcome(c *Check, what string, res response, err error, status int, code fhir.Code) {
	c.Count++
	if err != nil {
		c.fail("%s: %v", what, err)
		return
	}
	if res.status != status {
		c.fail("%s: status %d, want %d (%s): %s", what, res.status, status, code, short(res.body))
		return
	}
	if !isFHIRJSON(res) {
		c.fail("%s: Content-Type %q, want application/fhir+json", what, res.header.Get("Content-Type"))
	}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity string `json:"severity"`
			Code     string `json:"code"`
			Details  struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(res.body, &oo) != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		c.fail("%s: not an OperationOutcome: %s", what, short(res.body))
		return
	}
	is := oo.Issue[0]
	if len(is.Details.Coding) == 0 || is.Details.Coding[0].Code != string(code) || is.Details.Coding[0].System != fhir.SpineErrorSystem {
		c.fail("%s: issue.details %+v, want %s|%s", what, is.Details.Coding, fhir.SpineErrorSystem, code)
	}
	if is.Severity != "error" && is.Severity != "fatal" {
		c.fail("%s: issue.severity %q", what, is.Severity)
	}
	r.seenResource(what, res.body)
}

// ---- metadata, discovery, tokens ----

func (r *runner) checkMetadata(ctx context.Context, c *Check) {
	c.Detail = "GET /metadata: an R4 CapabilityStatement (server, instance, JSON, SMART security), valid R4"
	res, err := r.get(ctx, "/metadata", false, nil)
	c.Count++
	if err != nil || res.status != http.StatusOK {
		c.fail("GET /metadata: %v status %d", err, res.status)
		return
	}
	var cs capStatement
	if err := json.Unmarshal(res.body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" {
		c.fail("GET /metadata is not a CapabilityStatement: %s", short(res.body))
		return
	}
	r.seenResource("metadata", res.body)
	if cs.FHIRVersion != "4.0.1" {
		c.fail("fhirVersion %q, want 4.0.1", cs.FHIRVersion)
	}
	if !contains(cs.Format, "json") && !contains(cs.Format, "application/fhir+json") {
		c.fail("format %v does not name JSON", cs.Format)
	}
	if len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		c.fail("want one rest entry in mode server")
		return
	}
	sec := cs.Rest[0].Security
	if sec == nil {
		c.fail("rest.security is missing: the SMART oauth-uris must be declared")
	} else {
		var token string
		for _, e := range sec.Extension {
			if e.URL == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
				for _, x := range e.Extension {
					if x.URL == "token" {
						token = x.ValueURI
					}
				}
			}
		}
		if token == "" {
			c.fail("rest.security has no oauth-uris token extension")
		}
		smartSvc := false
		for _, s := range sec.Service {
			for _, cd := range s.Coding {
				smartSvc = smartSvc || cd.Code == "SMART-on-FHIR"
			}
		}
		if !smartSvc {
			c.fail("rest.security.service does not name SMART-on-FHIR")
		}
	}
	for _, rs := range cs.resources() {
		if !rs.has("read") {
			c.fail("%s is declared without the read interaction", rs.Type)
		}
		// View only: the one write is recording a clinician's consent to
		// view (Consent create, and delete to revoke it), which is part of
		// how data is permitted.
		if (rs.has("create") && rs.Type != "Consent") || rs.has("update") || (rs.has("delete") && rs.Type != "Consent") || rs.has("patch") {
			c.fail("%s declares a write interaction on a view-only server", rs.Type)
		}
		for _, p := range rs.SearchParam {
			if p.Type == "" {
				c.fail("%s.%s has no type", rs.Type, p.Name)
			}
		}
	}
	r.cs = &cs
}

func (r *runner) checkSmartConfig(ctx context.Context, c *Check) {
	c.Detail = "GET /.well-known/smart-configuration: client_credentials, private_key_jwt, ES384/RS384, token endpoint as in the CapabilityStatement"
	res, err := r.do(ctx, request{method: http.MethodGet, path: "/.well-known/smart-configuration", header: map[string]string{"Accept": "application/json"}})
	c.Count++
	if err != nil || res.status != http.StatusOK {
		c.fail("status %d %v", res.status, err)
		return
	}
	var sc struct {
		TokenEndpoint string   `json:"token_endpoint"`
		Grants        []string `json:"grant_types_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		Algs          []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		Capabilities  []string `json:"capabilities"`
		Scopes        []string `json:"scopes_supported"`
	}
	if err := json.Unmarshal(res.body, &sc); err != nil {
		c.fail("not JSON: %v", err)
		return
	}
	if !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		c.fail("Content-Type %q, want application/json", res.header.Get("Content-Type"))
	}
	if sc.TokenEndpoint == "" {
		c.fail("no token_endpoint")
	}
	if !contains(sc.Grants, "client_credentials") {
		c.fail("grant_types_supported %v lacks client_credentials", sc.Grants)
	}
	if !contains(sc.AuthMethods, "private_key_jwt") {
		c.fail("token_endpoint_auth_methods_supported %v lacks private_key_jwt", sc.AuthMethods)
	}
	if !contains(sc.Algs, "ES384") || !contains(sc.Algs, "RS384") {
		c.fail("token_endpoint_auth_signing_alg_values_supported %v lacks ES384 or RS384 (SMART requires both)", sc.Algs)
	}
	if !contains(sc.Capabilities, "client-confidential-asymmetric") {
		c.fail("capabilities %v lack client-confidential-asymmetric", sc.Capabilities)
	}
	if r.cs != nil && r.cs.Rest[0].Security != nil {
		for _, e := range r.cs.Rest[0].Security.Extension {
			for _, x := range e.Extension {
				if x.URL == "token" && x.ValueURI != sc.TokenEndpoint {
					c.fail("CapabilityStatement token %q != smart-configuration token_endpoint %q", x.ValueURI, sc.TokenEndpoint)
				}
			}
		}
	}
}

func (r *runner) checkToken(ctx context.Context, c *Check) {
	c.Detail = "client_credentials with a private_key_jwt assertion: a bearer access token that expires within 5 minutes"
	c.Count++
	k, err := parseKey(r.o.Key)
	if err != nil {
		c.fail("%v", err)
		return
	}
	tu, err := r.tokenURL(ctx)
	if err != nil {
		c.fail("%v", err)
		return
	}
	now := r.o.Now()
	a, err := signAssertion(k, assertion{clientID: r.o.ClientID, aud: tu, iat: now, exp: now.Add(4 * time.Minute)})
	if err != nil {
		c.fail("%v", err)
		return
	}
	ta, err := r.tokenRequest(ctx, tu, clientForm(a, r.o.Scope))
	if err != nil {
		c.fail("%v", err)
		return
	}
	if ta.status != http.StatusOK || ta.AccessToken == "" {
		c.fail("token endpoint: HTTP %d %s %s", ta.status, ta.Error, ta.Description)
		return
	}
	if !strings.EqualFold(ta.TokenType, "bearer") {
		c.fail("token_type %q, want bearer", ta.TokenType)
	}
	if ta.ExpiresIn <= 0 || ta.ExpiresIn > 300 {
		c.fail("expires_in %d, want 1..300", ta.ExpiresIn)
	}
	if ta.Scope == "" {
		c.fail("no scope in the token answer")
	}
	// The token works.
	res, err := r.do(ctx, request{method: http.MethodGet, path: "/metadata", token: ta.AccessToken})
	if err != nil || res.status != http.StatusOK {
		c.fail("GET /metadata with the token: %v %d", err, res.status)
	}
}

func (r *runner) checkTokenRejections(ctx context.Context, c *Check) {
	c.Detail = "the token endpoint refuses a foreign signature, an unknown client, an expired assertion, a wrong audience and a replayed assertion (invalid_client), and a wrong grant type"
	k, err := parseKey(r.o.Key)
	if err != nil {
		c.fail("%v", err)
		return
	}
	tu, err := r.tokenURL(ctx)
	if err != nil {
		c.fail("%v", err)
		return
	}
	now := r.o.Now()
	good := assertion{clientID: r.o.ClientID, aud: tu, iat: now, exp: now.Add(4 * time.Minute)}
	fk, err := foreignKey(k.KeyID())
	if err != nil {
		c.fail("%v", err)
		return
	}
	type rej struct {
		name, wantErr string
		key           jwk.Key
		a             assertion
		grant         string
	}
	unknown, expired, wrongAud := good, good, good
	unknown.clientID = "conformance-unknown-client"
	expired.iat, expired.exp = now.Add(-20*time.Minute), now.Add(-10*time.Minute)
	wrongAud.aud = r.base + "/not-the-token-endpoint"
	cases := []rej{
		{"foreign signature", "invalid_client", fk, good, ""},
		{"unknown client", "invalid_client", k, unknown, ""},
		{"expired assertion", "invalid_client", k, expired, ""},
		{"wrong audience", "invalid_client", k, wrongAud, ""},
		{"unsupported grant type", "unsupported_grant_type", k, good, "password"},
	}
	for _, tc := range cases {
		c.Count++
		a, err := signAssertion(tc.key, tc.a)
		if err != nil {
			c.fail("%s: %v", tc.name, err)
			continue
		}
		form := clientForm(a, r.o.Scope)
		if tc.grant != "" {
			form.Set("grant_type", tc.grant)
		}
		ta, err := r.tokenRequest(ctx, tu, form)
		if err != nil {
			c.fail("%s: %v", tc.name, err)
			continue
		}
		if ta.status != http.StatusBadRequest && ta.status != http.StatusUnauthorized {
			c.fail("%s: HTTP %d, want 400 or 401", tc.name, ta.status)
		}
		if ta.Error != tc.wantErr || ta.AccessToken != "" {
			c.fail("%s: error %q (token issued: %v), want %s", tc.name, ta.Error, ta.AccessToken != "", tc.wantErr)
		}
	}
	// A replayed assertion (same jti) is refused the second time.
	c.Count++
	replay := good
	replay.jti = newJTI()
	a, err := signAssertion(k, replay)
	if err != nil {
		c.fail("replay: %v", err)
		return
	}
	first, err := r.tokenRequest(ctx, tu, clientForm(a, r.o.Scope))
	if err != nil || first.status != http.StatusOK {
		c.fail("replay: the first use was refused: %v %+v", err, first)
		return
	}
	second, err := r.tokenRequest(ctx, tu, clientForm(a, r.o.Scope))
	if err != nil || second.AccessToken != "" || second.Error != "invalid_client" {
		c.fail("replay: the second use of one assertion was not refused with invalid_client: %v %+v", err, second)
	}
}

func (r *runner) checkNoToken(ctx context.Context, c *Check) {
	c.Detail = "clinical requests without a token, or with an invalid one, are 401 UNAUTHORISED with a Bearer challenge"
	p := "/Patient?identifier=" + url.QueryEscape(fhir.NHSNumberSystem+"|"+demoNHSNumbers(0, 1)[0])
	for _, tc := range []struct{ name, token string }{{"no token", ""}, {"garbage token", "not-a-token"}} {
		res, err := r.do(ctx, request{method: http.MethodGet, path: p, token: tc.token, label: "error-401"})
		r.expectOutcome(c, tc.name, res, err, http.StatusUnauthorized, fhir.CodeUnauthorized)
		if err == nil && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
			c.fail("%s: WWW-Authenticate %q, want a Bearer challenge", tc.name, res.header.Get("WWW-Authenticate"))
		}
	}
}

func (r *runner) checkOperationDefinitions(ctx context.Context, c *Check) {
	c.Detail = "every operation declared has an OperationDefinition served at its canonical, for its code and type"
	for _, rs := range r.cs.resources() {
		for _, op := range rs.Operation {
			c.Count++
			if !strings.HasPrefix(op.Definition, r.base+"/") {
				c.fail("%s $%s: definition %q is not served by this deployment (not under %s)", rs.Type, op.Name, op.Definition, r.base)
				continue
			}
			res, err := r.get(ctx, op.Definition, false, nil)
			if err != nil || res.status != http.StatusOK {
				c.fail("GET %s: %v status %d", op.Definition, err, res.status)
				continue
			}
			var od struct {
				ResourceType string   `json:"resourceType"`
				URL          string   `json:"url"`
				Code         string   `json:"code"`
				Resource     []string `json:"resource"`
			}
			if json.Unmarshal(res.body, &od) != nil || od.ResourceType != "OperationDefinition" {
				c.fail("%s is not an OperationDefinition", op.Definition)
				continue
			}
			r.seenResource(op.Definition, res.body)
			if od.URL != op.Definition {
				c.fail("%s: url %q differs from the canonical it is served at", op.Definition, od.URL)
			}
			if od.Code != op.Name {
				c.fail("%s: code %q, declared as $%s", op.Definition, od.Code, op.Name)
			}
			if !contains(od.Resource, rs.Type) {
				c.fail("%s: resource %v lacks %s", op.Definition, od.Resource, rs.Type)
			}
		}
	}
}

// ---- patients and their records ----

func (r *runner) checkPatients(ctx context.Context, c *Check) {
	c.Detail = "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|N finds each patient; $everything fetched whole"
	wanted := append([]string(nil), r.o.NHS...)
	found := map[string]bool{}
	for _, n := range wanted {
		c.Count++
		p, err := r.findPatient(ctx, n)
		if err != nil {
			c.fail("NHS number %s…: %v", n[:3], err)
			continue
		}
		if p == nil {
			c.fail("a given NHS number (%s…) is not found", n[:3])
			continue
		}
		found[n] = true
		r.patients = append(r.patients, p)
	}
	if r.o.Discover > 0 {
		misses, discovered := 0, 0
		for k := 0; discovered < r.o.Discover && misses < 30; {
			batch := demoNHSNumbers(k, 1)
			if len(batch) == 0 {
				break
			}
			n := batch[0]
			k = nextK(n)
			if found[n] {
				continue
			}
			c.Count++
			p, err := r.findPatient(ctx, n)
			if errors.Is(err, errNoConsent) {
				misses = 0
				c.skip("a demo patient refused with NO_PATIENT_CONSENT (dissent) is not exercised")
				continue
			}
			if err != nil {
				c.fail("discovery: %v", err)
				return
			}
			if p == nil {
				misses++
				continue
			}
			misses = 0
			discovered++
			r.patients = append(r.patients, p)
		}
		if discovered == 0 {
			c.skip("no demo patient found by probing 999-prefixed NHS numbers: give --nhs")
		}
	}
	if len(r.patients) == 0 {
		c.fail("no patient to exercise: give NHS numbers of patients the deployment holds")
		return
	}
	for _, p := range r.patients {
		if err := r.loadRecord(ctx, c, p); err != nil {
			c.fail("$everything for %s: %v", p.id, err)
		}
	}
	if r.o.Log != nil {
		r.o.Log("conformance: %d patients loaded", len(r.patients))
	}
}

var errNoConsent = errors.New("the patient dissents from sharing (403 NO_PATIENT_CONSENT)")

// nextK returns the demo index after NHS number n (999kkkkkkc).
func nextK(n string) int {
	k, _ := strconv.Atoi(n[3:9])
	return k + 1
}

func (r *runner) findPatient(ctx context.Context, nhs string) (*patient, error) {
	res, err := r.get(ctx, "/Patient?identifier="+url.QueryEscape(fhir.NHSNumberSystem+"|"+nhs), true, nil)
	if err != nil {
		return nil, err
	}
	if res.status == http.StatusForbidden && strings.Contains(string(res.body), string(fhir.CodeNoOrganisationConsent)) {
		// An unknown patient is answered like one without an agreement.
		r.seenResource("Patient search", res.body)
		return nil, nil
	}
	if res.status == http.StatusForbidden && strings.Contains(string(res.body), string(fhir.CodeNoPatientConsent)) {
		r.seenResource("Patient search", res.body)
		return nil, errNoConsent // a patient who dissents: held, but not to be read
	}
	if res.status != http.StatusOK {
		return nil, fmt.Errorf("Patient search: status %d: %s", res.status, short(res.body))
	}
	var b bundleJSON
	if err := json.Unmarshal(res.body, &b); err != nil {
		return nil, err
	}
	r.seenResource("Patient search", res.body)
	if b.Total == nil {
		return nil, fmt.Errorf("Patient search Bundle has no total")
	}
	m, _ := b.matches()
	if *b.Total == 0 && len(m) == 0 {
		return nil, nil
	}
	if *b.Total != 1 || len(m) != 1 {
		return nil, fmt.Errorf("Patient search: total %d, %d entries, want 1", *b.Total, len(m))
	}
	var pt struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Identifier   []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	_ = json.Unmarshal(m[0], &pt)
	if pt.ResourceType != "Patient" || pt.ID == "" {
		return nil, fmt.Errorf("Patient search answered a %s", pt.ResourceType)
	}
	has := false
	for _, id := range pt.Identifier {
		has = has || (id.System == fhir.NHSNumberSystem && id.Value == nhs)
	}
	if !has {
		return nil, fmt.Errorf("Patient %s does not carry the NHS number searched for", pt.ID)
	}
	return &patient{nhs: nhs, id: pt.ID}, nil
}

// loadRecord fetches a patient's $everything, every page.
func (r *runner) loadRecord(ctx context.Context, c *Check, p *patient) error {
	p.byType, p.byRef, p.raw = map[string][]map[string]any{}, map[string]map[string]any{}, map[string]json.RawMessage{}
	next := "/Patient/" + p.id + "/$everything?_count=1000"
	for pages := 0; next != ""; pages++ {
		if pages > 1000 {
			return fmt.Errorf("more than 1000 pages")
		}
		res, err := r.pget(ctx, p, next, nil)
		b := r.decodeBundle(c, "$everything "+p.id, res, err)
		if b == nil {
			return fmt.Errorf("page %d failed", pages)
		}
		m, _ := b.matches()
		for _, raw := range m {
			var o map[string]any
			if json.Unmarshal(raw, &o) != nil {
				continue
			}
			typ, _ := o["resourceType"].(string)
			id, _ := o["id"].(string)
			p.byType[typ] = append(p.byType[typ], o)
			p.byRef[typ+"/"+id] = o
			p.raw[typ+"/"+id] = raw
			p.count++
		}
		next = b.link("next")
	}
	return nil
}

// ---- read ----

func (r *runner) checkRead(ctx context.Context, c *Check) {
	c.Detail = "every type declared readable is read by id (ETag, If-None-Match 304) for a resource of it seen in a record"
	for _, rs := range r.cs.resources() {
		if !rs.has("read") || rs.Type == "OperationDefinition" || rs.Type == "AuditEvent" {
			continue
		}
		var ref string
		var owner *patient
		for _, p := range r.patients {
			if l := p.byType[rs.Type]; len(l) > 0 {
				id, _ := l[0]["id"].(string)
				ref, owner = rs.Type+"/"+id, p
				break
			}
		}
		if ref == "" {
			c.skip("%s: no resource of the type in the patients exercised", rs.Type)
			continue
		}
		c.Count++
		res, err := r.pget(ctx, owner, "/"+ref, nil)
		if err != nil || res.status != http.StatusOK {
			c.fail("GET %s: %v status %d", ref, err, res.status)
			continue
		}
		var o map[string]any
		_ = json.Unmarshal(res.body, &o)
		if o["resourceType"] != rs.Type || rs.Type+"/"+fmt.Sprint(o["id"]) != ref {
			c.fail("GET %s answered %v/%v", ref, o["resourceType"], o["id"])
		}
		r.seenResource("read "+rs.Type, res.body)
		if rs.Profile != "" {
			if !claims(o, rs.Profile) && !(rs.Type == "Observation" && claimsAny(o)) {
				c.fail("%s does not claim the profile %s the CapabilityStatement declares", ref, rs.Profile)
			}
		}
		etag := res.header.Get("ETag")
		if etag == "" {
			c.fail("GET %s: no ETag", ref)
			continue
		}
		res2, err := r.pget(ctx, owner, "/"+ref, map[string]string{"If-None-Match": etag})
		if err != nil || res2.status != http.StatusNotModified {
			c.fail("GET %s with If-None-Match: %v status %d, want 304", ref, err, res2.status)
		}
	}
}

func claims(o map[string]any, profile string) bool {
	m, _ := o["meta"].(map[string]any)
	l, _ := m["profile"].([]any)
	for _, p := range l {
		if p == profile {
			return true
		}
	}
	return false
}

func claimsAny(o map[string]any) bool {
	m, _ := o["meta"].(map[string]any)
	l, _ := m["profile"].([]any)
	return len(l) > 0
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
