package consent

import (
	"bytes"
	"container/list"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/gpgate/gpgate/fhir"
)

// cleaned is one resource after the area-independent pass.
type cleaned struct {
	res      *fhir.Resource // nil: withheld
	area     fhir.Area      // of the original
	withheld bool
}

// cleanRecord runs the area-independent part of redaction: withhold
// sensitive, confidential and uncoded entries; strip free text.
func cleanRecord(rec *fhir.Record, excl *Exclusions) []cleaned {
	out := make([]cleaned, len(rec.Resources))
	for i, r := range rec.Resources {
		out[i].area = r.Ix.Area
		demographic := r.Ix.Area == fhir.AreaDemographics
		if !demographic && (r.Ix.Confidential || excl.Sensitive(r)) {
			out[i].withheld = true
			continue
		}
		nr, uncoded, err := stripFreeText(r)
		if err != nil || (uncoded && !demographic) {
			// Unreadable canonical JSON or an entry that was only free
			// text: withhold rather than risk it.
			out[i].withheld = true
			continue
		}
		out[i].res = nr
	}
	return out
}

// filter builds the redacted record from cleaned resources.
func filter(rec *fhir.Record, cl []cleaned, areas fhir.Areas) (*fhir.Record, bool) {
	nr := &fhir.Record{NHS: rec.NHS, PatientID: rec.PatientID, Practice: rec.Practice, Version: rec.Version, Sharing: rec.Sharing,
		Resources: make([]*fhir.Resource, 0, len(cl))}
	withheld := false
	for _, c := range cl {
		in := c.area == fhir.AreaDemographics || areas.Any(c.area)
		if !in {
			continue
		}
		if c.withheld {
			withheld = true
			continue
		}
		nr.Resources = append(nr.Resources, c.res)
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

// Redact returns a new Record holding only what may leave: resources in
// areas (demographics always), without entries carrying a code of excl
// (nil: none), without entries the source marks confidential
// (Index.Confidential), without uncoded entries, and with free text
// (narrative, note, comment, CodeableConcept.text and other text elements
// except Dosage.text, which is the prescription's instruction) removed from
// the JSON. withheld reports that something in the permitted areas was
// held back; the new Record then carries a confidential-items warning that
// does not say what. rec is never modified.
//
// References are left as they are: a reference to a withheld resource
// dangles, as in GP Connect, and says nothing about what it pointed to
// beyond its id.
func Redact(rec *fhir.Record, areas fhir.Areas, excl *Exclusions) (*fhir.Record, bool) {
	return filter(rec, cleanRecord(rec, excl), areas)
}

// Redactor is Redact with a bounded cache of the area-independent pass,
// keyed by practice, patient and Record.Version (a record without a
// Version is not cached). Safe for concurrent use.
type Redactor struct {
	excl *Exclusions
	max  int

	mu    sync.Mutex
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	key   string
	first *fhir.Resource // identity check: same version, same resources
	n     int
	cl    []cleaned
}

// NewRedactor returns a Redactor for excl caching up to size records
// (default 4096 when size <= 0).
func NewRedactor(excl *Exclusions, size int) *Redactor {
	if size <= 0 {
		size = 4096
	}
	return &Redactor{excl: excl, max: size, ll: list.New(), items: map[string]*list.Element{}}
}

// Redact is the package Redact, cached.
func (z *Redactor) Redact(rec *fhir.Record, areas fhir.Areas) (*fhir.Record, bool) {
	if rec.Version == "" || len(rec.Resources) == 0 {
		return Redact(rec, areas, z.excl)
	}
	key := rec.Practice + "\x00" + rec.PatientID + "\x00" + rec.Version
	z.mu.Lock()
	if el, ok := z.items[key]; ok {
		e := el.Value.(*cacheEntry)
		if e.n == len(rec.Resources) && e.first == rec.Resources[0] {
			z.ll.MoveToFront(el)
			z.mu.Unlock()
			return filter(rec, e.cl, areas)
		}
	}
	z.mu.Unlock()
	cl := cleanRecord(rec, z.excl)
	z.mu.Lock()
	if el, ok := z.items[key]; ok {
		z.ll.Remove(el)
	}
	z.items[key] = z.ll.PushFront(&cacheEntry{key: key, first: rec.Resources[0], n: len(rec.Resources), cl: cl})
	for z.ll.Len() > z.max {
		old := z.ll.Back()
		z.ll.Remove(old)
		delete(z.items, old.Value.(*cacheEntry).key)
	}
	z.mu.Unlock()
	return filter(rec, cl, areas)
}

// Len is the number of cached records.
func (z *Redactor) Len() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.ll.Len()
}

// Free-text element names. "text" is narrative on a resource, the text of
// a CodeableConcept, an Annotation, a HumanName, an Address, a reference
// range...: all free text, except Dosage.text (kept with the dosage).
var freeTextKeys = [][]byte{[]byte(`"text":`), []byte(`"note":`), []byte(`"comment":`)}

func mayHaveFreeText(raw []byte) bool {
	for _, k := range freeTextKeys {
		if bytes.Contains(raw, k) {
			return true
		}
	}
	return false
}

// primaryCodeKeys name the element that makes an entry coded; when it held
// only text the entry is uncoded free text.
var primaryCodeKeys = []string{"code", "medicationCodeableConcept", "vaccineCode"}

// stripFreeText returns r, or a re-rendered copy without free text;
// uncoded reports that the entry's primary code was text only.
func stripFreeText(r *fhir.Resource) (*fhir.Resource, bool, error) {
	if !mayHaveFreeText(r.JSON) {
		return r, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.JSON))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false, fmt.Errorf("redact: %w", err)
	}
	hadCode := map[string]bool{}
	for _, k := range primaryCodeKeys {
		_, hadCode[k] = m[k]
	}
	if !strip(m, false) {
		return r, false, nil
	}
	uncoded := false
	for _, k := range primaryCodeKeys {
		if _, now := m[k]; hadCode[k] && !now {
			uncoded = true
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, false, fmt.Errorf("redact: %w", err)
	}
	nr, err := fhir.NewResource(bytes.TrimRight(buf.Bytes(), "\n"))
	if err != nil {
		return nil, false, err
	}
	return nr, uncoded, nil
}

// strip removes free-text elements from an object in place and prunes
// emptied objects and arrays. inDosage marks a Dosage element, whose text
// stays. It reports whether anything changed.
func strip(m map[string]any, inDosage bool) bool {
	changed := false
	for k, v := range m {
		switch k {
		case "note", "comment":
			delete(m, k)
			changed = true
			continue
		case "text":
			if !inDosage && !fixedLabel(m, v) {
				delete(m, k)
				changed = true
				continue
			}
		}
		dosage := k == "dosageInstruction" || k == "dosage"
		if stripValue(v, dosage) {
			changed = true
			if empty(v) {
				delete(m, k)
			}
		}
	}
	return changed
}

func stripValue(v any, dosage bool) bool {
	switch x := v.(type) {
	case map[string]any:
		return strip(x, dosage)
	case []any:
		changed := false
		for _, e := range x {
			if stripValue(e, dosage) {
				changed = true
			}
		}
		return changed
	}
	return false
}

// empty reports an object or array with nothing left in it (arrays of
// emptied objects included).
func empty(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) == 0
	case []any:
		for _, e := range x {
			if !empty(e) {
				return false
			}
		}
		return true
	}
	return false
}

// FreeTextPaths lists the free-text elements in a resource's JSON (paths
// like "Condition.note" or "Observation.code.text"); none for a resource
// Redact would let out. Tests and the lead's walk over demo records use it.
func FreeTextPaths(r *fhir.Resource) ([]string, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.JSON))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	var out []string
	var walk func(v any, path string, inDosage bool)
	walk = func(v any, path string, inDosage bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				p := path + "." + k
				if k == "note" || k == "comment" || (k == "text" && !inDosage && !fixedLabel(x, e)) {
					out = append(out, p)
					continue
				}
				walk(e, p, k == "dosageInstruction" || k == "dosage")
			}
		case []any:
			for _, e := range x {
				walk(e, path, inDosage)
			}
		}
	}
	walk(m, r.Type, false)
	return out, nil
}

// fixedLabel reports a CodeableConcept's text that is a label UK Core fixes
// (the BP components'), beside its codings: a constant of the profile, not
// free text.
func fixedLabel(m map[string]any, v any) bool {
	s, ok := v.(string)
	_, coded := m["coding"]
	return ok && coded && fhir.IsProfileFixedText(s)
}
