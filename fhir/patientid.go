package fhir

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
	"sync/atomic"
)

// Patient logical ids are keyed: PatientID is HMAC-SHA256 under a
// per-deployment secret (the patient-id key), so an id cannot be turned
// back into an NHS number by hashing the 10^9 possible numbers, as an
// unkeyed hash can in seconds. The key is a process-wide setting made once
// at start (SetPatientIDKey, by `gpgate serve` and `gpgate demo` from the
// key file in the data directory); the id of a patient never changes while
// the key does not, and records, the audit log and the id map hold ids made
// with it, so the key must never change for a deployment.
//
// Without SetPatientIDKey the ids are made with TestPatientIDKey: fine for
// tests and tools over synthetic data, never for a deployment (serve
// refuses to start without its key).

// PatientIDKeySize is the size of a generated patient-id key.
const PatientIDKeySize = 32

// TestPatientIDKey is the key used until SetPatientIDKey is called. It is
// public: ids made with it are as reversible as an unkeyed hash.
var TestPatientIDKey = []byte("gpgate-test-patient-id-key-not-for-deployment")

type patientIDKey struct {
	key  []byte
	pool sync.Pool // of hash.Hash (HMAC under key)
	set  bool
}

var currentPatientIDKey atomic.Pointer[patientIDKey]

func newPatientIDKey(key []byte, set bool) *patientIDKey {
	k := &patientIDKey{key: append([]byte(nil), key...), set: set}
	k.pool.New = func() any { return hmac.New(sha256.New, k.key) }
	return k
}

func init() { currentPatientIDKey.Store(newPatientIDKey(TestPatientIDKey, false)) }

// ErrPatientIDKey is returned by SetPatientIDKey for a key that is too short.
var ErrPatientIDKey = errors.New("fhir: the patient-id key must be at least 16 bytes")

// SetPatientIDKey makes key the process-wide patient-id key. Call it once
// at start, before any id is made.
func SetPatientIDKey(key []byte) error {
	if len(key) < 16 {
		return ErrPatientIDKey
	}
	currentPatientIDKey.Store(newPatientIDKey(key, true))
	return nil
}

// PatientIDKeySet reports whether SetPatientIDKey has been called (false:
// ids are made with the public TestPatientIDKey).
func PatientIDKeySet() bool { return currentPatientIDKey.Load().set }

// PatientID derives the stable logical id of the Patient with NHS number n:
// "p" and 16 base32 characters of HMAC-SHA256(patient-id key, n). Every
// other resource of the record has an id that starts with it and a hyphen
// (see ResourceID), so a read by id finds its record without a global
// index. The id does not show the NHS number in URLs and logs, and without
// the key it cannot be recomputed from one.
func PatientID(n NHSNumber) string {
	k := currentPatientIDKey.Load()
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte("gpgate/patient/v2:"))
	h.Write([]byte(n))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	k.pool.Put(h)
	return "p" + idEncoding.EncodeToString(sum[:10])
}
