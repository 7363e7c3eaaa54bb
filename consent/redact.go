package consent

import (
	"bytes"
		"encoding/json"
	"fmt"
	"strings"
	
	"github.com/gpgate/gpgate/fhir"
)

// SensitiveCode is one entry of the exclusion list: a code whose entries
// are withheld from every consumer.
type SensitiveCode struct {
	System   string
	Code     string
	Display  string
	Category string
	// Hierarchy: for Read v2, every code under this one (same prefix once
	// the trailing dots are dropped: "L05.." covers "L0511"). Ignored for
	// other systems (SNOMED and CTV3 codes are not hierarchical strings).
	Hierarchy bool
}

// Sensitive categories (the RCGP sensitive dataset, as used for the
// Summary Care Record's automatic exclusions).
const (
	CategorySTI              = "sexually-transmitted-infection"
	CategoryAssistedConcept  = "ivf-assisted-conception"
	CategoryTermination      = "termination-of-pregnancy"
	CategoryGenderReassigned = "gender-reassignment"
)

// RCGPSensitiveCodes is the shipped exclusion list, by the RCGP categories
// (sexually transmitted disease, assisted conception / IVF, termination of
// pregnancy, gender reassignment; Cegedim Vision help, "Summary Care Record
// Withheld Data" and "Withheld Data", which list these categories as the
// Royal College of GPs' sensitive dataset; NHS Digital publishes the
// matching "GP summary exclusion" SNOMED subsets, dd4c.digital.nhs.uk
// published metadata 668, whose member lists were not available here).
//
// Sources of the codes (public material, read 2026; never copied):
//
//	[GMSDE] UoM-Data-Science-Platforms/gm-sde, shared/clinical-code-sets/
//	    patient/pregnancy-top-probable/1/*.readv2.txt and *.snomed.txt.
//	[SNOQI] SNOMED International QI templates: 8098009 |Sexually transmitted
//	    infectious disease (disorder)|.
//	[FHIRCONSENT] FHIR consent examples (Missouri consent profile):
//	    52637005 |Test tube ovum fertilization (procedure)|, 386639001
//	    |Termination of pregnancy (procedure)|.
//	[USCORE] US Core / ONC gender identity value set: 407377005
//	    Female-to-male transsexual, 407376001 Male-to-female transsexual;
//	    93461009 Gender dysphoria in clinical code tables.
//
// This is a seed, not the complete RCGP list: SNOMED descendants are not
// expanded (no terminology server here), and no Read v2 or CTV3 codes for
// STI, IVF or gender reassignment were verified, so none are listed. A
// region should load the full NHS Digital exclusion subsets with
// NewExclusions.
var RCGPSensitiveCodes = []SensitiveCode{
	// Sexually transmitted infection.
	{fhir.SNOMED, "8098009", "Sexually transmitted infectious disease", CategorySTI, false}, // [SNOQI]
	// Assisted conception / IVF.
	{fhir.SNOMED, "52637005", "Test tube ovum fertilization", CategoryAssistedConcept, false}, // [FHIRCONSENT]
	// Termination of pregnancy.
	{fhir.SNOMED, "386639001", "Termination of pregnancy", CategoryTermination, false},               // [GMSDE] [FHIRCONSENT]
	{fhir.SNOMED, "386394001", "Pregnancy termination care", CategoryTermination, false},             // [GMSDE]
	{fhir.SNOMED, "749781000000109", "Incomplete medical abortion", CategoryTermination, false},      // [GMSDE]
	{fhir.SNOMED, "225326008", "Post-termination counselling", CategoryTermination, false},           // [GMSDE]
	{fhir.SNOMED, "225327004", "Pre-termination counselling", CategoryTermination, false},            // [GMSDE]
	{fhir.SNOMED, "10383002", "Counseling for termination of pregnancy", CategoryTermination, false}, // [GMSDE]
	{fhir.ReadV2, "L05..", "Termination of pregnancy", CategoryTermination, true},                    // [GMSDE] L05..12 and children (L0517)
	{fhir.ReadV2, "7E086", "Termination of pregnancy NEC", CategoryTermination, false},               // [GMSDE] 7E08600
	{fhir.ReadV2, "8Cg..", "Pregnancy termination care", CategoryTermination, true},                  // [GMSDE]
	{fhir.ReadV2, "6776.", "Pregnancy termination counselling", CategoryTermination, true},           // [GMSDE] 6776. and 67761
	// Gender reassignment.
	{fhir.SNOMED, "93461009", "Gender dysphoria", CategoryGenderReassigned, false},            // [USCORE]
	{fhir.SNOMED, "407377005", "Female-to-male transsexual", CategoryGenderReassigned, false}, // [USCORE]
	{fhir.SNOMED, "407376001", "Male-to-female transsexual", CategoryGenderReassigned, false}, // [USCORE]
}

// Exclusions is a compiled exclusion list. It is immutable once built.
type Exclusions struct {
	exact    map[string]string // code -> category (any system: SNOMED ids and Read/CTV3 codes do not collide in practice)
	exactSys map[fhir.Coding]string
	prefixes []SensitiveCode // Read v2 hierarchies, prefix without trailing dots in Code
}

// NewExclusions compiles an exclusion list.
func NewExclusions(codes []SensitiveCode) *Exclusions {
	e := &Exclusions{exact: map[string]string{}, exactSys: map[fhir.Coding]string{}}
	for _, c := range codes {
		if c.Hierarchy && c.System == fhir.ReadV2 {
			p := strings.TrimRight(c.Code, ".")
			if p != "" {
				e.prefixes = append(e.prefixes, SensitiveCode{System: c.System, Code: p, Category: c.Category})
				continue
			}
		}
		e.exactSys[fhir.Coding{System: c.System, Code: c.Code}] = c.Category
		e.exact[c.Code] = c.Category
	}
	return e
}

var defaultExcl = NewExclusions(RCGPSensitiveCodes)

// DefaultExclusions is the shipped RCGP-category list.
func DefaultExclusions() *Exclusions { return defaultExcl }

// matchIndexed checks the resource's indexed codes (system-aware).
func (e *Exclusions) matchIndexed(cs []fhir.Coding) bool {
	for _, c := range cs {
		code := c.Code
		if c.System == fhir.ReadV2 && len(code) > 5 {
			code = code[:5]
		}
		if _, ok := e.exactSys[fhir.Coding{System: c.System, Code: code}]; ok {
			return true
		}
		if c.System == fhir.ReadV2 {
			for _, p := range e.prefixes {
				if strings.HasPrefix(code, p.Code) {
					return true
				}
			}
		}
	}
	return false
}

var codeKey = []byte(`"code":"`)

// matchAnywhere scans every "code" value of the canonical JSON (reasons,
// components, evidence, ...) against the exact list.
func (e *Exclusions) matchAnywhere(raw []byte) bool {
	for i := 0; ; {
		j := bytes.Index(raw[i:], codeKey)
		if j < 0 {
			return false
		}
		start := i + j + len(codeKey)
		end := bytes.IndexByte(raw[start:], '"')
		if end < 0 {
			return false
		}
		v := raw[start : start+end]
		if _, ok := e.exact[string(v)]; ok {
			return true
		}
		if len(v) > 5 { // Read v2 with term code
			if _, ok := e.exact[string(v[:5])]; ok {
				return true
			}
		}
		i = start + end
	}
}

// Sensitive reports whether a resource carries a code of the list.
func (e *Exclusions) Sensitive(r *fhir.Resource) bool {
	if e == nil {
		return false
	}
	return e.matchIndexed(r.Ix.Code) || e.matchAnywhere(r.JSON)
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
