package fhir

import (
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Link is a Bundle link (self, next, previous, first, last).
type Link struct {
	Relation string
	URL      string
}

// BundleEntry is one spliced entry: the resource's canonical bytes plus the
// search mode ("match", "include", "outcome"; "" for collections).
type BundleEntry struct {
	Resource *Resource
	Mode     string
}

// Bundle describes a Bundle to assemble. Entries are spliced from their
// canonical JSON bytes; nothing is re-encoded.
type Bundle struct {
	ID        string
	Type      string // searchset | collection
	Timestamp time.Time
	Total     int // searchset only; -1 leaves it out
	Links     []Link
	Base      string // absolute base URL for fullUrl, no trailing slash
	// Rendered, when not empty, are entries already rendered by
	// AppendEntries with the same Base: they stand first, before Entries,
	// and go out as they are (not copied again when written).
	Rendered []byte
	Entries  []BundleEntry
}

// Size estimates the assembled length, for preallocation.
func (b *Bundle) Size() int {
	n := 256 + len(b.ID) + len(b.Rendered)
	for _, l := range b.Links {
		n += 40 + len(l.URL)
	}
	for _, e := range b.Entries {
		n += 64 + len(b.Base) + len(e.Resource.Type) + len(e.Resource.ID) + len(e.Resource.JSON)
	}
	return n
}

// AppendJSON appends the Bundle's JSON to dst and returns it. The output is
// compact JSON in the element order jsonformat uses for R4 Bundle.
func (b *Bundle) AppendJSON(dst []byte) []byte {
	dst = b.appendHead(dst)
	dst = append(dst, b.Rendered...)
	for i := range b.Entries {
		dst = b.appendEntry(dst, i)
	}
	return b.appendTail(dst)
}

// AppendParts appends the Bundle's JSON to dst as AppendJSON does, but for
// Rendered, which belongs at split: dst[:split] + Rendered + dst[split:] is
// the Bundle. A writer sends Rendered from where it is, uncopied.
func (b *Bundle) AppendParts(dst []byte) (out []byte, split int) {
	dst = b.appendHead(dst)
	split = len(dst)
	for i := range b.Entries {
		dst = b.appendEntry(dst, i)
	}
	return b.appendTail(dst), split
}

// WriteJSON writes the same bytes as AppendJSON to w, a chunk of about
// len(cap(buf)) at a time (64 KiB when buf has no capacity), so a large
// Bundle is never held whole in memory: entries are spliced from their
// canonical bytes as they go out.
func (b *Bundle) WriteJSON(w io.Writer, buf []byte) error {
	chunk := cap(buf)
	if chunk == 0 {
		chunk = 64 << 10
		buf = make([]byte, 0, chunk)
	}
	buf = b.appendHead(buf[:0])
	if len(b.Rendered) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if _, err := w.Write(b.Rendered); err != nil {
			return err
		}
		buf = buf[:0]
	}
	for i := range b.Entries {
		// Flush before an entry that would not fit, so the buffer given is
		// the only one (an entry larger than it grows it, once).
		if len(buf) > 0 && len(buf)+b.entrySize(i) > chunk {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		buf = b.appendEntry(buf, i)
	}
	buf = b.appendTail(buf)
	_, err := w.Write(buf)
	return err
}

func (b *Bundle) appendHead(dst []byte) []byte {
	dst = append(dst, `{"resourceType":"Bundle"`...)
	if b.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = AppendJSONString(dst, b.ID)
	}
	dst = append(dst, `,"meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"]}`...)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, b.Type)
	if !b.Timestamp.IsZero() {
		dst = append(dst, `,"timestamp":"`...)
		dst = b.Timestamp.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		dst = append(dst, '"')
	}
	if b.Type == "searchset" && b.Total >= 0 {
		dst = append(dst, `,"total":`...)
		dst = strconv.AppendInt(dst, int64(b.Total), 10)
	}
	if len(b.Links) > 0 {
		dst = append(dst, `,"link":[`...)
		for i, l := range b.Links {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"relation":`...)
			dst = AppendJSONString(dst, l.Relation)
			dst = append(dst, `,"url":`...)
			dst = AppendJSONString(dst, l.URL)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if b.hasEntries() {
		dst = append(dst, `,"entry":[`...)
	}
	return dst
}

func (b *Bundle) hasEntries() bool { return len(b.Entries) > 0 || len(b.Rendered) > 0 }

// entrySize is the length appendEntry appends for entry i, its comma
// included.
func (b *Bundle) entrySize(i int) int {
	return 1 + entryLen(b.Base, b.Entries[i].Resource, b.Entries[i].Mode)
}

func (b *Bundle) appendEntry(dst []byte, i int) []byte {
	if i > 0 || len(b.Rendered) > 0 {
		dst = append(dst, ',')
	}
	return appendEntry(dst, b.Base, b.Entries[i].Resource, b.Entries[i].Mode)
}

// AppendEntries appends the Bundle entries of rs, each in search mode mode
// ("" for none), comma-separated, as a Bundle with base base renders them:
// the bytes a Bundle's Rendered takes.
func AppendEntries(dst []byte, base, mode string, rs []*Resource) []byte {
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendEntry(dst, base, r, mode)
	}
	return dst
}

// EntriesSize is the exact length AppendEntries appends.
func EntriesSize(base, mode string, rs []*Resource) int {
	n := 0
	for _, r := range rs {
		n += 1 + entryLen(base, r, mode)
	}
	if n > 0 {
		n-- // no comma before the first
	}
	return n
}

const (
	entryOpen     = `{"fullUrl":"`
	entryResource = `","resource":`
	entryMode     = `,"search":{"mode":"`
	entryUUID     = "urn:uuid:"
)

// entryLen is the length appendEntry appends for r.
func entryLen(base string, r *Resource, mode string) int {
	n := len(entryOpen) + len(entryResource) + len(r.JSON) + 1
	if r.Type == "OperationOutcome" || r.ID == "" {
		n += len(entryUUID) + len(r.ID)
	} else {
		n += len(base) + 1 + len(r.Type) + 1 + len(r.ID)
	}
	if mode != "" {
		n += len(entryMode) + len(mode) + 2
	}
	return n
}

func appendEntry(dst []byte, base string, r *Resource, mode string) []byte {
	dst = append(dst, entryOpen...)
	if r.Type == "OperationOutcome" || r.ID == "" {
		dst = append(dst, entryUUID...)
		dst = append(dst, r.ID...)
	} else {
		dst = append(dst, base...)
		dst = append(dst, '/')
		dst = append(dst, r.Type...)
		dst = append(dst, '/')
		dst = append(dst, r.ID...)
	}
	dst = append(dst, entryResource...)
	dst = append(dst, r.JSON...)
	if mode != "" {
		dst = append(dst, entryMode...)
		dst = append(dst, mode...)
		dst = append(dst, `"}`...)
	}
	return append(dst, '}')
}

func (b *Bundle) appendTail(dst []byte) []byte {
	if b.hasEntries() {
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

const hex = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
