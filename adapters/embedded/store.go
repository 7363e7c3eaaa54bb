// Package embedded is gpgate's embedded practice record store: a bbolt file
// holding practices, their patients' records (as canonical R4 JSON, one blob
// per record, so a fetch is one Get) and the access trail each practice keeps.
// It is the default source of `gpgate demo` and of small deployments.
//
// Only this package touches the bbolt file; callers see the Store and the
// per-practice Source, which satisfies adapters.Source, adapters.Enumerator
// and adapters.AccessRecorder.
package embedded

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/internal/boltmem"
)

// Bucket names.
var (
	bucketPractices = []byte("practices") // ODS -> practiceValue JSON
	bucketPatients  = []byte("patients")  // NHS -> ODS \x00 version
	bucketRecords   = []byte("records")   // NHS -> record blob
	bucketAccess    = []byte("access")    // NHS -> nested bucket: seq -> Access JSON
	// bucketDemographics: see demographics.go
)

// Kind is the practice kind the store reports (adapters.Practice.Kind).
const Kind = "embedded"

// DefaultCacheBytes bounds the decoded-record cache: the bytes of the
// records' JSON plus an allowance per decoded resource (see
// resourceOverhead). A region's size does not change what it holds.
const DefaultCacheBytes = 64 << 20

// Store is an open embedded record store. It is safe for concurrent use,
// except that a Bulk loader must not run while records are being served.
type Store struct {
	db       *bolt.DB
	now      func() time.Time
	cache    *lru
	sharing  SharingClassifier
	accesses *accessWriter

	mu      sync.Mutex // guards sources
	sources map[string]*Source
}

type options struct {
	cacheBytes int64
	now        func() time.Time
	timeout    time.Duration
	readOnly   bool
	sharing    SharingClassifier
}

// ReleaseMapped drops the pages of records read through bbolt's memory map
// from the process (they stay in the page cache; decoded records are
// cached by bytes anyway), so the resident set does not grow with the
// records a region's callers have read (boltmem).
func (s *Store) ReleaseMapped() error { return boltmem.Release(s.db) }

// Option configures Open.
type Option func(*options)

// WithCacheBytes bounds the in-memory cache of decoded records (by the size
// of their JSON plus a per-resource overhead). n <= 0 disables the cache.
func WithCacheBytes(n int64) Option { return func(o *options) { o.cacheBytes = n } }

// WithNow sets the clock used to stamp accesses that carry no time.
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLockTimeout sets how long Open waits for the file lock held by another
// process (default 2s; 0 waits forever).
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithReadOnly opens the file read-only (shared lock; writes fail).
func WithReadOnly() Option { return func(o *options) { o.readOnly = true } }

// Open opens or creates the store file at path.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{cacheBytes: DefaultCacheBytes, now: time.Now, timeout: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.timeout, ReadOnly: o.readOnly})
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	if !o.readOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketPractices, bucketPatients, bucketRecords, bucketAccess, bucketDemographics} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("embedded: init %s: %w", path, err)
		}
	}
	s := &Store{db: db, now: o.now, cache: newLRU(o.cacheBytes), sharing: o.sharing, sources: map[string]*Source{}}
	s.accesses = newAccessWriter(s)
	return s, nil
}

// Close writes the accesses still queued and closes the file.
func (s *Store) Close() error {
	s.accesses.close()
	return s.db.Close()
}

// Flush waits until every access recorded before the call is written.
func (s *Store) Flush(ctx context.Context) error { return s.accesses.flush(ctx) }

// Sync flushes the file to disk (after a NoSync bulk load).
func (s *Store) Sync() error { return s.db.Sync() }

// PracticeInfo describes a practice held by the store.
type PracticeInfo struct {
	ODS  string `json:"ods"`
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// PutPractice adds or renames a practice.
func (s *Store) PutPractice(ods, name string) error {
	if !fhir.ValidODS(ods) {
		return fmt.Errorf("embedded: put practice: %q is not an ODS code", ods)
	}
	v, err := json.Marshal(PracticeInfo{ODS: ods, Name: name, Kind: Kind})
	if err != nil {
		return fmt.Errorf("embedded: put practice: %w", err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPractices).Put([]byte(ods), v)
	})
}

// Practices lists the practices in ODS order.
func (s *Store) Practices() ([]PracticeInfo, error) {
	var out []PracticeInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPractices).ForEach(func(k, v []byte) error {
			var p PracticeInfo
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("practice %s: %w", k, err)
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: list practices: %w", err)
	}
	return out, nil
}

// encoded is a record ready to be written.
type encoded struct {
	ods, nhs, version string
	blob, demo        []byte
}

// encode builds the record blob: format byte, sharing byte, uvarint count,
// then each resource's canonical JSON as uvarint length + bytes. Record
// NHS numbers that fail Modulus 11 are stored under the raw string.
func encode(ods string, rec *fhir.Record, classify SharingClassifier) (encoded, error) {
	if rec == nil || rec.NHS == "" {
		return encoded{}, errors.New("record has no NHS number")
	}
	if strings.ContainsRune(string(rec.NHS), 0) || len(rec.NHS) > 32 {
		return encoded{}, errors.New("record NHS number is malformed")
	}
	if len(rec.Resources) == 0 || rec.Patient() == nil {
		return encoded{}, errors.New("record has no Patient resource")
	}
	size := 3 + binary.MaxVarintLen64
	for _, r := range rec.Resources {
		if r == nil || len(r.JSON) == 0 {
			return encoded{}, errors.New("record holds an empty resource")
		}
		size += binary.MaxVarintLen64 + len(r.JSON)
	}
	demo := encodeDemographics(rec, classify)
	blob := make([]byte, 0, size)
	// The sharing byte: the source's, else the classifier's (the same the
	// demographics index carries), so the policy need not scan the record.
	blob = append(blob, blobFormat, demo[1])
	blob = binary.AppendUvarint(blob, uint64(len(rec.Resources)))
	for _, r := range rec.Resources {
		blob = binary.AppendUvarint(blob, uint64(len(r.JSON)))
		blob = append(blob, r.JSON...)
	}
	sum := sha256.Sum256(blob)
	return encoded{ods: ods, nhs: string(rec.NHS), version: hex.EncodeToString(sum[:8]), blob: blob, demo: demo}, nil
}

const blobFormat = 1

// decode turns a blob (owned by the caller, never modified afterwards) into
// its resources; each Resource.JSON is a capacity-clipped sub-slice of blob.
func decode(blob []byte) ([]*fhir.Resource, fhir.SharingConsent, error) {
	if len(blob) < 3 || blob[0] != blobFormat {
		return nil, 0, errors.New("record blob: unknown format")
	}
	sharing := fhir.SharingConsent(blob[1])
	n, k := binary.Uvarint(blob[2:])
	if k <= 0 || n > uint64(len(blob)) {
		return nil, 0, errors.New("record blob: bad count")
	}
	p := 2 + k
	out := make([]*fhir.Resource, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(blob[p:])
		if k <= 0 || l > uint64(len(blob)-p-k) {
			return nil, 0, errors.New("record blob: truncated")
		}
		p += k
		raw := blob[p : p+int(l) : p+int(l)]
		p += int(l)
		r, err := fhir.NewResource(raw)
		if err != nil {
			return nil, 0, fmt.Errorf("record blob: resource %d: %w", i, err)
		}
		out = append(out, r)
	}
	if p != len(blob) {
		return nil, 0, errors.New("record blob: trailing bytes")
	}
	fhir.LinkMedicationCodes(out)
	return out, sharing, nil
}

func patientValue(ods, version string) []byte {
	return []byte(ods + "\x00" + version)
}

func parsePatientValue(v []byte) (ods, version string, ok bool) {
	s := string(v)
	i := strings.IndexByte(s, 0)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func writeEncoded(tx *bolt.Tx, e encoded) error {
	if tx.Bucket(bucketPractices).Get([]byte(e.ods)) == nil {
		return fmt.Errorf("practice %s is not in the store", e.ods)
	}
	key := []byte(e.nhs)
	if err := tx.Bucket(bucketRecords).Put(key, e.blob); err != nil {
		return err
	}
	if err := tx.Bucket(bucketDemographics).Put(key, e.demo); err != nil {
		return err
	}
	return tx.Bucket(bucketPatients).Put(key, patientValue(e.ods, e.version))
}

// PutRecord stores (or replaces) a patient's record at practice ods. The
// resources' JSON is stored as given (it must already be canonical); the
// record's Version is computed from the stored bytes, Warnings are not kept.
// A patient stored under another practice moves to ods.
func (s *Store) PutRecord(ods string, rec *fhir.Record) error {
	e, err := encode(ods, rec, s.sharing)
	if err != nil {
		return fmt.Errorf("embedded: put record: %w", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return writeEncoded(tx, e) }); err != nil {
		return fmt.Errorf("embedded: put record: %w", err)
	}
	return nil
}

// Bulk loads many records quickly: one transaction per batch and no fsync
// until Close, which syncs the file. It is for generation and import only:
// do not serve from the store, nor open two Bulks, while one is open.
type Bulk struct {
	s       *Store
	size    int
	pending []encoded
	n       int
	closed  bool
}

// NewBulk starts a bulk load committing every batch records (default 500).
func (s *Store) NewBulk(batch int) *Bulk {
	if batch <= 0 {
		batch = 500
	}
	s.db.NoSync = true
	return &Bulk{s: s, size: batch, pending: make([]encoded, 0, batch)}
}

// PutRecord queues a record; it is written with its batch.
func (b *Bulk) PutRecord(ods string, rec *fhir.Record) error {
	if b.closed {
		return errors.New("embedded: bulk load is closed")
	}
	e, err := encode(ods, rec, b.s.sharing)
	if err != nil {
		return fmt.Errorf("embedded: bulk put record: %w", err)
	}
	b.pending = append(b.pending, e)
	if len(b.pending) >= b.size {
		return b.flush()
	}
	return nil
}

// Count is the number of records written so far.
func (b *Bulk) Count() int { return b.n }

func (b *Bulk) flush() error {
	if len(b.pending) == 0 {
		return nil
	}
	err := b.s.db.Update(func(tx *bolt.Tx) error {
		for _, e := range b.pending {
			if err := writeEncoded(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("embedded: bulk write: %w", err)
	}
	b.n += len(b.pending)
	b.pending = b.pending[:0]
	return nil
}

// Close writes the last batch, syncs the file and restores durable commits.
func (b *Bulk) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.flush()
	b.s.db.NoSync = false
	if serr := b.s.db.Sync(); err == nil && serr != nil {
		err = fmt.Errorf("embedded: bulk sync: %w", serr)
	}
	return err
}
