package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Entry is one committed audit record: the access decision as the caller
// gave it plus what the log added — its sequence number, the time it was
// committed, and its link in the hash chain.
type Entry struct {
	Seq      uint64
	Recorded time.Time // commit time; never goes backwards along the log
	Node     string    // gpgate node that recorded it (Options.Node)
	Hash     [32]byte  // SHA-256(previous entry's Hash || canonical bytes)
	fhir.AuditEntry
}

// ID is the AuditEvent logical id of the entry: "audit-" and the sequence
// number as 12 zero-padded digits, so ids sort in log order.
func (e *Entry) ID() string { return EventID(e.Seq) }

// EventID is the AuditEvent id for sequence number seq.
func EventID(seq uint64) string {
	return fmt.Sprintf("audit-%012d", seq)
}

// ParseEventID is the inverse of EventID.
func ParseEventID(id string) (uint64, bool) {
	if len(id) < 7 || id[:6] != "audit-" {
		return 0, false
	}
	n, err := strconv.ParseUint(id[6:], 10, 64)
	if err != nil || n == 0 || EventID(n) != id {
		return 0, false
	}
	return n, true
}

// wireEntry is the stored form of fhir.AuditEntry. Its tags are the storage
// format: never rename one (old entries are verified over their stored bytes,
// but must still decode).
type wireEntry struct {
	Time         string   `json:"time,omitempty"`
	RequestID    string   `json:"req,omitempty"`
	Action       string   `json:"action,omitempty"`
	Interaction  string   `json:"ia,omitempty"`
	Outcome      string   `json:"outcome,omitempty"`
	Code         string   `json:"code,omitempty"`
	Rule         string   `json:"rule,omitempty"`
	ClientID     string   `json:"client,omitempty"`
	ConsumerODS  string   `json:"ods,omitempty"`
	Practitioner string   `json:"pract,omitempty"`
	Role         string   `json:"role,omitempty"`
	PurposeOfUse string   `json:"pou,omitempty"`
	TokenID      string   `json:"jti,omitempty"`
	BreakGlass   bool     `json:"bg,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	PatientID    string   `json:"pid,omitempty"`
	NHS          string   `json:"nhs,omitempty"`
	Practice     string   `json:"practice,omitempty"`
	Types        []string `json:"types,omitempty"`
	Areas        string   `json:"areas,omitempty"`
	Query        string   `json:"q,omitempty"`
	Count        int      `json:"n,omitempty"`
	Correlation  string   `json:"corr,omitempty"`
	Address      string   `json:"addr,omitempty"`
}

// wireRecord is a whole stored record as decoded; frame writes the same
// shape: these canonical bytes are what the chain hash covers.
type wireRecord struct {
	Seq      uint64    `json:"seq"`
	Recorded string    `json:"recorded"`
	Node     string    `json:"node,omitempty"`
	Entry    wireEntry `json:"entry"`
}

const timeFormat = time.RFC3339Nano

// encodePayload encodes the caller's entry. It runs in the caller's goroutine
// so the group-commit writer only frames and hashes.
func encodePayload(e *fhir.AuditEntry) ([]byte, error) {
	w := wireEntry{
		RequestID: e.RequestID, Action: e.Action, Interaction: e.Interaction,
		Outcome: e.Outcome, Code: string(e.Code), Rule: e.Rule,
		ClientID: e.ClientID, ConsumerODS: e.ConsumerODS, Practitioner: e.Practitioner,
		Role: e.Role, PurposeOfUse: e.PurposeOfUse, TokenID: e.TokenID,
		BreakGlass: e.BreakGlass, Reason: e.Reason,
		PatientID: e.PatientID, NHS: string(e.NHS), Practice: e.Practice,
		Types: e.Types, Query: e.Query, Count: e.Count,
		Correlation: e.CorrelationID, Address: e.SourceAddress,
	}
	if !e.Time.IsZero() {
		w.Time = e.Time.UTC().Format(timeFormat)
	}
	if e.Areas != 0 {
		w.Areas = e.Areas.String()
	}
	return json.Marshal(w)
}

// frame builds the canonical record bytes for a payload at seq.
func frame(dst []byte, seq uint64, recorded time.Time, node string, payload []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"recorded":"`...)
	dst = recorded.UTC().AppendFormat(dst, timeFormat)
	dst = append(dst, '"')
	if node != "" {
		dst = append(dst, `,"node":`...)
		dst = fhir.AppendJSONString(dst, node)
	}
	dst = append(dst, `,"entry":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// decodeRecord decodes a stored value (hash || canonical bytes).
func decodeRecord(v []byte) (Entry, error) {
	var e Entry
	if len(v) < len(e.Hash)+2 {
		return e, fmt.Errorf("audit record too short (%d bytes)", len(v))
	}
	copy(e.Hash[:], v[:32])
	var r wireRecord
	if err := json.Unmarshal(v[32:], &r); err != nil {
		return e, fmt.Errorf("audit record: %w", err)
	}
	rec, err := time.Parse(timeFormat, r.Recorded)
	if err != nil {
		return e, fmt.Errorf("audit record time: %w", err)
	}
	e.Seq, e.Recorded, e.Node = r.Seq, rec, r.Node
	e.AuditEntry, err = r.Entry.audit()
	return e, err
}

// audit is the entry w stores.
func (w *wireEntry) audit() (fhir.AuditEntry, error) {
	var a fhir.AuditEntry
	if w.Time != "" {
		t, err := time.Parse(timeFormat, w.Time)
		if err != nil {
			return a, fmt.Errorf("audit entry time: %w", err)
		}
		a.Time = t
	}
	a.RequestID, a.Action, a.Interaction = w.RequestID, w.Action, w.Interaction
	a.Outcome, a.Code, a.Rule = w.Outcome, fhir.Code(w.Code), w.Rule
	a.ClientID, a.ConsumerODS, a.Practitioner = w.ClientID, w.ConsumerODS, w.Practitioner
	a.Role, a.PurposeOfUse, a.TokenID = w.Role, w.PurposeOfUse, w.TokenID
	a.BreakGlass, a.Reason = w.BreakGlass, w.Reason
	a.PatientID, a.NHS, a.Practice = w.PatientID, fhir.NHSNumber(w.NHS), w.Practice
	a.Types, a.Query, a.Count = w.Types, w.Query, w.Count
	a.CorrelationID, a.SourceAddress = w.Correlation, w.Address
	if w.Areas != "" && w.Areas != "none" {
		areas, err := fhir.ParseAreas(w.Areas)
		if err != nil {
			return a, fmt.Errorf("audit entry areas: %w", err)
		}
		a.Areas = areas
	}
	return a, nil
}

// seqKey is the big-endian key of seq: keys sort in log order.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// HashHex is the entry's chain hash in hex.
func (e *Entry) HashHex() string { return hex.EncodeToString(e.Hash[:]) }

// recordHead reads the sequence number and recorded time from the start of
// canonical record bytes without decoding the rest: frame always writes
// {"seq":N,"recorded":"T", first.
func recordHead(b []byte) (uint64, time.Time, error) {
	const p1, p2 = `{"seq":`, `,"recorded":"`
	bad := func() (uint64, time.Time, error) { return 0, time.Time{}, errors.New("malformed record head") }
	if !bytes.HasPrefix(b, []byte(p1)) {
		return bad()
	}
	b = b[len(p1):]
	i := 0
	for i < len(b) && i < 21 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil || (i > 1 && b[0] == '0') {
		return bad()
	}
	b = b[i:]
	if !bytes.HasPrefix(b, []byte(p2)) {
		return bad()
	}
	b = b[len(p2):]
	j := bytes.IndexByte(b, '"')
	if j < 0 || j > 40 {
		return bad()
	}
	t, err := time.Parse(timeFormat, string(b[:j]))
	if err != nil {
		return bad()
	}
	return seq, t, nil
}
