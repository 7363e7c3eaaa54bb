package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// Source is the view of one practice in the store. It implements
// adapters.Source, adapters.Enumerator and adapters.AccessRecorder.
type Source struct {
	s   *Store
	ods string
}

// Source returns the view of practice ods. The practice need not exist yet:
// a Source of an unknown practice holds no patients.
func (s *Store) Source(ods string) *Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.sources[ods]; ok {
		return src
	}
	src := &Source{s: s, ods: ods}
	s.sources[ods] = src
	return src
}

// ODS is the practice code of the view.
func (src *Source) ODS() string { return src.ods }

func notFound() error {
	return fhir.Errorf(fhir.CodePatientNotFound, "no patient with that NHS number is held by the practice")
}

// Record returns the patient's record, keeping only the resources in areas
// (the Patient and the other demographics resources are always kept). The
// returned Record and its Resources are shared with the cache and with other
// callers: never modify them. A patient the practice does not hold is a
// PATIENT_NOT_FOUND error.
func (src *Source) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	full, err := src.full(nhs)
	if err != nil {
		return nil, err
	}
	return filter(full, areas|fhir.AreaDemographics), nil
}

// locate checks that the practice holds the patient and returns the
// record's version.
func (src *Source) locate(tx *bolt.Tx, nhs fhir.NHSNumber) (string, error) {
	v := tx.Bucket(bucketPatients).Get([]byte(nhs))
	if v == nil {
		return "", notFound()
	}
	ods, ver, ok := parsePatientValue(v)
	if !ok {
		return "", fmt.Errorf("patient entry is malformed")
	}
	if ods != src.ods {
		return "", notFound()
	}
	return ver, nil
}

// full returns the cached or freshly decoded complete record.
func (src *Source) full(nhs fhir.NHSNumber) (*fhir.Record, error) {
	var (
		version string
		blob    []byte
		hit     *fhir.Record
	)
	err := src.s.db.View(func(tx *bolt.Tx) error {
		var err error
		if version, err = src.locate(tx, nhs); err != nil {
			return err
		}
		if hit = src.s.cache.get(cacheKey(nhs, version)); hit != nil {
			return nil
		}
		b := tx.Bucket(bucketRecords).Get([]byte(nhs))
		if b == nil {
			return fmt.Errorf("patient has no record blob")
		}
		blob = append([]byte(nil), b...)
		return nil
	})
	if err != nil {
		if fe, ok := err.(*fhir.Error); ok {
			return nil, fe
		}
		return nil, fhir.Internal(fmt.Errorf("embedded: read record: %w", err))
	}
	if hit != nil {
		return hit, nil
	}
	res, sharing, err := decode(blob)
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("embedded: decode record: %w", err))
	}
	p := res[0]
	if p.Type != "Patient" {
		for _, r := range res {
			if r.Type == "Patient" {
				p = r
				break
			}
		}
	}
	rec := &fhir.Record{
		NHS:       nhs,
		PatientID: p.ID,
		Practice:  src.ods,
		Version:   version,
		Resources: res,
		Sharing:   sharing,
	}
	cost := int64(len(blob)) + int64(len(res))*resourceOverhead
	return src.s.cache.add(cacheKey(nhs, version), rec, cost), nil
}

// resourceOverhead approximates the memory of one decoded Resource beyond
// its JSON (struct, index slices, strings).
const resourceOverhead = 320

func cacheKey(nhs fhir.NHSNumber, version string) string {
	return string(nhs) + "\x00" + version
}

// filter returns rec itself when every resource is inside areas, otherwise a
// shallow copy holding only those that are.
func filter(rec *fhir.Record, areas fhir.Areas) *fhir.Record {
	keep := 0
	for _, r := range rec.Resources {
		if areas.Any(r.Ix.Area) {
			keep++
		}
	}
	if keep == len(rec.Resources) {
		return rec
	}
	out := *rec
	out.Resources = make([]*fhir.Resource, 0, keep)
	for _, r := range rec.Resources {
		if areas.Any(r.Ix.Area) {
			out.Resources = append(out.Resources, r)
		}
	}
	return &out
}

// Patients lists the NHS numbers of the practice's patients in order.
// Records stored under a number that fails Modulus 11 are kept by the store
// but never listed: no request can name them.
func (src *Source) Patients(ctx context.Context) ([]fhir.NHSNumber, error) {
	var out []fhir.NHSNumber
	err := src.s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPatients).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			ods, _, ok := parsePatientValue(v)
			if !ok || ods != src.ods || !fhir.ValidNHSNumber(string(k)) {
				continue
			}
			out = append(out, fhir.NHSNumber(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: list patients of %s: %w", src.ods, err)
	}
	return out, nil
}

// Access is one access to a patient's record as the practice's own trail
// keeps it: no break-glass reason, no query, no clinician name.
type Access struct {
	Time        time.Time `json:"t"`
	Action      string    `json:"action,omitempty"`
	Outcome     string    `json:"outcome"`
	Code        fhir.Code `json:"code,omitempty"`
	ClientID    string    `json:"client,omitempty"`
	ConsumerODS string    `json:"org,omitempty"`
	BreakGlass  bool      `json:"bg,omitempty"`
	RequestID   string    `json:"req,omitempty"`
}

// RecordAccess appends an access to the patient's trail at the practice
// (adapters.AccessRecorder). It returns once the access is queued: accesses
// are written in groups, one transaction and one fsync per group, within
// one commit's time, and always before Close returns; Store.Flush waits for
// them (see accessWriter). A patient the practice does not hold is
// PATIENT_NOT_FOUND; while writes fail, accesses are refused with the
// error.
func (src *Source) RecordAccess(ctx context.Context, nhs fhir.NHSNumber, e *fhir.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("embedded: record access: no entry")
	}
	a := Access{
		Time: e.Time.UTC(), Action: e.Action, Outcome: e.Outcome, Code: e.Code,
		ClientID: e.ClientID, ConsumerODS: e.ConsumerODS, BreakGlass: e.BreakGlass, RequestID: e.RequestID,
	}
	if e.Time.IsZero() {
		a.Time = src.s.now().UTC()
	}
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("embedded: record access: %w", err)
	}
	err = src.s.db.View(func(tx *bolt.Tx) error {
		_, err := src.locate(tx, nhs)
		return err
	})
	if err == nil {
		err = src.s.accesses.write(ctx, src.ods, nhs, v)
	}
	if fe, ok := err.(*fhir.Error); ok {
		return fe
	}
	if err != nil {
		return fmt.Errorf("embedded: record access: %w", err)
	}
	return nil
}

// Accesses returns the patient's access trail at the practice, oldest
// first, including every access recorded before the call.
func (src *Source) Accesses(ctx context.Context, nhs fhir.NHSNumber) ([]Access, error) {
	if err := src.s.accesses.flush(ctx); err != nil && !errors.Is(err, errStoreClosed) {
		return nil, fmt.Errorf("embedded: read accesses: %w", err)
	}
	var out []Access
	err := src.s.db.View(func(tx *bolt.Tx) error {
		pv := tx.Bucket(bucketPatients).Get([]byte(nhs))
		if ods, _, ok := parsePatientValue(pv); pv == nil || !ok || ods != src.ods {
			return notFound()
		}
		b := tx.Bucket(bucketAccess).Bucket([]byte(nhs))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var a Access
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if fe, ok := err.(*fhir.Error); ok {
		return nil, fe
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: read accesses: %w", err)
	}
	return out, nil
}
