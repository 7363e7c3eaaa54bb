package rest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// do sends one request to h.
func do(h http.Handler, method, path, body string, headers map[string]string) *httptest.ResponseRecorder {
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rb)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

const formCT = "application/x-www-form-urlencoded"

// What FHIR R4 clients send, and what gpgate answers (issue 17): every
// supported interaction reaches the core with the parameters it was
// given, every unsupported one is refused with a code naming it.
func TestClientInteractions(t *testing.T) {
	fj := map[string]string{"Content-Type": "application/fhir+json"}
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		body    string
		headers map[string]string
		status  int
		code    string // OperationOutcome code, for errors
		diag    string // part of the diagnostics, for errors
		call    string
		check   func(t *testing.T, core *fakeCore, w *httptest.ResponseRecorder)
	}{
		{name: "POST _search (form)", method: "POST", path: "/Condition/_search", body: "patient=pabc&category=problem-list-item&_count=1",
			headers: map[string]string{"Content-Type": formCT}, status: 200, call: "search Condition",
			check: func(t *testing.T, core *fakeCore, w *httptest.ResponseRecorder) {
				q := core.got.(*fhir.Query)
				if q.Patient != "pabc" || len(q.Filters) != 1 || q.Count != 1 {
					t.Fatalf("query %+v", q)
				}
				if next := linkOf(t, w, "next"); !strings.HasPrefix(next, "http://gp.test/Condition?category=problem-list-item&patient=pabc&_count=1") {
					t.Fatalf("next link %q is not the GET of the search", next)
				}
			}},
		{name: "POST _search, URL and body", method: "POST", path: "/Condition/_search?patient=pabc", body: "code=x",
			headers: map[string]string{"Content-Type": formCT}, status: 200, call: "search Condition",
			check: func(t *testing.T, core *fakeCore, _ *httptest.ResponseRecorder) {
				if q := core.got.(*fhir.Query); q.Patient != "pabc" || len(q.Filters) != 1 {
					t.Fatalf("query %+v", q)
				}
			}},
		{name: "POST _search, JSON body", method: "POST", path: "/Condition/_search", body: `{}`, headers: fj, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", diag: "x-www-form-urlencoded"},
		{name: "compartment", method: "GET", path: "/Patient/pabc/Condition?_count=1", status: 200, call: "search Condition",
			check: func(t *testing.T, core *fakeCore, w *httptest.ResponseRecorder) {
				if q := core.got.(*fhir.Query); q.Patient != "pabc" {
					t.Fatalf("query %+v", q)
				}
				if next := linkOf(t, w, "next"); next != "http://gp.test/Patient/pabc/Condition?_count=1&_offset=1" {
					t.Fatalf("next %q", next)
				}
			}},
		{name: "compartment, another patient named", method: "GET", path: "/Patient/pabc/Condition?patient=pxyz", status: 422, code: "INVALID_PARAMETER"},
		{name: "compartment, own Patient", method: "GET", path: "/Patient/pabc/Patient", status: 200, call: "search Patient"},
		{name: "compartment POST _search", method: "POST", path: "/Patient/pabc/Observation/_search", body: "category=laboratory",
			headers: map[string]string{"Content-Type": formCT}, status: 200, call: "search Observation"},
		{name: "compartment, type not served", method: "GET", path: "/Patient/pabc/Basic", status: 404, code: "UNKNOWN_RESOURCE_TYPE"},
		{name: "compartment, type not searchable", method: "GET", path: "/Patient/pabc/Medication", status: 501, code: "NOT_IMPLEMENTED", diag: "Medication"},
		{name: "everything POST, no body", method: "POST", path: "/Patient/pabc/$everything", headers: fj, status: 200, call: "everything"},
		{name: "everything POST, Parameters", method: "POST", path: "/Patient/pabc/$everything", headers: fj,
			body:   `{"resourceType":"Parameters","parameter":[{"name":"_type","valueCode":"Condition"},{"name":"_since","valueInstant":"2024-01-01T00:00:00Z"},{"name":"_count","valueInteger":7}]}`,
			status: 200, call: "everything",
			check: func(t *testing.T, core *fakeCore, w *httptest.ResponseRecorder) {
				e := core.got.(*fhir.EverythingRequest)
				if !e.Types["Condition"] || e.Since.IsZero() || e.Query.Count != 7 {
					t.Fatalf("request %+v", e)
				}
				if self := linkOf(t, w, "self"); !strings.HasPrefix(self, "http://gp.test/Patient/pabc/$everything?_since=") {
					t.Fatalf("self %q", self)
				}
			}},
		{name: "everything POST, form", method: "POST", path: "/Patient/pabc/$everything", body: "start=2020&end=2021",
			headers: map[string]string{"Content-Type": formCT}, status: 200, call: "everything"},
		{name: "everything POST, XML", method: "POST", path: "/Patient/pabc/$everything", body: "<Parameters/>",
			headers: map[string]string{"Content-Type": "application/fhir+xml"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "everything POST, wrong value type", method: "POST", path: "/Patient/pabc/$everything", headers: fj,
			body: `{"resourceType":"Parameters","parameter":[{"name":"_count","valueString":"7"}]}`, status: 422, code: "INVALID_PARAMETER"},
		{name: "everything _since", method: "GET", path: "/Patient/pabc/$everything?_since=2024-01-01T00:00:00Z&start=2020&end=2021", status: 200, call: "everything"},
		{name: "_format overrides Accept", method: "GET", path: "/Condition/pabc-c1?_format=json", headers: map[string]string{"Accept": "application/fhir+xml"}, status: 200, call: "read Condition/pabc-c1"},
		{name: "_format xml", method: "GET", path: "/Condition/pabc-c1?_format=xml", headers: map[string]string{"Accept": "application/fhir+json"}, status: 406, code: "NOT_ACCEPTABLE", diag: "_format"},
		{name: "_format with fhirVersion", method: "GET", path: "/Condition/pabc-c1?_format=" + url.QueryEscape("application/fhir+json; fhirVersion=3.0"), status: 406, code: "NOT_ACCEPTABLE", diag: "fhirVersion=3.0"},
		{name: "fhirVersion 3.0", method: "GET", path: "/Condition/pabc-c1", headers: map[string]string{"Accept": "application/fhir+json; fhirVersion=3.0"}, status: 406, code: "NOT_ACCEPTABLE", diag: "fhirVersion=3.0"},
		{name: "fhirVersion 4.0", method: "GET", path: "/Condition/pabc-c1", headers: map[string]string{"Accept": "application/fhir+json; fhirVersion=4.0"}, status: 200, call: "read Condition/pabc-c1",
			check: func(t *testing.T, _ *fakeCore, w *httptest.ResponseRecorder) {
				if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, "fhirVersion=4.0") {
					t.Fatalf("Content-Type %q does not name the version asked for", ct)
				}
			}},
		{name: "fhirVersion, one range served", method: "GET", path: "/Condition/pabc-c1", headers: map[string]string{"Accept": "application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=4.0; q=0.5"}, status: 200, call: "read Condition/pabc-c1"},
		{name: "body fhirVersion 3.0", method: "POST", path: "/Patient/$getstructuredrecord", body: `{"resourceType":"Parameters"}`,
			headers: map[string]string{"Content-Type": "application/fhir+json; fhirVersion=3.0"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE", diag: "fhirVersion=3.0"},
		{name: "_summary=text", method: "GET", path: "/Condition?patient=pabc&_summary=text", status: 501, code: "NOT_IMPLEMENTED", diag: "narrative"},
		{name: "read _summary=count", method: "GET", path: "/Condition/pabc-c1?_summary=count", status: 422, code: "INVALID_PARAMETER"},
		{name: "include not served", method: "GET", path: "/Condition?patient=pabc&_include=Condition:asserter", status: 501, code: "NOT_IMPLEMENTED", diag: "Condition:encounter"},
		{name: "_has", method: "GET", path: "/Condition?patient=pabc&_has:Encounter:diagnosis:status=x", status: 501, code: "NOT_IMPLEMENTED", diag: "_has"},
		{name: "history, instance", method: "GET", path: "/Condition/pabc-c1/_history", status: 501, code: "NOT_IMPLEMENTED", diag: "history"},
		{name: "history, Patient", method: "GET", path: "/Patient/pabc/_history", status: 501, code: "NOT_IMPLEMENTED", diag: "history"},
		{name: "history, type", method: "GET", path: "/Condition/_history", status: 501, code: "NOT_IMPLEMENTED", diag: "history"},
		{name: "history, system", method: "GET", path: "/_history", status: 501, code: "NOT_IMPLEMENTED", diag: "history"},
		{name: "vread", method: "GET", path: "/Condition/pabc-c1/_history/1", status: 501, code: "NOT_IMPLEMENTED", diag: "vread"},
		{name: "system search", method: "GET", path: "/?_type=Condition", status: 501, code: "NOT_IMPLEMENTED", diag: "across resource types"},
		{name: "batch", method: "POST", path: "/", body: `{"resourceType":"Bundle","type":"batch"}`, headers: fj, status: 501, code: "NOT_IMPLEMENTED", diag: "batch"},
		{name: "type operation", method: "GET", path: "/Patient/$match", status: 501, code: "NOT_IMPLEMENTED", diag: "$match"},
		{name: "type operation POST", method: "POST", path: "/Patient/$match", body: `{}`, headers: fj, status: 501, code: "NOT_IMPLEMENTED", diag: "$match"},
		{name: "instance operation", method: "GET", path: "/Patient/pabc/$summary", status: 501, code: "NOT_IMPLEMENTED", diag: "$summary"},
		{name: "instance operation, other type", method: "POST", path: "/Encounter/pabc-e1/$validate", body: `{}`, headers: fj, status: 501, code: "NOT_IMPLEMENTED", diag: "$validate"},
		{name: "system operation", method: "GET", path: "/$export", status: 501, code: "NOT_IMPLEMENTED", diag: "$export"},
		{name: "other compartment", method: "GET", path: "/Encounter/pabc-e1/Condition", status: 501, code: "NOT_IMPLEMENTED", diag: "Patient compartment"},
		{name: "create", method: "POST", path: "/Condition", body: `<Condition/>`, headers: map[string]string{"Content-Type": "application/fhir+xml"}, status: 405, code: "METHOD_NOT_ALLOWED", diag: "create is not supported"},
		{name: "update", method: "PUT", path: "/Condition/pabc-c1", body: `{}`, headers: fj, status: 405, code: "METHOD_NOT_ALLOWED", diag: "update is not supported"},
		{name: "conditional update", method: "PUT", path: "/Condition?patient=pabc", body: `{}`, headers: fj, status: 405, code: "METHOD_NOT_ALLOWED", diag: "conditional update"},
		{name: "patch", method: "PATCH", path: "/Condition/pabc-c1", body: `[]`, headers: map[string]string{"Content-Type": "application/json-patch+json"}, status: 405, code: "METHOD_NOT_ALLOWED", diag: "patch"},
		{name: "delete", method: "DELETE", path: "/Condition/pabc-c1", status: 405, code: "METHOD_NOT_ALLOWED", diag: "delete is not supported"},
		{name: "consent update", method: "PUT", path: "/Consent/c1", body: `{}`, headers: fj, status: 405, code: "METHOD_NOT_ALLOWED", diag: "DELETE /Consent"},
		{name: "structured record by GET", method: "GET", path: "/Patient/$getstructuredrecord", status: 405, code: "METHOD_NOT_ALLOWED", diag: "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := &fakeCore{}
			h := newServer(t, core, fakeAuth{})
			w := do(h, tc.method, tc.path, tc.body, tc.headers)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				if got := codeIn(t, w.Body.Bytes()); got != tc.code {
					t.Fatalf("code %s, want %s: %s", got, tc.code, w.Body)
				}
				var o outcome
				_ = json.Unmarshal(w.Body.Bytes(), &o)
				if !strings.Contains(o.Issue[0].Diagnostics, tc.diag) {
					t.Fatalf("diagnostics %q do not say %q", o.Issue[0].Diagnostics, tc.diag)
				}
			}
			if got := strings.Join(core.calls, ","); got != tc.call {
				t.Fatalf("core asked %q, want %q", got, tc.call)
			}
			if w.Code == 405 && w.Header().Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if tc.check != nil {
				tc.check(t, core, w)
			}
		})
	}
}

func linkOf(t *testing.T, w *httptest.ResponseRecorder, rel string) string {
	t.Helper()
	var b struct {
		Link []struct{ Relation, URL string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// HEAD answers what GET would, without the body, on every GET route.
func TestHead(t *testing.T) {
	for _, path := range []string{"/metadata", "/Condition/pabc-c1", "/Condition?patient=pabc", "/Patient/pabc/$everything", "/Patient/pabc/Condition", "/AuditEvent/a1", "/Consent/c1", "/admin/agreements", "/Condition/pabc-c1/_history"} {
		t.Run(path, func(t *testing.T) {
			get := do(newServer(t, &fakeCore{}, fakeAuth{}), "GET", path, "", nil)
			core := &fakeCore{}
			srv := httptest.NewServer(newServer(t, core, fakeAuth{}))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodHead, srv.URL+path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != get.Code || len(body) != 0 {
				t.Fatalf("HEAD %d with %d bytes; GET %d", res.StatusCode, len(body), get.Code)
			}
			for _, h := range []string{"Content-Type", "ETag", "Last-Modified"} {
				if res.Header.Get(h) != get.Header().Get(h) {
					t.Errorf("%s: HEAD %q, GET %q", h, res.Header.Get(h), get.Header().Get(h))
				}
			}
		})
	}
	// A HEAD without a token is refused like the GET.
	srv := httptest.NewServer(newServer(t, &fakeCore{}, fakeAuth{err: challenged{fhir.Errorf(fhir.CodeUnauthorized, "x")}}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/Condition/pabc-c1", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("HEAD without a token: %d", res.StatusCode)
	}
}

// bigPage is a page of n Conditions.
func bigPage(t *testing.T, n int) *fhir.Page {
	t.Helper()
	pg := &fhir.Page{Total: n}
	for i := 0; i < n; i++ {
		r, err := fhir.NewResource([]byte(`{"resourceType":"Condition","id":"pabc-c` + strings.Repeat("1", 1+i%9) + `","evidence":[{"code":[{"coding":[{"code":"x"}]}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/pabc"}}`))
		if err != nil {
			t.Fatal(err)
		}
		pg.Resources = append(pg.Resources, r)
	}
	return pg
}

func TestGzip(t *testing.T) {
	core := &fakeCore{page: bigPage(t, 400)}
	h := newServer(t, core, fakeAuth{})
	plain := do(h, "GET", "/Condition?patient=pabc&_count=400", "", nil)
	for _, tc := range []struct {
		name, accept string
		gz           bool
	}{
		{"gzip", "gzip", true},
		{"among others", "br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"refused", "gzip;q=0", false},
		{"none", "", false},
		{"identity", "identity", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(h, "GET", "/Condition?patient=pabc&_count=400", "", map[string]string{"Accept-Encoding": tc.accept})
			if w.Code != 200 || !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
				t.Fatalf("%d, Vary %q", w.Code, w.Header().Get("Vary"))
			}
			body := w.Body.Bytes()
			if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gz {
				t.Fatalf("Content-Encoding %q", w.Header().Get("Content-Encoding"))
			}
			if tc.gz {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if w.Body.Len() >= len(body)/4 {
					t.Errorf("gzip %d of %d bytes", w.Body.Len(), len(body))
				}
			}
			var a, b map[string]any
			if json.Unmarshal(body, &a) != nil || json.Unmarshal(plain.Body.Bytes(), &b) != nil || len(a["entry"].([]any)) != len(b["entry"].([]any)) {
				t.Fatal("the decompressed answer is not the answer")
			}
		})
	}
	// Errors and small answers are not worth compressing, and a 304 has no body.
	w := do(h, "GET", "/Basic?patient=pabc", "", map[string]string{"Accept-Encoding": "gzip"})
	if w.Code != 404 || w.Header().Get("Content-Encoding") != "" || codeIn(t, w.Body.Bytes()) != "UNKNOWN_RESOURCE_TYPE" {
		t.Fatalf("small error: %d %q", w.Code, w.Header().Get("Content-Encoding"))
	}
	r := do(h, "GET", "/Condition/pabc-c1", "", nil)
	w = do(h, "GET", "/Condition/pabc-c1", "", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": r.Header().Get("ETag")})
	if w.Code != 304 || w.Body.Len() != 0 || w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("304: %d %q %d bytes", w.Code, w.Header().Get("Content-Encoding"), w.Body.Len())
	}
}

func TestCORS(t *testing.T) {
	newCORS := func(origins []string) http.Handler {
		res, _ := fhir.NewResource([]byte(`{"resourceType":"Condition","id":"pabc-c1"}`))
		e, err := New(Config{BaseURL: "http://gp.test", Core: &fakeCore{res: res}, Auth: fakeAuth{}, Capability: []byte(`{}`), CORSOrigins: origins,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Unix(0, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	app := "https://app.example.org"
	on := newCORS([]string{app})
	pre := do(on, "OPTIONS", "/Condition?patient=pabc", "", map[string]string{"Origin": app, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
	if pre.Code != http.StatusNoContent || pre.Header().Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(strings.ToLower(pre.Header().Get("Access-Control-Allow-Headers")), "authorization") ||
		!strings.Contains(pre.Header().Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", pre.Code, pre.Header())
	}
	get := do(on, "GET", "/Condition/pabc-c1", "", map[string]string{"Origin": app})
	if get.Header().Get("Access-Control-Allow-Origin") != app {
		t.Fatalf("GET: %v", get.Header())
	}
	for _, h := range []string{"Location", "ETag"} {
		if !strings.Contains(get.Header().Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("%s is not exposed: %q", h, get.Header().Get("Access-Control-Expose-Headers"))
		}
	}
	if w := do(on, "GET", "/Condition/pabc-c1", "", map[string]string{"Origin": "https://evil.example"}); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("an origin not configured is allowed")
	}
	// Off by default.
	off := newCORS(nil)
	if w := do(off, "OPTIONS", "/Condition", "", map[string]string{"Origin": app, "Access-Control-Request-Method": "GET"}); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS answered without --cors-origins")
	}
}

func TestSubsetAndIncludeRendering(t *testing.T) {
	inc, _ := fhir.NewResource([]byte(`{"resourceType":"Encounter","id":"pabc-e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/pabc"},"period":{"start":"2020"}}`))
	pg := bigPage(t, 2)
	pg.Included = []*fhir.Resource{inc}
	h := newServer(t, &fakeCore{page: pg}, fakeAuth{})
	var b struct {
		Total int
		Link  []struct{ Relation string }
		Entry []struct {
			Resource map[string]any
			Search   struct{ Mode string }
		}
	}
	w := do(h, "GET", "/Condition?patient=pabc&_summary=true&_include=Condition:encounter", "", nil)
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || w.Code != 200 {
		t.Fatalf("%d %v", w.Code, err)
	}
	modes := ""
	for _, e := range b.Entry {
		modes += e.Search.Mode + " "
		meta, _ := json.Marshal(e.Resource["meta"])
		if e.Resource["resourceType"] == "Encounter" {
			if _, ok := e.Resource["period"]; ok {
				t.Error("an included resource is not subsetted as the matches are")
			}
		}
		if !strings.Contains(string(meta), "SUBSETTED") {
			t.Errorf("%v is not tagged SUBSETTED", e.Resource["resourceType"])
		}
	}
	if modes != "match match include " {
		t.Fatalf("modes %q", modes)
	}
	b.Entry, b.Link = nil, nil
	w = do(h, "GET", "/Condition?patient=pabc&_summary=count", "", nil)
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Total != 2 || len(b.Link) != 1 || b.Link[0].Relation != "self" {
		t.Fatalf("count: %s", w.Body)
	}
}
