package consent

import (
	"bytes"
	"container/list"
	"strings"
	"sync"

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

// cleaned is one resource after the area-independent pass.
type cleaned struct {
	res      *fhir.Resource // nil: withheld
	area     fhir.Area      // of the original
	withheld bool
}

// cleanRecord runs the area-independent part of redaction: withhold
// sensitive, confidential and uncoded entries; keep only coded elements.
func cleanRecord(rec *fhir.Record, excl *Exclusions) []cleaned {
	out := make([]cleaned, len(rec.Resources))
	for i, r := range rec.Resources {
		out[i].area = r.Ix.Area
		demographic := r.Ix.Area == fhir.AreaDemographics
		if !demographic && (r.Ix.Confidential || excl.Sensitive(r)) {
			out[i].withheld = true
			continue
		}
		nr, withhold, err := keepCoded(r)
		if err != nil || withhold {
			// Unreadable JSON, an entry that was only free text, a
			// modifier or a type not on the allowlist: withhold rather
			// than risk it.
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
// (Index.Confidential), and coded only: each resource keeps only the
// elements on the allowlist of coded.go (codes, dates, quantities,
// references, statuses, identifiers, the dosage and quantity of a
// prescription, demographics, known extensions), whatever adapter produced
// it. Narrative, notes, comments, free-text values, CodeableConcept.text
// outside UK Core's fixed labels, Reference.display, unknown elements and
// unknown extensions are dropped; an entry whose primary code (or another
// element that must survive) held free text only, one with a modifier
// extension, and a resource of a type not on the allowlist are withheld.
// withheld reports that something in the permitted areas was held back; the
// new Record then carries a confidential-items warning that does not say
// what. rec is never modified; a resource with nothing to drop is shared as
// it is (same pointer).
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
