package access

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Fakes for every collaborator. Each records the calls it saw, so a test can
// check not only the answer but what the core did to get it.

var now = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

const (
	nhsKnown   = fhir.NHSNumber("9990002517")
	nhsUnknown = fhir.NHSNumber("9990000050")
	practice   = "Y99001"
)

var pidKnown = fhir.PatientID(nhsKnown)

type calls struct {
	mu  sync.Mutex
	log []string
}

func (c *calls) add(format string, args ...any) {
	c.mu.Lock()
	c.log = append(c.log, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *calls) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, " ")
}

type fakePatients struct {
	*calls
	byID map[string]fhir.NHSNumber
	at   map[fhir.NHSNumber]string
}

func (f fakePatients) Resolve(_ context.Context, id string) (fhir.NHSNumber, error) {
	f.add("resolve")
	if n, ok := f.byID[id]; ok {
		return n, nil
	}
	return "", fhir.Errorf(fhir.CodePatientNotFound, "no patient with that id")
}

func (f fakePatients) PracticeOf(_ context.Context, nhs fhir.NHSNumber) (string, error) {
	f.add("locate")
	if p, ok := f.at[nhs]; ok {
		return p, nil
	}
	return "", fhir.Errorf(fhir.CodePatientNotFound, "not registered")
}

type fakeRecords struct {
	*calls
	recs map[fhir.NHSNumber]*fhir.Record
	err  error
	wait bool // block until the context ends
}

func (f fakeRecords) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	f.add("fetch")
	if f.wait {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	if r, ok := f.recs[nhs]; ok {
		return r, nil
	}
	return nil, fhir.Errorf(fhir.CodePatientNotFound, "gone")
}

type fakeScopes struct {
	*calls
	decide func(p *fhir.Principal, req *fhir.Request) fhir.Decision
}

func (f fakeScopes) Authorize(p *fhir.Principal, req *fhir.Request) fhir.Decision {
	f.add("scopes")
	if f.decide != nil {
		return f.decide(p, req)
	}
	return fhir.Decision{Permit: true, Areas: req.Areas, Rule: "scope"}
}

type fakePolicy struct {
	*calls
	org     func(req *fhir.Request, practice string) fhir.Decision
	patient func(rec *fhir.Record) fhir.Decision
}

func (f fakePolicy) Organisation(_ context.Context, _ *fhir.Principal, req *fhir.Request, practice string) (fhir.Decision, error) {
	f.add("org")
	if f.org != nil {
		return f.org(req, practice), nil
	}
	if practice == "" {
		return fhir.Decision{Code: fhir.CodeNoOrganisationConsent, Rule: "no-agreement"}, nil
	}
	return fhir.Decision{Permit: true, Areas: req.Areas | fhir.AreaDemographics, Rule: "permit-organisation"}, nil
}

func (f fakePolicy) Patient(_ context.Context, _ *fhir.Principal, req *fhir.Request, rec *fhir.Record) (fhir.Decision, error) {
	f.add("patient")
	if f.patient != nil {
		return f.patient(rec), nil
	}
	return fhir.Decision{Permit: true, Areas: fhir.AllAreas, Rule: "permit"}, nil
}

// fakeRedactor keeps what the decision lets out, by Decision.Visible.
type fakeRedactor struct {
	*calls
	saw *fhir.Decision
}

func (f fakeRedactor) Redact(rec *fhir.Record, dec fhir.Decision, at time.Time) (*fhir.Record, bool) {
	f.add("redact")
	*f.saw = dec
	out := *rec
	out.Resources = nil
	for _, r := range rec.Resources {
		if dec.Visible(r, at) {
			out.Resources = append(out.Resources, r)
		}
	}
	return &out, false
}

type fakeAuditor struct {
	*calls
	entries *[]fhir.AuditEntry
	fail    bool
}

func (f fakeAuditor) Record(_ context.Context, e *fhir.AuditEntry) error {
	f.add("audit:%s", e.Outcome)
	if f.fail {
		return errors.New("disk full")
	}
	*f.entries = append(*f.entries, *e)
	return nil
}

type world struct {
	core    *Core
	calls   *calls
	audit   *[]fhir.AuditEntry
	decided *fhir.Decision
}

func res(t testing.TB, raw string) *fhir.Resource {
	t.Helper()
	r, err := fhir.NewResource([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// record is a small record: the patient, an active and a resolved problem,
// a current medication statement, a blood pressure and a lab result (one
// recent, one old).
func record(t testing.TB) *fhir.Record {
	subj := `"subject":{"reference":"Patient/` + pidKnown + `"}`
	id := func(local string) string { return `"id":"` + fhir.ResourceID(pidKnown, local) + `"` }
	return &fhir.Record{NHS: nhsKnown, PatientID: pidKnown, Practice: practice, Version: "v1", Resources: []*fhir.Resource{
		res(t, `{"resourceType":"Patient","id":"`+pidKnown+`","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+string(nhsKnown)+`"}]}`),
		res(t, `{"resourceType":"Condition",`+id("c1")+`,"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],"clinicalStatus":{"coding":[{"code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"onsetDateTime":"2015-01-01",`+subj+`}`),
		res(t, `{"resourceType":"Condition",`+id("c2")+`,"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],"clinicalStatus":{"coding":[{"code":"resolved"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"195967001"}]},"onsetDateTime":"2012-01-01",`+subj+`}`),
		res(t, `{"resourceType":"MedicationStatement",`+id("m1")+`,"status":"active","medicationCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"318137001"}]},"effectiveDateTime":"2025-01-01",`+subj+`}`),
		res(t, `{"resourceType":"Observation",`+id("bp")+`,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"effectiveDateTime":"2026-06-01",`+subj+`}`),
		res(t, `{"resourceType":"Observation",`+id("lab1")+`,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"1022441000000108"}]},"effectiveDateTime":"2026-10-01",`+subj+`}`),
		res(t, `{"resourceType":"Observation",`+id("lab2")+`,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"1022441000000108"}]},"effectiveDateTime":"2020-10-01",`+subj+`}`),
		res(t, `{"resourceType":"Encounter",`+id("e1")+`,"status":"finished","period":{"start":"2026-06-01T10:00:00Z"},`+subj+`}`),
	}}
}

type opt func(*Config, *world)

func newWorld(t *testing.T, opts ...opt) *world {
	t.Helper()
	w := &world{calls: &calls{}, audit: &[]fhir.AuditEntry{}, decided: &fhir.Decision{}}
	cfg := Config{
		Patients: fakePatients{calls: w.calls, byID: map[string]fhir.NHSNumber{pidKnown: nhsKnown}, at: map[fhir.NHSNumber]string{nhsKnown: practice}},
		Records:  fakeRecords{calls: w.calls, recs: map[fhir.NHSNumber]*fhir.Record{nhsKnown: record(t)}},
		Scopes:   fakeScopes{calls: w.calls},
		Policy:   fakePolicy{calls: w.calls},
		Redactor: fakeRedactor{calls: w.calls, saw: w.decided},
		Auditor:  fakeAuditor{calls: w.calls, entries: w.audit},
		Now:      func() time.Time { return now },
	}
	for _, o := range opts {
		o(&cfg, w)
	}
	core, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.core = core
	return w
}

var clinician = &fhir.Principal{ClientID: "ehr", ConsumerODS: "RXX01", Practitioner: "555", ConsentRef: "c1", PatientID: pidKnown}

func codeOf(err error) fhir.Code {
	if err == nil {
		return ""
	}
	return fhir.AsError(err).Code
}

func TestNewRefusesMissingGuards(t *testing.T) {
	w := newWorld(t)
	full := w.core.cfg
	for _, tc := range []struct {
		name string
		drop func(*Config)
	}{
		{"patients", func(c *Config) { c.Patients = nil }},
		{"records", func(c *Config) { c.Records = nil }},
		{"scopes", func(c *Config) { c.Scopes = nil }},
		{"policy", func(c *Config) { c.Policy = nil }},
		{"redactor", func(c *Config) { c.Redactor = nil }},
		{"auditor", func(c *Config) { c.Auditor = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := full
			tc.drop(&cfg)
			if c, err := New(cfg); c != nil || !errors.Is(err, ErrMissingGuard) {
				t.Fatalf("New without %s = %v, %v", tc.name, c, err)
			}
		})
	}
}

func TestPipelineOrderAndRefusals(t *testing.T) {
	deny := func(code fhir.Code, rule string) fhir.Decision { return fhir.Decision{Code: code, Rule: rule} }
	for _, tc := range []struct {
		name    string
		p       *fhir.Principal
		id      string
		opts    []opt
		code    fhir.Code
		calls   string // collaborator calls, in order
		audited fhir.Code
		rule    string // in the audit
		hidden  string // must not appear in the answer's diagnostics
	}{
		{name: "no principal", p: nil, id: pidKnown + "-c1", code: fhir.CodeUnauthorized, calls: "audit:denied", audited: fhir.CodeUnauthorized},
		{name: "scopes refuse", p: clinician, id: pidKnown + "-c1",
			opts: []opt{func(c *Config, w *world) {
				c.Scopes = fakeScopes{w.calls, func(*fhir.Principal, *fhir.Request) fhir.Decision { return deny(fhir.CodeAccessDenied, "no scope") }}
			}},
			code: fhir.CodeAccessDenied, calls: "scopes audit:denied", audited: fhir.CodeAccessDenied, rule: "no scope"},
		{name: "agreement suspended", p: clinician, id: pidKnown + "-c1",
			opts: []opt{func(c *Config, w *world) {
				c.Policy = fakePolicy{calls: w.calls, org: func(*fhir.Request, string) fhir.Decision {
					return deny(fhir.CodeNoOrganisationConsent, "agreement-suspended")
				}}
			}},
			code: fhir.CodeNoOrganisationConsent, calls: "scopes scopes resolve locate org audit:denied", audited: fhir.CodeNoOrganisationConsent, rule: "agreement-suspended", hidden: "suspended"},
		{name: "unknown patient", p: clinician, id: "punknownpatient0-c1", code: fhir.CodeNoOrganisationConsent,
			calls: "scopes scopes resolve org audit:denied", audited: fhir.CodeNoOrganisationConsent, rule: "no-agreement"},
		{name: "patient dissents", p: clinician, id: pidKnown + "-c1",
			opts: []opt{func(c *Config, w *world) {
				c.Policy = fakePolicy{calls: w.calls, patient: func(*fhir.Record) fhir.Decision { return deny(fhir.CodeNoPatientConsent, "patient-dissent") }}
			}},
			code: fhir.CodeNoPatientConsent, calls: "scopes scopes resolve locate org fetch patient patient audit:denied", audited: fhir.CodeNoPatientConsent, rule: "patient-dissent"},
		{name: "source times out", p: clinician, id: pidKnown + "-c1",
			opts: []opt{func(c *Config, w *world) {
				c.Records = fakeRecords{calls: w.calls, wait: true}
				c.SourceBudget = time.Millisecond
			}},
			code: fhir.CodeTimeout, calls: "scopes scopes resolve locate org fetch audit:error", audited: fhir.CodeTimeout},
		{name: "granted", p: clinician, id: pidKnown + "-c1", calls: "scopes scopes resolve locate org fetch patient redact audit:granted"},
		{name: "not in the permitted areas", p: clinician, id: pidKnown + "-bp",
			opts: []opt{func(c *Config, w *world) {
				c.Policy = fakePolicy{calls: w.calls, patient: func(*fhir.Record) fhir.Decision { return fhir.Decision{Permit: true, Areas: fhir.AreaProblems} }}
			}},
			code: fhir.CodeNoRecordFound, calls: "scopes scopes resolve locate org fetch patient redact audit:denied", audited: fhir.CodeNoRecordFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts...)
			typ := "Condition"
			if strings.HasSuffix(tc.id, "-bp") {
				typ = "Observation"
			}
			r, err := w.core.Read(context.Background(), tc.p, typ, tc.id)
			if codeOf(err) != tc.code {
				t.Fatalf("Read = %v, %v; want code %q", r, err, tc.code)
			}
			if (err == nil) != (r != nil) {
				t.Fatalf("Read = %v, %v", r, err)
			}
			if got := w.calls.String(); got != tc.calls {
				t.Errorf("calls %q, want %q", got, tc.calls)
			}
			if len(*w.audit) != 1 {
				t.Fatalf("%d audit entries, want exactly 1", len(*w.audit))
			}
			e := (*w.audit)[0]
			if e.Code != tc.audited || (tc.rule != "" && e.Rule != tc.rule) {
				t.Errorf("audited code %q rule %q, want %q %q", e.Code, e.Rule, tc.audited, tc.rule)
			}
			if tc.hidden != "" && strings.Contains(fhir.AsError(err).Diagnostics, tc.hidden) {
				t.Errorf("the refusal names the rule: %q", fhir.AsError(err).Diagnostics)
			}
		})
	}
}

// TestRefusalSameWhetherPatientExists: a caller without an agreement gets
// the same answer for a registered patient and an unknown one, and the core
// does the same work (the same collaborator calls, the same one audit
// write) for both; only the audit knows which it was.
func TestRefusalSameWhetherPatientExists(t *testing.T) {
	noAgreement := func(c *Config, w *world) {
		c.Policy = fakePolicy{calls: w.calls, org: func(*fhir.Request, string) fhir.Decision {
			return fhir.Decision{Code: fhir.CodeNoOrganisationConsent, Rule: "no-agreement"}
		}}
	}
	q := func(n fhir.NHSNumber) *fhir.Query {
		return &fhir.Query{Type: "Patient", NHS: n, Count: 10}
	}
	known, unknown := newWorld(t, noAgreement), newWorld(t, noAgreement)
	_, errK := known.core.FindPatient(context.Background(), clinician, q(nhsKnown))
	_, errU := unknown.core.FindPatient(context.Background(), clinician, q(nhsUnknown))
	if errK == nil || errU == nil {
		t.Fatal("a refusal was expected")
	}
	if string(fhir.AsError(errK).OperationOutcome()) != string(fhir.AsError(errU).OperationOutcome()) {
		t.Fatalf("refusals differ:\n%s\n%s", fhir.AsError(errK).OperationOutcome(), fhir.AsError(errU).OperationOutcome())
	}
	if known.calls.String() != unknown.calls.String() {
		t.Fatalf("work differs: %q vs %q", known.calls, unknown.calls)
	}
	if len(*known.audit) != 1 || len(*unknown.audit) != 1 {
		t.Fatal("each refusal is audited once")
	}
}

func TestNoDurableAuditNoData(t *testing.T) {
	failing := func(c *Config, w *world) { c.Auditor = fakeAuditor{calls: w.calls, entries: w.audit, fail: true} }
	w := newWorld(t, failing)
	ctx := context.Background()
	checks := []struct {
		name string
		call func() (any, error)
	}{
		{"read", func() (any, error) { return w.core.Read(ctx, clinician, "Condition", pidKnown+"-c1") }},
		{"search", func() (any, error) {
			return w.core.Search(ctx, clinician, &fhir.Query{Type: "Condition", Patient: pidKnown, Count: 10})
		}},
		{"everything", func() (any, error) {
			e, _ := fhir.ParseEverything(pidKnown, url.Values{}, false)
			return w.core.Everything(ctx, clinician, e)
		}},
		{"structured", func() (any, error) {
			return w.core.StructuredRecord(ctx, clinician, &fhir.StructuredRequest{NHS: nhsKnown})
		}},
		{"refusal", func() (any, error) { return w.core.Read(ctx, nil, "Condition", pidKnown+"-c1") }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.call()
			if codeOf(err) != fhir.CodeInternal {
				t.Fatalf("got %v, %v; want INTERNAL_SERVER_ERROR and no data", v, err)
			}
			if strings.Contains(string(fhir.AsError(err).OperationOutcome()), "disk full") {
				t.Fatal("internal detail leaked")
			}
		})
	}
}

func TestDecisionsCombine(t *testing.T) {
	w := newWorld(t,
		func(c *Config, w *world) {
			c.Scopes = fakeScopes{w.calls, func(_ *fhir.Principal, req *fhir.Request) fhir.Decision {
				return fhir.Decision{Permit: true, Areas: req.Areas &^ fhir.AreaEvents}
			}}
			c.Policy = fakePolicy{calls: w.calls,
				org: func(req *fhir.Request, _ string) fhir.Decision {
					return fhir.Decision{Permit: true, Areas: req.Areas &^ fhir.AreaExamination, Summary: fhir.SummaryAreas}
				},
				patient: func(*fhir.Record) fhir.Decision {
					return fhir.Decision{Permit: true, Areas: fhir.AllAreas &^ fhir.AreaRisks, Rule: "permit-break-glass", BreakGlass: true}
				}}
		})
	e, _ := fhir.ParseEverything(pidKnown, url.Values{}, false)
	pg, err := w.core.Everything(context.Background(), clinician, e)
	if err != nil {
		t.Fatal(err)
	}
	want := fhir.AllAreas &^ (fhir.AreaEvents | fhir.AreaExamination | fhir.AreaRisks)
	if w.decided.Areas != want || w.decided.Summary != fhir.SummaryAreas || !w.decided.BreakGlass {
		t.Fatalf("redactor saw %+v, want areas %s summary %s break-glass", *w.decided, want, fhir.SummaryAreas)
	}
	// Summary: the active problem, the current statement, the recent lab.
	var ids []string
	for _, r := range pg.Resources {
		ids = append(ids, strings.TrimPrefix(r.ID, pidKnown+"-"))
	}
	if got := strings.Join(ids, " "); got != pidKnown+" c1 m1 lab1" {
		t.Fatalf("everything under a summary decision = %q", got)
	}
	if e := (*w.audit)[0]; !e.BreakGlass || e.Count != 4 || e.Outcome != fhir.OutcomeGranted {
		t.Fatalf("audit %+v", e)
	}
}

func TestSearchAndPaging(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if _, err := w.core.Search(ctx, clinician, &fhir.Query{Type: "Condition", Count: 10}); codeOf(err) != fhir.CodeInvalidParameter {
		t.Fatalf("search without patient: %v", err)
	}
	q := &fhir.Query{Type: "Observation", Patient: pidKnown, Count: 2, Offset: 1}
	pg, err := w.core.Search(ctx, clinician, q)
	if err != nil {
		t.Fatal(err)
	}
	if pg.Total != 3 || len(pg.Resources) != 2 {
		t.Fatalf("total %d page %d", pg.Total, len(pg.Resources))
	}
	if e := (*w.audit)[len(*w.audit)-1]; e.Count != 2 || e.Action != "PatientQuery" {
		t.Fatalf("audit %+v", e)
	}
}

func TestStructuredRecordSections(t *testing.T) {
	w := newWorld(t, func(c *Config, w *world) {
		c.Policy = fakePolicy{calls: w.calls, patient: func(*fhir.Record) fhir.Decision {
			return fhir.Decision{Permit: true, Areas: fhir.AreaDemographics | fhir.AreaProblems}
		}}
	})
	sr, err := fhir.ParseStructuredRequest([]byte(`{"resourceType":"Parameters","parameter":[
		{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+string(nhsKnown)+`"}},
		{"name":"includeProblems","part":[{"name":"filterStatus","valueCode":"active"}]},
		{"name":"includeExamination"}]}`), false)
	if err != nil {
		t.Fatal(err)
	}
	col, err := w.core.StructuredRecord(context.Background(), clinician, sr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range col.Resources {
		got = append(got, r.Type+"/"+strings.TrimPrefix(r.ID, pidKnown+"-"))
	}
	want := "Patient/" + pidKnown + " Condition/c1 List/list-Problems List/list-Examination"
	if strings.Join(got, " ") != want {
		t.Fatalf("collection %q, want %q", strings.Join(got, " "), want)
	}
	if !strings.Contains(string(col.Resources[3].JSON), `"withheld"`) {
		t.Fatalf("a section the decision does not cover is withheld, not empty: %s", col.Resources[3].JSON)
	}
}

func TestFeaturesNotConfigured(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	system := &fhir.Principal{ClientID: "ehr", ConsumerODS: "RXX01"}
	if _, err := w.core.RecordConsent(ctx, system, fhir.ConsentRequest{PatientID: pidKnown}); codeOf(err) != fhir.CodeNotImplemented {
		t.Fatalf("consent: %v", err)
	}
	if _, err := w.core.SearchAuditEvents(ctx, system, url.Values{}, false); codeOf(err) != fhir.CodeNotImplemented {
		t.Fatalf("audit log: %v", err)
	}
	if _, err := w.core.Agreements(ctx, system, "search-type", "", "", nil); codeOf(err) != fhir.CodeNotImplemented {
		t.Fatalf("agreements: %v", err)
	}
	// Scopes still decide first, and refusals are still audited.
	w2 := newWorld(t, func(c *Config, w *world) {
		c.Scopes = fakeScopes{w.calls, func(*fhir.Principal, *fhir.Request) fhir.Decision {
			return fhir.Decision{Code: fhir.CodeAccessDenied, Rule: "needs system/AuditEvent.rs"}
		}}
	})
	if _, err := w2.core.SearchAuditEvents(ctx, system, url.Values{}, false); codeOf(err) != fhir.CodeAccessDenied || len(*w2.audit) != 1 {
		t.Fatalf("refused audit search: %v, %d entries", err, len(*w2.audit))
	}
}
