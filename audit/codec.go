package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// The log's storage format, for audit log implementations other than the
// bbolt Store (audit/pgaudit): the same canonical record bytes, the same
// chain hash and the same signed heads, so one verifier's reasoning holds
// for every store.

// Encoded is an entry encoded for the log: the payload the chain covers
// and the index keys of the entry.
type Encoded struct {
	Payload   []byte
	PatientID string   // "" when the entry names no patient
	Agents    []string // client id, clinician, consumer ODS (distinct, non-empty)
}

// Encode encodes e in the caller's goroutine (the writer then only frames
// and hashes). A patient named by NHS number only gets its Patient id.
func Encode(e *fhir.AuditEntry) (Encoded, error) {
	if e == nil {
		return Encoded{}, errors.New("audit: nil entry")
	}
	n := *e
	if n.PatientID == "" && n.NHS != "" {
		n.PatientID = fhir.PatientID(n.NHS)
	}
	payload, err := encodePayload(&n)
	if err != nil {
		return Encoded{}, fmt.Errorf("audit: encode entry: %w", err)
	}
	out := Encoded{Payload: payload, PatientID: n.PatientID}
	for _, a := range []string{n.ClientID, n.Practitioner, n.ConsumerODS} {
		if a != "" && !contains(out.Agents, a) {
			out.Agents = append(out.Agents, a)
		}
	}
	return out, nil
}

// Frame returns the canonical record bytes of payload at seq (appended to
// dst) and its chain hash, SHA-256(prev || record).
func Frame(dst []byte, prev [32]byte, seq uint64, recorded time.Time, node string, payload []byte) ([]byte, [32]byte) {
	start := len(dst)
	dst = frame(dst, seq, recorded, node, payload)
	return dst, ChainHash(prev, dst[start:])
}

// ChainHash is SHA-256(prev || record).
func ChainHash(prev [32]byte, record []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(record)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Decode decodes a stored record with its chain hash.
func Decode(hash [32]byte, record []byte) (Entry, error) {
	v := make([]byte, 0, 32+len(record))
	v = append(append(v, hash[:]...), record...)
	return decodeRecord(v)
}

// RecordSeq reads the sequence number and commit time a record names,
// without decoding the rest.
func RecordSeq(record []byte) (uint64, time.Time, error) { return recordHead(record) }

// SignHead signs the chain state after entry seq.
func SignHead(key ed25519.PrivateKey, seq uint64, hash [32]byte, t time.Time, node string) Head {
	return signHead(key, seq, hash, t, node)
}

// Matches reports whether e satisfies every field of f (Count, Offset and
// Before aside).
func (f *Filter) Matches(e *Entry) bool { return f.match(e) }
