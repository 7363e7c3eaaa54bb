package consent

import (
	"bytes"
	"embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Sensitive-code exclusion: entries carrying a code of the RCGP sensitive
// categories are withheld from every consumer, whatever element of the
// resource carries the code. The code sets ship as CSV files in codesets/
// (sources, versions and licences in codesets/README.md), embedded in the
// binary; a region can add its own (e.g. the NHS Digital GP summary
// exclusion refsets, whose member lists are licensed to NHS organisations)
// in the same format with LoadCodeSetFile / ExclusionsWithFiles.

// SensitiveCode is one entry of an exclusion list.
type SensitiveCode struct {
	System   string // fhir.SNOMED, fhir.ReadV2 or fhir.CTV3
	Code     string
	Display  string
	Category string
	// Hierarchy: for Read v2 only, every code under this one (the same
	// prefix once trailing dots are dropped: "L05.." covers "L0511").
	// SNOMED CT and CTV3 codes are not hierarchical strings; their
	// descendants are listed one by one.
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

// Categories lists the sensitive categories in a fixed order.
var Categories = []string{CategorySTI, CategoryAssistedConcept, CategoryTermination, CategoryGenderReassigned}

//go:embed codesets/*.csv
var codesetFS embed.FS

// codesetSystems maps the system part of a code-set file name
// (<category>.<system>.csv) to the FHIR system URI.
var codesetSystems = map[string]string{"snomed": fhir.SNOMED, "readv2": fhir.ReadV2, "ctv3": fhir.CTV3}

var shipped = mustLoadShipped()

func mustLoadShipped() []SensitiveCode {
	cs, err := loadCodeSets(codesetFS, "codesets")
	if err != nil {
		panic("consent: shipped code sets: " + err.Error())
	}
	return cs
}

// loadCodeSets reads every <category>.<system>.csv under dir.
func loadCodeSets(fsys fs.FS, dir string) ([]SensitiveCode, error) {
	names, err := fs.Glob(fsys, dir+"/*.csv")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []SensitiveCode
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, err
		}
		cs, err := parseNamedCodeSet(path.Base(name), f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// parseNamedCodeSet parses one code-set file whose base name is
// <category>.<system>.csv: the category comes from the name, and every row
// must be of the system the name says.
func parseNamedCodeSet(base string, r io.Reader) ([]SensitiveCode, error) {
	parts := strings.Split(strings.TrimSuffix(base, ".csv"), ".")
	if !strings.HasSuffix(base, ".csv") || len(parts) != 2 || codesetSystems[parts[1]] == "" || !knownCategory(parts[0]) {
		return nil, fmt.Errorf("file name %q is not <category>.<snomed|readv2|ctv3>.csv with a category of %s", base, strings.Join(Categories, ", "))
	}
	cs, err := ParseCodeSet(r, parts[0])
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.System != codesetSystems[parts[1]] {
			return nil, fmt.Errorf("%s row %s in a %s file", c.System, c.Code, parts[1])
		}
	}
	return cs, nil
}

// LoadCodeSetFile reads a region's own code-set file (for example an
// export of NHS Digital's GP summary exclusion refsets) in the format of
// the shipped files: the base name is <category>.<system>.csv, with
// category one of Categories and system snomed, readv2 or ctv3, and every
// row is checked as ParseCodeSet does. Combine it with the shipped lists
// through ExclusionsWithFiles, or NewExclusions(append(ShippedCodes(), ...)).
func LoadCodeSetFile(name string) ([]SensitiveCode, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("code set: %w", err)
	}
	defer f.Close()
	cs, err := parseNamedCodeSet(filepath.Base(name), f)
	if err != nil {
		return nil, fmt.Errorf("code set %s: %w", name, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("code set %s: no codes", name)
	}
	return cs, nil
}

// ExclusionsWithFiles compiles the shipped lists together with the given
// code-set files (LoadCodeSetFile); with no files it is DefaultExclusions.
// A file that does not load is an error: a region's list is never silently
// dropped.
func ExclusionsWithFiles(names ...string) (*Exclusions, error) {
	if len(names) == 0 {
		return DefaultExclusions(), nil
	}
	codes := ShippedCodes()
	for _, n := range names {
		cs, err := LoadCodeSetFile(n)
		if err != nil {
			return nil, err
		}
		codes = append(codes, cs...)
	}
	return NewExclusions(codes), nil
}

func knownCategory(c string) bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

// ShippedCodes returns a copy of the shipped code sets (codesets/*.csv).
func ShippedCodes() []SensitiveCode { return append([]SensitiveCode(nil), shipped...) }

// codeSetHeader is the first row of a code-set file; a fifth column
// (source) and further columns are allowed and ignored.
var codeSetHeader = []string{"system", "code", "display", "hierarchy"}

// ParseCodeSet reads a code-set CSV (header system,code,display,hierarchy
// and optionally source) into entries of category. Every row is checked:
// the system is SNOMED CT, Read v2 or CTV3 (FHIR URIs), the code is
// well formed for it (SNOMED CT: an SCTID with a valid Verhoeff check digit;
// Read v2: a 5-character code, trailing dots only, optionally with a
// 2-digit term code; CTV3: 5 characters, trailing dots only), hierarchy is
// true or false and only true for Read v2, where a family must be narrower
// than a whole chapter (two characters at least).
func ParseCodeSet(r io.Reader, category string) ([]SensitiveCode, error) {
	if category == "" {
		return nil, errors.New("code set: no category")
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("code set header: %w", err)
	}
	if len(head) < len(codeSetHeader) {
		return nil, fmt.Errorf("code set header %q: want %s", head, strings.Join(codeSetHeader, ","))
	}
	for i, h := range codeSetHeader {
		if strings.TrimSpace(strings.TrimPrefix(head[i], "\ufeff")) != h {
			return nil, fmt.Errorf("code set header %q: want %s", head, strings.Join(codeSetHeader, ","))
		}
	}
	var out []SensitiveCode
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("code set: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) < len(codeSetHeader) {
			return nil, fmt.Errorf("code set line %d: %d fields, want at least %d", line, len(rec), len(codeSetHeader))
		}
		c := SensitiveCode{System: rec[0], Code: rec[1], Display: rec[2], Category: category}
		switch rec[3] {
		case "true":
			c.Hierarchy = true
		case "false":
		default:
			return nil, fmt.Errorf("code set line %d: hierarchy %q, want true or false", line, rec[3])
		}
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("code set line %d: %w", line, err)
		}
		out = append(out, c)
	}
}

// check validates one entry.
func (c SensitiveCode) check() error {
	switch c.System {
	case fhir.SNOMED:
		if !ValidSCTID(c.Code) {
			return fmt.Errorf("SNOMED CT code %q is not a valid concept id", c.Code)
		}
	case fhir.ReadV2:
		if !validReadV2(c.Code) {
			return fmt.Errorf("Read v2 code %q is malformed", c.Code)
		}
	case fhir.CTV3:
		if !validCTV3(c.Code) {
			return fmt.Errorf("CTV3 code %q is malformed", c.Code)
		}
	default:
		return fmt.Errorf("system %q is not SNOMED CT, Read v2 or CTV3", c.System)
	}
	if c.Hierarchy && c.System != fhir.ReadV2 {
		return fmt.Errorf("hierarchy is for Read v2 only (%s %s)", c.System, c.Code)
	}
	// A one-character family is a whole Read v2 chapter ("A...." is every
	// infectious disease): never a sensitive category, always a slip.
	if c.Hierarchy && len(strings.TrimRight(readStem(c.Code), ".")) < 2 {
		return fmt.Errorf("Read v2 family %s is a whole chapter", c.Code)
	}
	if c.Category == "" {
		return errors.New("no category")
	}
	return nil
}

// Verhoeff tables (dihedral group D5 multiplication and the position
// permutation).
var (
	verhoeffD = [10][10]byte{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
		{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
		{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]byte{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
		{8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
)

// ValidSCTID reports whether s is a SNOMED CT concept identifier: 6 to 18
// digits, no leading zero, a concept partition (00 short form, 10 long form
// with a namespace) and a valid Verhoeff check digit.
func ValidSCTID(s string) bool {
	if len(s) < 6 || len(s) > 18 || s[0] == '0' {
		return false
	}
	c := byte(0)
	for i := len(s) - 1; i >= 0; i-- {
		d := s[i]
		if d < '0' || d > '9' {
			return false
		}
		c = verhoeffD[c][verhoeffP[(len(s)-1-i)%8][d-'0']]
	}
	if c != 0 {
		return false
	}
	part := s[len(s)-3 : len(s)-1]
	return part == "00" || part == "10"
}

func readChar(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z'
}

// validStem: 5 characters of [0-9A-Za-z.], the dots trailing, at least one
// character before them.
func validStem(s string) bool {
	if len(s) != 5 {
		return false
	}
	dots := false
	for i := 0; i < 5; i++ {
		switch {
		case s[i] == '.':
			if i == 0 {
				return false
			}
			dots = true
		case readChar(s[i]) && !dots:
		default:
			return false
		}
	}
	return true
}

func validReadV2(s string) bool {
	if len(s) == 7 {
		return validStem(s[:5]) && s[5] >= '0' && s[5] <= '9' && s[6] >= '0' && s[6] <= '9'
	}
	return validStem(s)
}

func validCTV3(s string) bool { return validStem(s) }

// Exclusions is a compiled exclusion list: one map per code system, built
// once. It is immutable and safe for concurrent use.
type Exclusions struct {
	snomed   map[string]string // concept id -> category
	ctv3     map[string]string // code -> category
	read     map[string]string // 5-character stem -> category
	readTree map[string]string // hierarchy prefix (stem without trailing dots) -> category
	maxTree  int               // longest hierarchy prefix
}

// NewExclusions compiles an exclusion list. Entries are not validated
// (ParseCodeSet does that); an entry of another system is ignored.
func NewExclusions(codes []SensitiveCode) *Exclusions {
	e := &Exclusions{snomed: map[string]string{}, ctv3: map[string]string{}, read: map[string]string{}, readTree: map[string]string{}}
	for _, c := range codes {
		switch c.System {
		case fhir.SNOMED:
			e.snomed[c.Code] = c.Category
		case fhir.CTV3:
			e.ctv3[c.Code] = c.Category
		case fhir.ReadV2:
			stem := readStem(c.Code)
			if p := strings.TrimRight(stem, "."); c.Hierarchy && p != "" {
				e.readTree[p] = c.Category
				e.maxTree = max(e.maxTree, len(p))
				continue
			}
			e.read[stem] = c.Category
		}
	}
	return e
}

// readStem is a Read v2 code without its term code ("A788.00" -> "A788.").
func readStem(code string) string {
	if len(code) > 5 {
		return code[:5]
	}
	return code
}

var defaultExcl = NewExclusions(shipped)

// DefaultExclusions is the shipped list (codesets/*.csv).
func DefaultExclusions() *Exclusions { return defaultExcl }

// Match returns the category of one coding, or "" when it is not on the
// list. An empty system matches any of the three (a coding that does not
// say its system is treated as possibly sensitive).
func (e *Exclusions) Match(system, code string) string {
	return e.match([]byte(system), []byte(code))
}

// match is Match on byte slices; map lookups with string(b) keys do not
// allocate.
func (e *Exclusions) match(system, code []byte) string {
	if e == nil || len(code) == 0 {
		return ""
	}
	switch string(system) {
	case fhir.SNOMED:
		return e.snomed[string(code)]
	case fhir.CTV3:
		return e.ctv3[string(code)]
	case fhir.ReadV2:
		return e.matchRead(code)
	case "":
		if c := e.snomed[string(code)]; c != "" {
			return c
		}
		if c := e.ctv3[string(code)]; c != "" {
			return c
		}
		return e.matchRead(code)
	}
	return ""
}

func (e *Exclusions) matchRead(code []byte) string {
	stem := code
	if len(stem) > 5 {
		stem = stem[:5]
	}
	if c := e.read[string(stem)]; c != "" {
		return c
	}
	p := bytes.TrimRight(stem, ".")
	for l := min(len(p), e.maxTree); l > 0; l-- {
		if c := e.readTree[string(p[:l])]; c != "" {
			return c
		}
	}
	return ""
}

// Sensitive reports whether a resource carries a code of the list in any
// Coding anywhere in it (code, reasonCode, valueCodeableConcept, bodySite,
// medication codes, components, category, evidence, extensions...).
// Unreadable JSON counts as sensitive (fail closed).
func (e *Exclusions) Sensitive(r *fhir.Resource) bool {
	return e.Category(r) != ""
}

// errUnreadable marks JSON the scanner could not follow.
var errUnreadable = errors.New("sensitive: unreadable JSON")

// Category returns the sensitive category of the first listed coding found
// in the resource, "unreadable" when its JSON cannot be scanned, or "" when
// it carries none. Callers must not reveal the category to a consumer.
func (e *Exclusions) Category(r *fhir.Resource) string {
	if e == nil || r == nil {
		return ""
	}
	cat := ""
	err := walkCodings(r.JSON, func(system, code []byte) bool {
		cat = e.match(system, code)
		return cat == ""
	})
	if err != nil {
		return "unreadable"
	}
	return cat
}

// walkCodings calls fn(system, code) for every JSON object in raw that has
// a string "code" member (Coding, and Quantity and the like, which no list
// matches), decoding the JSON once in a single pass; strings are skipped
// whole, so text inside a string value never looks like a code. fn returns
// false to stop. An error reports JSON the scanner could not follow.
func walkCodings(raw []byte, fn func(system, code []byte) bool) error {
	var stackBuf [32]frame
	stack := stackBuf[:0]
	seenRoot := false
	for i := 0; i < len(raw); {
		switch b := raw[i]; b {
		case ' ', '\t', '\n', '\r':
			i++
		case ':':
			if len(stack) == 0 || !stack[len(stack)-1].object || stack[len(stack)-1].expectKey {
				return errUnreadable
			}
			i++
		case ',':
			if len(stack) == 0 {
				return errUnreadable
			}
			if top := &stack[len(stack)-1]; top.object {
				top.expectKey = true
				top.key = 0
			}
			i++
		case '{', '[':
			if len(stack) == 0 {
				if seenRoot {
					return errUnreadable
				}
				seenRoot = true
			} else if top := &stack[len(stack)-1]; top.object {
				if top.expectKey {
					return errUnreadable
				}
				top.nonString()
			}
			stack = append(stack, frame{object: b == '{', expectKey: b == '{'})
			i++
		case '}', ']':
			if len(stack) == 0 || stack[len(stack)-1].object != (b == '}') {
				return errUnreadable
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.hasCode && !fn(top.system, top.code) {
				return nil
			}
			i++
		case '"':
			j, escaped, err := stringEnd(raw, i)
			if err != nil {
				return err
			}
			s := raw[i+1 : j]
			if escaped { // rare: decode \uXXXX and the like as encoding/json does
				var u string
				if err := json.Unmarshal(raw[i:j+1], &u); err != nil {
					return errUnreadable
				}
				s = []byte(u)
			}
			i = j + 1
			if len(stack) == 0 {
				return errUnreadable
			}
			top := &stack[len(stack)-1]
			if !top.object {
				continue
			}
			if top.expectKey {
				top.expectKey = false
				switch string(s) {
				case "system":
					top.key = 's'
				case "code":
					top.key = 'c'
				default:
					top.key = 0
				}
				continue
			}
			switch top.key {
			case 's':
				top.system = s
			case 'c':
				top.code, top.hasCode = s, true
			}
		default: // number, true, false, null
			if len(stack) == 0 {
				return errUnreadable
			}
			if top := &stack[len(stack)-1]; top.object {
				if top.expectKey {
					return errUnreadable
				}
				top.nonString()
			}
			for i < len(raw) && !jsonDelim(raw[i]) {
				i++
			}
		}
	}
	if len(stack) != 0 {
		return errUnreadable
	}
	return nil
}

// frame is one open JSON object or array of walkCodings.
type frame struct {
	object    bool
	expectKey bool
	key       byte   // 's' system, 'c' code, 0 other
	system    []byte // slices of the scanned JSON (or of an unescaped copy)
	code      []byte
	hasCode   bool
}

// nonString records a value that is not a string for the current key: a
// later "code": 1 or "system": null undoes an earlier string (the last
// member wins, as in encoding/json).
func (f *frame) nonString() {
	switch f.key {
	case 'c':
		f.code, f.hasCode = nil, false
	case 's':
		f.system = nil
	}
}

// stringEnd returns the index of the closing quote of the string opening
// at raw[i], and whether it holds escapes. The common case (no backslash
// before the next quote) takes two vectorised searches.
func stringEnd(raw []byte, i int) (int, bool, error) {
	q := bytes.IndexByte(raw[i+1:], '"')
	if q < 0 {
		return 0, false, errUnreadable
	}
	if bytes.IndexByte(raw[i+1:i+1+q], '\\') < 0 {
		return i + 1 + q, false, nil
	}
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j, true, nil
		}
	}
	return 0, false, errUnreadable
}

func jsonDelim(b byte) bool {
	switch b {
	case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
		return true
	}
	return false
}
