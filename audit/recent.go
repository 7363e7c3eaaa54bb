package audit

import (
	"encoding/json"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gpgate/gpgate/fhir"
)

// recentBytes bounds the recent ring: about the last few thousand entries,
// what forwarders keeping up with the log read between two wake-ups.
const recentBytes = 1 << 20

// entryOverhead is what an Entry costs in memory beyond its strings (whose
// bytes the payload's length stands for).
const entryOverhead = int(unsafe.Sizeof(Entry{}))

// recentRing keeps the newest committed entries in log order, decoded, for
// forwarders: one that keeps up reads what was just committed from here
// instead of reading it back from the file and decoding it (which cost the
// practice trail's forwarder about 5% of the server's CPU under load).
// Entries are held exactly as decodeRecord returns them (asStored), so a
// reader cannot tell which way it was served. Bounded by bytes.
type recentRing struct {
	mu      sync.Mutex
	entries []Entry // consecutive sequence numbers, oldest first
	sizes   []int
	bytes   int
}

// add appends a committed batch (recorded at rec by node). A batch that
// does not follow on from the ring (the first, or after a failed commit
// reloaded the head) starts it again.
func (r *recentRing) add(batch []*pending, rec time.Time, node string) {
	if len(batch) == 0 {
		return
	}
	rec = rec.UTC()
	add := make([]Entry, 0, len(batch))
	sizes := make([]int, 0, len(batch))
	for _, p := range batch {
		e := Entry{Seq: p.seq, Recorded: rec, Node: node, Hash: p.hash}
		if p.entry != nil {
			e.AuditEntry = *p.entry
		} else if a, ok := decodePayload(p.payload); ok {
			e.AuditEntry = a
		} else {
			// Not decodable (cannot happen for what commit wrote): leave
			// the ring empty so readers go to the file.
			r.reset()
			return
		}
		add = append(add, e)
		sizes = append(sizes, len(p.payload)+entryOverhead)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.entries); n > 0 && r.entries[n-1].Seq+1 != add[0].Seq {
		r.entries, r.sizes, r.bytes = nil, nil, 0
	}
	r.entries = append(r.entries, add...)
	r.sizes = append(r.sizes, sizes...)
	for _, n := range sizes {
		r.bytes += n
	}
	drop := 0
	for r.bytes > recentBytes && drop < len(r.entries)-1 {
		r.bytes -= r.sizes[drop]
		drop++
	}
	if drop > 0 {
		clear(r.entries[:drop]) // let the dropped entries' strings go
		r.entries, r.sizes = r.entries[drop:], r.sizes[drop:]
	}
}

func (r *recentRing) reset() {
	r.mu.Lock()
	r.entries, r.sizes, r.bytes = nil, nil, 0
	r.mu.Unlock()
}

// after returns up to limit entries after seq, when the ring holds the
// entry right after seq or nothing after it yet (ok false: read the file).
// more says the ring holds entries beyond the ones returned.
func (r *recentRing) after(seq uint64, limit int) (out []Entry, more, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entries) == 0 || limit <= 0 {
		return nil, false, false
	}
	first, last := r.entries[0].Seq, r.entries[len(r.entries)-1].Seq
	if seq+1 < first {
		return nil, false, false
	}
	if seq >= last {
		// Nothing newer here. A commit not yet added is announced by the
		// wake-up that follows its add.
		return nil, false, true
	}
	from := int(seq + 1 - first)
	to := min(from+limit, len(r.entries))
	return slices.Clone(r.entries[from:to]), to < len(r.entries), true
}

// asStored is e as decodeRecord reads it back after encodePayload: times
// in UTC (without a monotonic reading), empty Types nil. A string that is not
// valid UTF-8 (which JSON encoding replaces) is read back from the encoding
// itself: nil means decode the payload.
func asStored(e *fhir.AuditEntry) *fhir.AuditEntry {
	for _, s := range []string{e.RequestID, e.CorrelationID, e.SourceAddress, e.Action, e.Interaction,
		e.Outcome, string(e.Code), e.Rule, e.ClientID, e.ConsumerODS, e.Practitioner, e.Role,
		e.PurposeOfUse, e.TokenID, e.Reason, e.PatientID, string(e.NHS), e.Practice, e.Query} {
		if !utf8.ValidString(s) {
			return nil
		}
	}
	for _, s := range e.Types {
		if !utf8.ValidString(s) {
			return nil
		}
	}
	a := *e
	if !a.Time.IsZero() {
		a.Time = a.Time.UTC() // UTC drops the monotonic reading too
	}
	if len(a.Types) == 0 {
		a.Types = nil
	} else {
		a.Types = slices.Clone(a.Types) // the caller's slice may change after Append
	}
	a.Areas &= fhir.AllAreas | fhir.AreaSummary // String names only these
	return &a
}

// decodePayload decodes an encodePayload encoding.
func decodePayload(payload []byte) (fhir.AuditEntry, bool) {
	var w wireEntry
	if err := json.Unmarshal(payload, &w); err != nil {
		return fhir.AuditEntry{}, false
	}
	a, err := w.audit()
	return a, err == nil
}
