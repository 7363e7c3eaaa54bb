package viewer_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/viewer/viewertest"
)

// largeSession opens a 3,600-resource record and returns a request maker
// carrying the session cookie, for calling the viewer directly.
func largeSession(tb testing.TB, h *harness) func(path string) *http.Request {
	rec := viewertest.Large(h.patients["full"], "P1", h.clock.Now(), 3600)
	for i, r := range h.core.Records {
		if r.PatientID == rec.PatientID {
			h.core.Records[i] = rec
		}
	}
	b := h.signedIn()
	b.open("full")
	u, _ := url.Parse(h.srv.URL)
	cookies := b.c.Jar.Cookies(u)
	return func(path string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		return req
	}
}

// A heavy record renders every view as a bounded page: long lists are
// paged, never sent whole.
func TestLargeRecordPaged(t *testing.T) {
	h := newHarness(t)
	req := largeSession(t, h)
	for view := range viewTerms {
		w := httptest.NewRecorder()
		h.v.ServeHTTP(w, req("/viewer/record/"+view))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d", view, w.Code)
		}
		if n := w.Body.Len(); n > 400<<10 {
			t.Errorf("%s: %d KB page", view, n>>10)
		}
		if view == "investigations" || view == "events" || view == "examination" {
			if !strings.Contains(w.Body.String(), `rel="next"`) {
				t.Errorf("%s: a long list is not paged", view)
			}
		}
	}
	w := httptest.NewRecorder()
	h.v.ServeHTTP(w, req("/viewer/record/investigations?page=3"))
	if !strings.Contains(w.Body.String(), "page 3 of") {
		t.Fatal("page 3 not served")
	}
}

// BenchmarkRecordView: one view of a 3,600-resource record through the
// whole handler (session, core fake, filter, decode, template).
func BenchmarkRecordView(b *testing.B) {
	for _, view := range []string{"summary", "medication", "investigations", "examination", "events"} {
		b.Run(view, func(b *testing.B) {
			h := newHarness(&testing.T{})
			req := largeSession(b, h)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				h.v.ServeHTTP(w, req("/viewer/record/"+view))
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
