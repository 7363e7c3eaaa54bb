package consent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These tests check the allowlist of coded.go against the definitions it
// was drawn from: the UK Core 2.6.1 StructureDefinitions in ../shared/ukcore
// (resources and extensions) and, when the validator's packages are
// installed, the R4 data type definitions. They read the definitions; the
// table stays reviewable Go data.

type sdElement struct {
	ID               string `json:"id"`
	Path             string `json:"path"`
	SliceName        string `json:"sliceName"`
	Min              int    `json:"min"`
	Max              string `json:"max"`
	IsModifier       bool   `json:"isModifier"`
	ContentReference string `json:"contentReference"`
	Type             []struct {
		Code string `json:"code"`
	} `json:"type"`
}

type structureDefinition struct {
	URL      string                        `json:"url"`
	Type     string                        `json:"type"`
	Context  []struct{ Expression string } `json:"context"`
	Snapshot struct {
		Element []sdElement `json:"element"`
	} `json:"snapshot"`
}

// sharedDir finds ../shared beside the module, or skips.
func sharedDir(t *testing.T) string {
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
			t.Skip("go.mod not found above the package: cannot locate ../shared")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(filepath.Join(shared, "ukcore")); err != nil {
		t.Skipf("UK Core definitions absent (%s): skipping", filepath.Join(shared, "ukcore"))
	}
	return shared
}

func readSD(t *testing.T, path string) *structureDefinition {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sd structureDefinition
	if err := json.Unmarshal(b, &sd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &sd
}

// elementIndex maps the unsliced element paths of a snapshot.
func elementIndex(sd *structureDefinition) map[string]*sdElement {
	out := map[string]*sdElement{}
	for i := range sd.Snapshot.Element {
		e := &sd.Snapshot.Element[i]
		if e.SliceName != "" || strings.Contains(e.ID, ":") {
			continue
		}
		out[e.Path] = e
	}
	return out
}

// typeMatches: the table's type against a definition's type code.
func typeMatches(ours, code string) bool {
	switch {
	case ours == code:
		return true
	case ours == "SimpleQuantity" && code == "Quantity":
		return true
	case ours == "BackboneElement" && code == "Element": // Dosage.doseAndRate
		return true
	case ours == "reference" || ours == "fixedLabel":
		return code == "string"
	case ours == "-":
		return true
	}
	return false
}

// findElement finds the definition of the table's path (a choice element's
// JSON key maps to its [x] element) and reports whether our type is one of
// its types.
func findElement(idx map[string]*sdElement, path, typ string) (*sdElement, bool) {
	typ = strings.TrimSuffix(typ, "!")
	if e := idx[path]; e != nil {
		if ref, ok := strings.CutPrefix(typ, "@"); ok {
			return e, e.ContentReference == "#"+ref
		}
		for _, tc := range e.Type {
			if typeMatches(typ, tc.Code) {
				return e, true
			}
		}
		return e, false
	}
	i := strings.LastIndexByte(path, '.')
	parent, key := path[:i], path[i+1:]
	for p, e := range idx {
		base, ok := strings.CutSuffix(p, "[x]")
		if !ok || !strings.HasPrefix(base, parent+".") {
			continue
		}
		name := base[len(parent)+1:]
		if strings.Contains(name, ".") || !strings.HasPrefix(key, name) {
			continue
		}
		for _, tc := range e.Type {
			if strings.EqualFold(key[len(name):], tc.Code) && (typ == "-" || typeMatches(typ, tc.Code)) {
				return e, true
			}
		}
	}
	return nil, false
}

// TestCodedTableAgainstUKCore: every resource element of the table exists in
// the UK Core profile of its type with that type and is not prohibited
// there; every modifier element and every element UK Core requires, under a
// listed parent, is listed (a required one marked "!").
func TestCodedTableAgainstUKCore(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "ukcore")
	byType := map[string][]row{}
	listed := map[string]row{}
	for _, r := range resourceRows {
		typ := r.Path[:strings.IndexByte(r.Path, '.')]
		byType[typ] = append(byType[typ], r)
		listed[r.Path] = r
	}
	for typ, rows := range byType {
		t.Run(typ, func(t *testing.T) {
			sd := readSD(t, filepath.Join(dir, "UKCore-"+typ+".json"))
			idx := elementIndex(sd)
			choiceListed := map[string]bool{} // [x] paths with a listed variant, required ones marked
			for _, r := range rows {
				e, ok := findElement(idx, r.Path, r.Type)
				if e == nil {
					t.Errorf("%s (%s) is not an element of UKCore-%s", r.Path, r.Type, typ)
					continue
				}
				if !ok {
					t.Errorf("%s: type %s is not one of UKCore-%s's", r.Path, r.Type, typ)
				}
				if e.Max == "0" {
					t.Errorf("%s is prohibited by UKCore-%s", r.Path, typ)
				}
				choiceListed[e.Path] = choiceListed[e.Path] || true
				if strings.HasSuffix(r.Type, "!") {
					choiceListed[e.Path+"!"] = true
				}
			}
			backbones := map[string]bool{typ: true}
			for _, r := range rows {
				if strings.TrimSuffix(r.Type, "!") == "BackboneElement" || strings.HasPrefix(r.Type, "@") {
					backbones[r.Path] = true
				}
			}
			for path, e := range idx {
				i := strings.LastIndexByte(path, '.')
				if i < 0 || !backbones[path[:i]] {
					continue
				}
				switch path[i+1:] {
				case "id", "extension", "modifierExtension", "implicitRules", "meta", "language", "text", "contained":
					continue
				}
				if e.Max == "0" {
					continue
				}
				if e.IsModifier && !choiceListed[path] {
					t.Errorf("modifier %s is not listed: dropping it would change the meaning of what is left", path)
				}
				if e.Min > 0 && !choiceListed[path+"!"] {
					t.Errorf("%s is required (min %d) but not listed with \"!\"", path, e.Min)
				}
			}
		})
	}
}

// extensionsNotInUKCore are listed extensions that UK Core does not define,
// and why they are accepted.
var extensionsNotInUKCore = map[string]string{
	pdsExt + "Extension-PDS-RemovalFromRegistration":             "PDS's Patient carries it (coded: reason and period)",
	"http://hl7.org/fhir/StructureDefinition/patient-birthPlace": "R4 core extension PDS uses (an Address)",
}

// TestExtensionTableAgainstUKCore: every listed UK Core extension exists,
// its value types and sub-extensions are the definition's, and the
// resource types it is allowed in are within its context.
func TestExtensionTableAgainstUKCore(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "ukcore")
	files, err := filepath.Glob(filepath.Join(dir, "Extension-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no extension definitions in %s (%v)", dir, err)
	}
	byURL := map[string]*structureDefinition{}
	for _, f := range files {
		sd := readSD(t, f)
		byURL[sd.URL] = sd
	}
	for _, d := range extensionTable {
		t.Run(d.URL[strings.LastIndexByte(d.URL, '/')+1:], func(t *testing.T) {
			sd := byURL[d.URL]
			if sd == nil {
				if extensionsNotInUKCore[d.URL] == "" {
					t.Fatalf("%s is not a UK Core extension and has no reason to be listed", d.URL)
				}
				return
			}
			valueTypes := func(prefix string) map[string]bool {
				out := map[string]bool{}
				for _, e := range sd.Snapshot.Element {
					if e.ID == prefix+".value[x]" && e.Max != "0" {
						for _, tc := range e.Type {
							out[tc.Code] = true
						}
					}
				}
				return out
			}
			if len(d.Value) > 0 {
				vt := valueTypes("Extension")
				for _, v := range d.Value {
					if !vt[v] {
						t.Errorf("value type %s is not one of %v", v, vt)
					}
				}
			}
			for _, s := range d.Sub {
				vt := valueTypes("Extension.extension:" + s.URL)
				if len(vt) == 0 {
					t.Errorf("sub-extension %s is not defined", s.URL)
				}
				for _, v := range s.Value {
					if !vt[v] {
						t.Errorf("%s: value type %s is not one of %v", s.URL, v, vt)
					}
				}
			}
			ctx := map[string]bool{}
			for _, c := range sd.Context {
				ctx[strings.SplitN(c.Expression, ".", 2)[0]] = true
			}
			for _, typ := range d.In {
				if !ctx[typ] && !ctx["Resource"] {
					t.Errorf("allowed in %s, outside its context %v", typ, sd.Context)
				}
			}
			if len(d.In) == 0 {
				for c := range ctx {
					if byTypeIsResource(c) {
						t.Errorf("context %s is a resource: name it in In", c)
					}
				}
			}
		})
	}
}

func byTypeIsResource(name string) bool {
	for _, r := range resourceRows {
		if strings.HasPrefix(r.Path, name+".") {
			return true
		}
	}
	return false
}

// TestCodedDatatypesAgainstR4: the data type rows are elements of the R4
// data types, when the validator's copy of the R4 definitions is installed
// (../shared/tools/fhir-validate installs it on first run).
func TestCodedDatatypesAgainstR4(t *testing.T) {
	var roots []string
	if d := os.Getenv("GPGATE_VALIDATE_CACHE"); d != "" {
		roots = append(roots, d)
	}
	if d, err := os.UserCacheDir(); err == nil {
		roots = append(roots, filepath.Join(d, "gpgate-fhir-validate"))
	}
	var file string
	for _, r := range roots {
		m, _ := filepath.Glob(filepath.Join(r, "*", "node_modules", "@medplum", "definitions", "dist", "fhir", "r4", "profiles-types.json"))
		if len(m) > 0 {
			file = m[0]
			break
		}
	}
	if file == "" {
		t.Skip("R4 data type definitions not installed (run ../shared/tools/fhir-validate/run once): skipping")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource structureDefinition `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	types := map[string]map[string]*sdElement{}
	for i := range bundle.Entry {
		sd := &bundle.Entry[i].Resource
		types[sd.Type] = elementIndex(sd)
	}
	for _, r := range datatypeRows {
		typ := r.Path[:strings.IndexByte(r.Path, '.')]
		idx := types[typ]
		if idx == nil {
			t.Errorf("%s: no R4 definition of %s", r.Path, typ)
			continue
		}
		e, ok := findElement(idx, r.Path, r.Type)
		if e == nil || !ok {
			t.Errorf("%s %s is not an element of R4 %s of that type", r.Path, r.Type, typ)
		}
	}
}
