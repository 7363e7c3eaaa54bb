package main

// Black-box tests of consent (issue 4) over HTTP: a real gpgate on a free
// port over a small region of its own, with the demo agreements and
// further agreements added with `gpgate agreements add` before it starts,
// and consumer systems registered with `gpgate clients add`. Every check is
// made as a consumer would make it: a system token to identify the patient
// and record consent to view (POST /Consent), a patient-context token
// against that consent for clinical data.
//
// gpgate has no live admin API for agreements yet (/admin/agreements exists
// in fhir/rest but is not wired by `gpgate serve`), and the state file is
// locked by the running server, so "suspending an agreement takes effect on
// the next request" is tested through a restart: stop, `gpgate agreements
// suspend`, start again on the same address, and the token issued before
// is refused.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// Consumer systems of the consent tests besides the demo clients (demo-ehr
// RXX01 active with break-glass, demo-111 RXX02 suspended, demo-ambulance
// RXX03 blood pressure only, demo-ooh RXX04 without break-glass).
const (
	cbExpired  = "expired-epr"    // RXX11: agreement 2020-01-01 .. 2021-01-01
	cbEnded    = "ended-epr"      // RXX12: agreement ended with `gpgate agreements end`
	cbOptIn    = "optin-epr"      // RXX13: active, default sharing dissent (opt-in region)
	cbDraft    = "draft-epr"      // RXX14: draft agreement
	cbFuture   = "future-epr"     // RXX15: agreement starting in 2099
	cbNone     = "unagreed-epr"   // RXX16: no agreement at all
	cbOneOnly  = "one-practice"   // RXX17: agreement with the first practice only
	cbOOH      = "demo-ooh"       // demo: no break-glass
	cb111      = "demo-111"       // demo: suspended
	cbAmb      = "demo-ambulance" // demo: blood pressure only
	cbAuditor  = "demo-auditor"
	cbScopes   = "system/*.rs patient/*.rs system/Consent.c"
	cbBGReason = "Unconscious in resus, no relative present: medication history needed"
)

// cbEnv is the consent test server and the patients chosen from its region.
type cbEnv struct {
	*sbEnv
	addr      string
	stop      func()
	practices []string

	dissent   demo.Notable // coded dissent (the notable dissent patient)
	consented demo.Notable // coded consent to share
	noEntry   demo.Notable // no coded entry; Conditions, BP and other Observations; first practice
	other     demo.Notable // another no-entry patient of the first practice
	sensitive demo.Notable // no entry; a sensitive and a confidential Condition added before serving
	atSecond  demo.Notable // a patient of the second practice (no agreement with RXX17)
	unknown   string       // a valid NHS number of no patient
	bpCount   int          // noEntry's blood-pressure Observations in the source
	sharing   map[string]fhir.SharingConsent
	refusals  []response // every refusal seen, checked for patient data at the end
}

// patientFacts is what the test knows of a record from the store.
type patientFacts struct {
	n                   demo.Notable
	sharing             fhir.SharingConsent
	conds, bp, otherObs int
}

func startConsentEnv(t *testing.T) *cbEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	sum, err := demoRegion(ctx, demoOpts{data: dir, seed: 1, practices: 2, patients: 60, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoClient(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if err := demoAgreements(ctx, dir, sum); err != nil {
		t.Fatal(err)
	}
	env := &cbEnv{sbEnv: &sbEnv{keys: map[string][]byte{}}, sharing: map[string]fhir.SharingConsent{}}
	for _, p := range sum.Practices {
		env.practices = append(env.practices, p.ODS)
	}
	if len(env.practices) != 2 {
		t.Fatalf("%d practices", len(env.practices))
	}
	agree := func(args ...string) {
		t.Helper()
		args = append([]string{"agreements", "add", "--data", dir}, args...)
		if code, out, stderr := sbRun(t, args...); code != 0 || !strings.Contains(out, "added") {
			t.Fatalf("%v: %d %s %s", args, code, out, stderr)
		}
	}
	for i, p := range env.practices {
		agree("--provider", p, "--consumers", "RXX11", "--start", "2020-01-01", "--end", "2021-01-01")
		agree("--provider", p, "--consumers", "RXX12", "--id", "ended-"+strings.ToLower(p))
		if code, out, stderr := sbRun(t, "agreements", "end", "--data", dir, "--id", "ended-"+strings.ToLower(p)); code != 0 || !strings.Contains(out, "ended") {
			t.Fatalf("agreements end: %d %s %s", code, out, stderr)
		}
		agree("--provider", p, "--consumers", "RXX13", "--default-sharing", "dissent")
		agree("--provider", p, "--consumers", "RXX14", "--status", "draft")
		agree("--provider", p, "--consumers", "RXX15", "--start", "2099-01-01")
		if i == 0 {
			agree("--provider", p, "--consumers", "RXX17")
		}
	}
	if code, out, _ := sbRun(t, "agreements", "list", "--data", dir); code != 0 || strings.Count(out, "\n") != 1+2*4+2*5+1 {
		t.Fatalf("agreements list: %d\n%s", code, out)
	}
	for _, c := range []struct{ id, ods string }{{cbExpired, "RXX11"}, {cbEnded, "RXX12"}, {cbOptIn, "RXX13"}, {cbDraft, "RXX14"},
		{cbFuture, "RXX15"}, {cbNone, "RXX16"}, {cbOneOnly, "RXX17"}} {
		env.keys[c.id] = sbRegister(t, dir, c.id, "ES256", c.ods, cbScopes)
	}
	for _, dc := range demoClients {
		env.keys[dc.id] = mustRead(t, filepath.Join(dir, dc.key))
	}
	env.choosePatients(t, dir, sum)

	patients, err := listPatients(dir)
	if err != nil {
		t.Fatal(err)
	}
	env.addr = cbAddr(t)
	base := "http://" + env.addr
	env.tokenURL = base + smart.PathToken
	env.testServer = &testServer{base: base, dir: dir, summary: sum, patients: patients, knownIDs: map[string]bool{}}
	for _, n := range patients {
		env.knownIDs[fhir.PatientID(n)] = true
	}
	env.stop = cbServe(t, dir, env.addr)
	t.Cleanup(func() { env.stop() })
	return env
}

// cbAddr and cbServe choose and serve the consent tests' address: one
// in-process node on bbolt here; the cluster test (cluster_test.go) puts
// three PostgreSQL nodes behind HAProxy there instead, so the same checks
// run on both.
var (
	cbAddr  = sbFreeAddr
	cbServe = sbServe
)

// choosePatients reads the region (before it is served) and picks the
// patients the tests need; it adds a sensitive and a confidential
// Condition to one record.
func (env *cbEnv) choosePatients(t *testing.T, dir string, sum *demo.Summary) {
	t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(filepath.Join(dir, recordsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	notable := map[string]bool{}
	for _, n := range sum.Notable {
		notable[n.PatientID] = true
	}
	exists := map[string]bool{}
	var all []patientFacts
	for _, ods := range env.practices {
		ns, err := st.Source(ods).Patients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, nhs := range ns {
			exists[string(nhs)] = true
			rec, err := st.Source(ods).Record(ctx, nhs, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			f := patientFacts{n: demo.Notable{NHS: string(nhs), PatientID: rec.PatientID, Practice: ods}, sharing: consent.SharingFromRecord(rec)}
			if rec.Sharing != fhir.SharingUnknown && rec.Sharing != f.sharing {
				t.Fatalf("record %s: source sharing %d, coded %d", rec.PatientID, rec.Sharing, f.sharing)
			}
			env.sharing[rec.PatientID] = f.sharing
			for _, r := range rec.Resources {
				switch {
				case r.Type == "Condition":
					f.conds++
				case r.Type == "Observation" && fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel):
					f.bp++
				case r.Type == "Observation":
					f.otherObs++
				}
			}
			all = append(all, f)
		}
	}
	pick := func(what string, ok func(f patientFacts) bool) demo.Notable {
		t.Helper()
		for _, f := range all {
			if !notable[f.n.PatientID] && ok(f) {
				notable[f.n.PatientID] = true // each patient once
				return f.n
			}
		}
		t.Fatalf("the region has no %s patient", what)
		return demo.Notable{}
	}
	first, second := env.practices[0], env.practices[1]
	var bp int
	env.noEntry = pick("no-entry", func(f patientFacts) bool {
		bp = f.bp
		return f.sharing == fhir.SharingUnknown && f.n.Practice == first && f.conds > 0 && f.bp > 0 && f.otherObs > 0
	})
	env.bpCount = bp
	env.other = pick("second no-entry", func(f patientFacts) bool {
		return f.sharing == fhir.SharingUnknown && f.n.Practice == first && f.conds > 0
	})
	env.consented = pick("consented", func(f patientFacts) bool { return f.sharing == fhir.SharingConsented && f.conds > 0 })
	env.atSecond = pick("second-practice", func(f patientFacts) bool { return f.sharing == fhir.SharingUnknown && f.n.Practice == second })
	env.sensitive = pick("sensitive", func(f patientFacts) bool {
		return f.sharing == fhir.SharingUnknown && f.n.Practice == first && f.conds > 0
	})
	for _, n := range sum.Notable {
		if n.Kind == demo.NotableDissent {
			env.dissent = n
		}
	}
	if env.dissent.PatientID == "" || env.sharing[env.dissent.PatientID] != fhir.SharingDissent {
		t.Fatalf("the notable dissent patient %q is not coded as dissenting", env.dissent.PatientID)
	}
	for i := 0; env.unknown == ""; i++ {
		nine := fmt.Sprintf("99%07d", i)
		if cd, ok := fhir.CheckDigit(nine); ok && !exists[nine+string(cd)] {
			env.unknown = nine + string(cd)
		}
	}

	// A termination of pregnancy (SNOMED 386639001, on the RCGP exclusion
	// list) and a Condition the source labels restricted (v3
	// Confidentiality R), both coded, added to the sensitive patient.
	nhs := fhir.NHSNumber(env.sensitive.NHS)
	rec, err := st.Source(first).Record(ctx, nhs, fhir.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	var cond map[string]any
	for _, r := range rec.Resources {
		if r.Type == "Condition" {
			if err := json.Unmarshal(r.JSON, &cond); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	add := func(id string, mod func(m map[string]any)) {
		m := map[string]any{}
		for k, v := range cond {
			m[k] = v
		}
		m["id"] = id
		mod(m)
		raw, _ := json.Marshal(m)
		r, err := fhir.Canonicalize(raw)
		if err != nil {
			t.Fatalf("injected Condition %s: %v", id, err)
		}
		rec.Resources = append(rec.Resources, r)
	}
	add(env.sensitive.PatientID+"-cb-sensitive", func(m map[string]any) {
		m["code"] = map[string]any{"coding": []any{map[string]any{"system": fhir.SNOMED, "code": "386639001", "display": "Termination of pregnancy"}}}
	})
	add(env.sensitive.PatientID+"-cb-confidential", func(m map[string]any) {
		meta, _ := m["meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		meta["security"] = []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}}
		m["meta"] = meta
	})
	if !rec.Resources[len(rec.Resources)-1].Ix.Confidential {
		t.Fatal("the restricted Condition is not indexed as confidential")
	}
	if err := st.PutRecord(first, rec); err != nil {
		t.Fatal(err)
	}
}

// call makes one request with exactly the bearer given ("" for none).
func (env *cbEnv) call(t testing.TB, method, path, bearer string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, env.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{res.StatusCode, res.Header, b}
	if r.status >= 400 {
		env.refusals = append(env.refusals, r)
	}
	return r
}

// refused checks a refusal: status, GP Connect code, the rule named in the
// diagnostics (when rule is not ""), and no data.
func (env *cbEnv) refused(t testing.TB, r response, status int, code fhir.Code, rule string) {
	t.Helper()
	expectOutcome(t, r, status, code)
	if rule != "" {
		var oo outcome
		_ = json.Unmarshal(r.body, &oo)
		d := oo.Issue[0].Diagnostics
		// Agreement refusals all read alike to the caller (which agreement
		// rule refused would reveal that the patient exists); the audit
		// keeps the exact rule.
		if code == fhir.CodeNoOrganisationConsent {
			if !strings.HasPrefix(d, "no active sharing agreement") {
				t.Fatalf("diagnostics %q, want the one agreement refusal (rule %q is for the audit)", d, rule)
			}
		} else if d != rule {
			t.Fatalf("diagnostics %q, want rule %q", d, rule)
		}
	}
	noData(t, r, env.dissent, env.consented, env.noEntry, env.other, env.sensitive, env.atSecond)
}

// systemToken is a system token of client (demographics and consent).
func (env *cbEnv) systemToken(t testing.TB, client string, b2b *smart.B2B) string {
	t.Helper()
	r, a := env.tokenFor(t, sbForm(env.b2bAssertion(t, client, b2b), "system/*.rs system/Consent.c").Encode())
	if r.status != http.StatusOK {
		t.Fatalf("system token of %s: %d %s", client, r.status, truncateBody(r.body))
	}
	return a.AccessToken
}

// consentBody is a UK Core Consent for POST /Consent; mod changes it.
func cbConsentBody(patientID string, mod func(c map[string]any)) []byte {
	c := map[string]any{
		"resourceType": "Consent", "status": "active",
		"patient":   map[string]any{"reference": "Patient/" + patientID},
		"performer": []any{map[string]any{"identifier": map[string]any{"system": consent.SDSUserSystem, "value": demoClinician}}},
	}
	if mod != nil {
		mod(c)
	}
	b, _ := json.Marshal(c)
	return b
}

func breakGlass(reason string) func(c map[string]any) {
	return func(c map[string]any) {
		c["provision"] = map[string]any{"type": "permit", "purpose": []any{map[string]any{"system": consent.ActReasonSystem, "code": "ETREAT"}}}
		if reason != "" {
			c["extension"] = []any{map[string]any{"url": consent.ExtBreakGlassReason, "valueString": reason}}
		}
	}
}

// recordConsent POSTs a consent for patientID as client and returns the
// Consent id; it fails the test unless the server answers 201.
func (env *cbEnv) recordConsent(t testing.TB, client, patientID string, mod func(c map[string]any)) (string, response) {
	t.Helper()
	r := env.call(t, http.MethodPost, "/Consent", env.systemToken(t, client, nil), cbConsentBody(patientID, mod))
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(r.body, &c); r.status != http.StatusCreated || err != nil || c.ID == "" {
		t.Fatalf("POST /Consent as %s for %s: %d %s", client, patientID, r.status, truncateBody(r.body))
	}
	return c.ID, r
}

// viewToken records a consent to view and returns a patient/*.rs token
// bound to it.
func (env *cbEnv) viewToken(t testing.TB, client, patientID string) string {
	t.Helper()
	id, _ := env.recordConsent(t, client, patientID, nil)
	return env.mustPatientToken(t, client, id, "patient/*.rs", patientID)
}

func everything(p demo.Notable) string {
	return "/Patient/" + p.PatientID + "/$everything?_count=" + itoa(fhir.MaxCount)
}

// TestConsentOverHTTP proves the consent rules of issue 4 over HTTP.
func TestConsentOverHTTP(t *testing.T) {
	runConsentChecks(t, startConsentEnv(t))
}

// runConsentChecks are the consent black-box checks, against one node or
// a cluster.
func runConsentChecks(t *testing.T, env *cbEnv) {
	t.Run("agreements", env.testAgreements)
	t.Run("blood pressure only", env.testBPOnly)
	t.Run("consent to share", env.testConsentToShare)
	t.Run("consent to view", env.testConsentToView)
	t.Run("break-glass", env.testBreakGlass)
	t.Run("CLI round trip", env.testCLI)
	t.Run("refusals reveal nothing", env.testNoLeak)
	t.Run("redaction", env.testRedaction)
	t.Run("every patient's $everything", env.testWalk)
	t.Run("suspension takes effect on the next request (restart)", env.testSuspendRestart)
	t.Run("no refusal carries patient data", func(t *testing.T) {
		if len(env.refusals) < 50 {
			t.Fatalf("only %d refusals were seen", len(env.refusals))
		}
		for _, r := range env.refusals {
			env.refused(t, r, r.status, outcomeCode(r), "")
		}
	})
}

func outcomeCode(r response) fhir.Code {
	var oo outcome
	if json.Unmarshal(r.body, &oo) == nil && len(oo.Issue) > 0 && len(oo.Issue[0].Details.Coding) > 0 {
		return fhir.Code(oo.Issue[0].Details.Coding[0].Code)
	}
	return ""
}

// testAgreements: each agreement state, for demographics (a system token's
// Patient search), for recording a consent to view, and for clinical data.
func (env *cbEnv) testAgreements(t *testing.T) {
	p := env.noEntry
	for _, c := range []struct {
		name, client string
		purpose      string // hl7-b2b purpose_of_use of the system token
		rule         string // "" permitted
	}{
		{"active", demoClientID, "", ""},
		{"active, purpose TREAT named", demoClientID, "TREAT", ""},
		{"suspended", cb111, "", consent.RuleAgreementSuspended},
		{"ended", cbEnded, "", consent.RuleAgreementEnded},
		{"expired", cbExpired, "", consent.RuleAgreementExpired},
		{"draft", cbDraft, "", consent.RuleAgreementNotActive},
		{"not yet started", cbFuture, "", consent.RuleAgreementNotStarted},
		{"wrong purpose", demoClientID, "HRESCH", consent.RulePurposeNotAllowed},
		{"no agreement", cbNone, "", consent.RuleNoAgreement},
		{"agreement with the patient's practice only", cbOneOnly, "", ""}, // noEntry is at the first practice
	} {
		t.Run(c.name, func(t *testing.T) {
			var b2b *smart.B2B
			if c.purpose != "" {
				b2b = &smart.B2B{PurposeOfUse: smart.StringList{c.purpose}}
			}
			sys := env.systemToken(t, c.client, b2b)
			search := env.call(t, http.MethodGet, patientSearch(p.NHS), sys, nil)
			cons := env.call(t, http.MethodPost, "/Consent", sys, cbConsentBody(p.PatientID, nil))
			clinical := env.call(t, http.MethodGet, "/Condition?patient="+p.PatientID, sys, nil)
			if c.rule != "" {
				env.refused(t, search, 403, fhir.CodeNoOrganisationConsent, c.rule)
				env.refused(t, clinical, 403, fhir.CodeNoOrganisationConsent, c.rule)
				if c.purpose == "" {
					// POST /Consent checks the agreements (not the token's purpose).
					env.refused(t, cons, 403, fhir.CodeNoOrganisationConsent, c.rule)
				}
				return
			}
			if b := decodeBundle(t, search); len(matches(t, b)) != 1 {
				t.Fatalf("Patient search: %d matches", len(matches(t, b)))
			}
			if cons.status != http.StatusCreated {
				t.Fatalf("POST /Consent: %d %s", cons.status, truncateBody(cons.body))
			}
			// No consent to view on a system token: no clinical data.
			env.refused(t, clinical, 403, fhir.CodeNoPatientConsent, consent.RuleNoConsentToView)
			var cs struct{ ID string }
			_ = json.Unmarshal(cons.body, &cs)
			a := env.b2bAssertion(t, c.client, &smart.B2B{PurposeOfUse: purposesOf(b2b), SubjectID: demoClinician, ConsentReference: smart.StringList{cs.ID}})
			r, ans := env.tokenFor(t, sbForm(a, "patient/*.rs").Encode())
			if r.status != 200 || ans.Patient != p.PatientID {
				t.Fatalf("patient token: %d %s", r.status, truncateBody(r.body))
			}
			if b := decodeBundle(t, env.call(t, http.MethodGet, "/Condition?patient="+p.PatientID, ans.AccessToken, nil)); len(matches(t, b)) == 0 {
				t.Fatal("no Conditions with consent to view")
			}
		})
	}
	t.Run("wrong purpose with consent to view", func(t *testing.T) {
		id, _ := env.recordConsent(t, demoClientID, p.PatientID, nil)
		a := env.b2bAssertion(t, demoClientID, &smart.B2B{PurposeOfUse: smart.StringList{"HRESCH"}, SubjectID: demoClinician, ConsentReference: smart.StringList{id}})
		r, ans := env.tokenFor(t, sbForm(a, "patient/*.rs").Encode())
		if r.status != 200 {
			t.Fatalf("patient token: %d %s", r.status, truncateBody(r.body))
		}
		env.refused(t, env.call(t, http.MethodGet, everything(p), ans.AccessToken, nil), 403, fhir.CodeNoOrganisationConsent, consent.RulePurposeNotAllowed)
	})
	t.Run("no agreement with the patient's practice", func(t *testing.T) {
		sys := env.systemToken(t, cbOneOnly, nil)
		env.refused(t, env.call(t, http.MethodGet, patientSearch(env.atSecond.NHS), sys, nil), 403, fhir.CodeNoOrganisationConsent, consent.RuleNoAgreement)
		env.refused(t, env.call(t, http.MethodPost, "/Consent", sys, cbConsentBody(env.atSecond.PatientID, nil)), 403, fhir.CodeNoOrganisationConsent, consent.RuleNoAgreement)
	})
}

func purposesOf(b *smart.B2B) smart.StringList {
	if b == nil {
		return nil
	}
	return b.PurposeOfUse
}

// cbEntry is what the tests read of an entry.
type cbEntry struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Code         struct {
		Coding []fhir.Coding `json:"coding"`
	} `json:"code"`
	Issue []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Details  struct {
			Coding []fhir.Coding `json:"coding"`
		} `json:"details"`
	} `json:"issue"`
}

// entries decodes every entry of a Bundle (matches and outcomes) and fails
// when the Bundle has a next page (the tests ask for the largest page).
func entries(t testing.TB, b *bundle) []cbEntry {
	t.Helper()
	if b.link("next") != "" {
		t.Fatal("the answer has more than one page")
	}
	var out []cbEntry
	for _, e := range b.Entry {
		var x cbEntry
		if err := json.Unmarshal(e.Resource, &x); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

// countMatches counts the match entries of a Bundle.
func countMatches(t testing.TB, b *bundle) int {
	t.Helper()
	n := 0
	for _, e := range entries(t, b) {
		if e.ResourceType != "OperationOutcome" {
			n++
		}
	}
	return n
}

// withheldWarning reports whether the Bundle carries the GP Connect
// confidential-items warning.
func withheldWarning(es []cbEntry) bool {
	for _, e := range es {
		if e.ResourceType != "OperationOutcome" {
			continue
		}
		for _, i := range e.Issue {
			if i.Severity == "warning" && fhir.HasCoding(i.Details.Coding, fhir.ListWarningCodeSystem, string(fhir.WarnConfidentialItems)) {
				return true
			}
		}
	}
	return false
}

const bpScope = "patient/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9"

// testBPOnly: demo-ambulance's agreement shares blood pressure only.
func (env *cbEnv) testBPOnly(t *testing.T) {
	p := env.noEntry
	sys := env.systemToken(t, cbAmb, nil)
	if len(matches(t, decodeBundle(t, env.call(t, http.MethodGet, patientSearch(p.NHS), sys, nil)))) != 1 {
		t.Fatal("demographics are shared with every agreement")
	}
	env.refused(t, env.call(t, http.MethodGet, "/Condition?patient="+p.PatientID, sys, nil), 403, fhir.CodeNoOrganisationConsent, consent.RuleAreaNotShared)
	env.refused(t, env.call(t, http.MethodGet, "/MedicationStatement?patient="+p.PatientID, sys, nil), 403, fhir.CodeNoOrganisationConsent, consent.RuleAreaNotShared)

	id, _ := env.recordConsent(t, cbAmb, p.PatientID, nil)
	r, a := env.patientTokenAs(t, cbAmb, id, "patient/*.rs")
	if r.status != 200 || a.Patient != p.PatientID {
		t.Fatalf("patient token: %d %s", r.status, truncateBody(r.body))
	}
	scopes := strings.Fields(a.Scope)
	sort.Strings(scopes)
	want := []string{bpScope, "patient/Organization.rs", "patient/Patient.rs", "patient/Practitioner.rs"}
	sort.Strings(want)
	if strings.Join(scopes, " ") != strings.Join(want, " ") {
		t.Fatalf("patient/*.rs narrowed to %q, want %q", a.Scope, want)
	}
	tok := a.AccessToken

	t.Run("$everything carries only the blood pressures", func(t *testing.T) {
		es := entries(t, decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil)))
		bp := 0
		for _, e := range es {
			switch e.ResourceType {
			case "Patient", "Organization", "Practitioner", "OperationOutcome":
			case "Observation":
				if !fhir.HasCoding(e.Code.Coding, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
					t.Fatalf("Observation %s is not a blood pressure: %v", e.ID, e.Code.Coding)
				}
				bp++
			default:
				t.Fatalf("$everything returned a %s", e.ResourceType)
			}
		}
		if bp != env.bpCount {
			t.Fatalf("%d blood pressures, the record holds %d", bp, env.bpCount)
		}
	})
	t.Run("Observation search carries only the blood pressures", func(t *testing.T) {
		got := matches(t, decodeBundle(t, env.call(t, http.MethodGet, "/Observation?patient="+p.PatientID+"&_count="+itoa(fhir.MaxCount), tok, nil)))
		if len(got) != env.bpCount {
			t.Fatalf("%d Observations, want the %d blood pressures", len(got), env.bpCount)
		}
	})
	t.Run("Condition search refused", func(t *testing.T) {
		env.refused(t, env.call(t, http.MethodGet, "/Condition?patient="+p.PatientID, tok, nil), 403, fhir.CodeAccessDenied, "")
	})
	t.Run("$getstructuredrecord: every reference resolves within the answer", func(t *testing.T) {
		noDanglingReferences(t, env.call(t, http.MethodPost, "/Patient/$getstructuredrecord", tok, allSections(p.NHS)), env.bpCount)
	})
	t.Run("_include of what the agreement withholds adds nothing", func(t *testing.T) {
		b := decodeBundle(t, env.call(t, http.MethodGet, "/Observation?patient="+p.PatientID+"&_include=Observation:encounter&_revinclude=DiagnosticReport:result&_count="+itoa(fhir.MaxCount), tok, nil))
		for _, e := range b.Entry {
			var h resourceHead
			_ = json.Unmarshal(e.Resource, &h)
			if e.Search != nil && e.Search.Mode == "include" && h.ResourceType != "Patient" {
				t.Fatalf("a %s was included under a blood-pressure-only agreement", h.ResourceType)
			}
		}
	})
	t.Run("a Condition token cannot be had", func(t *testing.T) {
		r, a := env.patientTokenAs(t, cbAmb, id, "patient/Condition.rs")
		if r.status != 400 || a.Error != smart.ErrInvalidScope || a.AccessToken != "" {
			t.Fatalf("%d %s", r.status, truncateBody(r.body))
		}
	})
}

// testConsentToShare: the patient's coded consent to share, under an
// implied-consent agreement (RXX01) and an opt-in one (RXX13).
func (env *cbEnv) testConsentToShare(t *testing.T) {
	for _, c := range []struct {
		name   string
		client string
		p      demo.Notable
		rule   string // "" permitted
	}{
		{"implied default, dissent", demoClientID, env.dissent, consent.RulePatientDissent},
		{"implied default, consent given", demoClientID, env.consented, ""},
		{"implied default, no entry", demoClientID, env.noEntry, ""},
		{"opt-in default, dissent", cbOptIn, env.dissent, consent.RulePatientDissent},
		{"opt-in default, consent given", cbOptIn, env.consented, ""},
		{"opt-in default, no entry", cbOptIn, env.noEntry, consent.RuleDefaultDissent},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := env.viewToken(t, c.client, c.p.PatientID)
			ev := env.call(t, http.MethodGet, everything(c.p), tok, nil)
			if c.rule != "" {
				env.refused(t, ev, 403, fhir.CodeNoPatientConsent, c.rule)
				return
			}
			if countMatches(t, decodeBundle(t, ev)) < 2 {
				t.Fatal("$everything is nearly empty")
			}
			if c.client == demoClientID { // opt-in: TestConsentDissentWinsInEveryArea
				if len(matches(t, decodeBundle(t, env.call(t, http.MethodGet, patientSearch(c.p.NHS), env.systemToken(t, c.client, nil), nil)))) != 1 {
					t.Fatal("Patient search found nothing")
				}
			}
		})
	}
	// Dissent in every area and for demographics: TestConsentDissentWinsInEveryArea.
	for _, client := range []string{demoClientID, cbOOH, cbOptIn} {
		t.Run("dissent refuses "+client, func(t *testing.T) {
			p := env.dissent
			tok := env.viewToken(t, client, p.PatientID)
			for _, path := range []string{everything(p), "/Observation?patient=" + p.PatientID} {
				env.refused(t, env.call(t, http.MethodGet, path, tok, nil), 403, fhir.CodeNoPatientConsent, consent.RulePatientDissent)
			}
		})
	}
}

// testConsentToView: present, absent, expired, for another patient, of
// another organisation, and malformed.
func (env *cbEnv) testConsentToView(t *testing.T) {
	p := env.noEntry
	t.Run("none", func(t *testing.T) {
		sys := env.systemToken(t, demoClientID, nil)
		for _, path := range []string{everything(p), "/Condition?patient=" + p.PatientID, "/Observation?patient=" + p.PatientID} {
			env.refused(t, env.call(t, http.MethodGet, path, sys, nil), 403, fhir.CodeNoPatientConsent, consent.RuleNoConsentToView)
		}
		// Demographics stay available, so the clinician can identify the patient.
		if r := env.call(t, http.MethodGet, "/Patient/"+p.PatientID, sys, nil); r.status != 200 || !bytes.Contains(r.body, []byte(p.PatientID)) {
			t.Fatalf("Patient read with a system token: %d %s", r.status, truncateBody(r.body))
		}
		r, a := env.tokenFor(t, sbForm(env.assertion(t, demoClientID), "patient/*.rs").Encode())
		if r.status != 400 || a.Error != smart.ErrInvalidScope {
			t.Fatalf("patient scopes without consent_reference: %d %s", r.status, truncateBody(r.body))
		}
	})
	t.Run("present", func(t *testing.T) {
		tok := env.viewToken(t, demoClientID, p.PatientID)
		if countMatches(t, decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil))) < 2 {
			t.Fatal("$everything is nearly empty")
		}
	})
	t.Run("expired", func(t *testing.T) {
		now := time.Now().UTC().Truncate(time.Second)
		end := now.Add(3 * time.Second)
		id, _ := env.recordConsent(t, demoClientID, p.PatientID, func(c map[string]any) {
			c["provision"] = map[string]any{"type": "permit", "period": map[string]any{"start": now.Add(-time.Hour).Format(time.RFC3339), "end": end.Format(time.RFC3339)}}
		})
		tok := env.mustPatientToken(t, demoClientID, id, "patient/*.rs", p.PatientID)
		decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil)) // while it holds
		time.Sleep(time.Until(end) + 300*time.Millisecond)
		env.refused(t, env.call(t, http.MethodGet, everything(p), tok, nil), 403, fhir.CodeNoPatientConsent, consent.RuleConsentExpired)
		r, a := env.patientTokenAs(t, demoClientID, id, "patient/*.rs")
		if r.status != 400 || a.Error != smart.ErrInvalidGrant || a.Description != consent.RuleConsentExpired {
			t.Fatalf("token against an expired consent: %d %s", r.status, truncateBody(r.body))
		}
	})
	t.Run("other patient", func(t *testing.T) {
		tok := env.viewToken(t, demoClientID, p.PatientID)
		o := env.other
		for _, path := range []string{everything(o), "/Condition?patient=" + o.PatientID, "/Patient/" + o.PatientID, patientSearch(o.NHS)} {
			env.refused(t, env.call(t, http.MethodGet, path, tok, nil), 403, fhir.CodeAccessDenied, "")
		}
		// A patient-context token records no consent to view.
		env.refused(t, env.call(t, http.MethodPost, "/Consent", tok, cbConsentBody(o.PatientID, nil)), 403, fhir.CodeAccessDenied, "")
	})
	t.Run("other organisation", func(t *testing.T) {
		id, _ := env.recordConsent(t, demoClientID, p.PatientID, nil)
		for _, client := range []string{cbOOH, cbAmb, cbNone} {
			r, a := env.patientTokenAs(t, client, id, "patient/*.rs")
			if r.status != 400 || a.Error != smart.ErrInvalidGrant || a.AccessToken != "" || a.Description != consent.RuleConsentOtherOrg {
				t.Fatalf("%s naming RXX01's consent: %d %s", client, r.status, truncateBody(r.body))
			}
			noData(t, r, p)
		}
		// Nor may another organisation read it back.
		env.refused(t, env.call(t, http.MethodGet, "/Consent/"+id, env.systemToken(t, cbOOH, nil), nil), 404, fhir.CodeNoRecordFound, "")
	})
	t.Run("invalid", func(t *testing.T) {
		now := time.Now().UTC().Truncate(time.Second)
		sys := env.systemToken(t, demoClientID, nil)
		for _, c := range []struct {
			name string
			mod  func(c map[string]any)
		}{
			{"longer than 24 hours", func(c map[string]any) {
				c["provision"] = map[string]any{"period": map[string]any{"start": now.Format(time.RFC3339), "end": now.Add(25 * time.Hour).Format(time.RFC3339)}}
			}},
			{"already ended", func(c map[string]any) {
				c["provision"] = map[string]any{"period": map[string]any{"start": now.Add(-2 * time.Hour).Format(time.RFC3339), "end": now.Add(-time.Hour).Format(time.RFC3339)}}
			}},
			{"another organisation", func(c map[string]any) {
				c["organization"] = []any{map[string]any{"identifier": map[string]any{"system": fhir.ODSSystem, "value": "RXX04"}}}
			}},
			{"a reason without break-glass", func(c map[string]any) {
				c["extension"] = []any{map[string]any{"url": consent.ExtBreakGlassReason, "valueString": "curious"}}
			}},
			{"break-glass without a reason", breakGlass("")},
			{"no clinician", func(c map[string]any) { delete(c, "performer") }},
		} {
			t.Run(c.name, func(t *testing.T) {
				env.refused(t, env.call(t, http.MethodPost, "/Consent", sys, cbConsentBody(p.PatientID, c.mod)), 422, fhir.CodeInvalidParameter, "")
			})
		}
	})
}

// auditEvents returns the auditor's view of a patient's audit trail.
func (env *cbEnv) auditEvents(t testing.TB, patientID, query string) []byte {
	t.Helper()
	auditor := env.mustToken(t, cbAuditor, "system/AuditEvent.rs")
	r := env.call(t, http.MethodGet, "/AuditEvent?patient="+patientID+query+"&_count="+itoa(fhir.MaxCount), auditor, nil)
	decodeBundle(t, r)
	return r.body
}

// testBreakGlass: allowed for demo-ehr, refused for demo-ooh, never over a
// dissent; the reason is kept in the audit only.
func (env *cbEnv) testBreakGlass(t *testing.T) {
	p := env.other
	t.Run("allowed, recorded with gpgate consent --break-glass", func(t *testing.T) {
		code, out, stderr := sbRun(t, "consent", "--base", env.base, "--client", demoClientID, "--key", filepath.Join(env.dir, demoKeyFile),
			"--nhs", p.NHS, "--clinician", demoClinician, "--break-glass", cbBGReason)
		id := strings.TrimSpace(out)
		if code != 0 || !fhir.ValidID(id) {
			t.Fatalf("gpgate consent --break-glass: %d %q %s", code, out, stderr)
		}
		tok := env.mustPatientToken(t, demoClientID, id, "patient/*.rs", p.PatientID)
		decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil))
		bg := env.auditEvents(t, p.PatientID, "&break-glass=true")
		if !bytes.Contains(bg, []byte(cbBGReason)) {
			t.Fatalf("the break-glass reason is not in the patient's break-glass AuditEvents: %s", truncateBody(bg))
		}
		if !bytes.Contains(bg, []byte(auditDetailBGReason)) {
			t.Fatal("the reason is not in a break-glass-reason detail")
		}
		// The Consent read back holds no reason.
		cr := env.call(t, http.MethodGet, "/Consent/"+id, env.systemToken(t, demoClientID, nil), nil)
		if cr.status != 200 || bytes.Contains(cr.body, []byte(cbBGReason)) || bytes.Contains(cr.body, []byte(consent.ExtBreakGlassReason)) || !bytes.Contains(cr.body, []byte(`"ETREAT"`)) {
			t.Fatalf("GET /Consent/%s: %d %s", id, cr.status, truncateBody(cr.body))
		}
	})
	t.Run("allowed, the Consent returned holds no reason", func(t *testing.T) {
		_, r := env.recordConsent(t, demoClientID, p.PatientID, breakGlass(cbBGReason+" (HTTP)"))
		if bytes.Contains(r.body, []byte(cbBGReason)) || bytes.Contains(r.body, []byte(consent.ExtBreakGlassReason)) || bytes.Contains(r.body, []byte(`"extension"`)) {
			t.Fatalf("the Consent returned carries the reason: %s", truncateBody(r.body))
		}
		if _, err := fhir.Parse(r.body); err != nil || !bytes.Contains(r.body, []byte(`"ETREAT"`)) {
			t.Fatalf("the Consent returned is not a valid break-glass Consent: %v %s", err, truncateBody(r.body))
		}
		if !bytes.Contains(env.auditEvents(t, p.PatientID, "&break-glass=true"), []byte(cbBGReason+" (HTTP)")) {
			t.Fatal("the reason is not in the audit")
		}
	})
	t.Run("allowed, BTG purpose on the token", func(t *testing.T) {
		id, _ := env.recordConsent(t, demoClientID, p.PatientID, nil)
		a := env.b2bAssertion(t, demoClientID, &smart.B2B{PurposeOfUse: smart.StringList{"BTG"}, SubjectID: demoClinician, ConsentReference: smart.StringList{id}})
		r, ans := env.tokenFor(t, sbForm(a, "patient/*.rs").Encode())
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, truncateBody(r.body))
		}
		decodeBundle(t, env.call(t, http.MethodGet, everything(p), ans.AccessToken, nil))
	})
	t.Run("not allowed (demo-ooh)", func(t *testing.T) {
		sys := env.systemToken(t, cbOOH, nil)
		env.refused(t, env.call(t, http.MethodPost, "/Consent", sys, cbConsentBody(p.PatientID, breakGlass(cbBGReason))), 403, fhir.CodeNoOrganisationConsent, consent.RuleBreakGlassNotAllowed)
		code, out, stderr := sbRun(t, "consent", "--base", env.base, "--client", cbOOH, "--key", filepath.Join(env.dir, "demo-ooh.jwk"),
			"--nhs", p.NHS, "--clinician", demoClinician, "--break-glass", cbBGReason)
		if code != 1 || out != "" || !strings.Contains(stderr, string(fhir.CodeNoOrganisationConsent)) || !strings.Contains(stderr, "break-glass") {
			t.Fatalf("gpgate consent --break-glass as demo-ooh: %d %q %q", code, out, stderr)
		}
		// A consent to view, then BTG on the token: refused at the request.
		id, _ := env.recordConsent(t, cbOOH, p.PatientID, nil)
		a := env.b2bAssertion(t, cbOOH, &smart.B2B{PurposeOfUse: smart.StringList{"BTG"}, SubjectID: demoClinician, ConsentReference: smart.StringList{id}})
		r, ans := env.tokenFor(t, sbForm(a, "patient/*.rs").Encode())
		if r.status == 200 {
			env.refused(t, env.call(t, http.MethodGet, everything(p), ans.AccessToken, nil), 403, fhir.CodeNoOrganisationConsent, consent.RuleBreakGlassNotAllowed)
		} else if ans.Error != smart.ErrInvalidGrant {
			t.Fatalf("BTG token for demo-ooh: %d %s", r.status, truncateBody(r.body))
		}
		// The plain consent still works.
		decodeBundle(t, env.call(t, http.MethodGet, everything(p), env.mustPatientToken(t, cbOOH, id, "patient/*.rs", p.PatientID), nil))
	})
	t.Run("never over a dissent", func(t *testing.T) {
		d := env.dissent
		id, _ := env.recordConsent(t, demoClientID, d.PatientID, breakGlass(cbBGReason))
		tok := env.mustPatientToken(t, demoClientID, id, "patient/*.rs", d.PatientID)
		for _, path := range []string{everything(d), "/Observation?patient=" + d.PatientID} {
			env.refused(t, env.call(t, http.MethodGet, path, tok, nil), 403, fhir.CodeNoPatientConsent, consent.RulePatientDissent)
		}
	})
}

// auditDetailBGReason is the AuditEvent.entity.detail type that
// carries a break-glass reason (audit.DetailBreakGlassReason).
const auditDetailBGReason = "break-glass-reason"

// testCLI: gpgate consent and gpgate token --consent against the live
// server, and their refusals.
func (env *cbEnv) testCLI(t *testing.T) {
	p := env.noEntry
	key := filepath.Join(env.dir, demoKeyFile)
	code, out, stderr := sbRun(t, "consent", "--base", env.base, "--client", demoClientID, "--key", key, "--nhs", p.NHS, "--clinician", demoClinician, "--hours", "1")
	id := strings.TrimSpace(out)
	if code != 0 || !fhir.ValidID(id) {
		t.Fatalf("gpgate consent: %d %q %s", code, out, stderr)
	}
	code, out, stderr = sbRun(t, "token", "--base", env.base, "--client", demoClientID, "--key", key, "--scope", "patient/*.rs", "--consent", id, "--subject-id", demoClinician)
	tok := strings.TrimSpace(out)
	if code != 0 || tok == "" {
		t.Fatalf("gpgate token --consent: %d %q %s", code, out, stderr)
	}
	if countMatches(t, decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil))) < 2 {
		t.Fatal("$everything with the CLI token is nearly empty")
	}
	r := env.postForm(t, smart.PathIntrospect, url.Values{"client_assertion_type": {smart.AssertionTypeJWTBearer},
		"client_assertion": {env.assertion(t, demoClientID)}, "token": {tok}}.Encode())
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || m["active"] != true || m["patient"] != p.PatientID || m["consent_reference"] != id {
		t.Fatalf("introspection of the CLI token: %s", truncateBody(r.body))
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"consent: suspended agreement", []string{"consent", "--client", cb111, "--key", filepath.Join(env.dir, "demo-111.jwk"), "--nhs", p.NHS, "--clinician", demoClinician}, 1, string(fhir.CodeNoOrganisationConsent)},
		{"consent: unknown patient", []string{"consent", "--client", demoClientID, "--key", key, "--nhs", env.unknown, "--clinician", demoClinician}, 1, string(fhir.CodeNoOrganisationConsent)},
		{"consent: more than 24 hours", []string{"consent", "--client", demoClientID, "--key", key, "--nhs", p.NHS, "--clinician", demoClinician, "--hours", "25"}, 1, "--hours 25"},
		{"consent: invalid NHS number", []string{"consent", "--client", demoClientID, "--key", key, "--nhs", "1234567890", "--clinician", demoClinician}, 1, "--nhs 1234567890"},
		{"consent: no clinician", []string{"consent", "--client", demoClientID, "--key", key, "--nhs", p.NHS}, 2, "--clinician (the clinician's SDS user id"},
		{"consent: no key, no clinician", []string{"consent", "--client", demoClientID, "--nhs", p.NHS}, 2, "--key (the client's private key file), --clinician"},
		{"token: --base below the server", []string{"token", "--base", env.base + "/fhir", "--client", demoClientID, "--key", key, "--scope", "system/*.rs"}, 1, "the token endpoint is at <base>/auth/token (if gpgate serves at " + env.base + ", that is --base " + env.base},
		{"token: another client's key", []string{"token", "--client", demoClientID, "--key", filepath.Join(env.dir, "demo-ooh.jwk"), "--scope", "system/*.rs"}, 1, "is --key " + filepath.Join(env.dir, "demo-ooh.jwk") + " the private key registered for --client " + demoClientID},
		{"token: not a URL", []string{"token", "--base", "localhost:8080", "--client", demoClientID, "--key", key, "--scope", "system/*.rs"}, 1, "not an http(s) URL"},
		{"token: no scope", []string{"token", "--client", demoClientID, "--key", key}, 2, "--scope"},
		{"token: unknown consent", []string{"token", "--client", demoClientID, "--key", key, "--scope", "patient/*.rs", "--consent", "nosuchconsent"}, 1, smart.ErrInvalidGrant},
		{"token: another organisation's consent", []string{"token", "--client", cbOOH, "--key", filepath.Join(env.dir, "demo-ooh.jwk"), "--scope", "patient/*.rs", "--consent", id}, 1, smart.ErrInvalidGrant},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{c.args[0], "--base", env.base}, c.args[1:]...)
			if c.args[1] == "--base" {
				args = c.args // the case is about --base
			}
			code, out, stderr := sbRun(t, args...)
			if code != c.code || out != "" || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, c.code, out, stderr, c.want)
			}
			if strings.Contains(stderr, p.PatientID) {
				t.Fatalf("the error names the patient: %s", stderr)
			}
		})
	}
}

// testNoLeak: a refusal for a patient who does not exist is byte-identical
// to one for a real patient at a practice the caller has no agreement with.
func (env *cbEnv) testNoLeak(t *testing.T) {
	real, ghost := env.atSecond, demo.Notable{NHS: env.unknown, PatientID: fhir.PatientID(fhir.NHSNumber(env.unknown))}
	byNHS := func(nhs string) []byte {
		return []byte(`{"resourceType":"Consent","patient":{"identifier":{"system":"` + fhir.NHSNumberSystem + `","value":"` + nhs + `"}},` +
			`"performer":[{"identifier":{"system":"` + consent.SDSUserSystem + `","value":"` + demoClinician + `"}}]}`)
	}
	type req struct {
		name, method string
		path         func(p demo.Notable) string
		body         func(p demo.Notable) []byte
	}
	reqs := []req{
		{"Patient search", "GET", func(p demo.Notable) string { return patientSearch(p.NHS) }, nil},
		{"Patient read", "GET", func(p demo.Notable) string { return "/Patient/" + p.PatientID }, nil},
		{"$everything", "GET", everything, nil},
		{"Condition search", "GET", func(p demo.Notable) string { return "/Condition?patient=" + p.PatientID }, nil},
		{"POST /Consent by NHS number", "POST", func(demo.Notable) string { return "/Consent" }, func(p demo.Notable) []byte { return byNHS(p.NHS) }},
		{"POST /Consent by reference", "POST", func(demo.Notable) string { return "/Consent" }, func(p demo.Notable) []byte { return cbConsentBody(p.PatientID, nil) }},
	}
	for _, c := range []struct {
		name   string
		client string
		b2b    *smart.B2B
	}{
		{"agreement with another practice only", cbOneOnly, nil},
		{"no agreement at all", cbNone, nil},
	} {
		for _, rq := range reqs {
			t.Run(c.name+": "+rq.name, func(t *testing.T) {
				tok := env.systemToken(t, c.client, c.b2b)
				send := func(p demo.Notable) response {
					var body []byte
					if rq.body != nil {
						body = rq.body(p)
					}
					return env.call(t, rq.method, rq.path(p), tok, body)
				}
				a, b := send(real), send(ghost)
				env.refused(t, a, 403, fhir.CodeNoOrganisationConsent, consent.RuleNoAgreement)
				if a.status != b.status || !bytes.Equal(a.body, b.body) || a.header.Get("Content-Type") != b.header.Get("Content-Type") {
					t.Fatalf("real patient: %d %s\nunknown patient: %d %s", a.status, a.body, b.status, b.body)
				}
				noData(t, b, ghost)
			})
		}
	}
	t.Run("patient token used for a real and an unknown patient", func(t *testing.T) {
		tok := env.viewToken(t, demoClientID, env.noEntry.PatientID)
		for _, path := range []func(p demo.Notable) string{everything, func(p demo.Notable) string { return "/Condition?patient=" + p.PatientID }} {
			a, b := env.call(t, "GET", path(env.other), tok, nil), env.call(t, "GET", path(ghost), tok, nil)
			env.refused(t, a, 403, fhir.CodeAccessDenied, "")
			if a.status != b.status || !bytes.Equal(a.body, b.body) {
				t.Fatalf("real patient: %d %s\nunknown patient: %d %s", a.status, a.body, b.status, b.body)
			}
		}
	})
}

// testRedaction: the sensitive and the confidential Condition are
// withheld, with a warning that does not say what.
func (env *cbEnv) testRedaction(t *testing.T) {
	p := env.sensitive
	tok := env.viewToken(t, demoClientID, p.PatientID)
	for _, path := range []string{everything(p), "/Condition?patient=" + p.PatientID + "&_count=" + itoa(fhir.MaxCount)} {
		t.Run(path, func(t *testing.T) {
			r := env.call(t, http.MethodGet, path, tok, nil)
			es := entries(t, decodeBundle(t, r))
			conds := 0
			for _, e := range es {
				if strings.Contains(e.ID, "-cb-") {
					t.Fatalf("%s %s was not withheld", e.ResourceType, e.ID)
				}
				if e.ResourceType == "Condition" {
					conds++
				}
			}
			if conds == 0 {
				t.Fatal("every Condition was withheld")
			}
			if !withheldWarning(es) {
				t.Fatalf("no confidential-items warning: %s", truncateBody(r.body))
			}
			for _, s := range []string{"386639001", "ermination", "cb-sensitive", "cb-confidential", "v3-Confidentiality"} {
				if bytes.Contains(r.body, []byte(s)) {
					t.Fatalf("the answer mentions %q", s)
				}
			}
		})
	}
	t.Run("read of a withheld Condition", func(t *testing.T) {
		for _, id := range []string{p.PatientID + "-cb-sensitive", p.PatientID + "-cb-confidential"} {
			env.refused(t, env.call(t, http.MethodGet, "/Condition/"+id, tok, nil), 404, fhir.CodeNoRecordFound, "")
		}
	})
}

// testWalk walks every patient's $everything with a consent-bound
// patient token of demo-ehr: a dissenting patient is refused, everyone
// else's record comes back valid R4 without free text.
func (env *cbEnv) testWalk(t *testing.T) {
	dissents, resources := 0, 0
	coded := codedTally{}
	defer coded.check(t)
	for _, nhs := range env.patients {
		id := fhir.PatientID(nhs)
		tok := env.viewToken(t, demoClientID, id)
		next := "/Patient/" + id + "/$everything?_count=" + itoa(fhir.MaxCount)
		if env.sharing[id] == fhir.SharingDissent {
			env.refused(t, env.call(t, http.MethodGet, next, tok, nil), 403, fhir.CodeNoPatientConsent, consent.RulePatientDissent)
			dissents++
			continue
		}
		for next != "" {
			r := env.call(t, http.MethodGet, strings.TrimPrefix(next, env.base), tok, nil)
			b := decodeBundle(t, r)
			if err := parseAll(b); err != nil {
				t.Fatalf("patient %s: %v", id, err)
			}
			coded.page(r.body, b)
			resources += len(b.Entry)
			next = b.link("next")
		}
	}
	if dissents == 0 || resources == 0 {
		t.Fatalf("%d dissenting patients, %d resources", dissents, resources)
	}
	t.Logf("walked %d patients with consent-bound tokens: %d resources, %d dissenting patients refused", len(env.patients), resources, dissents)
}

// testSuspendRestart: a token issued before `gpgate agreements suspend`
// is refused on the first request after it, and again accepted after
// `gpgate agreements activate`; a dissent recorded in the source refuses
// the next request. The server offers no live admin API, so each change
// is made with the server stopped and the server restarted on the same
// address (its signing key and the consents persist).
func (env *cbEnv) testSuspendRestart(t *testing.T) {
	p, c := env.noEntry, env.consented
	id, _ := env.recordConsent(t, demoClientID, p.PatientID, nil)
	tok := env.mustPatientToken(t, demoClientID, id, "patient/*.rs", p.PatientID)
	oohTok := env.viewToken(t, cbOOH, c.PatientID)
	decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil))
	decodeBundle(t, env.call(t, http.MethodGet, everything(c), oohTok, nil))
	agreement := "demo-" + strings.ToLower(env.practices[0]) + "-rxx01"

	env.stop()
	if code, out, stderr := sbRun(t, "agreements", "suspend", "--data", env.dir, "--id", agreement); code != 0 || !strings.Contains(out, "suspended") {
		t.Fatalf("agreements suspend: %d %s %s", code, out, stderr)
	}
	env.addDissent(t, c)
	env.stop = cbServe(t, env.dir, env.addr)

	env.refused(t, env.call(t, http.MethodGet, everything(p), tok, nil), 403, fhir.CodeNoOrganisationConsent, consent.RuleAgreementSuspended)
	env.refused(t, env.call(t, http.MethodGet, patientSearch(p.NHS), env.systemToken(t, demoClientID, nil), nil), 403, fhir.CodeNoOrganisationConsent, consent.RuleAgreementSuspended)
	if r, a := env.patientTokenAs(t, demoClientID, id, "patient/*.rs"); r.status != 400 || a.Error != smart.ErrInvalidGrant {
		t.Fatalf("token against a consent under a suspended agreement: %d %s", r.status, truncateBody(r.body))
	}
	env.refused(t, env.call(t, http.MethodGet, everything(c), oohTok, nil), 403, fhir.CodeNoPatientConsent, consent.RulePatientDissent)

	env.stop()
	if code, out, stderr := sbRun(t, "agreements", "activate", "--data", env.dir, "--id", agreement); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("agreements activate: %d %s %s", code, out, stderr)
	}
	env.stop = cbServe(t, env.dir, env.addr)
	decodeBundle(t, env.call(t, http.MethodGet, everything(p), tok, nil))
}

// addDissent records a coded dissent (SNOMED 416409005, as the demo codes
// it) dated now in patient p's record, with the server stopped.
func (env *cbEnv) addDissent(t *testing.T, p demo.Notable) {
	t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(filepath.Join(env.dir, recordsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, err := st.Source(env.dissent.Practice).Record(ctx, fhir.NHSNumber(env.dissent.NHS), fhir.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Source(p.Practice).Record(ctx, fhir.NHSNumber(p.NHS), fhir.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	var obs map[string]any
	for _, r := range src.Resources {
		if r.Type == "Observation" && fhir.HasCoding(r.Ix.Code, fhir.SNOMED, "416409005") {
			_ = json.Unmarshal(r.JSON, &obs)
		}
	}
	if obs == nil {
		t.Fatal("the dissent patient has no coded dissent")
	}
	obs["id"] = "cb-dissent-1"
	obs["subject"] = map[string]any{"reference": "Patient/" + p.PatientID}
	obs["effectiveDateTime"] = time.Now().UTC().Format(time.RFC3339)
	delete(obs, "performer")
	raw, _ := json.Marshal(obs)
	r, err := fhir.Canonicalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	rec.Resources = append(rec.Resources, r)
	rec.Sharing = consent.SharingFromRecord(rec) // as an adapter reads it
	if rec.Sharing != fhir.SharingDissent {
		t.Fatal("the added dissent does not win over the earlier consent")
	}
	if err := st.PutRecord(p.Practice, rec); err != nil {
		t.Fatal(err)
	}
}

// TestConsentDissentWinsInEveryArea: consent to share is the patient's, not
// the area's. The coded entry is an Observation (investigations area), so
// it must be read from the whole record even when the request, the token
// or the agreement covers other areas only; a consent given likewise.
func TestConsentDissentWinsInEveryArea(t *testing.T) {
	env := startConsentEnv(t)
	d := env.dissent
	view := func(client string) string { return env.viewToken(t, client, d.PatientID) }
	narrowed := func(client, scope string) string {
		id, _ := env.recordConsent(t, client, d.PatientID, nil)
		return env.mustPatientToken(t, client, id, scope, d.PatientID)
	}
	breakGlassTok := func() string {
		id, _ := env.recordConsent(t, demoClientID, d.PatientID, breakGlass(cbBGReason))
		return env.mustPatientToken(t, demoClientID, id, "patient/*.rs", d.PatientID)
	}
	for _, c := range []struct {
		name, path string
		token      func() string
		rule       string
	}{
		{"Patient search with a system token", patientSearch(d.NHS), func() string { return env.systemToken(t, demoClientID, nil) }, consent.RulePatientDissent},
		{"Patient read with a consent-bound token", "/Patient/" + d.PatientID, func() string { return view(demoClientID) }, consent.RulePatientDissent},
		{"blood-pressure-only consumer: $everything", everything(d), func() string { return view(cbAmb) }, consent.RulePatientDissent},
		{"blood-pressure-only consumer: Observation search", "/Observation?patient=" + d.PatientID, func() string { return view(cbAmb) }, consent.RulePatientDissent},
		{"token narrowed to Conditions: Condition search", "/Condition?patient=" + d.PatientID, func() string { return narrowed(demoClientID, "patient/Condition.rs") }, consent.RulePatientDissent},
		{"token narrowed to medication: $everything", everything(d), func() string { return narrowed(demoClientID, "patient/MedicationStatement.rs") }, consent.RulePatientDissent},
		{"break-glass: Condition search", "/Condition?patient=" + d.PatientID, breakGlassTok, consent.RulePatientDissent},
		{"opt-in region: Patient search", patientSearch(d.NHS), func() string { return env.systemToken(t, cbOptIn, nil) }, consent.RulePatientDissent},
	} {
		t.Run("dissent: "+c.name, func(t *testing.T) {
			env.refused(t, env.call(t, http.MethodGet, c.path, c.token(), nil), 403, fhir.CodeNoPatientConsent, c.rule)
		})
	}
	t.Run("consent given, opt-in region: Patient search", func(t *testing.T) {
		r := env.call(t, http.MethodGet, patientSearch(env.consented.NHS), env.systemToken(t, cbOptIn, nil), nil)
		if len(matches(t, decodeBundle(t, r))) != 1 {
			t.Fatal("Patient search found nothing")
		}
	})
	t.Run("consent given, opt-in region: Condition search", func(t *testing.T) {
		tok := env.viewToken(t, cbOptIn, env.consented.PatientID)
		if len(matches(t, decodeBundle(t, env.call(t, http.MethodGet, "/Condition?patient="+env.consented.PatientID, tok, nil)))) == 0 {
			t.Fatal("no Conditions")
		}
	})
}

// TestConsentRefusalSameWhetherPatientExists: "no active agreement covering
// the practice, the caller's organisation, the area and the purpose: 403
// NO_ORGANISATION_CONSENT, answered the same whether the patient exists or
// not" (issue 4) for every organisation rule, not only no-agreement: the
// refusal for a real patient must be byte-identical to the one for an NHS
// number no practice holds.
func TestConsentRefusalSameWhetherPatientExists(t *testing.T) {
	env := startConsentEnv(t)
	real, ghost := env.noEntry, demo.Notable{NHS: env.unknown, PatientID: fhir.PatientID(fhir.NHSNumber(env.unknown))}
	for _, c := range []struct {
		name, client string
		b2b          *smart.B2B
		path         func(p demo.Notable) string
	}{
		{"suspended agreement", cb111, nil, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"ended agreement", cbEnded, nil, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"expired agreement", cbExpired, nil, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"draft agreement", cbDraft, nil, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"agreement not started", cbFuture, nil, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"purpose not allowed", demoClientID, &smart.B2B{PurposeOfUse: smart.StringList{"HRESCH"}}, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"break-glass not allowed", cbOOH, &smart.B2B{PurposeOfUse: smart.StringList{"BTG"}}, func(p demo.Notable) string { return patientSearch(p.NHS) }},
		{"area not shared", cbAmb, nil, func(p demo.Notable) string { return "/Condition?patient=" + p.PatientID }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := env.systemToken(t, c.client, c.b2b)
			a, b := env.call(t, http.MethodGet, c.path(real), tok, nil), env.call(t, http.MethodGet, c.path(ghost), tok, nil)
			env.refused(t, a, 403, fhir.CodeNoOrganisationConsent, "")
			if a.status != b.status || !bytes.Equal(a.body, b.body) {
				t.Fatalf("the refusal tells a real patient from an unknown one:\nreal:    %d %s\nunknown: %d %s", a.status, a.body, b.status, b.body)
			}
		})
	}
}

// allSections is a $getstructuredrecord body asking for every section.
func allSections(nhs string) []byte {
	ps := []string{`{"name":"patientNHSNumber","valueIdentifier":{"system":"` + fhir.NHSNumberSystem + `","value":"` + nhs + `"}}`}
	for _, s := range fhir.Sections {
		ps = append(ps, `{"name":"`+s.Param+`"}`)
	}
	return []byte(`{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`)
}

// noDanglingReferences checks that every reference in a collection Bundle
// resolves to one of its entries (GP Connect's rule for structured
// records), whatever the agreement let out, and that it holds at least
// minObservations Observations.
func noDanglingReferences(t *testing.T, r response, minObservations int) {
	t.Helper()
	b := decodeBundle(t, r)
	if b.Type != "collection" {
		t.Fatalf("a %s Bundle", b.Type)
	}
	have := map[string]bool{}
	obs := 0
	for _, e := range b.Entry {
		var h resourceHead
		_ = json.Unmarshal(e.Resource, &h)
		have[h.ResourceType+"/"+h.ID] = true
		if h.ResourceType == "Observation" {
			obs++
		}
	}
	refs, dangling := 0, []string{}
	for _, e := range b.Entry {
		for _, ref := range fhir.References(e.Resource) {
			if strings.HasPrefix(ref, "#") {
				continue
			}
			refs++
			if !have[ref] {
				dangling = append(dangling, ref)
			}
		}
	}
	if len(dangling) > 0 {
		t.Fatalf("%d of %d references do not resolve, e.g. %v", len(dangling), refs, dangling[:min(5, len(dangling))])
	}
	if obs < minObservations || refs == 0 {
		t.Fatalf("%d Observations (want at least %d), %d references", obs, minObservations, refs)
	}
}
