package consent

import (
	"bytes"
	"container/list"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Redaction runs in two passes. The first does not depend on who asks and
// is cached per record version: entries carrying a sensitive code, marked
// confidential at source or uncoded are withheld, free text is stripped
// (allowlist of coded elements), and what referenced a withheld entry stops
// doing so. The second depends on the decision: only what the decision lets
// leave (areas, the summary view) stays, and references to anything that
// does not are removed, so nothing dangles and nothing hints at what was
// held back.

// cleaned is one resource after the area-independent pass.
type cleaned struct {
	src      *fhir.Resource // as the source gave it
	res      *fhir.Resource // after stripping and reference pruning; nil: withheld
	withheld bool
	refs     []string // relative references of res to other resources ("Type/id")
	targets  []int    // per refs: the item it points at, or refKept / refMissing
	variants map[string]*fhir.Resource
}

// Targets of a reference that is not an item of the record.
const (
	refKept    = -1 // contained ("#id") or the record's own Patient: always kept
	refMissing = -2 // not in the record: always dropped
)

// cleanRecord is the area-independent pass over one record.
type cleanRecord struct {
	self  string // "Patient/<id>" of the record's patient
	items []cleaned
	index map[string]int // "Type/id" -> item
	size  int            // bytes of JSON the entry keeps alive

	mu sync.Mutex // guards items[*].variants and size
}

func newCleanRecord(rec *fhir.Record, excl *Exclusions) *cleanRecord {
	cr := &cleanRecord{self: "Patient/" + rec.PatientID, items: make([]cleaned, len(rec.Resources)), index: make(map[string]int, len(rec.Resources))}
	for i, r := range rec.Resources {
		it := &cr.items[i]
		it.src = r
		cr.index[r.Type+"/"+r.ID] = i
		cr.size += len(r.JSON)
		demographic := r.Ix.Area == fhir.AreaDemographics
		if !demographic && (r.Ix.Confidential || excl.Sensitive(r)) {
			it.withheld = true
			continue
		}
		// Only the elements on the allowlist of coded and structural
		// elements leave (consent/coded.go).
		nr, withhold, err := keepCoded(r)
		if err != nil || withhold {
			// Unreadable JSON, an entry that was only free text, a
			// modifier or a type not on the allowlist: withhold rather
			// than risk it.
			it.withheld = true
			continue
		}
		it.res = nr
		if nr != r {
			cr.size += len(nr.JSON)
		}
	}
	// What pointed at a withheld entry: drop the reference, or withhold the
	// entry too when the reference is one it cannot stand without.
	visible := func(i int) bool { return !cr.items[i].withheld }
	for changed := true; changed; {
		changed = false
		for i := range cr.items {
			it := &cr.items[i]
			if it.withheld {
				continue
			}
			drop := cr.dangling(it.res, visible)
			if len(drop) == 0 {
				continue
			}
			nr, withhold := pruneReferences(it.res, drop)
			if withhold {
				it.withheld, it.res, changed = true, nil, true
				continue
			}
			cr.size += len(nr.JSON)
			it.res = nr
		}
	}
	for i := range cr.items {
		if it := &cr.items[i]; !it.withheld {
			it.refs = fhir.References(it.res.JSON)
			it.targets = make([]int, len(it.refs))
			for k, ref := range it.refs {
				j, ok := cr.index[ref]
				switch {
				case strings.HasPrefix(ref, "#") || ref == cr.self:
					j = refKept
				case !ok:
					j = refMissing
				}
				it.targets[k] = j
			}
		}
	}
	return cr
}

// dangling lists the references of r that do not resolve to a visible
// resource of the record. References to the resource's contained resources
// ("#id") and to the record's own Patient (every clinical resource's
// subject, whether or not the caller may read the Patient) are kept.
func (cr *cleanRecord) dangling(r *fhir.Resource, visible func(int) bool) map[string]bool {
	var drop map[string]bool
	for _, ref := range fhir.References(r.JSON) {
		if strings.HasPrefix(ref, "#") || ref == cr.self {
			continue
		}
		if i, ok := cr.index[ref]; ok && visible(i) {
			continue
		}
		if drop == nil {
			drop = map[string]bool{}
		}
		drop[ref] = true
	}
	return drop
}

// filter is the decision-dependent pass.
func (cr *cleanRecord) filter(rec *fhir.Record, dec fhir.Decision, now time.Time) (*fhir.Record, bool) {
	n := len(cr.items)
	visible := make([]bool, n)
	withheld := false
	inScope := func(r *fhir.Resource) bool {
		return r.Ix.Area == fhir.AreaDemographics || dec.Areas.Any(r.Ix.Area)
	}
	for i := range cr.items {
		it := &cr.items[i]
		if it.withheld {
			withheld = withheld || (dec.Permit && inScope(it.src))
			continue
		}
		visible[i] = dec.Visible(it.src, now)
	}
	// Under a summary-only medication area, the Medication of a current
	// statement or authorisation goes with it.
	if dec.Summary.Any(fhir.AreaMedication) {
		for i := range cr.items {
			it := &cr.items[i]
			if !visible[i] || it.src.Ix.MedicationRef == "" {
				continue
			}
			if j, ok := cr.index[it.src.Ix.MedicationRef]; ok && !cr.items[j].withheld {
				visible[j] = true
			}
		}
	}
	out := make([]*fhir.Resource, n)
	for changed := true; changed; {
		changed = false
		for i := range cr.items {
			if !visible[i] {
				continue
			}
			it := &cr.items[i]
			var drop []string
			for k, j := range it.targets { // resolved once per record version
				if j == refKept {
					continue
				}
				if j == refMissing || !visible[j] {
					drop = append(drop, it.refs[k])
				}
			}
			if len(drop) == 0 {
				out[i] = it.res
				continue
			}
			r, withhold := cr.variant(i, drop)
			if withhold {
				// It cannot stand without what the decision holds back:
				// it is held back too (not a withholding to signal: the
				// caller's decision, not the record, keeps it out).
				visible[i], out[i], changed = false, nil, true
				continue
			}
			out[i] = r
		}
	}
	nr := &fhir.Record{NHS: rec.NHS, PatientID: rec.PatientID, Practice: rec.Practice, Version: rec.Version, Sharing: rec.Sharing,
		Resources: make([]*fhir.Resource, 0, n)}
	for i, r := range out {
		if visible[i] && r != nil {
			nr.Resources = append(nr.Resources, r)
		}
	}
	nr.Warnings = append(make([]fhir.Issue, 0, len(rec.Warnings)+1), rec.Warnings...)
	if withheld {
		dup := false
		for _, w := range rec.Warnings {
			dup = dup || w.Code == fhir.WarnConfidentialItems
		}
		if !dup {
			nr.Warnings = append(nr.Warnings, fhir.Issue{Severity: "warning", Code: fhir.WarnConfidentialItems,
				Diagnostics: "Some items are not shared with this organisation."})
		}
	}
	return nr, withheld
}

// variant returns item i with the references drop removed, cached.
func (cr *cleanRecord) variant(i int, drop []string) (*fhir.Resource, bool) {
	sort.Strings(drop)
	key := strings.Join(drop, " ")
	cr.mu.Lock()
	it := &cr.items[i]
	if r, ok := it.variants[key]; ok {
		cr.mu.Unlock()
		return r, r == nil
	}
	cr.mu.Unlock()
	set := make(map[string]bool, len(drop))
	for _, d := range drop {
		set[d] = true
	}
	r, withhold := pruneReferences(it.res, set)
	if withhold {
		r = nil
	}
	cr.mu.Lock()
	if it.variants == nil {
		it.variants = map[string]*fhir.Resource{}
	}
	if _, ok := it.variants[key]; !ok {
		it.variants[key] = r
		if r != nil {
			cr.size += len(r.JSON)
		}
	}
	cr.mu.Unlock()
	return r, withhold
}

// requiredReferences are reference elements a resource cannot stand
// without (R4 cardinality 1..1 and not to the Patient): when what they point
// at is held back, the resource is held back too.
var requiredReferences = map[string]bool{
	"medicationReference": true, // MedicationStatement, MedicationRequest: medication[x] 1..1
}

// pruneReferences removes every Reference whose reference is in drop: the
// array element holding it (a reasonReference entry, an Encounter.diagnosis
// entry) or, outside arrays, the element itself; emptied objects and arrays
// go too. withhold reports a reference in requiredReferences.
func pruneReferences(r *fhir.Resource, drop map[string]bool) (*fhir.Resource, bool) {
	dec := json.NewDecoder(bytes.NewReader(r.JSON))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, true
	}
	withhold := false
	isDropped := func(v any) bool {
		o, ok := v.(map[string]any)
		if !ok {
			return false
		}
		s, ok := o["reference"].(string)
		return ok && drop[s]
	}
	// walk prunes o in place; it reports that o, an element of an array,
	// lost a reference of its own (then the element goes: an
	// Encounter.diagnosis entry without its condition means nothing).
	var walk func(o map[string]any, inArray bool) bool
	walk = func(o map[string]any, inArray bool) bool {
		lost := false
		for k, v := range o {
			switch x := v.(type) {
			case map[string]any:
				if isDropped(x) {
					if requiredReferences[k] {
						withhold = true
					}
					delete(o, k)
					lost = true
					continue
				}
				walk(x, false)
				if len(x) == 0 {
					delete(o, k)
				}
			case []any:
				kept := x[:0]
				for _, e := range x {
					if isDropped(e) {
						continue
					}
					if eo, ok := e.(map[string]any); ok {
						if walk(eo, true) || len(eo) == 0 {
							continue
						}
					}
					kept = append(kept, e)
				}
				if len(kept) == 0 {
					delete(o, k)
				} else {
					o[k] = kept
				}
			}
		}
		return lost && inArray && o["resourceType"] == nil
	}
	walk(m, false)
	if withhold {
		return nil, true
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, true
	}
	nr, err := fhir.NewResource(bytes.TrimRight(buf.Bytes(), "\n"))
	if err != nil {
		return nil, true
	}
	// Keep what the record assembly linked (codes of a referenced
	// Medication), which the bytes alone do not say.
	nr.Ix.Code = r.Ix.Code
	return nr, false
}

// Redact returns a new Record holding only what may leave under dec at
// now: resources the decision lets out (fhir.Decision.Visible; demographics
// always), without entries carrying a code of excl (nil: none), entries the
// source marks confidential (Index.Confidential) or uncoded entries, with
// free text removed, and with every reference to something that does not
// leave removed. withheld reports that something in the permitted areas was
// held back; the new Record then carries a confidential-items warning that
// does not say what. rec is never modified.
func Redact(rec *fhir.Record, dec fhir.Decision, now time.Time, excl *Exclusions) (*fhir.Record, bool) {
	return newCleanRecord(rec, excl).filter(rec, dec, now)
}

// Redactor is Redact with a cache of the area-independent pass, keyed by
// practice, patient and Record.Version (a record without a Version is not
// cached), bounded by the bytes of JSON its entries keep alive (sources'
// resources included: a cached entry pins them). Safe for concurrent use.
type Redactor struct {
	excl     *Exclusions
	maxBytes int

	mu    sync.Mutex
	ll    *list.List
	items map[string]*list.Element
	bytes int
}

type cacheEntry struct {
	key   string
	first *fhir.Resource // identity check: same version, same resources
	n     int
	cr    *cleanRecord
	size  int // cr.size when last accounted
}

// DefaultRedactorBytes bounds a Redactor's cache when no bound is given.
const DefaultRedactorBytes = 64 << 20

// NewRedactor returns a Redactor for excl whose cache keeps at most
// maxBytes of JSON alive (DefaultRedactorBytes when maxBytes <= 0).
func NewRedactor(excl *Exclusions, maxBytes int) *Redactor {
	if maxBytes <= 0 {
		maxBytes = DefaultRedactorBytes
	}
	return &Redactor{excl: excl, maxBytes: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

// Redact is the package Redact, cached.
func (z *Redactor) Redact(rec *fhir.Record, dec fhir.Decision, now time.Time) (*fhir.Record, bool) {
	if rec.Version == "" || len(rec.Resources) == 0 {
		return Redact(rec, dec, now, z.excl)
	}
	key := rec.Practice + "\x00" + rec.PatientID + "\x00" + rec.Version
	z.mu.Lock()
	if el, ok := z.items[key]; ok {
		e := el.Value.(*cacheEntry)
		if e.n == len(rec.Resources) && e.first == rec.Resources[0] {
			z.ll.MoveToFront(el)
			z.mu.Unlock()
			out, w := e.cr.filter(rec, dec, now)
			z.account(e)
			return out, w
		}
	}
	z.mu.Unlock()
	cr := newCleanRecord(rec, z.excl)
	e := &cacheEntry{key: key, first: rec.Resources[0], n: len(rec.Resources), cr: cr}
	z.mu.Lock()
	if el, ok := z.items[key]; ok {
		z.bytes -= el.Value.(*cacheEntry).size
		z.ll.Remove(el)
	}
	z.items[key] = z.ll.PushFront(e)
	z.mu.Unlock()
	out, w := cr.filter(rec, dec, now)
	z.account(e)
	return out, w
}

// account brings the cache's byte count up to date with e (variants grow an
// entry) and evicts the least recently used entries over the bound. The
// newest entry always stays, whatever its size.
func (z *Redactor) account(e *cacheEntry) {
	e.cr.mu.Lock()
	size := e.cr.size
	e.cr.mu.Unlock()
	z.mu.Lock()
	defer z.mu.Unlock()
	if el, ok := z.items[e.key]; ok && el.Value.(*cacheEntry) == e {
		z.bytes += size - e.size
		e.size = size
	}
	for z.bytes > z.maxBytes && z.ll.Len() > 1 {
		old := z.ll.Back()
		oe := old.Value.(*cacheEntry)
		z.ll.Remove(old)
		delete(z.items, oe.key)
		z.bytes -= oe.size
	}
}

// Len is the number of cached records.
func (z *Redactor) Len() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.ll.Len()
}

// Bytes is the JSON the cache keeps alive.
func (z *Redactor) Bytes() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.bytes
}
