package consent

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gpgate/gpgate/fhir"
)

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
