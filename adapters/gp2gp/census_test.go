package gp2gp

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// The census reads an extract with its own small walker (encoding/xml into
// a generic tree; none of the mapper's parsing or classification) and
// accounts for every clinical statement of every ehrComposition:
//
//   - coded statements must be served (a resource with the statement's id,
//     keeping its original code) or withheld and signalled;
//   - confidential ones (NOPAT on the statement or an ancestor) must be
//     served labelled NOPAT (redaction withholds them and signals);
//   - attachments must be signalled (ATTACHMENTS_WITHHELD), free text and
//     uncoded entries served with what is coded about them or signalled
//     (UNCODED_ITEMS_WITHHELD).
//
// Statement classes and what counts as coded (the census's own reading of
// the GP2GP message model):
//
//	ObservationStatement, PlanStatement, RequestStatement  code/@code
//	CompoundStatement BATTERY | CLUSTER                    code/@code (TOPIC and CATEGORY are structure)
//	LinkSet                                                always (a problem); its code is the named statement's
//	ehrSupplyAuthorise, ehrSupplyPrescribe                 the MedicationStatement's drug code
//	NarrativeStatement                                     never (free text; with an external document: an attachment)
//	RegistrationStatement, ehrSupplyDiscontinue            not entries (administration; a change to an authorisation)
type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Kids    []*xnode   `xml:",any"`
}

func (x *xnode) name() string { return x.XMLName.Local }

func (x *xnode) get(a string) string {
	for _, at := range x.Attrs {
		if at.Name.Local == a {
			return at.Value
		}
	}
	return ""
}

func (x *xnode) kid(n string) *xnode {
	if x == nil {
		return nil
	}
	for _, k := range x.Kids {
		if strings.EqualFold(k.name(), n) {
			return k
		}
	}
	return nil
}

func (x *xnode) kidsNamed(n string) []*xnode {
	var out []*xnode
	if x == nil {
		return nil
	}
	for _, k := range x.Kids {
		if strings.EqualFold(k.name(), n) {
			out = append(out, k)
		}
	}
	return out
}

func (x *xnode) confidential() bool {
	for _, c := range x.kidsNamed("confidentialityCode") {
		if c.get("code") == "NOPAT" {
			return true
		}
	}
	return false
}

// censusSystems is the census's own OID -> FHIR system table.
var censusSystems = map[string]string{
	"2.16.840.1.113883.2.1.6.2":      "http://read.info/readv2",
	"2.16.840.1.113883.2.1.3.2.4.14": "http://read.info/ctv3",
	"2.16.840.1.113883.2.1.3.2.4.15": "http://snomed.info/sct",
	"2.16.840.1.113883.2.1.6.3":      "https://fhir.hl7.org.uk/Id/egton-codes",
	"2.16.840.1.113883.2.1.6.9":      "https://fhir.hl7.org.uk/Id/emis-drug-codes",
	"2.16.840.1.113883.2.1.6.4":      "https://fhir.hl7.org.uk/Id/multilex-drug-codes",
}

// allergyHeadings are the category headings of the GP2GP allergy structure
// (drug / non-drug allergy, Read v2 and SNOMED CT): a compound with one of
// them is a container of allergy entries, not an entry itself.
var allergyHeadings = map[censusCode]bool{
	{"http://read.info/readv2", "14L..00"}: true, {"http://read.info/readv2", "SN53.00"}: true,
	{"http://snomed.info/sct", "416098002"}: true, {"http://snomed.info/sct", "419199007"}: true,
	{"http://snomed.info/sct", "196461000000101"}: true, {"http://snomed.info/sct", "196471000000108"}: true,
}

type censusCode struct{ system, code string }

// originalCode is the CD's own code (not a translation), or false.
func originalCode(cd *xnode) (censusCode, bool) {
	if cd == nil || cd.get("nullFlavor") != "" {
		return censusCode{}, false
	}
	code, oid := strings.TrimSpace(cd.get("code")), strings.TrimSpace(cd.get("codeSystem"))
	if code == "" || oid == "" {
		return censusCode{}, false
	}
	for _, r := range oid {
		if (r < '0' || r > '9') && r != '.' {
			return censusCode{}, false
		}
	}
	sys, ok := censusSystems[oid]
	if !ok {
		sys = "urn:oid:" + oid
	}
	return censusCode{sys, code}, true
}

// censusEntry is one statement the census expects to find in the answer.
type censusEntry struct {
	class  string
	id     string
	code   censusCode
	coded  bool
	conf   bool
	attach bool
	bp     string // id of the enclosing compound, for members of a blood-pressure battery
}

// takeCensus lists the statements of an extract file.
func takeCensus(t *testing.T, path string) []censusEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root xnode
	if err := xml.NewDecoder(bytes.NewReader(b)).Decode(&root); err != nil {
		t.Fatal(err)
	}
	var out []censusEntry
	var walk func(x *xnode, conf bool, parent *xnode)
	walk = func(x *xnode, conf bool, parent *xnode) {
		conf = conf || x.confidential()
		id := x.kid("id").get("root")
		switch x.name() {
		case "ObservationStatement", "PlanStatement", "RequestStatement":
			c, ok := originalCode(x.kid("code"))
			e := censusEntry{class: x.name(), id: id, code: c, coded: ok, conf: conf}
			if parent != nil && x.name() == "ObservationStatement" {
				e.bp = parent.kid("id").get("root")
			}
			out = append(out, e)
		case "CompoundStatement":
			if cc := strings.ToUpper(x.get("classCode")); cc == "BATTERY" || cc == "CLUSTER" {
				if c, ok := originalCode(x.kid("code")); !allergyHeadings[c] {
					out = append(out, censusEntry{class: "CompoundStatement/" + cc, id: id, code: c, coded: ok, conf: conf})
				}
			}
			for _, k := range x.kidsNamed("component") {
				for _, s := range k.Kids {
					walk(s, conf, x)
				}
			}
			return
		case "LinkSet":
			out = append(out, censusEntry{class: "LinkSet", id: id, coded: true, conf: conf})
			return
		case "MedicationStatement":
			drug, ok := originalCode(x.kid("consumable").kid("manufacturedProduct").kid("manufacturedMaterial").kid("code"))
			for _, k := range x.kidsNamed("component") {
				for _, s := range k.Kids {
					if s.name() == "ehrSupplyAuthorise" || s.name() == "ehrSupplyPrescribe" {
						out = append(out, censusEntry{class: s.name(), id: s.kid("id").get("root"), code: drug, coded: ok, conf: conf || s.confidential()})
					}
				}
			}
			return
		case "NarrativeStatement":
			e := censusEntry{class: "NarrativeStatement", id: id, conf: conf}
			for _, r := range x.kidsNamed("reference") {
				e.attach = e.attach || r.kid("referredToExternalDocument") != nil
			}
			out = append(out, e)
			return
		}
		for _, k := range x.kidsNamed("component") {
			for _, s := range k.Kids {
				walk(s, conf, nil)
			}
		}
	}
	var visit func(x *xnode)
	visit = func(x *xnode) {
		if x.name() == "ehrComposition" {
			for _, k := range x.kidsNamed("component") {
				for _, s := range k.Kids {
					walk(s, x.confidential(), nil)
				}
			}
			return
		}
		for _, k := range x.Kids {
			visit(k)
		}
	}
	visit(&root)
	return out
}

// censusResult counts one extract.
type censusResult struct {
	Coded, Served, Confidential, Signalled, Uncoded, Dropped int
	dropped                                                  []string
}

// census checks the mapped answer against the statements of the extract.
func census(t *testing.T, path string, nhs fhir.NHSNumber, m *Mapped) censusResult {
	t.Helper()
	pid := fhir.PatientID(nhs)
	byID := map[string]*fhir.Resource{}
	byRef := map[string]*fhir.Resource{}
	for _, r := range m.Resources {
		byID[r.ID] = r
		byRef[r.Reference()] = r
	}
	warned := map[fhir.Code]bool{}
	for _, w := range m.Warnings {
		warned[w.Code] = true
	}
	// find returns the resource made of the statement with source id src.
	find := func(src string) *fhir.Resource {
		if src == "" {
			return nil
		}
		return byID[fhir.ResourceID(pid, localID(src))]
	}
	hasCode := func(r *fhir.Resource, c censusCode) bool {
		if jsonHasCoding(r.JSON, c.system, c.code) {
			return true
		}
		// A prescription names its drug by reference.
		if r.Ix.MedicationRef != "" {
			if med := byRef[r.Ix.MedicationRef]; med != nil {
				return jsonHasCoding(med.JSON, c.system, c.code)
			}
		}
		return false
	}
	var res censusResult
	seen := map[string]bool{}
	entries := takeCensus(t, path)
	named := map[string]censusCode{} // LinkSet id -> named statement's code
	{
		var root xnode
		b, _ := os.ReadFile(path)
		_ = xml.Unmarshal(b, &root)
		codes := map[string]censusCode{}
		for _, e := range entries {
			if e.coded && e.id != "" {
				codes[e.id] = e.code
			}
		}
		var visit func(x *xnode)
		visit = func(x *xnode) {
			if x.name() == "LinkSet" {
				if c, ok := codes[x.kid("conditionNamed").kid("namedStatementRef").kid("id").get("root")]; ok {
					named[x.kid("id").get("root")] = c
				}
			}
			for _, k := range x.Kids {
				visit(k)
			}
		}
		visit(&root)
	}
	for _, e := range entries {
		if e.id != "" && seen[e.class+e.id] {
			continue // a repeated id is the same entry
		}
		seen[e.class+e.id] = true
		if !e.coded {
			res.Uncoded++
			switch {
			case e.attach && warned[fhir.WarnAttachmentsWithheld]:
			case !e.attach && find(e.id) != nil:
				// served with what is coded about it (a transfer-degraded concept)
			case !e.attach && warned[fhir.WarnUncodedItems]:
			default:
				res.Dropped++
				res.dropped = append(res.dropped, e.class+" "+e.id+" (uncoded, not signalled)")
			}
			continue
		}
		res.Coded++
		r := find(e.id)
		if r == nil && e.bp != "" {
			// A member of a blood-pressure battery is a component of the
			// panel Observation made of the battery.
			if p := find(e.bp); p != nil && strings.Contains(string(p.JSON), fhir.ProfileBloodPressure) {
				r = p
			}
		}
		want := e.code
		if e.class == "LinkSet" {
			want = named[e.id]
		}
		switch {
		case r == nil && e.id == "" && warned[fhir.WarnUncodedItems]:
			res.Signalled++
		case r == nil:
			res.Dropped++
			res.dropped = append(res.dropped, fmt.Sprintf("%s %s %s|%s", e.class, e.id, e.code.system, e.code.code))
		case want.code != "" && !hasCode(r, want):
			res.Dropped++
			res.dropped = append(res.dropped, fmt.Sprintf("%s %s served as %s without its original code %s|%s", e.class, e.id, r.Reference(), want.system, want.code))
		case e.conf && !r.Ix.Confidential:
			res.Dropped++
			res.dropped = append(res.dropped, fmt.Sprintf("%s %s is confidential but %s is not labelled", e.class, e.id, r.Reference()))
		case e.conf:
			res.Confidential++
		default:
			res.Served++
		}
	}
	return res
}

// TestCensus: on every shared extract and every whole feature extract,
// coded statements = served + withheld-and-signalled, and nothing is
// silently dropped.
func TestCensus(t *testing.T) {
	shared := sharedDir(t)
	type file struct{ name, path string }
	var files []file
	ex, _ := filepath.Glob(filepath.Join(shared, "gp2gp", "extracts", "*.xml"))
	sort.Strings(ex)
	for _, f := range ex {
		files = append(files, file{"extracts/" + filepath.Base(f), f})
	}
	for _, f := range featureFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseExtract(b, 0); err != nil {
			continue // a fragment, not an extract
		}
		rel, _ := filepath.Rel(filepath.Join(shared, "gp2gp"), f)
		files = append(files, file{rel, f})
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-70s %6s %6s %6s %6s %7s %7s\n", "extract", "coded", "served", "conf", "signal", "uncoded", "dropped")
	var total censusResult
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			nhs := testBindings[filepath.Base(f.path)]
			if nhs == "" || !strings.HasPrefix(f.name, "extracts/") {
				nhs = "9000000009"
			}
			m := mapFile(t, f.path, nhs)
			r := census(t, f.path, nhs, m)
			if r.Coded != r.Served+r.Confidential+r.Signalled+r.Dropped {
				t.Errorf("census does not add up: %+v", r)
			}
			if r.Dropped > 0 {
				t.Errorf("%d statements silently dropped:\n  %s", r.Dropped, strings.Join(r.dropped, "\n  "))
			}
			if strings.HasPrefix(f.name, "extracts/") {
				fmt.Fprintf(&table, "%-70s %6d %6d %6d %6d %7d %7d\n", f.name, r.Coded, r.Served, r.Confidential, r.Signalled, r.Uncoded, r.Dropped)
			}
			total.Coded += r.Coded
			total.Served += r.Served
			total.Confidential += r.Confidential
			total.Signalled += r.Signalled
			total.Uncoded += r.Uncoded
			total.Dropped += r.Dropped
		})
	}
	fmt.Fprintf(&table, "%-70s %6d %6d %6d %6d %7d %7d\n", fmt.Sprintf("all %d files", len(files)), total.Coded, total.Served, total.Confidential, total.Signalled, total.Uncoded, total.Dropped)
	t.Log(table.String())
	if total.Coded < 500 {
		t.Errorf("the census saw only %d coded statements: is the walker reading the extracts?", total.Coded)
	}
}

// TestCensusCatchesDrops: the census is not vacuous: removing the
// resources of one class from a mapped extract makes it report drops.
func TestCensusCatchesDrops(t *testing.T) {
	shared := sharedDir(t)
	path := filepath.Join(shared, "gp2gp", "extracts", "PWTP6.xml")
	nhs := testBindings["PWTP6.xml"]
	for _, typ := range []string{"Immunization", "Observation", "Encounter"} {
		t.Run(typ, func(t *testing.T) {
			m := mapFile(t, path, nhs)
			kept := m.Resources[:0]
			for _, r := range m.Resources {
				if r.Type != typ {
					kept = append(kept, r)
				}
			}
			m.Resources = kept
			r := census(t, path, nhs, m)
			if typ == "Encounter" {
				if r.Dropped != 0 {
					t.Errorf("encounters are not statements, yet %d dropped", r.Dropped)
				}
				return
			}
			if r.Dropped == 0 {
				t.Errorf("removing every %s went unnoticed: %+v", typ, r)
			}
		})
	}
	// Stripping the label of a confidential resource is a drop too.
	m := mapFile(t, filepath.Join(shared, "gp2gp", "features", "Condition", "linkset_valid_nopat_confidentiality_code.xml"), "9000000009")
	for i, r := range m.Resources {
		if r.Ix.Confidential {
			var doc map[string]any
			_ = json.Unmarshal(r.JSON, &doc)
			delete(doc["meta"].(map[string]any), "security")
			raw, _ := json.Marshal(doc)
			nr, err := fhir.NewResource(raw)
			if err != nil {
				t.Fatal(err)
			}
			m.Resources[i] = nr
		}
	}
	if r := census(t, filepath.Join(shared, "gp2gp", "features", "Condition", "linkset_valid_nopat_confidentiality_code.xml"), "9000000009", m); r.Dropped == 0 {
		t.Errorf("an unlabelled confidential entry went unnoticed: %+v", r)
	}
}

// jsonHasCoding reports whether any object in the JSON document carries
// system and code.
func jsonHasCoding(raw []byte, system, code string) bool {
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return false
	}
	found := false
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["system"] == system && x["code"] == code {
				found = true
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	return found
}
