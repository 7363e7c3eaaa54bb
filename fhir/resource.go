package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Resource is one FHIR R4 resource held as its canonical JSON bytes, rendered
// once, plus the few fields search and policy need, extracted at the same time.
// JSON must not be modified after construction: Bundles splice it as is.
type Resource struct {
	Type string
	ID   string
	JSON []byte
	Ix   Index
}

// Coding is a system|code pair.
type Coding struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`
}

// Index holds the searchable and policy-relevant fields of a resource.
type Index struct {
	Area           Area
	Patient        string   // logical id of the subject Patient ("" for Patient itself)
	Category       []Coding // category (Condition, Observation, ...)
	Code           []Coding // code / medicationCodeableConcept / vaccineCode
	Status         string
	ClinicalStatus string
	Intent         string
	Start, End     time.Time // clinically relevant date as a period; zero when absent
	LastUpdated    time.Time
	Confidential   bool // meta.security carries a restricted/confidential label
	// MedicationRef is the "Medication/id" a MedicationStatement or
	// MedicationRequest points at; LinkMedicationCodes copies that
	// Medication's codes into Code so `code` searches find it.
	MedicationRef string
}

// Reference is the relative reference "Type/id".
func (r *Resource) Reference() string { return r.Type + "/" + r.ID }

// HasCode reports whether any of the resource's codes matches system|code.
// An empty system matches any system; an empty code matches any code of system.
func HasCoding(cs []Coding, system, code string) bool {
	for _, c := range cs {
		if (system == "" || c.System == system) && (code == "" || c.Code == code) {
			return true
		}
	}
	return false
}

// skeleton is the subset of R4 elements the index reads. Choice types are
// listed under each of their names.
type skeleton struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		LastUpdated string   `json:"lastUpdated"`
		Security    []Coding `json:"security"`
	} `json:"meta"`
	Subject        *ref        `json:"subject"`
	Patient        *ref        `json:"patient"`
	Category       rawConcepts `json:"category"`
	Code           *concept    `json:"code"`
	MedicationCC   *concept    `json:"medicationCodeableConcept"`
	MedicationRef  *ref        `json:"medicationReference"`
	VaccineCode    *concept    `json:"vaccineCode"`
	Status         string      `json:"status"`
	ClinicalStatus *concept    `json:"clinicalStatus"`
	Intent         string      `json:"intent"`

	OnsetDateTime     string  `json:"onsetDateTime"`
	OnsetPeriod       *period `json:"onsetPeriod"`
	RecordedDate      string  `json:"recordedDate"`
	EffectiveDateTime string  `json:"effectiveDateTime"`
	EffectivePeriod   *period `json:"effectivePeriod"`
	DateAsserted      string  `json:"dateAsserted"`
	AuthoredOn        string  `json:"authoredOn"`
	Issued            string  `json:"issued"`
	Period            *period `json:"period"`
	PerformedDateTime string  `json:"performedDateTime"`
	PerformedPeriod   *period `json:"performedPeriod"`
	DateTime          string  `json:"dateTime"`
	OccurrenceDate    string  `json:"occurrenceDateTime"`
	Date              string  `json:"date"`
	ReceivedTime      string  `json:"receivedTime"`
	Collection        *struct {
		CollectedDateTime string `json:"collectedDateTime"`
	} `json:"collection"`
}

type ref struct {
	Reference string `json:"reference"`
}
type concept struct {
	Coding []Coding `json:"coding"`
}
type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// rawConcepts accepts both a single CodeableConcept and a list (Flag.category
// and Observation.category are lists, ServiceRequest.category too).
type rawConcepts []concept

func (r *rawConcepts) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var l []json.RawMessage
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		for _, e := range l {
			var c concept
			if len(e) > 0 && e[0] == '"' { // AllergyIntolerance.category is a list of codes
				var code string
				if err := json.Unmarshal(e, &code); err != nil {
					return err
				}
				c.Coding = []Coding{{Code: code}}
			} else if err := json.Unmarshal(e, &c); err != nil {
				return err
			}
			*r = append(*r, c)
		}
		return nil
	}
	var c concept
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	*r = []concept{c}
	return nil
}

// NewResource indexes canonical JSON bytes. It does not validate them against
// R4; use Canonicalize for that at ingest.
func NewResource(raw []byte) (*Resource, error) {
	var s skeleton
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("index resource: %w", err)
	}
	if s.ResourceType == "" || s.ID == "" {
		return nil, fmt.Errorf("index resource: resourceType and id are required")
	}
	r := &Resource{Type: s.ResourceType, ID: s.ID, JSON: raw}
	ix := &r.Ix
	if s.Subject != nil {
		ix.Patient = patientID(s.Subject.Reference)
	} else if s.Patient != nil {
		ix.Patient = patientID(s.Patient.Reference)
	}
	for _, c := range s.Category {
		ix.Category = append(ix.Category, c.Coding...)
	}
	if s.Code != nil {
		ix.Code = s.Code.Coding
	} else if s.MedicationCC != nil {
		ix.Code = s.MedicationCC.Coding
	} else if s.VaccineCode != nil {
		ix.Code = s.VaccineCode.Coding
	}
	if s.MedicationRef != nil {
		ix.MedicationRef = s.MedicationRef.Reference
	}
	ix.Status = s.Status
	if s.ClinicalStatus != nil && len(s.ClinicalStatus.Coding) > 0 {
		ix.ClinicalStatus = s.ClinicalStatus.Coding[0].Code
	}
	ix.Intent = s.Intent
	ix.LastUpdated, _ = ParseInstantLoose(s.Meta.LastUpdated)
	for _, sec := range s.Meta.Security {
		if sec.Code == "R" || sec.Code == "V" || sec.Code == "NOPAT" {
			ix.Confidential = true
		}
	}
	ix.Start, ix.End = clinicalDate(&s)
	ix.Area = areaOf(r.Type, ix)
	return r, nil
}

func patientID(reference string) string {
	if id, ok := strings.CutPrefix(reference, "Patient/"); ok {
		return id
	}
	return ""
}

// clinicalDate picks the date element each type is searched by (the `date`,
// `onset-date`, `authoredon`, `effective` search parameters), as a period.
func clinicalDate(s *skeleton) (time.Time, time.Time) {
	single := func(v string) (time.Time, time.Time, bool) {
		if v == "" {
			return time.Time{}, time.Time{}, false
		}
		d, err := ParseDate(v)
		if err != nil {
			return time.Time{}, time.Time{}, false
		}
		return d.Start, d.End, true
	}
	per := func(p *period) (time.Time, time.Time, bool) {
		if p == nil || (p.Start == "" && p.End == "") {
			return time.Time{}, time.Time{}, false
		}
		var a, b time.Time
		if d, err := ParseDate(p.Start); err == nil {
			a = d.Start
		}
		if d, err := ParseDate(p.End); err == nil {
			b = d.End
		}
		if b.IsZero() {
			b = maxTime
		}
		return a, b, true
	}
	type cand func() (time.Time, time.Time, bool)
	var cands []cand
	switch s.ResourceType {
	case "Condition":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.OnsetDateTime) }, func() (time.Time, time.Time, bool) { return per(s.OnsetPeriod) }, func() (time.Time, time.Time, bool) { return single(s.RecordedDate) }}
	case "AllergyIntolerance":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.RecordedDate) }, func() (time.Time, time.Time, bool) { return single(s.OnsetDateTime) }}
	case "MedicationStatement", "Observation", "DiagnosticReport":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.EffectiveDateTime) }, func() (time.Time, time.Time, bool) { return per(s.EffectivePeriod) }, func() (time.Time, time.Time, bool) { return single(s.DateAsserted) }, func() (time.Time, time.Time, bool) { return single(s.Issued) }}
	case "MedicationRequest", "ServiceRequest":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.AuthoredOn) }}
	case "Encounter", "Flag":
		cands = []cand{func() (time.Time, time.Time, bool) { return per(s.Period) }}
	case "Procedure":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.PerformedDateTime) }, func() (time.Time, time.Time, bool) { return per(s.PerformedPeriod) }}
	case "Immunization":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.OccurrenceDate) }, func() (time.Time, time.Time, bool) { return single(s.RecordedDate) }}
	case "Consent":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.DateTime) }}
	case "List":
		cands = []cand{func() (time.Time, time.Time, bool) { return single(s.Date) }}
	case "Specimen":
		cands = []cand{func() (time.Time, time.Time, bool) {
			if s.Collection == nil {
				return time.Time{}, time.Time{}, false
			}
			return single(s.Collection.CollectedDateTime)
		}, func() (time.Time, time.Time, bool) { return single(s.ReceivedTime) }}
	}
	for _, c := range cands {
		if a, b, ok := c(); ok {
			return a, b
		}
	}
	return time.Time{}, time.Time{}
}

// SNOMED, LOINC and category systems used to place a resource in its area.
const (
	SNOMED                    = "http://snomed.info/sct"
	LOINC                     = "http://loinc.org"
	ReadV2                    = "http://read.info/readv2"
	CTV3                      = "http://read.info/ctv3"
	DMD                       = "https://dmd.nhs.uk"
	ConditionCategorySystem   = "http://terminology.hl7.org/CodeSystem/condition-category"
	ObservationCategorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	LOINCBloodPressurePanel   = "85354-9"
	LOINCSystolic             = "8480-6"
	LOINCDiastolic            = "8462-4"
)

// SortByDateDesc orders resources newest first (by clinical date, then
// lastUpdated, then id for a stable order).
func SortByDateDesc(rs []*Resource) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if !a.Ix.Start.Equal(b.Ix.Start) {
			return a.Ix.Start.After(b.Ix.Start)
		}
		return a.ID < b.ID
	})
}

// SortByDateAsc orders resources oldest first.
func SortByDateAsc(rs []*Resource) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if !a.Ix.Start.Equal(b.Ix.Start) {
			return a.Ix.Start.Before(b.Ix.Start)
		}
		return a.ID < b.ID
	})
}

// SortByLastUpdatedDesc orders resources by meta.lastUpdated, newest first.
func SortByLastUpdatedDesc(rs []*Resource) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if !a.Ix.LastUpdated.Equal(b.Ix.LastUpdated) {
			return a.Ix.LastUpdated.After(b.Ix.LastUpdated)
		}
		return a.ID < b.ID
	})
}

// LinkMedicationCodes gives each MedicationStatement and MedicationRequest
// that names its drug by reference the codes of the Medication it points at,
// so a `code` search (system|code of the drug) finds it. Call it once per
// record, when the record is assembled and before it is shared.
func LinkMedicationCodes(rs []*Resource) {
	meds := map[string][]Coding{}
	for _, r := range rs {
		if r.Type == "Medication" {
			meds["Medication/"+r.ID] = r.Ix.Code
		}
	}
	for _, r := range rs {
		if r.Ix.MedicationRef != "" && len(r.Ix.Code) == 0 {
			r.Ix.Code = meds[r.Ix.MedicationRef]
		}
	}
}

var refKey = []byte(`"reference":"`)

// References lists the Reference.reference values in canonical JSON
// ("Type/id", "urn:uuid:...", absolute URLs) by scanning the bytes: cheap
// enough for the request path, no decoding.
func References(js []byte) []string {
	var out []string
	for {
		i := bytes.Index(js, refKey)
		if i < 0 {
			return out
		}
		js = js[i+len(refKey):]
		j := bytes.IndexByte(js, '"')
		if j < 0 {
			return out
		}
		out = append(out, string(js[:j]))
		js = js[j:]
	}
}
