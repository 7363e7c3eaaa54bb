package consent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

func codeOf(err error) fhir.Code {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

func TestAgreementStore(t *testing.T) {
	ctx := context.Background()
	s, err := NewBoltStore(openDB(t), func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Add(ctx, Agreement{Provider: practice, Consumers: []string{"RXX01", "RXX01"}, Areas: fhir.AreaMedication, Status: StatusDraft})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || !a.Created.Equal(t0) || len(a.Consumers) != 1 || a.Purposes[0] != PurposeTreat || a.DefaultSharing != DefaultImplied {
		t.Fatalf("add filled %+v", a)
	}
	if _, err := s.Add(ctx, a); codeOf(err) != fhir.CodeInvalidParameter {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := s.Add(ctx, Agreement{Provider: "bad code", Consumers: []string{"RXX01"}, Areas: fhir.AreaMedication}); codeOf(err) != fhir.CodeInvalidParameter {
		t.Fatalf("invalid: %v", err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil || string(AgreementJSON(got)) != string(AgreementJSON(a)) {
		t.Fatalf("get %s / %v", AgreementJSON(got), err)
	}
	if _, err := s.Get(ctx, "nope"); codeOf(err) != fhir.CodeReferenceNotFound {
		t.Fatalf("get unknown: %v", err)
	}
	steps := []struct {
		op   func(context.Context, string) (Agreement, error)
		want Status
		ok   bool
	}{
		{s.Suspend, "", false}, // draft cannot be suspended
		{s.Activate, StatusActive, true},
		{s.Suspend, StatusSuspended, true},
		{s.Activate, StatusActive, true},
		{s.End, StatusEnded, true},
		{s.Activate, "", false}, // ended is terminal
	}
	for i, st := range steps {
		got, err := st.op(ctx, a.ID)
		if st.ok != (err == nil) || (st.ok && got.Status != st.want) {
			t.Fatalf("step %d: %+v %v", i, got.Status, err)
		}
		if !st.ok && codeOf(err) != fhir.CodeInvalidParameter {
			t.Fatalf("step %d: code %s", i, codeOf(err))
		}
	}
	// Groups expand for decisions only.
	if err := s.PutGroup(ctx, "trusts", []string{"RXX05", "RXX06"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutGroup(ctx, "bad name!", nil); codeOf(err) != fhir.CodeInvalidParameter {
		t.Fatalf("bad group: %v", err)
	}
	g, err := s.Add(ctx, Agreement{ID: "grp", Provider: practice, ConsumerGroup: "trusts", Areas: fhir.AllAreas, Status: StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, Agreement{ID: "other", Provider: "Y99002", Consumers: []string{"RXX05"}, Areas: fhir.AllAreas, Status: StatusActive}); err != nil {
		t.Fatal(err)
	}
	ags, err := s.ForProvider(ctx, practice)
	if err != nil || len(ags) != 2 {
		t.Fatalf("ForProvider: %d %v", len(ags), err)
	}
	for _, x := range ags {
		if x.ID == g.ID && (len(x.Consumers) != 2 || !x.covers("RXX06")) {
			t.Fatalf("group not expanded: %+v", x)
		}
	}
	stored, _ := s.Get(ctx, "grp")
	if len(stored.Consumers) != 0 {
		t.Fatalf("Get expanded the group: %+v", stored.Consumers)
	}
	d := DecideOrganisation(Input{Principal: &fhir.Principal{ConsumerODS: "RXX06"}, Request: &fhir.Request{Areas: fhir.AllAreas}, Practice: practice, Agreements: ags, Now: t0})
	if !d.Permit {
		t.Fatalf("group member denied: %+v", d)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("list %d %v", len(all), err)
	}
	var list struct{ Agreements []json.RawMessage }
	if err := json.Unmarshal(AgreementListJSON(all), &list); err != nil || len(list.Agreements) != 3 {
		t.Fatalf("list json: %v", err)
	}
}

func TestParseAgreement(t *testing.T) {
	cases := []struct {
		name, body string
		code       fhir.Code
		expr       string
	}{
		{"ok", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems","medication"],"purposes":["TREAT","ETREAT"],"start":"2026-01-01","end":"2027-01-01T00:00:00Z","status":"active","breakGlass":true,"defaultSharing":"dissent","defaultRules":{"under16":true}}`, "", ""},
		{"not json", `{`, fhir.CodeInvalidResource, ""},
		{"unknown field", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"secret":1}`, fhir.CodeInvalidResource, ""},
		{"wrong type", `{"provider":1}`, fhir.CodeInvalidResource, ""},
		{"trailing", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"]} {}`, fhir.CodeInvalidResource, ""},
		{"no consumers", `{"provider":"Y99001","areas":["problems"]}`, fhir.CodeInvalidParameter, "consumers"},
		{"bad consumer", `{"provider":"Y99001","consumers":["rxx01"],"areas":["problems"]}`, fhir.CodeInvalidParameter, "consumers"},
		{"no areas", `{"provider":"Y99001","consumers":["RXX01"],"areas":[]}`, fhir.CodeInvalidParameter, "areas"},
		{"unknown area", `{"provider":"Y99001","consumers":["RXX01"],"areas":["gossip"]}`, fhir.CodeInvalidParameter, "areas"},
		{"comma areas", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems,medication"]}`, fhir.CodeInvalidParameter, "areas"},
		{"bad purpose", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"purposes":["MARKETING"]}`, fhir.CodeInvalidParameter, "purposes"},
		{"end before start", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"start":"2026-02-01","end":"2026-01-01"}`, fhir.CodeInvalidParameter, "end"},
		{"bad date", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"start":"soon"}`, fhir.CodeInvalidParameter, "start"},
		{"bad status", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"status":"maybe"}`, fhir.CodeInvalidParameter, "status"},
		{"bad default", `{"provider":"Y99001","consumers":["RXX01"],"areas":["problems"],"defaultSharing":"ask"}`, fhir.CodeInvalidParameter, "defaultSharing"},
		{"bad id", `{"id":"a b","provider":"Y99001","consumers":["RXX01"],"areas":["problems"]}`, fhir.CodeInvalidParameter, "id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := ParseAgreement([]byte(c.body))
			if c.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				again, err := ParseAgreement(AgreementJSON(a))
				if err != nil || string(AgreementJSON(again)) != string(AgreementJSON(a)) {
					t.Fatalf("round trip: %v\n%s\n%s", err, AgreementJSON(a), AgreementJSON(again))
				}
				if a.Areas != fhir.AreaProblems|fhir.AreaMedication || !a.DefaultRules.Under16 || a.End.IsZero() {
					t.Fatalf("parsed %+v", a)
				}
				return
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Code != c.code || fe.Expression != c.expr {
				t.Fatalf("err %v, want %s at %q", err, c.code, c.expr)
			}
		})
	}
}

type fakeIndex map[fhir.NHSNumber]string

func (f fakeIndex) practiceOf(_ context.Context, n fhir.NHSNumber) (string, error) {
	if p, ok := f[n]; ok {
		return p, nil
	}
	return "", errors.New("unknown patient")
}

func consentsFixture(t *testing.T, ags ...Agreement) (*Consents, *time.Time) {
	ctx := context.Background()
	now := t0
	s, err := NewBoltStore(openDB(t), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ags {
		if _, err := s.Add(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(_ context.Context, pid string) (fhir.NHSNumber, error) {
		if pid == pidA {
			return nhsA, nil
		}
		return "", errors.New("unknown patient")
	}
	return &Consents{Store: s, Agreements: s, PracticeOf: fakeIndex{nhsA: practice}.practiceOf, ResolveNHS: resolve, Now: func() time.Time { return now }}, &now
}

const consentBody = `{"resourceType":"Consent","status":"active","patient":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990000050"}},
"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"555123"}}],
"organization":[{"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"RXX01"}}]}`

const breakGlassBody = `{"resourceType":"Consent","patient":{"reference":"Patient/PID"},
"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"555123"}}],
"provision":{"period":{"start":"2026-03-10T12:00:00Z","end":"2026-03-10T14:00:00Z"},"purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"ETREAT"}]},
"extension":[{"url":"https://gpgate.dev/fhir/StructureDefinition/Extension-GPGate-BreakGlassReason","valueString":"unconscious in ED, suspected overdose"}]}`

func TestRecordConsentAndNarrow(t *testing.T) {
	ctx := context.Background()
	demo := DemoAgreements([]string{practice}, t0)
	c, now := consentsFixture(t, demo...)
	caller := func(ods string) *fhir.Principal {
		return &fhir.Principal{ClientID: "cl-" + ods, ConsumerODS: ods, Practitioner: "555123"}
	}

	req, err := ParseConsentBody([]byte(consentBody))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.RecordConsent(ctx, caller("RXX01"), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != "Consent" || !strings.Contains(string(res.JSON), fhir.ProfileConsent) || strings.Contains(string(res.JSON), "ETREAT") {
		t.Fatalf("consent %s", res.JSON)
	}
	g, err := c.NarrowAreas(ctx, caller("RXX01"), res.ID, *now)
	if err != nil || g.PatientID != pidA || g.Areas != fhir.AllAreas || g.BreakGlass || g.Summary != 0 {
		t.Fatalf("narrow: %+v %v", g, err)
	}
	stored, _ := c.GetConsent(ctx, res.ID)
	if !stored.Live(*now) || stored.Live(now.Add(24*time.Hour)) {
		t.Fatal("live window wrong")
	}
	// Narrowing by another organisation, after expiry, unknown id.
	for _, x := range []struct {
		ods, id string
		at      time.Time
		rule    string
	}{
		{"RXX03", res.ID, *now, RuleConsentOtherOrg},
		{"RXX01", res.ID, now.Add(25 * time.Hour), RuleConsentExpired},
		{"RXX01", "nope", *now, RuleNoConsentToView},
	} {
		_, err := c.NarrowAreas(ctx, caller(x.ods), x.id, x.at)
		if codeOf(err) != fhir.CodeNoPatientConsent || fhir.AsError(err).Diagnostics != x.rule {
			t.Errorf("narrow %s/%s: %v, want %s", x.ods, x.id, err, x.rule)
		}
	}

	// BP-only consumer gets examination + demographics.
	req3 := req
	req3.Organisation = ""
	res3, err := c.RecordConsent(ctx, caller("RXX03"), req3)
	if err != nil {
		t.Fatal(err)
	}
	g3, _ := c.NarrowAreas(ctx, caller("RXX03"), res3.ID, *now)
	areas := g3.Areas
	if areas != fhir.AreaExamination|fhir.AreaDemographics {
		t.Fatalf("BP-only areas %s", areas)
	}
	if got := strings.Join(ScopesForAreas(areas), " "); got != "patient/Patient.rs patient/Organization.rs patient/Practitioner.rs patient/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9" {
		t.Fatalf("scopes %s", got)
	}

	// Break-glass: allowed for RXX01, not RXX04; suspended RXX02 refused either way.
	bgReq, err := ParseConsentBody([]byte(strings.Replace(breakGlassBody, "PID", pidA, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !bgReq.BreakGlass || bgReq.Reason == "" {
		t.Fatalf("break-glass request %+v", bgReq)
	}
	res4, err := c.RecordConsent(ctx, caller("RXX01"), bgReq)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(res4.JSON), "overdose") || strings.Contains(string(res4.JSON), ExtBreakGlassReason) || !strings.Contains(string(res4.JSON), `"ETREAT"`) {
		t.Fatalf("break-glass consent leaks the reason or lacks ETREAT: %s", res4.JSON)
	}
	st, _ := c.GetConsent(ctx, res4.ID)
	if b, _ := json.Marshal(st); strings.Contains(string(b), "overdose") {
		t.Fatal("reason stored")
	}
	if g4, err := c.NarrowAreas(ctx, caller("RXX01"), res4.ID, *now); err != nil || !g4.BreakGlass {
		t.Fatalf("break-glass narrow: %+v %v", g4, err)
	}
	for _, x := range []struct {
		ods  string
		r    ConsentRequest
		code fhir.Code
	}{
		{"RXX04", bgReq, fhir.CodeNoOrganisationConsent},
		{"RXX02", req3, fhir.CodeNoOrganisationConsent},
		{"RXX09", req3, fhir.CodeNoOrganisationConsent},
	} {
		if _, err := c.RecordConsent(ctx, caller(x.ods), x.r); codeOf(err) != x.code {
			t.Errorf("%s: %v, want %s", x.ods, err, x.code)
		}
	}
	// An unknown patient answers exactly like a missing agreement.
	unknown := req3
	unknown.NHS = "9000000009"
	unknown.PatientID = fhir.PatientID(unknown.NHS)
	_, e1 := c.RecordConsent(ctx, caller("RXX01"), unknown)
	_, e2 := c.RecordConsent(ctx, caller("RXX09"), req3)
	if e1 == nil || e2 == nil || string(fhir.AsError(e1).OperationOutcome()) != string(fhir.AsError(e2).OperationOutcome()) {
		t.Fatalf("unknown patient %v vs no agreement %v", e1, e2)
	}
	// Validation at record time.
	bad := []struct {
		name string
		mut  func(*ConsentRequest)
		p    *fhir.Principal
	}{
		{"other organisation", func(r *ConsentRequest) { r.Organisation = "RXX03" }, caller("RXX01")},
		{"period too long", func(r *ConsentRequest) { r.Period = Period{Start: *now, End: now.Add(25 * time.Hour)} }, caller("RXX01")},
		{"period over", func(r *ConsentRequest) { r.Period = Period{Start: now.Add(-3 * time.Hour), End: now.Add(-time.Hour)} }, caller("RXX01")},
		{"break-glass without reason", func(r *ConsentRequest) { r.BreakGlass = true; r.Reason = " " }, caller("RXX01")},
		{"reason without break-glass", func(r *ConsentRequest) { r.Reason = "x" }, caller("RXX01")},
		{"no clinician", func(r *ConsentRequest) { r.Clinician = "" }, &fhir.Principal{ConsumerODS: "RXX01"}},
	}
	for _, b := range bad {
		r := req
		b.mut(&r)
		if _, err := c.RecordConsent(ctx, b.p, r); codeOf(err) != fhir.CodeInvalidParameter {
			t.Errorf("%s: %v", b.name, err)
		}
	}
	// The resource is valid UK Core (independent validator, when present).
	validateUKCore(t, res.JSON, res4.JSON)
}

// validateUKCore runs ../shared/tools/fhir-validate on resources; it skips
// when ../shared is absent.
func validateUKCore(t *testing.T, resources ...[]byte) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the package")
		}
		dir = parent
	}
	run := filepath.Join(dir, "..", "shared", "tools", "fhir-validate", "run")
	if _, err := os.Stat(run); err != nil {
		t.Skip("../shared/tools/fhir-validate absent: UK Core validation skipped")
	}
	var files []string
	for i, r := range resources {
		f := filepath.Join(t.TempDir(), "r"+string(rune('a'+i))+".json")
		if err := os.WriteFile(f, r, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	out, err := exec.Command(run, files...).CombinedOutput()
	if err != nil {
		t.Fatalf("UK Core validation failed: %v\n%s", err, out)
	}
}

func TestParseConsentBody(t *testing.T) {
	ok := func(s string) string { return s }
	cases := []struct {
		name, body string
		code       fhir.Code
	}{
		{"minimal", ok(consentBody), ""},
		{"not json", `{"resourceType":`, fhir.CodeInvalidResource},
		{"not a consent", `{"resourceType":"Patient"}`, fhir.CodeInvalidResource},
		{"no patient", `{"resourceType":"Consent","performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"1"}}]}`, fhir.CodeInvalidParameter},
		{"bad nhs", strings.Replace(consentBody, "9990000050", "9990000051", 1), fhir.CodeInvalidNHSNumber},
		{"bad nhs system", strings.Replace(consentBody, "https://fhir.nhs.uk/Id/nhs-number", "urn:x", 1), fhir.CodeInvalidIdentifier},
		{"no performer", strings.Replace(consentBody, "sds-user-id", "other", 1), fhir.CodeInvalidParameter},
		{"bad org", strings.Replace(consentBody, `"RXX01"`, `"rx 01"`, 1), fhir.CodeInvalidParameter},
		{"status", strings.Replace(consentBody, `"active"`, `"rejected"`, 1), fhir.CodeInvalidParameter},
		{"break-glass without reason", `{"resourceType":"Consent","patient":{"reference":"Patient/pabc"},"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"1"}}],"provision":{"purpose":[{"code":"ETREAT"}]}}`, fhir.CodeInvalidParameter},
		{"reason without break-glass", `{"resourceType":"Consent","patient":{"reference":"Patient/pabc"},"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"1"}}],"extension":[{"url":"` + ExtBreakGlassReason + `","valueString":"x"}]}`, fhir.CodeInvalidParameter},
		{"other purpose", `{"resourceType":"Consent","patient":{"reference":"Patient/pabc"},"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"1"}}],"provision":{"purpose":[{"code":"HMARKT"}]}}`, fhir.CodeInvalidParameter},
		{"bad period", `{"resourceType":"Consent","patient":{"reference":"Patient/pabc"},"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"1"}}],"provision":{"period":{"start":"tomorrow"}}}`, fhir.CodeInvalidParameter},
		{"patient ref and nhs disagree", strings.Replace(consentBody, `"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number"`, `"reference":"Patient/pother","identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number"`, 1), fhir.CodeInvalidParameter},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseConsentBody([]byte(c.body))
			if c.code == "" {
				if err != nil || r.PatientID != pidA || r.NHS != nhsA || r.Clinician != "555123" || r.Organisation != "RXX01" || r.BreakGlass {
					t.Fatalf("%+v %v", r, err)
				}
				return
			}
			if codeOf(err) != c.code {
				t.Fatalf("err %v, want %s", err, c.code)
			}
		})
	}
}

func TestScopesForAreas(t *testing.T) {
	cases := []struct {
		areas fhir.Areas
		want  string
	}{
		{fhir.AreaDemographics, "patient/Patient.rs patient/Organization.rs patient/Practitioner.rs"},
		{fhir.AreaProblems, "patient/Condition.rs?category=problem-list-item"},
		{fhir.AreaProblems | fhir.AreaDiagnoses, "patient/Condition.rs"},
		{fhir.AreaInvestigations, "patient/Observation.rs?category=laboratory patient/DiagnosticReport.rs patient/Specimen.rs"},
		{fhir.AreaInvestigations | fhir.AreaExamination, "patient/Observation.rs patient/DiagnosticReport.rs patient/Specimen.rs"},
		{fhir.AreaMedication | fhir.AreaEvents, "patient/MedicationStatement.rs patient/MedicationRequest.rs patient/Medication.rs patient/Encounter.rs patient/ServiceRequest.rs"},
		{fhir.AreaAllergies | fhir.AreaRisks | fhir.AreaProcedures, "patient/AllergyIntolerance.rs patient/Flag.rs patient/Procedure.rs"},
		{0, ""},
	}
	for _, c := range cases {
		if got := strings.Join(ScopesForAreas(c.areas), " "); got != c.want {
			t.Errorf("%s: %s, want %s", c.areas, got, c.want)
		}
	}
}

func TestDemoAgreements(t *testing.T) {
	ags := DemoAgreements([]string{"Y99001", "Y99002"}, t0)
	if len(ags) != 8 {
		t.Fatalf("%d agreements", len(ags))
	}
	for _, a := range ags {
		b := a
		if err := b.Validate(); err != nil {
			t.Fatalf("%s: %v", a.ID, err)
		}
	}
	decide := func(ods string, bg bool, areas fhir.Areas) fhir.Decision {
		return DecideOrganisation(Input{Principal: &fhir.Principal{ConsumerODS: ods, BreakGlass: bg}, Request: &fhir.Request{Areas: areas}, Practice: "Y99002", Agreements: ags, Now: t0})
	}
	if d := decide("RXX01", true, fhir.AllAreas); !d.Permit || d.Areas != fhir.AllAreas {
		t.Errorf("RXX01 %+v", d)
	}
	if d := decide("RXX02", false, fhir.AllAreas); d.Rule != RuleAgreementSuspended {
		t.Errorf("RXX02 %+v", d)
	}
	if d := decide("RXX03", false, fhir.AllAreas); d.Areas != fhir.AreaExamination|fhir.AreaDemographics {
		t.Errorf("RXX03 %+v", d)
	}
	if d := decide("RXX04", true, fhir.AllAreas); d.Rule != RuleBreakGlassNotAllowed {
		t.Errorf("RXX04 %+v", d)
	}
}

// countingConsents counts reads of the consent store.
type countingConsents struct {
	ConsentStore
	gets int
}

func (c *countingConsents) GetConsent(ctx context.Context, id string) (*ViewConsent, error) {
	c.gets++
	return c.ConsentStore.GetConsent(ctx, id)
}

// The decisions before and after the fetch of one request read the
// token's consent to view once (the request memo); another request reads
// it again (a revocation is seen on the next request).
func TestServiceReadsTheConsentOncePerRequest(t *testing.T) {
	ctx := context.Background()
	c, _ := consentsFixture(t, DemoAgreements([]string{practice}, t0)...)
	req, err := ParseConsentBody([]byte(consentBody))
	if err != nil {
		t.Fatal(err)
	}
	p := &fhir.Principal{ClientID: "cl-RXX01", ConsumerODS: "RXX01", Practitioner: "555123"}
	res, err := c.RecordConsent(ctx, p, req)
	if err != nil {
		t.Fatal(err)
	}
	store := &countingConsents{ConsentStore: c.Store}
	svc, err := NewService(ServiceOptions{Agreements: c.Agreements.(AgreementStore), Consents: store, PracticeOf: c.PracticeOf, ResolveNHS: c.ResolveNHS,
		Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	p.ConsentRef, p.PatientID = res.ID, pidA
	r := &fhir.Request{Interaction: "search-type", Type: "Condition", PatientID: pidA, Areas: fhir.AllAreas}
	rec := &fhir.Record{PatientID: pidA, NHS: nhsA, Practice: practice}
	for i := 1; i <= 2; i++ {
		rctx := fhir.WithMemo(ctx) // one request
		if _, err := svc.Organisation(rctx, p, r, practice); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Patient(rctx, p, r, rec); err != nil {
			t.Fatal(err)
		}
		if store.gets != i {
			t.Fatalf("after %d requests: %d reads of the consent", i, store.gets)
		}
	}
}
