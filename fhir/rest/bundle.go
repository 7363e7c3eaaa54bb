package rest

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// entriesPool keeps the entry lists of written Bundles (a 500-resource
// page's is 12 KB of pointers, per request).
var entriesPool sync.Pool

func getEntries(n int) []fhir.BundleEntry {
	if p, ok := entriesPool.Get().(*[]fhir.BundleEntry); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]fhir.BundleEntry, 0, n)
}

// putEntries returns a list once the Bundle is written: it is cleared, so
// the pool holds no resource alive.
func putEntries(e []fhir.BundleEntry) {
	if cap(e) > 1<<16 {
		return
	}
	clear(e[:cap(e)])
	e = e[:0]
	entriesPool.Put(&e)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Bundles up to wholeBundle bytes are spliced into one buffer and sent with
// Content-Length in one write (as a static file would be: no chunked
// framing, one copy into the socket); larger ones stream in chunks of the
// pooled buffer's size, so no answer is held whole beyond that. Buffers
// that grew past poolBundle are left to the collector.
const (
	wholeBundle = 4 << 20
	poolBundle  = 2 << 20
)

// writePage splices one page of a searchset into a Bundle with paging links
// and writes it: the matches (as the query's _summary / _elements ask), the
// resources _include / _revinclude added (search mode include), and an
// outcome entry for warnings and ignored parameters. path and params are
// the search as a GET would repeat it (the paging links are GETs, whatever
// the method of the request).
func (s *Server) writePage(c echo.Context, pg *fhir.Page, path string, params url.Values) error {
	q, total, warnings := pg.Query, pg.Total, pg.Warnings
	b := fhir.Bundle{
		ID:        newUUID(),
		Type:      "searchset",
		Timestamp: s.now(),
		Total:     total,
		Base:      s.cfg.BaseURL,
		Links:     s.links(path, params, q, total),
		Entries:   getEntries(len(pg.Resources) + len(pg.Included) + 1),
	}
	defer func() { putEntries(b.Entries) }()
	if q.Subset.Whole() {
		b.Rendered = s.ents.entries(b.Base, "match", pg.Resources)
	}
	if b.Rendered == nil {
		for _, r := range pg.Resources {
			b.Entries = append(b.Entries, fhir.BundleEntry{Resource: q.Subset.Apply(r), Mode: "match"})
		}
	}
	for _, r := range pg.Included {
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: q.Subset.Apply(r), Mode: "include"})
	}
	issues := append([]fhir.Issue(nil), warnings...)
	for _, name := range q.Ignored {
		issues = append(issues, fhir.Issue{Severity: "warning", Code: fhir.WarnUnknownParamIgnored, Diagnostics: "parameter " + name + " is not supported and was ignored", Expression: name})
	}
	if len(issues) > 0 {
		oo := &fhir.Resource{Type: "OperationOutcome", ID: newUUID(), JSON: fhir.OperationOutcome(issues...)}
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: oo, Mode: "outcome"})
	}
	return s.writeBundle(c, &b)
}

// writeCollection writes a $getstructuredrecord answer as a collection
// Bundle, its warnings in a final OperationOutcome.
func (s *Server) writeCollection(c echo.Context, col *fhir.Collection) error {
	// Not from the entry cache: a collection's Lists are made per request.
	b := fhir.Bundle{ID: newUUID(), Type: "collection", Timestamp: s.now(), Total: -1, Base: s.cfg.BaseURL,
		Entries: make([]fhir.BundleEntry, 0, len(col.Resources)+1)}
	for _, r := range col.Resources {
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: r})
	}
	if len(col.Warnings) > 0 {
		oo := &fhir.Resource{Type: "OperationOutcome", ID: newUUID(), JSON: fhir.OperationOutcome(col.Warnings...)}
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: oo})
	}
	return s.writeBundle(c, &b)
}

// writeBundle streams the Bundle: entries are spliced into a pooled chunk
// buffer and written as it fills, so a Bundle of thousands of resources is
// never assembled whole (and, gzipped, is compressed as it goes).
func (s *Server) writeBundle(c echo.Context, b *fhir.Bundle) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, responseType(c))
	h.Set("Cache-Control", "no-store")
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= poolBundle {
			bufPool.Put(bp)
		}
	}()
	if b.Size() <= wholeBundle {
		// Rendered entries go out from where they are kept: the head
		// before them, the rest after.
		var split int
		*bp, split = b.AppendParts((*bp)[:0])
		h.Set(echo.HeaderContentLength, strconv.Itoa(len(*bp)+len(b.Rendered)))
		c.Response().WriteHeader(http.StatusOK)
		for _, part := range [][]byte{(*bp)[:split], b.Rendered, (*bp)[split:]} {
			if _, err := c.Response().Write(part); err != nil {
				s.log.Warn("bundle write failed", "request_id", h.Get(echo.HeaderXRequestID), "err", err)
				break
			}
		}
		return nil
	}
	c.Response().WriteHeader(http.StatusOK)
	if err := b.WriteJSON(c.Response(), (*bp)[:0]); err != nil {
		// The status is out; all that is left is to stop and log.
		s.log.Warn("bundle write failed", "request_id", h.Get(echo.HeaderXRequestID), "err", err)
	}
	return nil
}

// links builds self/first/previous/next/last as GETs of path. The links
// carry only the parameters that were honoured.
func (s *Server) links(path string, orig url.Values, q *fhir.Query, total int) []fhir.Link {
	ignored := map[string]bool{"_offset": true, "_count": true, "_format": true, "_pretty": true, "_cursor": true}
	for _, name := range q.Ignored {
		ignored[name] = true
	}
	keys := make([]string, 0, len(orig))
	for k := range orig {
		if !ignored[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	base := s.cfg.BaseURL + path + "?"
	var prefix []byte
	for _, k := range keys {
		for _, v := range orig[k] {
			prefix = append(prefix, url.QueryEscape(k)...)
			prefix = append(prefix, '=')
			prefix = append(prefix, url.QueryEscape(v)...)
			prefix = append(prefix, '&')
		}
	}
	at := func(offset int) string {
		return base + string(prefix) + "_count=" + strconv.Itoa(q.Count) + "&_offset=" + strconv.Itoa(offset)
	}
	links := []fhir.Link{{Relation: "self", URL: at(q.Offset)}}
	if q.Count == 0 || q.CountOnly() {
		return links
	}
	if q.Cursored {
		// Newest first, paged by cursor: a next page that stays put while
		// entries arrive; no previous or last.
		links[0].URL = base + string(prefix) + "_count=" + strconv.Itoa(q.Count)
		if cur := orig.Get("_cursor"); cur != "" {
			links[0].URL += "&_cursor=" + url.QueryEscape(cur)
		}
		links = append(links, fhir.Link{Relation: "first", URL: base + string(prefix) + "_count=" + strconv.Itoa(q.Count)})
		if q.Next != "" {
			links = append(links, fhir.Link{Relation: "next", URL: base + string(prefix) + "_count=" + strconv.Itoa(q.Count) + "&_cursor=" + url.QueryEscape(q.Next)})
		}
		return links
	}
	lastOff := 0
	if total > 0 {
		lastOff = (total - 1) / q.Count * q.Count
	}
	links = append(links, fhir.Link{Relation: "first", URL: at(0)})
	if q.Offset > 0 {
		links = append(links, fhir.Link{Relation: "previous", URL: at(max(0, q.Offset-q.Count))})
	}
	if q.Offset+q.Count < total {
		links = append(links, fhir.Link{Relation: "next", URL: at(q.Offset + q.Count)})
	}
	links = append(links, fhir.Link{Relation: "last", URL: at(lastOff)})
	return links
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
