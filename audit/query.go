package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// Filter selects audit entries. Empty fields do not constrain.
type Filter struct {
	Patient        string    // Patient logical id
	Agent          string    // client id, clinician (SDS user id) or consumer ODS code
	Entity         string    // entity reference, e.g. "Patient/<id>"
	Since          time.Time // recorded at or after (inclusive)
	Until          time.Time // recorded before (exclusive)
	Outcome        string    // fhir.OutcomeGranted | OutcomeDenied | OutcomeError
	Action         string    // "PatientRead", "PatientQuery", "token-issue", ...
	BreakGlassOnly bool
	Count          int // page size; 0 means fhir.DefaultCount, capped at fhir.MaxCount
	Offset         int // entries to skip (newest first), after Before; kept for old links: prefer Before
	// Before pages by sequence number (the _cursor parameter): only entries
	// older than entry Before. Page.Next is the Before of the next page, so
	// paging newest first never shows an entry twice or skips one while new
	// entries arrive. 0: no bound.
	Before    uint64
	TotalOnly bool // count matches, return no entries (_count=0, _summary=count)
	// Ignored names parameters ParseFilter did not know (lenient handling).
	Ignored []string
}

// FilterParams are the search parameters ParseFilter understands, for the
// CapabilityStatement. "break-glass" (true|false) is gpgate's own.
var FilterParams = []string{"patient", "agent", "entity", "date", "outcome", "subtype", "break-glass", "_count", "_cursor", "_offset", "_sort", "_summary"}

const maxFilterValue = 256

// ParseFilter parses the query of GET /AuditEvent. Errors are
// fhir INVALID_PARAMETER errors naming the parameter. Unknown parameters are
// listed in Filter.Ignored.
func ParseFilter(v url.Values) (Filter, error) {
	var f Filter
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := func(name, format string, args ...any) (Filter, error) {
		return Filter{}, fhir.Errorf(fhir.CodeInvalidParameter, format, args...).At(name)
	}
	for _, key := range keys {
		vals := v[key]
		if !knownParam(key) {
			f.Ignored = append(f.Ignored, safe(key))
			continue
		}
		for _, s := range vals {
			if len(s) > maxFilterValue {
				return bad(safe(key), "value of %s is too long", safe(key))
			}
			if !utf8.ValidString(s) {
				return bad(safe(key), "value of %s is not UTF-8", safe(key))
			}
		}
		val := ""
		if len(vals) > 0 {
			val = vals[len(vals)-1]
		}
		switch key {
		case "_format", "_pretty":
			continue
		case "_count":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return bad(key, "_count must be a non-negative integer")
			}
			if n == 0 {
				f.TotalOnly = true
			}
			f.Count = min(n, fhir.MaxCount)
			continue
		case "_cursor":
			n, err := strconv.ParseUint(val, 10, 64)
			if err != nil || n == 0 {
				return bad(key, "_cursor must be a positive integer (the value of the next link)")
			}
			f.Before = n
			continue
		case "_offset":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 1<<30 {
				return bad(key, "_offset must be a non-negative integer")
			}
			f.Offset = n
			continue
		case "_sort":
			if val != "-date" {
				return bad(key, "AuditEvent search supports _sort=-date only")
			}
			continue
		case "_summary":
			if val != "count" {
				return bad(key, "AuditEvent search supports _summary=count only")
			}
			f.TotalOnly = true
			continue
		case "date":
			for _, s := range vals {
				if err := f.addDate(s); err != nil {
					return Filter{}, err
				}
			}
			continue
		}
		if len(vals) != 1 || val == "" {
			if _, known := knownSingle[key]; known {
				return bad(key, "%s must be given once, with a value", key)
			}
		}
		switch key {
		case "patient", "patient:Patient":
			id := strings.TrimPrefix(val, "Patient/")
			if !fhir.ValidID(id) {
				return bad("patient", "patient must be a Patient id or Patient/id")
			}
			f.Patient = id
		case "entity":
			typ, id, ok := strings.Cut(val, "/")
			if !ok || typ == "" || !fhir.ValidID(id) || strings.ContainsAny(typ, "/?#") {
				return bad(key, "entity must be a reference Type/id")
			}
			f.Entity = val
		case "agent":
			a := val
			if _, v, ok := strings.Cut(val, "|"); ok {
				a = v // agent.identifier style system|value: the value names the agent
			}
			if a == "" || strings.ContainsAny(a, "\x00") {
				return bad(key, "agent must name a client id, clinician or organisation")
			}
			f.Agent = a
		case "outcome":
			switch val {
			case "0", fhir.OutcomeGranted:
				f.Outcome = fhir.OutcomeGranted
			case "4", fhir.OutcomeDenied:
				f.Outcome = fhir.OutcomeDenied
			case "8", "12", fhir.OutcomeError:
				f.Outcome = fhir.OutcomeError
			default:
				return bad(key, "outcome must be 0, 4 or 8")
			}
		case "subtype":
			code := strings.TrimPrefix(strings.TrimPrefix(val, restfulInteraction+"|"), IHEEventTypeSystem+"|")
			a, ok := actionForSubtype[code]
			if !ok {
				return bad(key, "subtype must be read, search-type, operation, create, token or %s|ITI-71", IHEEventTypeSystem)
			}
			f.Action = a
		case "break-glass":
			switch val {
			case "true":
				f.BreakGlassOnly = true
			case "false":
			default:
				return bad(key, "break-glass must be true or false")
			}
		}
	}
	return f, nil
}

func knownParam(key string) bool {
	if _, ok := knownSingle[key]; ok {
		return true
	}
	switch key {
	case "_format", "_pretty", "_count", "_cursor", "_offset", "_sort", "_summary", "date":
		return true
	}
	return false
}

var knownSingle = map[string]struct{}{
	"patient": {}, "patient:Patient": {}, "entity": {}, "agent": {}, "outcome": {}, "subtype": {}, "break-glass": {},
}

var actionForSubtype = map[string]string{
	"read": "PatientRead", "search-type": "PatientQuery", "operation": "PatientQuery",
	"create": "consent-record", "token": "token-issue", "ITI-71": "token-issue",
}

// addDate narrows Since/Until by one date predicate (FHIR prefixes eq, ge,
// gt, le, lt, sa, eb; the date's precision sets the range it denotes).
func (f *Filter) addDate(s string) error {
	prefix := "eq"
	if len(s) >= 2 && s[0] >= 'a' && s[0] <= 'z' {
		prefix, s = s[:2], s[2:]
	}
	d, err := fhir.ParseDate(s)
	if err != nil {
		return fhir.Errorf(fhir.CodeInvalidParameter, "date must be a FHIR date or dateTime with prefix eq, ge, gt, le, lt, sa or eb").At("date")
	}
	since, until := time.Time{}, time.Time{}
	switch prefix {
	case "eq":
		since, until = d.Start, d.End
	case "ge":
		since = d.Start
	case "gt", "sa":
		since = d.End
	case "le":
		until = d.End
	case "lt", "eb":
		until = d.Start
	default:
		return fhir.Errorf(fhir.CodeInvalidParameter, "date prefix %q is not supported (use eq, ge, gt, le, lt, sa or eb)", safe(prefix)).At("date")
	}
	if !since.IsZero() && (f.Since.IsZero() || since.After(f.Since)) {
		f.Since = since
	}
	if !until.IsZero() && (f.Until.IsZero() || until.Before(f.Until)) {
		f.Until = until
	}
	return nil
}

// safe keeps a caller-supplied name printable and short for diagnostics.
func safe(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, s)
}

// match reports whether e satisfies f (all fields, including those an index
// already narrowed).
func (f *Filter) match(e *Entry) bool {
	if f.Patient != "" && e.PatientID != f.Patient {
		return false
	}
	if f.Agent != "" && e.ClientID != f.Agent && e.Practitioner != f.Agent && e.ConsumerODS != f.Agent {
		return false
	}
	if f.Entity != "" && (e.PatientID == "" || f.Entity != "Patient/"+e.PatientID) {
		return false
	}
	if !f.Since.IsZero() && e.Recorded.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !e.Recorded.Before(f.Until) {
		return false
	}
	if f.Outcome != "" && e.Outcome != f.Outcome {
		return false
	}
	if f.Action != "" && e.Action != f.Action {
		return false
	}
	if f.BreakGlassOnly && !e.BreakGlass {
		return false
	}
	return true
}

// Page is one page of a Query.
type Page struct {
	Entries []Entry // newest first
	Total   int     // matches of the whole search (Before and Offset aside)
	// Next is the Filter.Before (the _cursor) of the next, older page; 0
	// when there is none.
	Next uint64
}

// Query returns the entries matching f, newest first, one page of them
// (Count entries older than Before, from Offset), and the total number of
// matches. See QueryPage.
func (s *Store) Query(ctx context.Context, f Filter) ([]Entry, int, error) {
	p, err := s.QueryPage(ctx, f)
	return p.Entries, p.Total, err
}

// QueryPage returns one page of the entries matching f, newest first, the
// total number of matches and the cursor of the next page. It uses the
// patient or agent index when f names one, else scans the log from its end;
// a Since bound stops the scan early because recorded times never decrease
// along it.
func (s *Store) QueryPage(ctx context.Context, f Filter) (Page, error) {
	count := f.Count
	if count <= 0 {
		count = fhir.DefaultCount
	}
	count = min(count, fhir.MaxCount)
	if f.TotalOnly {
		count = 0
	}
	patient := f.Patient
	if patient == "" && strings.HasPrefix(f.Entity, "Patient/") {
		patient = strings.TrimPrefix(f.Entity, "Patient/")
	} else if f.Entity != "" && !strings.HasPrefix(f.Entity, "Patient/") {
		return Page{}, nil // entries name only patients as entities
	}
	var out []Entry
	total, skipped := 0, 0
	more := false // a match older than the page's last entry exists
	err := s.db.View(func(tx *bbolt.Tx) error {
		lb := tx.Bucket(bucketLog)
		m := compile(&f)
		visit := func(seq uint64, v []byte) (bool, error) {
			if len(v) < 34 {
				return false, errors.New("audit record too short")
			}
			body := v[32:]
			var rec time.Time
			if !f.Since.IsZero() || !f.Until.IsZero() {
				var err error
				if _, rec, err = recordHead(body); err != nil {
					return false, err
				}
				if !f.Since.IsZero() && rec.Before(f.Since) {
					return false, nil // everything older is before Since too
				}
			}
			if !m.match(body, rec) {
				return true, nil
			}
			total++
			if f.Before != 0 && seq >= f.Before {
				return true, nil
			}
			if skipped < f.Offset {
				skipped++
				return true, nil
			}
			if len(out) < count {
				e, err := decodeRecord(v)
				if err != nil {
					return false, err
				}
				out = append(out, e)
			} else if count > 0 {
				more = true
			}
			return true, nil
		}
		var next func() (uint64, []byte)
		switch {
		case patient != "":
			next = tailThenIndex(tx, indexIter(tx.Bucket(bucketPatient), lb, patient))
		case f.Agent != "":
			next = tailThenIndex(tx, indexIter(tx.Bucket(bucketAgent), lb, f.Agent))
		default:
			c := lb.Cursor()
			k, v := c.Last()
			if k != nil && !f.Until.IsZero() {
				// recorded never decreases along the log: start at the
				// newest entry recorded before Until
				if seq, ok := seqBefore(lb, binary.BigEndian.Uint64(k), f.Until); ok {
					k, v = c.Seek(seqKey(seq))
				} else {
					k, v = nil, nil
				}
			}
			first := true
			next = func() (uint64, []byte) {
				if first {
					first = false
				} else {
					k, v = c.Prev()
				}
				if len(k) != 8 {
					return 0, nil
				}
				return binary.BigEndian.Uint64(k), v
			}
		}
		for i := 0; ; i++ {
			if i&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			seq, v := next()
			if v == nil {
				return nil
			}
			cont, err := visit(seq, v)
			if err != nil || !cont {
				return err
			}
		}
	})
	if err != nil {
		return Page{}, fhir.Internal(err)
	}
	p := Page{Entries: out, Total: total}
	if more && len(out) > 0 {
		p.Next = out[len(out)-1].Seq
	}
	return p, nil
}

// matcher is a Filter compiled to byte patterns over canonical record
// bytes, so Query counts matches without decoding them. The patterns are
// exact: encodePayload writes each field once as "tag":<JSON value>, and a
// quote inside a JSON string is always escaped, so "tag":"value" cannot
// occur inside another field's value.
type matcher struct {
	all          [][]byte // each must occur
	anyOf        [][]byte // one must occur, when non-empty
	since, until time.Time
}

func jsonField(tag, value string) []byte {
	v, _ := json.Marshal(value) // a string: cannot fail
	return append([]byte(`"`+tag+`":`), v...)
}

func compile(f *Filter) matcher {
	m := matcher{since: f.Since, until: f.Until}
	if f.Patient != "" {
		m.all = append(m.all, jsonField("pid", f.Patient))
	}
	if id, ok := strings.CutPrefix(f.Entity, "Patient/"); ok {
		m.all = append(m.all, jsonField("pid", id))
	}
	if f.Outcome != "" {
		m.all = append(m.all, jsonField("outcome", f.Outcome))
	}
	if f.Action != "" {
		m.all = append(m.all, jsonField("action", f.Action))
	}
	if f.BreakGlassOnly {
		m.all = append(m.all, []byte(`"bg":true`))
	}
	if f.Agent != "" {
		m.anyOf = [][]byte{jsonField("client", f.Agent), jsonField("pract", f.Agent), jsonField("ods", f.Agent)}
	}
	return m
}

func (m *matcher) match(body []byte, rec time.Time) bool {
	if !m.since.IsZero() && rec.Before(m.since) || !m.until.IsZero() && !rec.Before(m.until) {
		return false
	}
	for _, p := range m.all {
		if !bytes.Contains(body, p) {
			return false
		}
	}
	if len(m.anyOf) == 0 {
		return true
	}
	for _, p := range m.anyOf {
		if bytes.Contains(body, p) {
			return true
		}
	}
	return false
}

// seqBefore binary-searches the log (sequence numbers 1..last) for the
// newest entry recorded before t. ok is false when there is none. A missing
// or unreadable entry ends the search at the log's end, the safe answer:
// the scan then checks every entry.
func seqBefore(lb *bbolt.Bucket, last uint64, t time.Time) (uint64, bool) {
	recordedAt := func(seq uint64) (time.Time, bool) {
		v := lb.Get(seqKey(seq))
		if len(v) < 34 {
			return time.Time{}, false
		}
		_, rec, err := recordHead(v[32:])
		return rec, err == nil
	}
	lo, hi := uint64(1), last // answer in [lo-1, hi]
	for lo <= hi {
		mid := lo + (hi-lo)/2
		rec, ok := recordedAt(mid)
		if !ok {
			return last, true
		}
		if rec.Before(t) {
			lo = mid + 1
		} else {
			hi = mid - 1
		}
	}
	return lo - 1, lo > 1
}

// tailThenIndex walks the log entries after the "indexed" mark newest
// first (every one: visit's matcher picks the patient's or agent's, as it
// does behind an index), then the index: the entries the indexes do not
// cover yet (store.go, deferred index) are found all the same.
func tailThenIndex(tx *bbolt.Tx, index func() (uint64, []byte)) func() (uint64, []byte) {
	through := indexedThrough(tx)
	c := tx.Bucket(bucketLog).Cursor()
	var k, v []byte
	started, tail := false, true
	return func() (uint64, []byte) {
		if tail {
			if !started {
				started = true
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			if len(k) == 8 && binary.BigEndian.Uint64(k) > through {
				return binary.BigEndian.Uint64(k), v
			}
			tail = false
		}
		return index()
	}
}

// indexIter walks the index entries of id newest first, yielding sequence
// numbers and log values.
func indexIter(ib, lb *bbolt.Bucket, id string) func() (uint64, []byte) {
	prefix := append([]byte(id), 0)
	c := ib.Cursor()
	var k []byte
	started := false
	return func() (uint64, []byte) {
		for {
			if !started {
				started = true
				k, _ = c.Seek(indexKey(id, ^uint64(0)))
				if k == nil {
					k, _ = c.Last()
				} else if !bytes.Equal(k, indexKey(id, ^uint64(0))) {
					k, _ = c.Prev()
				}
			} else {
				k, _ = c.Prev()
			}
			if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
				return 0, nil
			}
			if v := lb.Get(k[len(prefix):]); v != nil {
				return binary.BigEndian.Uint64(k[len(prefix):]), v
			}
			// an index key without its log entry: skip it (Verify reports the log)
		}
	}
}

// Get returns the entry with sequence number seq.
func (s *Store) Get(ctx context.Context, seq uint64) (Entry, bool, error) {
	var e Entry
	found := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLog).Get(seqKey(seq))
		if v == nil {
			return nil
		}
		var err error
		e, err = decodeRecord(v)
		found = err == nil
		return err
	})
	if err != nil {
		return Entry{}, false, fhir.Internal(err)
	}
	return e, found, nil
}

// Scan calls fn for each entry after sequence number after, oldest first,
// until fn returns an error or the log ends. Forwarders (Sink) and Export
// use it.
func (s *Store) Scan(ctx context.Context, after uint64, fn func(Entry) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		i := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if i++; i&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if after == ^uint64(0) || binary.BigEndian.Uint64(k) <= after {
				continue
			}
			e, err := decodeRecord(v)
			if err != nil {
				return fhir.Internal(err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}
