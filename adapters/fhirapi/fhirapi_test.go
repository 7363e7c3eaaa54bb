package fhirapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/gpgate/gpgate/adapters/backendauth"
	"github.com/gpgate/gpgate/adapters/fhirapi"
	"github.com/gpgate/gpgate/fhir"
)

const nhs fhir.NHSNumber = "9000000009"

type obj = map[string]any

// upstream is a small FHIR R4 server holding one patient, written for these
// tests: every type search pages by _count, any type can be made slow (it
// blocks until the client gives up) or failing, and it may require a token.
type upstream struct {
	srv        *httptest.Server
	resources  map[string][]obj // type -> resources
	patientNHS string
	slow, fail map[string]bool
	down       map[string]bool // 503: unavailable
	badNext    map[string]bool
	mu         sync.Mutex
	token      string // required bearer token, "" for none
	pubKey     jwk.Key
	tokenHits  atomic.Int64
	hits       sync.Map // path -> *atomic.Int64
	queries    sync.Map // type -> url.Values of the last search
	issued     atomic.Int64
}

func ref(s string) obj { return obj{"reference": s} }
func cc(system, code string) obj {
	return obj{"coding": []any{obj{"system": system, "code": code}}}
}

func newUpstream(t testing.TB, nConditions int) *upstream {
	u := &upstream{resources: map[string][]obj{}, patientNHS: string(nhs), slow: map[string]bool{}, fail: map[string]bool{}, down: map[string]bool{}, badNext: map[string]bool{}}
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	subj := ref("Patient/up-1")
	u.resources["Patient"] = []obj{{"resourceType": "Patient", "id": "up-1",
		"identifier": []any{obj{"system": fhir.NHSNumberSystem, "value": string(nhs)}},
		"text":       obj{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">free text</div>`},
		"meta":       obj{"versionId": "7", "source": "upstream"},
		"birthDate":  "1970-01-01", "gender": "female",
		"generalPractitioner": []any{ref("Organization/org-1")},
		"link":                []any{obj{"other": ref("Patient/elsewhere"), "type": "seealso"}}}}
	u.resources["Organization"] = []obj{{"resourceType": "Organization", "id": "org-1",
		"identifier": []any{obj{"system": fhir.ODSSystem, "value": "A12345"}}}}
	for i := 0; i < nConditions; i++ {
		cat := "problem-list-item"
		if i%5 == 4 {
			cat = "encounter-diagnosis"
		}
		u.resources["Condition"] = append(u.resources["Condition"], obj{"resourceType": "Condition", "id": fmt.Sprintf("c%d", i),
			"subject": subj, "code": cc(fhir.SNOMED, "38341003"),
			"category":  []any{cc(fhir.ConditionCategorySystem, cat)},
			"encounter": ref(u.base() + "/Encounter/e1/_history/2"),
			"evidence":  []any{obj{"detail": []any{ref("Observation/not-fetched")}}}})
	}
	u.resources["Encounter"] = []obj{{"resourceType": "Encounter", "id": "e1", "status": "finished",
		"class": obj{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "subject": subj}}
	u.resources["MedicationRequest"] = []obj{{"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
		"subject": subj, "medicationReference": ref("Medication/m1")}}
	u.resources["Medication"] = []obj{{"resourceType": "Medication", "id": "m1", "code": cc(fhir.DMD, "322236009")}}
	u.resources["AllergyIntolerance"] = []obj{{"resourceType": "AllergyIntolerance", "id": "a1", "patient": subj, "code": cc(fhir.SNOMED, "91936005")}}
	u.resources["Observation"] = []obj{
		{"resourceType": "Observation", "id": "o1", "status": "final", "subject": subj,
			"category": []any{cc(fhir.ObservationCategorySystem, "laboratory")}, "code": cc(fhir.LOINC, "718-7"),
			"valueQuantity": obj{"value": json.Number("13.5"), "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"}},
		{"resourceType": "Observation", "id": "bp1", "status": "final", "subject": subj,
			"category": []any{cc(fhir.ObservationCategorySystem, "vital-signs")}, "code": cc(fhir.LOINC, fhir.LOINCBloodPressurePanel),
			"effectiveDateTime": "2024-01-01"},
	}
	return u
}

func (u *upstream) base() string { return u.srv.URL + "/fhir" }

func (u *upstream) setToken(t string) {
	u.mu.Lock()
	u.token = t
	u.mu.Unlock()
}

func (u *upstream) currentToken() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.token
}

func (u *upstream) count(path string) int64 {
	v, _ := u.hits.LoadOrStore(path, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		u.serveToken(w, r)
		return
	}
	v, _ := u.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if tok := u.currentToken(); tok != "" && r.Header.Get("Authorization") != "Bearer "+tok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	typ := strings.TrimPrefix(r.URL.Path, "/fhir/")
	q := r.URL.Query()
	u.queries.Store(typ, q)
	if u.slow[typ] {
		<-r.Context().Done()
		return
	}
	if u.fail[typ] {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if u.down[typ] {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var matches, includes []obj
	switch typ {
	case "Patient":
		want := strings.TrimPrefix(q.Get("identifier"), fhir.NHSNumberSystem+"|")
		if want == u.patientNHS {
			matches = u.resources["Patient"]
			if len(q["_include"]) > 0 {
				includes = u.resources["Organization"]
			}
		}
	default:
		if q.Get("patient") != "up-1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, res := range u.resources[typ] {
			if c := q.Get("category"); c != "" && !strings.Contains(mustJSON(res["category"]), strings.SplitN(c, "|", 2)[1]) {
				continue
			}
			if c := q.Get("code"); c != "" && !strings.Contains(mustJSON(res["code"]), strings.SplitN(c, "|", 2)[1]) {
				continue
			}
			matches = append(matches, res)
		}
		if strings.HasSuffix(q.Get("_include"), ":medication") {
			includes = u.resources["Medication"]
		}
	}
	n, _ := strconv.Atoi(q.Get("_count"))
	if n <= 0 {
		n = 1000
	}
	page, _ := strconv.Atoi(q.Get("page"))
	lo, hi := page*n, page*n+n
	if lo > len(matches) {
		lo = len(matches)
	}
	if hi > len(matches) {
		hi = len(matches)
	}
	b := obj{"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
	var entries []any
	for _, res := range matches[lo:hi] {
		entries = append(entries, obj{"fullUrl": u.base() + "/" + typ + "/" + res["id"].(string), "resource": res, "search": obj{"mode": "match"}})
	}
	if page == 0 {
		for _, res := range includes {
			entries = append(entries, obj{"resource": res, "search": obj{"mode": "include"}})
		}
		entries = append(entries, obj{"resource": obj{"resourceType": "OperationOutcome", "issue": []any{}}, "search": obj{"mode": "outcome"}})
	}
	b["entry"] = entries
	if hi < len(matches) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("page", strconv.Itoa(page+1))
		next := u.base() + "/" + typ + "?" + nq.Encode()
		if u.badNext[typ] {
			next = "http://elsewhere.invalid/fhir/" + typ + "?" + nq.Encode()
		}
		b["link"] = []any{obj{"relation": "self", "url": r.URL.String()}, obj{"relation": "next", "url": next}}
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	_ = json.NewEncoder(w).Encode(b)
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// serveToken is a SMART Backend Services token endpoint: it verifies the
// client assertion with the client's public key.
func (u *upstream) serveToken(w http.ResponseWriter, r *http.Request) {
	u.tokenHits.Add(1)
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" ||
		r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_request"}`))
		return
	}
	tok, err := jwt.Parse([]byte(r.Form.Get("client_assertion")), jwt.WithKey(jwa.ES384, u.pubKey),
		jwt.WithIssuer("gpgate"), jwt.WithSubject("gpgate"), jwt.WithAudience(u.srv.URL+"/token"), jwt.WithValidate(true))
	if err != nil || tok.JwtID() == "" || tok.Expiration().Sub(tok.IssuedAt()) > 5*time.Minute {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	tok = nil
	issued := fmt.Sprintf("T%d", u.issued.Add(1))
	u.setToken(issued)
	_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":300,"scope":%q}`, issued, r.Form.Get("scope"))
}

func newSource(t testing.TB, u *upstream, mod func(*fhirapi.Options)) *fhirapi.Source {
	o := fhirapi.Options{BaseURL: u.base(), Practice: "A12345", PageSize: 10, AreaTimeout: 5 * time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := fhirapi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func countTypes(rec *fhir.Record) map[string]int {
	m := map[string]int{}
	for _, r := range rec.Resources {
		m[r.Type]++
	}
	return m
}

func TestRecordAllAreas(t *testing.T) {
	u := newUpstream(t, 25)
	s := newSource(t, u, nil)
	rec, err := s.Record(context.Background(), nhs, fhir.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	pid := fhir.PatientID(nhs)
	want := map[string]int{"Patient": 1, "Organization": 1, "Condition": 25, "Encounter": 1, "MedicationRequest": 1,
		"Medication": 1, "AllergyIntolerance": 1, "Observation": 2}
	if got := countTypes(rec); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("types = %v, want %v", got, want)
	}
	if len(rec.Warnings) != 0 || rec.Version == "" || rec.PatientID != pid || rec.Resources[0].Type != "Patient" || rec.Resources[0].ID != pid {
		t.Fatalf("record: warnings %v version %q patient %s first %s/%s", rec.Warnings, rec.Version, rec.PatientID, rec.Resources[0].Type, rec.Resources[0].ID)
	}
	if n := u.count("/fhir/Condition"); n != 3 {
		t.Fatalf("Condition pages fetched = %d, want 3 (25 at 10 a page)", n)
	}
	ids := map[string]bool{}
	for _, r := range rec.Resources {
		t.Run(r.Type+"/"+r.ID, func(t *testing.T) {
			if !strings.HasPrefix(r.ID, pid) || !fhir.ValidID(r.ID) || ids[r.Type+"/"+r.ID] {
				t.Fatalf("id %q", r.ID)
			}
			ids[r.Type+"/"+r.ID] = true
			js := string(r.JSON)
			if strings.Contains(js, "free text") || strings.Contains(js, `"versionId"`) || strings.Contains(js, "up-1") {
				t.Fatalf("upstream narrative, meta or id left: %s", js)
			}
			if !strings.Contains(js, `"profile":["`+profileWanted(r)+`"]`) {
				t.Fatalf("profile: %s", js)
			}
			for _, ref := range fhir.References(r.JSON) {
				if !strings.HasPrefix(ref, "Patient/"+pid) && !strings.Contains(ref, "/"+pid+"-") {
					t.Fatalf("reference %q not rewritten", ref)
				}
			}
			if r.Type != "Patient" && r.Type != "Organization" && r.Type != "Medication" && r.Ix.Patient != pid {
				t.Fatalf("subject = %q", r.Ix.Patient)
			}
		})
	}
	t.Run("references between fetched resources survive", func(t *testing.T) {
		c := rec.Find("Condition", pid+"-cond-c0")
		if c == nil || !strings.Contains(string(c.JSON), `"encounter":{"reference":"Encounter/`+pid+`-enc-e1"}`) {
			t.Fatalf("condition: %v", c)
		}
		if strings.Contains(string(c.JSON), "not-fetched") || strings.Contains(string(c.JSON), "evidence") {
			t.Fatal("a reference to a resource not fetched survived")
		}
		mr := rec.Find("MedicationRequest", pid+"-mr-mr1")
		if mr == nil || len(mr.Ix.Code) == 0 {
			t.Fatal("medication codes not linked through the included Medication")
		}
		p := rec.Resources[0]
		if !strings.Contains(string(p.JSON), `"generalPractitioner":[{"reference":"Organization/`+pid+`-org-org-1"}]`) || strings.Contains(string(p.JSON), "elsewhere") {
			t.Fatalf("patient: %s", p.JSON)
		}
	})
}

func profileWanted(r *fhir.Resource) string {
	if r.Type == "Observation" && fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
		return fhir.ProfileBloodPressure
	}
	if r.Type == "Observation" {
		return fhir.ProfileObservationLab
	}
	return fhir.ProfileFor(r.Type)
}

func TestRecordAreasAndFilters(t *testing.T) {
	tests := []struct {
		name      string
		areas     fhir.Areas
		types     map[string]int
		queryType string
		param     string
		value     string
	}{
		{"problems only: the encounter reference is dropped", fhir.AreaProblems, map[string]int{"Patient": 1, "Organization": 1, "Condition": 8}, "Condition", "category", ""},
		{"diagnoses only: filtered by category on the server", fhir.AreaDiagnoses, map[string]int{"Patient": 1, "Organization": 1, "Condition": 2}, "Condition", "category", fhir.ConditionCategorySystem + "|encounter-diagnosis"},
		{"examination only: filtered by code", fhir.AreaExamination, map[string]int{"Patient": 1, "Organization": 1, "Observation": 1}, "Observation", "code", fhir.LOINC + "|" + fhir.LOINCBloodPressurePanel},
		{"investigations: no filter (the default area)", fhir.AreaInvestigations, map[string]int{"Patient": 1, "Organization": 1, "Observation": 1}, "Observation", "code", ""},
		{"demographics only: no searches", fhir.AreaDemographics, map[string]int{"Patient": 1, "Organization": 1}, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t, 10)
			rec, err := newSource(t, u, nil).Record(context.Background(), nhs, tc.areas)
			if err != nil {
				t.Fatal(err)
			}
			if got := countTypes(rec); fmt.Sprint(got) != fmt.Sprint(tc.types) {
				t.Fatalf("types = %v, want %v", got, tc.types)
			}
			for _, r := range rec.Resources {
				if r.Type == "Condition" && strings.Contains(string(r.JSON), `"encounter":`) {
					t.Fatal("reference to an Encounter not fetched survived")
				}
			}
			if tc.queryType != "" {
				q, _ := u.queries.Load(tc.queryType)
				if got := q.(url.Values).Get(tc.param); got != tc.value {
					t.Fatalf("%s = %q, want %q", tc.param, got, tc.value)
				}
			}
		})
	}
}

func TestPartialAnswers(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*upstream)
		missing fhir.Areas
	}{
		{"one slow area", func(u *upstream) { u.slow["Observation"] = true }, fhir.AreaInvestigations | fhir.AreaExamination},
		{"one failing area", func(u *upstream) { u.fail["AllergyIntolerance"] = true }, fhir.AreaAllergies},
		{"a failing type fails its whole area", func(u *upstream) { u.fail["Medication"+"Request"] = true }, fhir.AreaMedication},
		{"a next link to another server", func(u *upstream) { u.badNext["Condition"] = true }, fhir.AreaProblems | fhir.AreaDiagnoses},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t, 25)
			tc.setup(u)
			s := newSource(t, u, func(o *fhirapi.Options) { o.AreaTimeout = 200 * time.Millisecond })
			rec, err := s.Record(context.Background(), nhs, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			var warned fhir.Areas
			for _, w := range rec.Warnings {
				if w.Code != fhir.WarnAreaUnavailable || w.Severity != "warning" {
					t.Fatalf("warning %+v", w)
				}
				for _, a := range fhir.AllAreas.List() {
					if strings.Contains(w.Diagnostics, " "+a.Name()+" area") {
						warned |= a
					}
				}
			}
			if warned != tc.missing {
				t.Fatalf("warned areas = %s, want %s", warned, tc.missing)
			}
			for _, r := range rec.Resources {
				if tc.missing.Any(r.Ix.Area) {
					t.Fatalf("%s of a failed area kept", r.Type)
				}
			}
			if len(rec.Resources) < 3 {
				t.Fatalf("only %d resources: the rest of the answer is missing", len(rec.Resources))
			}
		})
	}
}

func TestPatientRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*upstream)
		code  fhir.Code
	}{
		{"unknown patient", func(u *upstream) { u.patientNHS = "9000000017" }, fhir.CodePatientNotFound},
		{"upstream answers with another patient", func(u *upstream) {
			u.resources["Patient"][0]["identifier"] = []any{obj{"system": fhir.NHSNumberSystem, "value": "9000000017"}}
		}, fhir.CodePatientNotFound},
		{"upstream down", func(u *upstream) { u.fail["Patient"] = true }, fhir.CodeTimeout},
		{"two patients, one number", func(u *upstream) {
			p2 := obj{}
			for k, v := range u.resources["Patient"][0] {
				p2[k] = v
			}
			p2["id"] = "up-2"
			u.resources["Patient"] = append(u.resources["Patient"], p2)
		}, fhir.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t, 1)
			tc.setup(u)
			_, err := newSource(t, u, nil).Record(context.Background(), nhs, fhir.AllAreas)
			if fhir.AsError(err).Code != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
}

func TestSMARTBackendServicesToUpstream(t *testing.T) {
	u := newUpstream(t, 25)
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := jwk.FromRaw(priv)
	_ = jwk.AssignKeyID(key)
	u.pubKey, _ = key.PublicKey()
	u.setToken("not-yet-issued")
	ba, err := backendauth.New(backendauth.Options{TokenURL: u.srv.URL + "/token", ClientID: "gpgate", Key: key, Scope: "system/*.rs"})
	if err != nil {
		t.Fatal(err)
	}
	s := newSource(t, u, func(o *fhirapi.Options) { o.Token = ba })
	rec, err := s.Record(context.Background(), nhs, fhir.AllAreas)
	if err != nil || len(rec.Warnings) != 0 {
		t.Fatalf("record: %v %v", err, rec)
	}
	if n := u.tokenHits.Load(); n != 1 {
		t.Fatalf("token requests = %d, want 1 for every search of the record", n)
	}
	if _, err := s.Record(context.Background(), nhs, fhir.AreaProblems); err != nil {
		t.Fatal(err)
	}
	if n := u.tokenHits.Load(); n != 1 {
		t.Fatalf("token not cached: %d requests", n)
	}
	t.Run("a refused token is renewed once", func(t *testing.T) {
		u.setToken("rotated")
		if _, err := s.Record(context.Background(), nhs, fhir.AreaAllergies); err != nil {
			t.Fatal(err)
		}
		if n := u.tokenHits.Load(); n != 2 {
			t.Fatalf("token requests = %d, want 2", n)
		}
	})
}

func BenchmarkRecordFanOut(b *testing.B) {
	u := newUpstream(b, 200)
	s := newSource(b, u, func(o *fhirapi.Options) { o.PageSize = 100 })
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec, err := s.Record(ctx, nhs, fhir.AllAreas)
		if err != nil || len(rec.Warnings) > 0 {
			b.Fatal(err, rec.Warnings)
		}
	}
}
