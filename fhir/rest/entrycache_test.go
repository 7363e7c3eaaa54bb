package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// conditions makes n distinct Condition resources of about size bytes each.
func conditions(t testing.TB, prefix string, n, size int) []*fhir.Resource {
	t.Helper()
	out := make([]*fhir.Resource, n)
	for i := range out {
		raw := fmt.Sprintf(`{"resourceType":"Condition","id":"%s-%d","code":{"coding":[{"system":"http://snomed.info/sct","code":"%s"}]}}`,
			prefix, i, strings.Repeat("1", size))
		r, err := fhir.NewResource([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r
	}
	return out
}

func TestEntryCache(t *testing.T) {
	const base = "http://gp.test"
	big := conditions(t, "p1", 64, 1024)  // ~70 KB rendered: kept
	small := conditions(t, "p2", 4, 100)  // under minRendering: never kept
	same := conditions(t, "p1", 64, 1024) // the same bytes, other resources (a record reloaded)
	reordered := append([]*fhir.Resource{big[1], big[0]}, big[2:]...)
	middle := append([]*fhir.Resource{big[0], big[2], big[1]}, big[3:]...) // first, last and length as big's
	for _, tc := range []struct {
		name string
		// asks are lists asked for in turn; want[i] says whether ask i is
		// answered from the cache's bytes (nil: the caller splices).
		asks [][]*fhir.Resource
		base []string // per ask; "" is base
		mode []string // per ask; "" is "match"
		want []bool
		hits int64
	}{
		{name: "kept the second time, reused the third", asks: [][]*fhir.Resource{big, big, big}, want: []bool{false, true, true}, hits: 1},
		{name: "too short to keep", asks: [][]*fhir.Resource{small, small, small}, want: []bool{false, false, false}},
		{name: "other resources with the same bytes are another list", asks: [][]*fhir.Resource{big, big, same, same}, want: []bool{false, true, false, true}},
		{name: "order matters", asks: [][]*fhir.Resource{big, big, reordered, reordered, big}, want: []bool{false, true, false, true, true}, hits: 1},
		{name: "a list differing only inside", asks: [][]*fhir.Resource{big, big, middle, middle, big}, want: []bool{false, true, false, true, false}},
		{name: "a page of the list is another list", asks: [][]*fhir.Resource{big, big, big[:40], big[:40], big}, want: []bool{false, true, false, true, true}, hits: 1},
		{name: "base is part of the key", asks: [][]*fhir.Resource{big, big, big}, base: []string{"", "", "https://other.test"}, want: []bool{false, true, false}},
		{name: "mode is part of the key", asks: [][]*fhir.Resource{big, big, big}, mode: []string{"", "", "include"}, want: []bool{false, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newEntryCache(DefaultEntryCacheBytes)
			for i, rs := range tc.asks {
				b, m := base, "match"
				if i < len(tc.base) && tc.base[i] != "" {
					b = tc.base[i]
				}
				if i < len(tc.mode) && tc.mode[i] != "" {
					m = tc.mode[i]
				}
				got := c.entries(b, m, rs)
				if (got != nil) != tc.want[i] {
					t.Fatalf("ask %d: from the cache = %v, want %v", i, got != nil, tc.want[i])
				}
				// Whatever the cache answers is exactly a fresh rendering.
				if got != nil && !bytes.Equal(got, fhir.AppendEntries(nil, b, m, rs)) {
					t.Fatalf("ask %d: kept bytes differ from a fresh rendering", i)
				}
			}
			if tc.hits > 0 && c.hits.Load() != tc.hits {
				t.Errorf("hits = %d, want %d", c.hits.Load(), tc.hits)
			}
		})
	}
}

func TestEntryCacheBoundedByBytes(t *testing.T) {
	const base = "http://gp.test"
	lists := make([][]*fhir.Resource, 6)
	for i := range lists {
		lists[i] = conditions(t, fmt.Sprint("q", i), 40, 1024) // each ~90 KB accounted
	}
	c := newEntryCache(400 << 10)
	for _, rs := range lists {
		c.entries(base, "match", rs)
		if c.entries(base, "match", rs) == nil {
			t.Fatal("a list asked twice was not kept")
		}
		if n, _ := c.size(); n > c.max {
			t.Fatalf("cache holds %d bytes, bound %d", n, c.max)
		}
	}
	if _, n := c.size(); n >= len(lists) {
		t.Fatalf("%d lists kept under a bound that holds fewer", n)
	}
	// The least recently used went first: the newest is still there, the
	// oldest is not (asking it again is a miss).
	h := c.hits.Load()
	c.entries(base, "match", lists[len(lists)-1])
	if c.hits.Load() != h+1 {
		t.Error("the newest list was evicted")
	}
	c.entries(base, "match", lists[0])
	if c.hits.Load() != h+1 {
		t.Error("the oldest list outlived the bound")
	}
	// A list that alone is over a quarter of the bound is never kept.
	huge := conditions(t, "huge", 200, 1024)
	for range 3 {
		if c.entries(base, "match", huge) != nil {
			t.Fatal("a list over a quarter of the bound was kept")
		}
	}
	var off *entryCache = newEntryCache(-1)
	if off != nil || off.entries(base, "match", lists[0]) != nil {
		t.Fatal("a cache turned off keeps lists")
	}
}

// TestEverythingFromKeptEntries: through the server, a record asked for
// again is answered from kept entries, byte for byte what splicing gives,
// with a new Bundle id each time; when the record changes (new resources),
// the answer does too.
func TestEverythingFromKeptEntries(t *testing.T) {
	first := conditions(t, "pabc", 64, 1024)
	core := &fakeCore{page: &fhir.Page{Resources: first, Total: len(first), Query: &fhir.Query{Count: 1000}}}
	srv := newServer(t, core, fakeAuth{})
	ask := func() (entries []json.RawMessage, id string) {
		t.Helper()
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/Patient/pabc/$everything", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(rec.Body.Len()) {
			t.Fatalf("Content-Length %s for %d bytes", cl, rec.Body.Len())
		}
		var b struct {
			ID    string            `json:"id"`
			Entry []json.RawMessage `json:"entry"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		return b.Entry, b.ID
	}
	spliced, id0 := ask() // first time: spliced
	kept, id1 := ask()    // second: rendered and kept
	again, id2 := ask()   // third: from the cache
	if id0 == id1 || id1 == id2 {
		t.Error("Bundle ids repeat")
	}
	for i, got := range [][]json.RawMessage{kept, again} {
		if len(got) != len(spliced) {
			t.Fatalf("answer %d has %d entries, want %d", i+1, len(got), len(spliced))
		}
		for j := range got {
			if !bytes.Equal(got[j], spliced[j]) {
				t.Fatalf("answer %d entry %d:\n got %s\nwant %s", i+1, j, got[j], spliced[j])
			}
		}
	}
	// The record changed: same ids, new content.
	changed := conditions(t, "pabc", 64, 1023)
	core.page = &fhir.Page{Resources: changed, Total: len(changed), Query: &fhir.Query{Count: 1000}}
	for range 3 {
		got, _ := ask()
		if len(got) != len(changed) || bytes.Contains(got[0], []byte(strings.Repeat("1", 1024))) {
			t.Fatal("a changed record was answered from the old one's entries")
		}
	}
}

// BenchmarkEverythingWrite is one $everything of a 500-resource record
// through the server (a fake core), its entries spliced afresh against
// answered from the entry cache.
func BenchmarkEverythingWrite(b *testing.B) {
	rs := conditions(b, "pabc", 500, 1100)
	for _, bc := range []struct {
		name  string
		bytes int
	}{{"spliced", -1}, {"kept", DefaultEntryCacheBytes}} {
		b.Run(bc.name, func(b *testing.B) {
			core := &fakeCore{page: &fhir.Page{Resources: rs, Total: len(rs), Query: &fhir.Query{Count: 1000}}}
			srv, err := New(Config{BaseURL: "http://gp.test", Core: core, Auth: fakeAuth{}, EntryCacheBytes: bc.bytes,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/Patient/pabc/$everything", nil)
			b.ReportAllocs()
			for b.Loop() {
				core.calls = core.calls[:0]
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
