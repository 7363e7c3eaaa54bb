package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// fakeCore answers every operation from canned values and records what it
// was asked.
type fakeCore struct {
	mu    sync.Mutex // note runs from concurrent requests
	calls []string
	err   error
	res   *fhir.Resource
	page  *fhir.Page
	got   any // the last parsed request
}

func (f *fakeCore) note(op string, got any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	f.got = got
	return f.err
}

func (f *fakeCore) Read(_ context.Context, _ *fhir.Principal, typ, id string) (*fhir.Resource, error) {
	return f.res, f.note("read "+typ+"/"+id, nil)
}
func (f *fakeCore) Search(_ context.Context, _ *fhir.Principal, q *fhir.Query) (*fhir.Page, error) {
	pg := *f.page
	pg.Query = q // the core answers with the query it applied
	return &pg, f.note("search "+q.Type, q)
}
func (f *fakeCore) Everything(_ context.Context, _ *fhir.Principal, e *fhir.EverythingRequest) (*fhir.Page, error) {
	return f.page, f.note("everything", e)
}
func (f *fakeCore) StructuredRecord(_ context.Context, _ *fhir.Principal, sr *fhir.StructuredRequest) (*fhir.Collection, error) {
	return &fhir.Collection{Resources: []*fhir.Resource{f.res}}, f.note("structured", sr)
}
func (f *fakeCore) RecordConsent(_ context.Context, _ *fhir.Principal, cr fhir.ConsentRequest) (*fhir.Resource, error) {
	return f.res, f.note("consent", cr)
}
func (f *fakeCore) ReadConsent(_ context.Context, _ *fhir.Principal, id string) (*fhir.Resource, error) {
	return f.res, f.note("read-consent "+id, nil)
}
func (f *fakeCore) RevokeConsent(_ context.Context, _ *fhir.Principal, id string) (*fhir.Resource, error) {
	return f.res, f.note("revoke-consent "+id, nil)
}
func (f *fakeCore) SearchAuditEvents(_ context.Context, _ *fhir.Principal, v url.Values, _ bool) (*fhir.Page, error) {
	return f.page, f.note("audit-search", v)
}
func (f *fakeCore) ReadAuditEvent(_ context.Context, _ *fhir.Principal, id string) (*fhir.Resource, error) {
	return f.res, f.note("audit-read "+id, nil)
}
func (f *fakeCore) Agreements(_ context.Context, _ *fhir.Principal, interaction, id, action string, body []byte) ([]byte, error) {
	return []byte(`{"ok":true}`), f.note("agreements "+interaction+" "+id+" "+action, body)
}

type fakeAuth struct{ err error }

func (a fakeAuth) Authenticate(*http.Request) (*fhir.Principal, error) {
	if a.err != nil {
		return nil, a.err
	}
	return &fhir.Principal{ClientID: "c"}, nil
}

type challenged struct{ fe *fhir.Error }

func (c challenged) Error() string   { return c.fe.Error() }
func (challenged) Challenge() string { return `Bearer realm="x", error="invalid_token"` }
func (c challenged) Unwrap() error   { return c.fe }

func newServer(t *testing.T, core *fakeCore, auth Authenticator) http.Handler {
	t.Helper()
	res, _ := fhir.NewResource([]byte(`{"resourceType":"Condition","id":"pabc-c1","meta":{"lastUpdated":"2024-01-02T03:04:05Z"}}`))
	if core.res == nil {
		core.res = res
	}
	if core.page == nil {
		core.page = &fhir.Page{Resources: []*fhir.Resource{res}, Total: 3, Query: &fhir.Query{Count: 1, Offset: 1}}
	}
	e, err := New(Config{BaseURL: "http://gp.test", Core: core, Auth: auth, Capability: []byte(`{"resourceType":"CapabilityStatement"}`),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewRefusesMissingCollaborators(t *testing.T) {
	if _, err := New(Config{Auth: fakeAuth{}}); err == nil {
		t.Fatal("a server without the core")
	}
	if _, err := New(Config{Core: &fakeCore{}}); err == nil {
		t.Fatal("a server without authentication")
	}
}

type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Details struct {
			Coding []struct{ Code string } `json:"coding"`
		} `json:"details"`
		Diagnostics string `json:"diagnostics"`
	} `json:"issue"`
}

func codeIn(t *testing.T, body []byte) string {
	t.Helper()
	var o outcome
	if err := json.Unmarshal(body, &o); err != nil || o.ResourceType != "OperationOutcome" || len(o.Issue) == 0 || len(o.Issue[0].Details.Coding) == 0 {
		t.Fatalf("not an OperationOutcome with a code: %s", body)
	}
	return o.Issue[0].Details.Coding[0].Code
}

func TestRoutesAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		body    string
		headers map[string]string
		coreErr error
		auth    Authenticator
		status  int
		code    string // OperationOutcome code, for errors
		call    string // what the core was asked
	}{
		{name: "metadata needs no token", method: "GET", path: "/metadata", auth: fakeAuth{err: errors.New("no")}, status: 200},
		{name: "read", method: "GET", path: "/Condition/pabc-c1", status: 200, call: "read Condition/pabc-c1"},
		{name: "search", method: "GET", path: "/Condition?patient=pabc&category=problem-list-item", status: 200, call: "search Condition"},
		{name: "search on an unserved type", method: "GET", path: "/Basic?patient=pabc", status: 404, code: "UNKNOWN_RESOURCE_TYPE"},
		{name: "bad search parameter", method: "GET", path: "/Condition?patient=pabc&onset-date=yesterday", status: 422, code: "INVALID_PARAMETER"},
		{name: "everything", method: "GET", path: "/Patient/pabc/$everything?_count=1", status: 200, call: "everything"},
		{name: "structured", method: "POST", path: "/Patient/$getstructuredrecord", body: `{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9990002517"}}]}`, status: 200, call: "structured"},
		{name: "structured, not Parameters", method: "POST", path: "/Patient/$getstructuredrecord", body: `{"resourceType":"Patient"}`, status: 422, code: "INVALID_RESOURCE"},
		{name: "consent", method: "POST", path: "/Consent", body: `{"resourceType":"Consent","patient":{"reference":"Patient/pabc"},"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"1"}}]}`, status: 201, call: "consent"},
		{name: "revoke consent", method: "DELETE", path: "/Consent/c1", status: 200, call: "revoke-consent c1"},
		{name: "audit search", method: "GET", path: "/AuditEvent?patient=pabc", status: 200, call: "audit-search"},
		{name: "agreements", method: "POST", path: "/admin/agreements/a1/suspend", body: `{}`, status: 200, call: "agreements update a1 suspend"},
		{name: "write refused", method: "PUT", path: "/Condition/pabc-c1", body: `{}`, status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "delete refused", method: "DELETE", path: "/Condition/pabc-c1", status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "XML refused", method: "GET", path: "/Condition/pabc-c1", headers: map[string]string{"Accept": "application/fhir+xml"}, status: 406, code: "NOT_ACCEPTABLE"},
		{name: "body not JSON", method: "POST", path: "/Consent", body: `<Consent/>`, headers: map[string]string{"Content-Type": "application/xml"}, status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "no token", method: "GET", path: "/Condition/pabc-c1", auth: fakeAuth{err: challenged{fhir.Errorf(fhir.CodeUnauthorized, "an access token is required")}}, status: 401, code: "UNAUTHORISED"},
		{name: "core refuses", method: "GET", path: "/Condition/pabc-c1", coreErr: fhir.Errorf(fhir.CodeNoOrganisationConsent, "no agreement"), status: 403, code: "NO_ORGANISATION_CONSENT", call: "read Condition/pabc-c1"},
		{name: "core fails", method: "GET", path: "/Condition/pabc-c1", coreErr: errors.New("database on fire at /var/lib/x"), status: 500, code: "INTERNAL_SERVER_ERROR", call: "read Condition/pabc-c1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := &fakeCore{err: tc.coreErr}
			auth := tc.auth
			if auth == nil {
				auth = fakeAuth{}
			}
			h := newServer(t, core, auth)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/fhir+json")
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				if got := codeIn(t, w.Body.Bytes()); got != tc.code {
					t.Fatalf("code %s, want %s", got, tc.code)
				}
				if strings.Contains(w.Body.String(), "fire") {
					t.Fatal("internal detail leaked to the caller")
				}
			}
			if got := strings.Join(core.calls, ","); got != tc.call {
				t.Fatalf("core asked %q, want %q", got, tc.call)
			}
			if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Fatal("401 without a challenge")
			}
			if w.Code == 405 && w.Header().Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
			if w.Header().Get("X-Request-ID") == "" {
				t.Fatal("no request id")
			}
		})
	}
}

func TestReadETag(t *testing.T) {
	h := newServer(t, &fakeCore{}, fakeAuth{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/Condition/pabc-c1", nil))
	etag := w.Header().Get("ETag")
	if w.Code != 200 || !strings.HasPrefix(etag, `W/"`) || w.Header().Get("Last-Modified") == "" {
		t.Fatalf("%d etag %q", w.Code, etag)
	}
	req := httptest.NewRequest("GET", "/Condition/pabc-c1", nil)
	req.Header.Set("If-None-Match", etag)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d %s", w.Code, w.Body)
	}
}

func TestSearchsetPaging(t *testing.T) {
	core := &fakeCore{}
	h := newServer(t, core, fakeAuth{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/Condition?patient=pabc&_count=1&_offset=1&nosuch=x", nil))
	var b struct {
		Type  string `json:"type"`
		Total int    `json:"total"`
		Link  []struct{ Relation, URL string }
		Entry []struct {
			FullURL string `json:"fullUrl"`
			Search  struct{ Mode string }
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Type != "searchset" || b.Total != 3 {
		t.Fatalf("%v %s", err, w.Body)
	}
	rels := map[string]string{}
	for _, l := range b.Link {
		rels[l.Relation] = l.URL
	}
	for _, rel := range []string{"self", "first", "previous", "next", "last"} {
		if !strings.HasPrefix(rels[rel], "http://gp.test/Condition?") {
			t.Errorf("link %s = %q", rel, rels[rel])
		}
	}
	if strings.Contains(rels["next"], "nosuch") {
		t.Error("an ignored parameter is carried in the links")
	}
	if len(b.Entry) != 2 || b.Entry[0].FullURL != "http://gp.test/Condition/pabc-c1" || b.Entry[0].Search.Mode != "match" {
		t.Fatalf("entries %+v", b.Entry)
	}
	if q := core.got.(*fhir.Query); q.Patient != "pabc" || len(q.Ignored) != 1 {
		t.Fatalf("parsed query %+v", q)
	}
	if !bytes.Contains(w.Body.Bytes(), []byte(`"mode":"outcome"`)) {
		// The fake page has no warnings; ignored parameters still make an
		// outcome entry.
		t.Fatalf("no outcome entry for the ignored parameter: %s", w.Body)
	}
}
