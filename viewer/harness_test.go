package viewer_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/viewer"
	"github.com/gpgate/gpgate/viewer/users"
	"github.com/gpgate/gpgate/viewer/viewertest"
)

// The test region: one consumer organisation (RXX01) with a full agreement
// (break-glass allowed) with practice P1, a limited one (summary, blood
// pressure, risks; no break-glass) with P2, and none with P3.
const (
	org       = "RXX01"
	password  = "correct horse battery staple"
	clinician = "555000000001"
)

var limitedAreas = fhir.AreaDemographics | fhir.AreaSummary | fhir.AreaExamination | fhir.AreaRisks

// nhsOf builds a valid NHS number from nine digits.
func nhsOf(t testing.TB, nine string) fhir.NHSNumber {
	c, ok := fhir.CheckDigit(nine)
	if !ok {
		t.Fatalf("no check digit for %s", nine)
	}
	return fhir.NHSNumber(nine + string(c))
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type harness struct {
	t        *testing.T
	core     *viewertest.Core
	users    *viewertest.Users
	clock    *clock
	logs     *syncBuffer
	srv      *httptest.Server
	v        *viewer.Viewer
	patients map[string]fhir.NHSNumber // full, limited, other, dissent, unknown
	records  map[string]*fhir.Record
}

type option func(*viewer.Config, *viewertest.Core)

func leaky() option { return func(_ *viewer.Config, c *viewertest.Core) { c.Leak = true } }

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	h := &harness{t: t, clock: &clock{t: time.Date(2026, 3, 10, 9, 30, 0, 0, time.UTC)}, logs: &syncBuffer{},
		patients: map[string]fhir.NHSNumber{}, records: map[string]*fhir.Record{}}
	h.core = &viewertest.Core{Now: h.clock.Now, Agreements: []viewertest.Agreement{
		{Consumer: org, Practice: "P1", Areas: fhir.AllAreas, BreakGlass: true},
		{Consumer: org, Practice: "P2", Areas: limitedAreas},
	}}
	for _, p := range []struct{ key, nine, practice string }{
		{"full", "943476591", "P1"}, {"limited", "943476592", "P2"}, {"other", "943476593", "P3"}, {"dissent", "943476594", "P1"},
	} {
		n := nhsOf(t, p.nine)
		rec := viewertest.Record(n, p.practice, h.clock.Now())
		if p.key == "dissent" {
			rec.Sharing = fhir.SharingDissent
		}
		h.patients[p.key] = n
		h.records[p.key] = rec
		h.core.Records = append(h.core.Records, rec)
	}
	h.patients["unknown"] = nhsOf(t, "943476599")
	h.users = &viewertest.Users{}
	if err := h.users.Add(users.User{Username: "alice", Name: "Dr Alice Smith", Org: org, Role: "Doctor", SDSID: clinician}, password, viewertest.FastParams, h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := viewer.Config{Core: h.core, Users: h.users, Now: h.clock.Now,
		Log: slog.New(slog.NewJSONHandler(h.logs, nil)), PageSize: 50, PasswordParams: viewertest.FastParams}
	for _, o := range opts {
		o(&cfg, h.core)
	}
	v, err := viewer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.v = v
	// TLS so Secure cookies behave as in production.
	h.srv = httptest.NewTLSServer(v)
	t.Cleanup(h.srv.Close)
	return h
}

// browser is one user agent: a cookie jar, no automatic redirects.
type browser struct {
	h      *harness
	c      *http.Client
	last   string // body of the last page
	origin string
}

func (h *harness) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := h.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{h: h, c: c, origin: h.srv.URL}
}

type resp struct {
	status int
	loc    string
	body   string
	header http.Header
}

func (b *browser) do(req *http.Request) resp {
	b.h.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.h.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	b.last = string(body)
	return resp{status: res.StatusCode, loc: res.Header.Get("Location"), body: string(body), header: res.Header}
}

func (b *browser) get(path string) resp {
	req, _ := http.NewRequest(http.MethodGet, b.h.srv.URL+path, nil)
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token is the CSRF token of the last page.
func (b *browser) token() string {
	m := csrfRE.FindStringSubmatch(b.last)
	if m == nil {
		return ""
	}
	return m[1]
}

// post submits a form with the last page's CSRF token unless the form
// names its own.
func (b *browser) post(path string, form url.Values) resp {
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.token())
	}
	req, _ := http.NewRequest(http.MethodPost, b.h.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	return b.do(req)
}

func (b *browser) signIn(username, pw string) resp {
	b.get("/viewer/signin")
	return b.post("/viewer/signin", url.Values{"username": {username}, "password": {pw}})
}

// signedIn returns a browser signed in as alice on the find page.
func (h *harness) signedIn() *browser {
	b := h.browser()
	if r := b.signIn("alice", password); r.status != http.StatusSeeOther || r.loc != "/viewer/find" {
		h.t.Fatalf("sign in: %d %s", r.status, r.loc)
	}
	b.get("/viewer/find")
	return b
}

func (b *browser) find(nhs string) resp {
	b.get("/viewer/find")
	return b.post("/viewer/find", url.Values{"nhs": {nhs}})
}

// open finds the patient and records the patient's consent.
func (b *browser) open(key string) {
	b.h.t.Helper()
	n := string(b.h.patients[key])
	if r := b.find(n[:3] + " " + n[3:6] + " " + n[6:]); r.status != http.StatusSeeOther {
		b.h.t.Fatalf("find %s: %d\n%s", key, r.status, r.body)
	}
	b.get("/viewer/patient")
	if r := b.post("/viewer/consent", url.Values{"basis": {"patient"}, "confirm": {"yes"}}); r.status != http.StatusSeeOther || r.loc != "/viewer/record/summary" {
		b.h.t.Fatalf("consent %s: %d %s\n%s", key, r.status, r.loc, r.body)
	}
}

func (h *harness) calls(method string) []viewertest.Call {
	var out []viewertest.Call
	for _, c := range h.core.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

var _ = context.Background

type viewerConfig = viewer.Config
type fakeCore = viewertest.Core
