package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/fhir"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const aud = "https://provider.example/A82038/STU3/1/gpconnect/structured/fhir"

func newEmulator(t *testing.T) *Emulator {
	t.Helper()
	src := filepath.Join("..", "..", "..", "..", "shared", "testdata", "gpconnect-stu3", "9465699926_Sajal_full_20210122.json")
	body, err := os.ReadFile(src)
	if err != nil {
		t.Skip("../shared/testdata/gpconnect-stu3 is absent (the shared test data sits beside the checkout)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), body, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Dir: dir, ODS: "A82038", ASID: "918999198993", Audience: aud, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var requester = &gpconnect.Requester{UserID: "u1", SDSUserID: "555000111222", SDSRoleProfileID: "555000222333", Family: "Jones", OrgODS: "RXX01", OrgName: "Test Hospital"}

func goodToken(t *testing.T) string {
	tok, err := gpconnect.Token(now, "https://gpgate.example/", aud, gpconnect.Device{System: "https://gpgate.example/Id/device", ID: "gpgate", Model: "gpgate", Version: "1"}, requester)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func request(tok string, mutate func(h http.Header), body []byte) *http.Request {
	if body == nil {
		body = gpconnect.BuildParameters("9465699926", gpconnect.SectionsFor(fhir.AllAreas, true))
	}
	r := httptest.NewRequest(http.MethodPost, "/A82038/STU3/1/gpconnect/structured/fhir/Patient/$gpc.getstructuredrecord", bytes.NewReader(body))
	h := r.Header
	h.Set("Accept", "application/fhir+json")
	h.Set("Content-Type", "application/fhir+json")
	h.Set("Authorization", "Bearer "+tok)
	h.Set("Ssp-TraceID", "629ea9ba-a077-4d99-b289-7a9b19fd4e03")
	h.Set("Ssp-From", "200000000359")
	h.Set("Ssp-To", "918999198993")
	h.Set("Ssp-InteractionID", gpconnect.InteractionID)
	if mutate != nil {
		mutate(h)
	}
	return r
}

func spineCode(t *testing.T, w *httptest.ResponseRecorder) string {
	var oo struct {
		ResourceType string
		Issue        []struct {
			Details struct{ Coding []struct{ Code string } }
		}
	}
	_ = json.Unmarshal(w.Body.Bytes(), &oo)
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 || len(oo.Issue[0].Details.Coding) == 0 {
		t.Fatalf("not an OperationOutcome: %s", w.Body.String())
	}
	return oo.Issue[0].Details.Coding[0].Code
}

func TestHeadersAndParameters(t *testing.T) {
	e := newEmulator(t)
	tok := goodToken(t)
	cases := []struct {
		name   string
		mutate func(h http.Header)
		body   []byte
		status int
		code   string
	}{
		{"no trace id", func(h http.Header) { h.Del("Ssp-TraceID") }, nil, 400, "BAD_REQUEST"},
		{"no from", func(h http.Header) { h.Del("Ssp-From") }, nil, 400, "BAD_REQUEST"},
		{"another provider", func(h http.Header) { h.Set("Ssp-To", "111") }, nil, 403, "ACCESS_DENIED"},
		{"another interaction", func(h http.Header) {
			h.Set("Ssp-InteractionID", "urn:nhs:names:services:gpconnect:fhir:rest:read:patient-1")
		}, nil, 403, "ACCESS_DENIED"},
		{"xml", func(h http.Header) { h.Set("Content-Type", "application/fhir+xml") }, nil, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"no bearer", func(h http.Header) { h.Del("Authorization") }, nil, 400, "BAD_REQUEST"},
		{"not parameters", nil, []byte(`{"resourceType":"Patient"}`), 422, "INVALID_RESOURCE"},
		{"bad nhs number", nil, []byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"1234567890"}},{"name":"includeProblems"}]}`), 400, "INVALID_NHS_NUMBER"},
		{"allergies without their part", nil, []byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9465699926"}},{"name":"includeAllergies"}]}`), 422, "INVALID_PARAMETER"},
		{"nothing asked", nil, []byte(`{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9465699926"}}]}`), 422, "INVALID_PARAMETER"},
		{"unknown patient", nil, gpconnect.BuildParameters("9000000009", gpconnect.SectionProblems), 404, "PATIENT_NOT_FOUND"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			e.ServeHTTP(w, request(tok, c.mutate, c.body))
			if w.Code != c.status || spineCode(t, w) != c.code {
				t.Errorf("status %d %s, want %d %s", w.Code, spineCode(t, w), c.status, c.code)
			}
		})
	}
}

func TestJWTChecks(t *testing.T) {
	e := newEmulator(t)
	build := func(mod func(b *jwt.Builder) *jwt.Builder, alg jwa.SignatureAlgorithm) string {
		b := jwt.NewBuilder().Issuer("https://gpgate.example/").Subject("u1").Audience([]string{aud}).
			IssuedAt(now).Expiration(now.Add(5*time.Minute)).
			Claim("reason_for_request", "directcare").Claim("requested_scope", "patient/*.read").
			Claim("requesting_device", map[string]any{"resourceType": "Device", "identifier": []any{map[string]any{"system": "s", "value": "v"}}}).
			Claim("requesting_organization", map[string]any{"resourceType": "Organization", "identifier": []any{map[string]any{"system": fhir.ODSSystem, "value": "RXX01"}}}).
			Claim("requesting_practitioner", map[string]any{"resourceType": "Practitioner", "id": "u1", "name": []any{map[string]any{"family": "Jones"}},
				"identifier": []any{map[string]any{"system": gpconnect.SDSUserSystem, "value": "UNK"}, map[string]any{"system": gpconnect.SDSRoleProfileSystem, "value": "UNK"}}})
		if mod != nil {
			b = mod(b)
		}
		tok, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if alg == jwa.HS256 {
			s, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, []byte("secret-secret-secret-secret-32b!")))
			if err != nil {
				t.Fatal(err)
			}
			return string(s)
		}
		s, _ := jwt.Sign(tok, jwt.WithInsecureNoSignature())
		return string(s)
	}
	cases := map[string]string{
		"the client's token": goodToken(t),
		"signed":             build(nil, jwa.HS256),
		"expired": build(func(b *jwt.Builder) *jwt.Builder {
			return b.IssuedAt(now.Add(-time.Hour)).Expiration(now.Add(-55 * time.Minute))
		}, jwa.NoSignature),
		"ten minutes":     build(func(b *jwt.Builder) *jwt.Builder { return b.Expiration(now.Add(10 * time.Minute)) }, jwa.NoSignature),
		"other audience":  build(func(b *jwt.Builder) *jwt.Builder { return b.Audience([]string{"https://elsewhere"}) }, jwa.NoSignature),
		"not direct care": build(func(b *jwt.Builder) *jwt.Builder { return b.Claim("reason_for_request", "research") }, jwa.NoSignature),
		"write scope":     build(func(b *jwt.Builder) *jwt.Builder { return b.Claim("requested_scope", "patient/*.write") }, jwa.NoSignature),
		"no device":       build(func(b *jwt.Builder) *jwt.Builder { return b.Claim("requesting_device", nil) }, jwa.NoSignature),
		"sub differs":     build(func(b *jwt.Builder) *jwt.Builder { return b.Subject("u2") }, jwa.NoSignature),
		"no org ODS": build(func(b *jwt.Builder) *jwt.Builder {
			return b.Claim("requesting_organization", map[string]any{"resourceType": "Organization"})
		}, jwa.NoSignature),
		"garbage": "not.a.jwt",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			e.ServeHTTP(w, request(tok, nil, gpconnect.BuildParameters("9465699926", gpconnect.SectionAllergies)))
			if name == "the client's token" {
				if w.Code != 200 {
					t.Fatalf("refused the client's own token: %d %s", w.Code, w.Body.String())
				}
				return
			}
			if w.Code != 400 || spineCode(t, w) != "BAD_REQUEST" {
				t.Errorf("accepted: %d", w.Code)
			}
		})
	}
}

// The answer holds only the sections asked for, and the Patient carries
// the NHS number asked for.
func TestSections(t *testing.T) {
	e := newEmulator(t)
	tok := goodToken(t)
	count := func(sections gpconnect.Sections) map[string]int {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, request(tok, nil, gpconnect.BuildParameters("9465699926", sections)))
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
		b, err := gpconnect.Parse(w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if b.PatientNHS() != "9465699926" {
			t.Errorf("the Patient carries another number")
		}
		var doc struct {
			Entry []struct{ Resource struct{ ResourceType string } }
		}
		_ = json.Unmarshal(w.Body.Bytes(), &doc)
		n := map[string]int{}
		for _, x := range doc.Entry {
			n[x.Resource.ResourceType]++
		}
		return n
	}
	all := count(gpconnect.SectionsFor(fhir.AllAreas, true))
	allergies := count(gpconnect.SectionAllergies)
	if allergies["AllergyIntolerance"] != all["AllergyIntolerance"] || allergies["MedicationRequest"] != 0 || allergies["Encounter"] != 0 {
		t.Errorf("allergies only: %v (all: %v)", allergies, all)
	}
	meds := count(gpconnect.SectionMedication)
	if meds["MedicationRequest"] != all["MedicationRequest"] || meds["AllergyIntolerance"] != 0 {
		t.Errorf("medication only: %v", meds)
	}
	if all["ReferralRequest"] == 0 || all["Encounter"] == 0 || all["DiagnosticReport"] == 0 {
		t.Errorf("everything: %v", all)
	}
}

func TestLatencyAndDead(t *testing.T) {
	e := newEmulator(t)
	srv := httptest.NewServer(e)
	defer srv.Close()
	e.SetFault(Fault{Dead: true})
	r := request(goodToken(t), nil, nil)
	r.RequestURI = ""
	r.URL, _ = r.URL.Parse(srv.URL + r.URL.Path)
	if resp, err := http.DefaultClient.Do(r); err == nil {
		resp.Body.Close()
		t.Errorf("a dead provider answered %d", resp.StatusCode)
	}
	e.SetFault(Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r = request(goodToken(t), nil, nil).WithContext(ctx)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r) // returns when the request's context ends
	if e.Requests() != 2 {
		t.Errorf("requests %d", e.Requests())
	}
	if !strings.Contains(w.Body.String(), "") {
		t.Fail()
	}
}
