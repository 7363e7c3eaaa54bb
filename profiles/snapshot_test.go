package profiles

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sharedDir finds ../shared beside the repository (the directory holding
// go.mod), or skips.
func sharedDir(t *testing.T, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the package; cannot locate ../shared")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is absent (shared test data lives beside the checkout); skipping the snapshot cross-check", p)
	}
	return p
}

type sdElement struct {
	ID      string `json:"id"`
	Path    string `json:"path"`
	SliceNm string `json:"sliceName"`
	Min     int    `json:"min"`
	Max     string `json:"max"`
	Base    struct {
		Min int    `json:"min"`
		Max string `json:"max"`
	} `json:"base"`
	Type []struct {
		Code    string   `json:"code"`
		Profile []string `json:"profile"`
	} `json:"type"`
	Binding *struct {
		Strength string `json:"strength"`
		ValueSet string `json:"valueSet"`
	} `json:"binding"`
	raw map[string]json.RawMessage
}

type structureDefinition struct {
	URL      string `json:"url"`
	Type     string `json:"type"`
	Snapshot struct {
		Element []json.RawMessage `json:"element"`
	} `json:"snapshot"`
	elements []*sdElement
	byID     map[string]*sdElement
}

func loadSD(t *testing.T, file string) *structureDefinition {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sd structureDefinition
	if err := json.Unmarshal(b, &sd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	sd.byID = map[string]*sdElement{}
	for _, r := range sd.Snapshot.Element {
		var e sdElement
		if err := json.Unmarshal(r, &e); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(r, &e.raw); err != nil {
			t.Fatal(err)
		}
		sd.elements = append(sd.elements, &e)
		sd.byID[e.ID] = &e
	}
	if len(sd.elements) == 0 {
		t.Fatalf("%s has no snapshot", file)
	}
	return &sd
}

// fixedValue returns the element's fixed[x] or pattern[x] primitive, if any.
func (e *sdElement) fixedValue() (string, bool) {
	for k, v := range e.raw {
		if strings.HasPrefix(k, "fixed") || strings.HasPrefix(k, "pattern") {
			var s string
			if json.Unmarshal(v, &s) == nil {
				return s, true
			}
			return string(v), true // a complex fixed value: no table row can equal it
		}
	}
	return "", false
}

// notChecked are the required bindings gpgate cannot check offline, each
// with its reason. Anything else required must be in the table.
var notChecked = map[string]string{
	"Patient.communication.language": "all-languages is BCP-47, not expandable offline",
	"Practitioner.communication":     "all-languages is BCP-47, not expandable offline",
}

// inScope: an element gpgate's table must cover — not the root, and every
// slice on its path is one gpgate matches.
func inScope(id string) bool {
	if !strings.Contains(id, ".") {
		return false
	}
	for _, seg := range strings.Split(id, ".") {
		if strings.Contains(seg, ":") && slices[seg] == nil {
			return false
		}
	}
	return true
}

// TestTableMatchesSnapshots cross-checks the rule table against the UK Core
// 2.6.1 snapshots: every row names a real element and agrees with it, and
// every in-scope element with min >= 1, a fixed value, max 0, max 1 over a
// repeating base, or a required binding has its row.
func TestTableMatchesSnapshots(t *testing.T) {
	dir := sharedDir(t, "ukcore")
	for url, p := range table {
		t.Run(p.name(), func(t *testing.T) {
			sd := loadSD(t, filepath.Join(dir, p.name()+".json"))
			if sd.URL != url || sd.Type != p.typ {
				t.Fatalf("snapshot is %s on %s, table says %s on %s", sd.URL, sd.Type, url, p.typ)
			}
			// rows by element id
			rows := map[string][]rule{}
			for _, r := range p.rules {
				rows[r.el] = append(rows[r.el], r)
			}

			// elementOf finds a row's element: in the snapshot, or inside the
			// extension definition an extension slice points to.
			elementOf := func(id string) *sdElement {
				if e := sd.byID[id]; e != nil {
					return e
				}
				i := strings.LastIndex(id, ".extension:")
				if i < 0 {
					return nil
				}
				rest := id[i+1:]
				j := strings.Index(rest, ".")
				if j < 0 {
					return nil
				}
				slice := sd.byID[id[:i+1+j]]
				if slice == nil || len(slice.Type) != 1 || len(slice.Type[0].Profile) != 1 {
					return nil
				}
				extURL := slice.Type[0].Profile[0]
				ext := loadSD(t, filepath.Join(dir, strings.TrimPrefix(extURL, ukcoreSD)+".json"))
				return ext.byID["Extension"+rest[j:]]
			}

			// 1. every row names a real element and agrees with it
			for _, r := range p.rules {
				e := elementOf(r.el)
				if e == nil {
					t.Errorf("row %s: no such element in %s", r.el, p.name())
					continue
				}
				if r.min > e.Min {
					t.Errorf("row %s: min %d, snapshot min %d", r.el, r.min, e.Min)
				}
				if r.min > 0 && r.base != (e.Base.Min >= 1 && !strings.Contains(r.el, ":")) {
					t.Errorf("row %s: base=%v but the R4 base min is %d", r.el, r.base, e.Base.Min)
				}
				if r.max > 0 && e.Max != itoa(r.max) {
					t.Errorf("row %s: max %d, snapshot max %s", r.el, r.max, e.Max)
				}
				if r.absent && e.Max != "0" {
					t.Errorf("row %s: absent, snapshot max %s", r.el, e.Max)
				}
				if r.fixed != "" {
					if f, ok := e.fixedValue(); !ok || f != r.fixed {
						t.Errorf("row %s: fixed %q, snapshot %q", r.el, r.fixed, f)
					}
				}
				if r.typ != "" && (len(e.Type) != 1 || e.Type[0].Code != r.typ) {
					t.Errorf("row %s: type %s, snapshot types %v", r.el, r.typ, e.Type)
				}
				if r.vs != nil && r.el != "List.emptyReason" {
					if e.Binding == nil {
						t.Errorf("row %s: binds %s, snapshot has no binding", r.el, r.vs.url)
					} else if vsURL, _, _ := strings.Cut(e.Binding.ValueSet, "|"); vsURL != r.vs.url {
						t.Errorf("row %s: binds %s, snapshot binds %s", r.el, r.vs.url, vsURL)
					} else if (e.Binding.Strength == "extensible") != r.ext {
						t.Errorf("row %s: extensible=%v, snapshot strength %s", r.el, r.ext, e.Binding.Strength)
					}
				}
			}

			// 2. every in-scope constrained element has its row
			need := func(id, what string, ok func(rule) bool) {
				for _, r := range rows[id] {
					if ok(r) {
						return
					}
				}
				t.Errorf("%s: snapshot element %s has %s, and no table row enforces it", p.name(), id, what)
			}
			checkElement := func(id string, e *sdElement) {
				if strings.HasSuffix(id, ".url") && strings.Contains(id, "extension:") {
					return // an extension's url is its slice discriminator (and Extension.url is checked everywhere)
				}
				if e.Min >= 1 {
					need(id, "min "+itoa(e.Min), func(r rule) bool { return r.min >= e.Min })
				}
				if e.Max == "0" && e.Base.Max != "0" {
					need(id, "max 0", func(r rule) bool { return r.absent })
				}
				if e.Max == "1" && (e.Base.Max == "*" || e.SliceNm != "") {
					need(id, "max 1", func(r rule) bool { return r.max == 1 })
				}
				if f, ok := e.fixedValue(); ok {
					need(id, "fixed "+f, func(r rule) bool { return r.fixed == f })
				}
				if e.Binding != nil && e.Binding.Strength == "required" {
					if _, skip := notChecked[id]; !skip {
						need(id, "a required binding to "+e.Binding.ValueSet, func(r rule) bool { return r.vs != nil })
					}
				}
			}
			covered := 0
			for _, e := range sd.elements {
				if !inScope(e.ID) {
					continue
				}
				covered++
				checkElement(e.ID, e)
				// an extension slice gpgate covers: its definition's value rules
				if last := e.ID[strings.LastIndex(e.ID, ".")+1:]; strings.HasPrefix(last, "extension:") && len(e.Type) == 1 && len(e.Type[0].Profile) == 1 {
					ext := loadSD(t, filepath.Join(dir, strings.TrimPrefix(e.Type[0].Profile[0], ukcoreSD)+".json"))
					for _, x := range ext.elements {
						if x.ID == "Extension" || strings.Contains(x.ID, ":") {
							continue
						}
						checkElement(e.ID+strings.TrimPrefix(x.ID, "Extension"), x)
					}
				}
			}
			if covered < 10 {
				t.Errorf("only %d in-scope elements: is the snapshot the right one?", covered)
			}
		})
	}
}
