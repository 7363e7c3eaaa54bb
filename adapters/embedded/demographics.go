package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// The demographics index: beside each record blob the store keeps a small
// one holding only the record's demographics resources (Patient, practice,
// usual GP) and two facts about the whole record, so a request that returns
// demographics only (Patient search by NHS number, a read of the Patient)
// never reads nor decodes the whole record:
//
//   - the patient's consent to share, computed over the whole record when
//     it was written (by the Store's sharing classifier: the same rule the
//     policy applies, consent.SharingFromRecord, wired by the command);
//   - that the demographics resources reference nothing else in the record
//     (so redacting them alone gives the same bytes as redacting them as
//     part of the whole record).
//
// Demographics vouches for its answer only when both hold; otherwise the
// caller fetches the whole record as before.
var bucketDemographics = []byte("demographics") // NHS -> demographics blob

const demographicsFormat = 1

// Demographics blob flags.
const (
	flagSharingComplete = 1 << iota // sharing byte computed over the whole record
	flagSelfContained               // demographics reference nothing outside them
)

// SharingClassifier derives a record's consent to share from its coded
// entries (consent.SharingFromRecord).
type SharingClassifier func(*fhir.Record) fhir.SharingConsent

// WithSharing sets the classifier applied to every record written, so the
// demographics index carries the whole record's consent to share. Without
// it, records whose Sharing the writer left unknown are not vouched for and
// demographics-only requests read the whole record.
func WithSharing(f SharingClassifier) Option { return func(o *options) { o.sharing = f } }

// encodeDemographics builds the demographics blob of rec: format, sharing,
// flags, count, then each demographics resource as uvarint length + JSON.
func encodeDemographics(rec *fhir.Record, classify SharingClassifier) []byte {
	sharing, flags := rec.Sharing, byte(0)
	if sharing != fhir.SharingUnknown {
		flags |= flagSharingComplete // the source said so: the policy trusts it too
	} else if classify != nil {
		sharing = classify(rec)
		flags |= flagSharingComplete
	}
	other := map[string]bool{}
	var demo []*fhir.Resource
	for _, r := range rec.Resources {
		if r.Ix.Area == fhir.AreaDemographics {
			demo = append(demo, r)
		} else {
			other[r.Type+"/"+r.ID] = true
		}
	}
	self := true
	size := 3 + binary.MaxVarintLen64
	for _, r := range demo {
		size += binary.MaxVarintLen64 + len(r.JSON)
		for _, ref := range fhir.References(r.JSON) {
			self = self && !other[ref]
		}
	}
	if self {
		flags |= flagSelfContained
	}
	b := make([]byte, 0, size)
	b = append(b, demographicsFormat, byte(sharing), flags)
	b = binary.AppendUvarint(b, uint64(len(demo)))
	for _, r := range demo {
		b = binary.AppendUvarint(b, uint64(len(r.JSON)))
		b = append(b, r.JSON...)
	}
	return b
}

// decodeDemographics reads a demographics blob (owned by the caller).
func decodeDemographics(blob []byte) (res []*fhir.Resource, sharing fhir.SharingConsent, flags byte, err error) {
	if len(blob) < 4 || blob[0] != demographicsFormat {
		return nil, 0, 0, errors.New("demographics blob: unknown format")
	}
	sharing, flags = fhir.SharingConsent(blob[1]), blob[2]
	n, k := binary.Uvarint(blob[3:])
	if k <= 0 || n > uint64(len(blob)) {
		return nil, 0, 0, errors.New("demographics blob: bad count")
	}
	p := 3 + k
	res = make([]*fhir.Resource, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(blob[p:])
		if k <= 0 || l > uint64(len(blob)-p-k) {
			return nil, 0, 0, errors.New("demographics blob: truncated")
		}
		p += k
		r, err := fhir.NewResource(blob[p : p+int(l) : p+int(l)])
		if err != nil {
			return nil, 0, 0, fmt.Errorf("demographics blob: resource %d: %w", i, err)
		}
		p += int(l)
		res = append(res, r)
	}
	if p != len(blob) {
		return nil, 0, 0, errors.New("demographics blob: trailing bytes")
	}
	return res, sharing, flags, nil
}

// DemographicsVersion marks the Version of a record holding demographics
// only (Record.Version + this suffix), so caches keyed by version never mix
// it with the whole record.
const DemographicsVersion = "/demographics"

// Demographics returns the demographics part of the patient's record (the
// Patient, practice and usual GP) without reading the rest, with Sharing
// set to the whole record's consent to share. ok is false when the store
// cannot vouch for that (the record was written without a sharing
// classifier, or its demographics reference other parts of it): the caller
// must then fetch the whole record. A patient the practice does not hold is
// PATIENT_NOT_FOUND. The Record is shared with the cache: never modify it.
func (src *Source) Demographics(ctx context.Context, nhs fhir.NHSNumber) (*fhir.Record, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	var (
		version string
		blob    []byte
		hit     *fhir.Record
	)
	err := src.s.db.View(func(tx *bolt.Tx) error {
		var err error
		version, err = src.locate(tx, nhs)
		if err != nil {
			return err
		}
		if hit = src.s.cache.get(cacheKey(nhs, version+DemographicsVersion)); hit != nil {
			return nil
		}
		if b := tx.Bucket(bucketDemographics); b != nil {
			if v := b.Get([]byte(nhs)); v != nil {
				blob = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		if fe, ok := err.(*fhir.Error); ok {
			return nil, false, fe
		}
		return nil, false, fhir.Internal(fmt.Errorf("embedded: read demographics: %w", err))
	}
	if hit != nil {
		return hit, true, nil
	}
	if blob == nil {
		return nil, false, nil // written before the index existed
	}
	res, sharing, flags, err := decodeDemographics(blob)
	if err != nil {
		return nil, false, fhir.Internal(fmt.Errorf("embedded: decode demographics: %w", err))
	}
	if flags&flagSharingComplete == 0 || flags&flagSelfContained == 0 {
		return nil, false, nil
	}
	pid := fhir.PatientID(nhs)
	for _, r := range res {
		if r.Type == "Patient" {
			pid = r.ID
			break
		}
	}
	rec := &fhir.Record{NHS: nhs, PatientID: pid, Practice: src.ods, Version: version + DemographicsVersion, Resources: res, Sharing: sharing}
	cost := int64(len(blob)) + int64(len(res))*resourceOverhead
	return src.s.cache.add(cacheKey(nhs, rec.Version), rec, cost), true, nil
}
