package viewer_test

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/viewer"
	"github.com/gpgate/gpgate/viewer/viewertest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func spaced(n fhir.NHSNumber) string { s := string(n); return s[:3] + " " + s[3:6] + " " + s[6:] }

func TestFindInput(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	full := string(h.patients["full"])
	bad := full[:9] + string('0'+(full[9]-'0'+1)%10)
	cases := []struct {
		name, input string
		status      int
		want        string
	}{
		{"empty", "", http.StatusBadRequest, "Enter the patient&#39;s NHS number"},
		{"letters", "943 476 59AB", http.StatusBadRequest, "only digits"},
		{"hyphens", full[:3] + "-" + full[3:6] + "-" + full[6:], http.StatusBadRequest, "only digits"},
		{"nine digits", full[:9], http.StatusBadRequest, "You entered 9"},
		{"eleven digits", full + "1", http.StatusBadRequest, "more than 10"},
		{"check digit wrong", bad, http.StatusBadRequest, "check digit"},
		{"plain ten digits", full, http.StatusSeeOther, ""},
		{"spaced 3 3 4", spaced(h.patients["full"]), http.StatusSeeOther, ""},
		{"spaces anywhere", " " + full[:2] + " " + full[2:] + " ", http.StatusSeeOther, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(h.calls("FindPatient"))
			r := b.find(c.input)
			if r.status != c.status {
				t.Fatalf("status %d, want %d\n%s", r.status, c.status, r.body)
			}
			if c.want != "" && !strings.Contains(r.body, c.want) {
				t.Fatalf("page does not say %q:\n%s", c.want, r.body)
			}
			called := len(h.calls("FindPatient")) > before
			if called != (c.status == http.StatusSeeOther) {
				t.Fatalf("core called = %v for %q", called, c.input)
			}
			if c.status == http.StatusBadRequest && !strings.Contains(r.body, `aria-invalid="true"`) {
				t.Fatal("invalid field not marked for assistive technology")
			}
		})
	}
}

// Another organisation's patient and a number no one has read the same.
func TestFindRefusalsDoNotLeakExistence(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	other, unknown := h.patients["other"], h.patients["unknown"]
	ro := b.find(spaced(other))
	ru := b.find(spaced(unknown))
	if ro.status != http.StatusForbidden || ru.status != http.StatusForbidden {
		t.Fatalf("statuses %d, %d", ro.status, ru.status)
	}
	norm := func(s string, n fhir.NHSNumber) string {
		return strings.ReplaceAll(csrfRE.ReplaceAllString(s, ""), spaced(n), "NHS")
	}
	if norm(ro.body, other) != norm(ru.body, unknown) {
		t.Fatal("another organisation's patient and an unknown number answer differently")
	}
	if !strings.Contains(ro.body, "No record available") {
		t.Fatal("no clear message")
	}
}

func TestFindDissent(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	r := b.find(spaced(h.patients["dissent"]))
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "asked not to share their GP record") {
		t.Fatalf("dissent: %d\n%s", r.status, r.body)
	}
	if got := b.get("/viewer/patient"); got.status != http.StatusSeeOther {
		t.Fatal("a dissenting patient's page opened")
	}
}

func TestPrincipals(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.open("full")
	b.get("/viewer/record/problems")
	for _, c := range h.core.Calls() {
		p := c.Principal
		if p.ClientID != viewer.ClientID || p.ConsumerODS != org || p.Practitioner != clinician || p.Role != "Doctor" || p.Name != "Dr Alice Smith" {
			t.Fatalf("%s: principal %+v", c.Method, p)
		}
		switch c.Method {
		case "FindPatient", "SharingOptions", "RecordConsent", "PatientContext":
			if p.PatientID != "" || !slices.Equal(p.Scopes, viewer.DefaultSystemScopes) || p.PurposeOfUse != "TREAT" {
				t.Fatalf("%s: system principal %+v", c.Method, p)
			}
		case "Everything":
			if p.PatientID != h.records["full"].PatientID || p.ConsentRef == "" || slices.Contains(p.Scopes, "system/Patient.rs") {
				t.Fatalf("Everything: patient principal %+v", p)
			}
		}
		if c.Method == "RecordConsent" && (c.Consent.Clinician != clinician || c.Consent.NHS != h.patients["full"] || c.Consent.BreakGlass) {
			t.Fatalf("consent request %+v", c.Consent)
		}
	}
	b.get("/viewer/record/summary")
	if n := len(h.calls("Everything")); n != 2 {
		t.Fatalf("every view must go through the core: %d calls for 2 views", n)
	}
}

func TestConsentForm(t *testing.T) {
	cases := []struct {
		name    string
		patient string
		form    url.Values
		status  int
		want    string
		records bool // RecordConsent is called
	}{
		{"patient agreed", "full", url.Values{"basis": {"patient"}, "confirm": {"yes"}}, http.StatusSeeOther, "", true},
		{"not confirmed", "full", url.Values{"basis": {"patient"}}, http.StatusBadRequest, "Confirm that the patient has agreed", false},
		{"no basis", "full", url.Values{}, http.StatusBadRequest, "Choose how the patient", false},
		{"break-glass with a reason", "full", url.Values{"basis": {"breakglass"}, "reason": {"The patient is unconscious or cannot communicate"}}, http.StatusSeeOther, "", true},
		{"break-glass without a reason", "full", url.Values{"basis": {"breakglass"}}, http.StatusBadRequest, "Choose the reason", false},
		{"break-glass, other, no details", "full", url.Values{"basis": {"breakglass"}, "reason": {"Other (give details)"}}, http.StatusBadRequest, "Give the details", false},
		{"break-glass, made-up reason", "full", url.Values{"basis": {"breakglass"}, "reason": {"because"}}, http.StatusBadRequest, "Choose the reason", false},
		{"break-glass the agreement does not allow", "limited", url.Values{"basis": {"breakglass"}, "reason": {"The patient is unconscious or cannot communicate"}}, http.StatusForbidden, "Emergency access is not available", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.signedIn()
			b.find(spaced(h.patients[c.patient]))
			b.get("/viewer/patient")
			r := b.post("/viewer/consent", c.form)
			if r.status != c.status {
				t.Fatalf("status %d, want %d\n%s", r.status, c.status, r.body)
			}
			if c.want != "" && !strings.Contains(r.body, c.want) {
				t.Fatalf("page does not say %q", c.want)
			}
			if got := len(h.calls("RecordConsent")) > 0; got != c.records {
				t.Fatalf("RecordConsent called = %v", got)
			}
			if c.status == http.StatusSeeOther {
				page := b.get(r.loc)
				if page.status != http.StatusOK {
					t.Fatalf("record: %d", page.status)
				}
				bg := c.form.Get("basis") == "breakglass"
				if bg != strings.Contains(page.body, "Emergency (break-glass) access recorded") {
					t.Fatal("the record does not show the basis of access")
				}
			}
		})
	}
}

func TestBreakGlassOfferedOnlyWhereAllowed(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.find(spaced(h.patients["full"]))
	if p := b.get("/viewer/patient"); !strings.Contains(p.body, `value="breakglass"`) {
		t.Fatal("break-glass not offered where the agreement allows it")
	}
	b.find(spaced(h.patients["limited"]))
	p := b.get("/viewer/patient")
	if strings.Contains(p.body, `value="breakglass"`) || !strings.Contains(p.body, "break-glass) access is not available") {
		t.Fatal("break-glass offered where the agreement does not allow it")
	}
}

// The break-glass reason goes to the core (and its audit) and nowhere else.
func TestBreakGlassReasonNotKept(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.find(spaced(h.patients["full"]))
	b.get("/viewer/patient")
	detail := "Collapsed in the waiting room, unresponsive"
	r := b.post("/viewer/consent", url.Values{"basis": {"breakglass"}, "reason": {"Other (give details)"}, "detail": {detail}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("status %d", r.status)
	}
	for _, v := range []string{"summary", "problems"} {
		if strings.Contains(b.get("/viewer/record/"+v).body, detail) {
			t.Fatal("the reason is shown back")
		}
	}
	if strings.Contains(h.logs.String(), detail) || strings.Contains(h.logs.String(), "Other (give") {
		t.Fatal("the reason is in the log")
	}
}

func TestRecordNeedsConsent(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.find(spaced(h.patients["full"]))
	if r := b.get("/viewer/record/summary"); r.status != http.StatusSeeOther || r.loc != "/viewer/find" {
		t.Fatalf("record without consent: %d %s", r.status, r.loc)
	}
	if n := len(h.calls("Everything")); n != 0 {
		t.Fatal("record fetched without consent")
	}
}

func TestConsentEnds(t *testing.T) {
	cases := []struct {
		name   string
		change func(h *harness)
	}{
		{"consent revoked", func(h *harness) { h.core.Revoke(lastConsent(h)) }},
		{"patient dissents", func(h *harness) { h.core.SetDissent(h.records["full"].PatientID, true) }},
		{"agreement ends", func(h *harness) { h.core.Agreements = h.core.Agreements[1:] }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.signedIn()
			b.open("full")
			if r := b.get("/viewer/record/summary"); r.status != http.StatusOK {
				t.Fatal(r.status)
			}
			c.change(h)
			r := b.get("/viewer/record/medication")
			if r.status != http.StatusForbidden || !strings.Contains(r.body, "can no longer be shown") {
				t.Fatalf("status %d\n%s", r.status, r.body)
			}
			if strings.Contains(r.body, "Amlodipine") {
				t.Fatal("record data shown after consent ended")
			}
		})
	}
}

// TestEndAccess: ending access (the button, finding another patient,
// signing out) revokes the consent in the core, so it stops working at
// once wherever it is held; a revocation the core refuses says so.
func TestEndAccess(t *testing.T) {
	cases := []struct {
		name string
		end  func(b *browser) resp
		loc  string
	}{
		{"end access", func(b *browser) resp { return b.post("/viewer/end", url.Values{}) }, "/viewer/find?m=ended"},
		{"another patient", func(b *browser) resp { return b.find(spaced(b.h.patients["limited"])) }, "/viewer/patient"},
		{"sign out", func(b *browser) resp { return b.post("/viewer/signout", url.Values{}) }, "/viewer/signin?m=signedout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.signedIn()
			b.open("full")
			b.get("/viewer/record/summary")
			id := lastConsent(h)
			if r := c.end(b); r.status != http.StatusSeeOther || r.loc != c.loc {
				t.Fatalf("%d %s\n%s", r.status, r.loc, r.body)
			}
			rv := h.calls("RevokeConsent")
			if len(rv) != 1 || rv[0].Err != "" || rv[0].Principal.ClientID != viewer.ClientID || rv[0].Principal.Practitioner != clinician {
				t.Fatalf("revocations %+v", rv)
			}
			// the consent no longer opens the record, whoever holds it
			p := h.calls("Everything")[0].Principal
			if _, err := h.core.PatientContext(context.Background(), &p, id); err == nil {
				t.Fatal("revoked consent still grants a patient context")
			}
			if c.loc == "/viewer/find?m=ended" {
				if r := b.get(c.loc); !strings.Contains(r.body, "Access ended") {
					t.Fatalf("no message:\n%s", r.body)
				}
			}
			if r := b.get("/viewer/record/summary"); r.status != http.StatusSeeOther {
				t.Fatalf("record after ending access: %d", r.status)
			}
		})
	}
	t.Run("revocation refused", func(t *testing.T) {
		h := newHarness(t, func(_ *viewer.Config, c *viewertest.Core) {
			c.Fail = map[string]error{"RevokeConsent": fhir.Errorf(fhir.CodeAccessDenied, "scope")}
		})
		b := h.signedIn()
		b.open("full")
		b.get("/viewer/record/summary")
		if r := b.post("/viewer/end", url.Values{}); r.loc != "/viewer/find?m=left" {
			t.Fatalf("%d %s", r.status, r.loc)
		}
		if r := b.get("/viewer/find?m=left"); !strings.Contains(r.body, "could not be withdrawn") {
			t.Fatalf("no warning:\n%s", r.body)
		}
		if r := b.get("/viewer/record/summary"); r.status != http.StatusSeeOther {
			t.Fatalf("record after leaving: %d", r.status)
		}
	})
}

// lastConsent digs the consent id out of the last Everything call.
func lastConsent(h *harness) string {
	c := h.calls("Everything")
	return c[len(c)-1].Principal.ConsentRef
}

// expected terms per view of viewertest.Record, and terms of other views
// that must not appear there.
var viewTerms = map[string][]string{
	"summary":        {"Essential hypertension", "Amlodipine 5mg tablets", "Allergy to penicillin", "Serum potassium level"},
	"problems":       {"Essential hypertension", "Asthma"},
	"diagnoses":      {"Backache"},
	"medication":     {"Amlodipine 5mg tablets", "Amoxicillin 500mg capsules", "One tablet each morning", "1 tablet, once a day, oral"},
	"allergies":      {"Allergy to penicillin", "Skin rash"},
	"risks":          {"At risk for falls"},
	"procedures":     {"Appendicectomy"},
	"investigations": {"Urea and electrolytes level", "Serum potassium level", "3.5 – 5.3 mmol/L", "High", "Serum specimen", "Full blood count"},
	"examination":    {"152", "91", "<svg", "Blood pressure over time"},
	"immunisations":  {"Influenza vaccine"},
	"events":         {"Encounter for check up", "Hospital admission", "Referral to cardiology service"},
}

func TestEveryView(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.open("full")
	for view, want := range viewTerms {
		t.Run(view, func(t *testing.T) {
			r := b.get("/viewer/record/" + view)
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			for _, w := range want {
				if !strings.Contains(r.body, w) {
					t.Errorf("%s does not show %q", view, w)
				}
			}
			if strings.Contains(r.body, "Not shared") {
				t.Error("a fully shared view says not shared")
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
	if r := b.get("/viewer/record/nonsense"); r.status != http.StatusNotFound {
		t.Fatalf("unknown view: %d", r.status)
	}
}

// Free text in every element that may hold it never reaches a page.
func TestFreeTextNeverRendered(t *testing.T) {
	h := newHarness(t)
	for _, r := range h.records {
		viewertest.AddFreeText(r)
	}
	b := h.signedIn()
	b.find(spaced(h.patients["full"]))
	pages := []string{b.get("/viewer/patient").body}
	b.post("/viewer/consent", url.Values{"basis": {"patient"}, "confirm": {"yes"}})
	for view := range viewTerms {
		pages = append(pages, b.get("/viewer/record/"+view).body)
	}
	pages = append(pages, b.get("/viewer/print").body)
	for i, p := range pages {
		if strings.Contains(p, viewertest.FreeTextCanary) {
			t.Fatalf("page %d shows free text:\n%s", i, p)
		}
	}
	// the coded data is still there
	if !strings.Contains(strings.Join(pages, ""), "Essential hypertension") {
		t.Fatal("coded data lost")
	}
}

// Areas the agreement does not cover read "not shared", never empty, and
// show nothing from those areas even when the core leaks them.
func TestNotSharedAreas(t *testing.T) {
	h := newHarness(t, leaky())
	viewertest.MarkNotShared(h.records["limited"], limitedAreas, h.clock.Now())
	b := h.signedIn()
	b.open("limited")
	notShared := viewer.NotSharedViews(limitedAreas)
	want := []string{"problems", "diagnoses", "medication", "allergies", "procedures", "investigations", "immunisations", "events"}
	if !slices.Equal(notShared, want) {
		t.Fatalf("NotSharedViews = %v", notShared)
	}
	for view := range viewTerms {
		r := b.get("/viewer/record/" + view)
		if strings.Contains(r.body, viewertest.NotSharedCanary) {
			t.Fatalf("%s shows data from an area not shared", view)
		}
		if slices.Contains(notShared, view) {
			if !strings.Contains(r.body, `data-testid="not-shared"`) {
				t.Errorf("%s is not marked not shared", view)
			}
			for _, w := range viewTerms[view] {
				if w != "High" && strings.Contains(r.body, w) && !slices.Contains(viewTerms["summary"], w) {
					t.Errorf("%s shows %q", view, w)
				}
			}
		}
	}
	// the summary shows its four parts; the nav marks what is not shared
	s := b.get("/viewer/record/summary").body
	for _, w := range viewTerms["summary"] {
		if !strings.Contains(s, w) {
			t.Errorf("summary-only agreement: summary lacks %q", w)
		}
	}
	if strings.Contains(s, "Asthma") { // a resolved problem is not in the summary
		t.Error("summary shows a past problem")
	}
	if !regexp.MustCompile(`data-view="procedures"[^>]*>Procedures <span class="tag">not shared</span>`).MatchString(s) {
		t.Error("navigation does not mark procedures not shared")
	}
}

func TestWarningsShown(t *testing.T) {
	for _, leak := range []bool{false, true} {
		t.Run(map[bool]string{false: "core withholds", true: "core leaks"}[leak], func(t *testing.T) { testWarnings(t, leak) })
	}
}

func testWarnings(t *testing.T, leak bool) {
	h := newHarness(t)
	h.core.Leak = leak
	h.records["full"].Warnings = []fhir.Issue{{Severity: "warning", Code: fhir.WarnAreaUnavailable, Diagnostics: "medication"}}
	h.records["full"].Resources[len(h.records["full"].Resources)-1].Ix.Confidential = true
	b := h.signedIn()
	b.open("full")
	r := b.get("/viewer/record/summary")
	for _, w := range []string{"Some items are withheld", "Part of the record could not be fetched"} {
		if !strings.Contains(r.body, w) {
			t.Errorf("warning %q not shown", w)
		}
	}
	ev := b.get("/viewer/record/events")
	if strings.Contains(ev.body, "Referral to cardiology") || !strings.Contains(ev.body, "Hospital admission") {
		t.Error("a confidential item is shown, or the rest is not")
	}
}

func TestCoreFailures(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"timeout", fhir.Errorf(fhir.CodeTimeout, "slow"), http.StatusServiceUnavailable, "did not answer in time"},
		{"internal", errors.New("disk on fire at /var/lib/secret"), http.StatusInternalServerError, "Something went wrong"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.signedIn()
			b.open("full")
			h.core.Fail = map[string]error{"Everything": c.err}
			r := b.get("/viewer/record/summary")
			if r.status != c.status || !strings.Contains(r.body, c.want) {
				t.Fatalf("status %d\n%s", r.status, r.body)
			}
			if strings.Contains(r.body, "disk on fire") {
				t.Fatal("internal detail shown")
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.open("full")
	for _, path := range []string{"/viewer/signin", "/viewer/find", "/viewer/record/summary", "/viewer/print", "/viewer/nowhere"} {
		r := b.get(path)
		hd := r.header
		csp := hd.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP lacks %s", path, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline script or style", path)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
			if hd.Get(k) != v {
				t.Errorf("%s: %s = %q", path, k, hd.Get(k))
			}
		}
		if hd.Get("Strict-Transport-Security") == "" {
			t.Errorf("%s: no HSTS", path)
		}
		if strings.Contains(r.body, "<script>") || regexp.MustCompile(`\son[a-z]+=`).MatchString(r.body) || strings.Contains(r.body, " style=") {
			t.Errorf("%s: inline script, handler or style", path)
		}
	}
	r := b.get("/viewer/static/viewer.js")
	if r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Fatalf("static module: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if r := b.get("/viewer/static/"); r.status != http.StatusNotFound {
		t.Fatalf("static directory listing: %d", r.status)
	}
}

// The log names routes, codes and organisations: never a patient, a user
// or a token.
func TestLogsWithoutIdentifiers(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.open("full")
	for v := range viewTerms {
		b.get("/viewer/record/" + v + "?page=2")
	}
	b.find(spaced(h.patients["other"]))
	b.find(spaced(h.patients["dissent"]))
	h.browser().signIn("alice", "wrong password!!")
	logs := h.logs.String()
	if !strings.Contains(logs, "viewer request") {
		t.Fatal("nothing logged")
	}
	secrets := []string{"alice", password, "Dr Alice Smith", clinician, "Testpatient"}
	for _, n := range h.patients {
		secrets = append(secrets, string(n), spaced(n), fhir.PatientID(n))
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q", s)
		}
	}
}

func TestPrintSummary(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.open("full")
	r := b.get("/viewer/print")
	if r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	for _, w := range []string{"Viewed by Dr Alice Smith (Doctor, RXX01, SDS user id 555000000001) on 10-Mar-2026 09:30", "GP record summary", "Essential hypertension", "print.css", "data-print"} {
		if !strings.Contains(r.body, w) {
			t.Errorf("print page lacks %q", w)
		}
	}
}

// Golden pages: the summary and examination views and the patient page of
// the test record, with the per-session CSRF token masked.
func TestGolden(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.find(spaced(h.patients["full"]))
	pages := map[string]string{"patient": b.get("/viewer/patient").body}
	b.post("/viewer/consent", url.Values{"basis": {"patient"}, "confirm": {"yes"}})
	pages["summary"] = b.get("/viewer/record/summary").body
	pages["examination"] = b.get("/viewer/record/examination").body
	for name, body := range pages {
		t.Run(name, func(t *testing.T) {
			got := csrfRE.ReplaceAllString(body, `name="csrf" value="TOKEN"`)
			path := filepath.Join("testdata", name+".golden.html")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./viewer -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Fatalf("%s differs from %s (run with -update if the change is intended)\n%s", name, path, got)
			}
		})
	}
}

func TestOversizedFormRefused(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	r := b.post("/viewer/find", url.Values{"nhs": {strings.Repeat("9", 20<<10)}})
	if r.status == http.StatusSeeOther || r.status == http.StatusOK {
		t.Fatalf("a 20 KB form was accepted: %d", r.status)
	}
	if n := len(h.calls("FindPatient")); n != 0 {
		t.Fatal("core called")
	}
}
