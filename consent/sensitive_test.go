package consent

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"github.com/gpgate/gpgate/fhir"
)

// checkDigit computes a Verhoeff check digit the generating way (inverse
// table, positions shifted by one), independently of ValidSCTID's
// validating loop, so a slip in one is caught by the other.
func checkDigit(payload string) byte {
	d := [10][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
		{3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
		{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	// p[k] is the base permutation applied k times.
	base := [10]int{1, 5, 7, 6, 2, 8, 3, 0, 9, 4}
	var p [8][10]int
	for x := 0; x < 10; x++ {
		p[0][x] = x
	}
	for k := 1; k < 8; k++ {
		for x := 0; x < 10; x++ {
			p[k][x] = base[p[k-1][x]]
		}
	}
	inv := [10]int{0, 4, 3, 2, 1, 5, 6, 7, 8, 9}
	c := 0
	for i := 0; i < len(payload); i++ {
		digit := int(payload[len(payload)-1-i] - '0')
		c = d[c][p[(i+1)%8][digit]]
	}
	return byte('0' + inv[c])
}

func TestValidSCTID(t *testing.T) {
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"44054006", true},           // type 2 diabetes
		{"86406008", true},           // HIV infection
		{"999004361000000107", true}, // GP summary exclusion (termination) refset, UK extension
		{"1091811000000102", true},   // diastolic BP, UK extension
		{"1000691000000101", true},   // serum calcium level (real EMIS data)
		{"86406009", false},          // check digit off by one
		{"1053901000000100", false},  // rounded to 15 significant digits
		{"10746341000119100", false}, // same
		{"304023008", false},         // transposition seen in a public profile
		{"123456", false},            // bad check digit
		{"4405400", false},           // too short and wrong partition... and check
		{"044054006", false},         // leading zero
		{"8609", false},              // too short
		{"8640600A", false},          // not digits
		{"2560881000000117", false},  // a description id (partition 11) is not a concept
		{"", false},
	} {
		if got := ValidSCTID(c.id); got != c.want {
			t.Errorf("ValidSCTID(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}

// shippedFiles reads codesets/*.csv from disk (not the embedded copy) so
// the check covers exactly the files in the tree.
func shippedFiles(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("codesets", "*.csv"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no code sets: %v", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// TestShippedCodeSets checks the data files themselves, without the loader:
// header, system per file, well-formed codes (SNOMED CT check digit by an
// independent computation), no duplicates, hierarchy only on Read v2, every
// category present; then that the loader reads every row.
func TestShippedCodeSets(t *testing.T) {
	files := shippedFiles(t)
	systems := map[string]string{"snomed": fhir.SNOMED, "readv2": fhir.ReadV2, "ctv3": fhir.CTV3}
	readShape := func(s string) bool { // [0-9A-Za-z]{1,5} then dots to 5 chars
		for i, r := range s {
			if r == '.' {
				return i > 0 && strings.Trim(s[i:], ".") == ""
			}
			if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
				return false
			}
		}
		return true
	}
	categories := map[string]int{}
	rows := 0
	seen := map[string]string{}
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			parts := strings.Split(strings.TrimSuffix(name, ".csv"), ".")
			if len(parts) != 2 || systems[parts[1]] == "" {
				t.Fatalf("file name %s is not <category>.<system>.csv", name)
			}
			recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(recs[0], ","); got != "system,code,display,hierarchy,source" {
				t.Fatalf("header %q", got)
			}
			for i, r := range recs[1:] {
				line := i + 2
				sys, code := r[0], r[1]
				if sys != systems[parts[1]] {
					t.Errorf("line %d: system %q in a %s file", line, sys, parts[1])
				}
				switch sys {
				case fhir.SNOMED:
					if len(code) < 6 || len(code) > 18 || strings.Trim(code, "0123456789") != "" || code[0] == '0' {
						t.Errorf("line %d: SNOMED CT code %q is not 6-18 digits", line, code)
					} else if checkDigit(code[:len(code)-1]) != code[len(code)-1] {
						t.Errorf("line %d: SNOMED CT code %q fails the Verhoeff check", line, code)
					} else if p := code[len(code)-3 : len(code)-1]; p != "00" && p != "10" {
						t.Errorf("line %d: SNOMED CT code %q is not a concept id (partition %s)", line, code, p)
					}
				case fhir.ReadV2:
					if !(len(code) == 5 || len(code) == 7 && strings.Trim(code[5:], "0123456789") == "") || !readShape(code[:5]) {
						t.Errorf("line %d: Read v2 code %q is malformed", line, code)
					}
				case fhir.CTV3:
					if len(code) != 5 || !readShape(code) {
						t.Errorf("line %d: CTV3 code %q is malformed", line, code)
					}
				}
				if r[3] != "false" && !(r[3] == "true" && sys == fhir.ReadV2) {
					t.Errorf("line %d: hierarchy %q for %s", line, r[3], sys)
				}
				if strings.TrimSpace(r[2]) == "" || strings.TrimSpace(r[4]) == "" {
					t.Errorf("line %d: display or source empty", line)
				}
				key := sys + "|" + code
				if prev, dup := seen[key]; dup {
					t.Errorf("line %d: %s duplicates %s", line, key, prev)
				}
				seen[key] = fmt.Sprintf("%s:%d", name, line)
				categories[parts[0]]++
				rows++
			}
		})
	}
	for _, c := range Categories {
		if categories[c] == 0 {
			t.Errorf("category %s has no codes", c)
		}
	}
	if len(categories) != len(Categories) {
		t.Errorf("files name categories %v, want %v", categories, Categories)
	}
	if got := len(ShippedCodes()); got != rows {
		t.Errorf("loader read %d codes, files hold %d", got, rows)
	}
	// The README cites a source for every source key used.
	readme, err := os.ReadFile(filepath.Join("codesets", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		recs, _ := csv.NewReader(bytes.NewReader(b)).ReadAll()
		for _, r := range recs[1:] {
			if !bytes.Contains(readme, []byte("`"+r[4]+"`")) {
				t.Errorf("%s: source %q not described in codesets/README.md", name, r[4])
			}
		}
	}
}

func TestLoadCodeSetsRejects(t *testing.T) {
	good := "system,code,display,hierarchy,source\nhttp://snomed.info/sct,86406008,HIV,false,x\n"
	for _, c := range []struct{ name, file, body string }{
		{"bad file name", "hiv.csv", good},
		{"unknown category", "mental-health.snomed.csv", good},
		{"system disagrees with file", "sexually-transmitted-infection.ctv3.csv", good},
		{"bad row", "sexually-transmitted-infection.snomed.csv", "system,code,display,hierarchy\nhttp://snomed.info/sct,86406009,HIV,false\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := fstest.MapFS{"sets/" + c.file: {Data: []byte(c.body)}}
			if _, err := loadCodeSets(fsys, "sets"); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	cs, err := loadCodeSets(fstest.MapFS{"sets/sexually-transmitted-infection.snomed.csv": {Data: []byte(good)}}, "sets")
	if err != nil || len(cs) != 1 || cs[0].Category != CategorySTI {
		t.Fatalf("good set: %v %+v", err, cs)
	}
}

func TestParseCodeSet(t *testing.T) {
	for _, c := range []struct {
		name, body string
		ok         bool
	}{
		{"four columns", "system,code,display,hierarchy\nhttp://read.info/readv2,A788.00,AIDS,true\n", true},
		{"five columns", "system,code,display,hierarchy,source\nhttp://read.info/ctv3,XE0RX,AIDS,false,s\n", true},
		{"quoted display with comma", "system,code,display,hierarchy\nhttp://read.info/readv2,A789X00,\"HIV dis, other\",false\n", true},
		{"bad header", "code,system,display,hierarchy\n", false},
		{"empty", "", false},
		{"unknown system", "system,code,display,hierarchy\nhttp://loinc.org,1234-5,x,false\n", false},
		{"SNOMED bad check digit", "system,code,display,hierarchy\nhttp://snomed.info/sct,86406009,x,false\n", false},
		{"SNOMED hierarchy", "system,code,display,hierarchy\nhttp://snomed.info/sct,86406008,x,true\n", false},
		{"CTV3 hierarchy", "system,code,display,hierarchy\nhttp://read.info/ctv3,XE0RX,x,true\n", false},
		{"Read v2 inner dot", "system,code,display,hierarchy\nhttp://read.info/readv2,A.88.,x,false\n", false},
		{"Read v2 all dots", "system,code,display,hierarchy\nhttp://read.info/readv2,.....,x,false\n", false},
		{"Read v2 short", "system,code,display,hierarchy\nhttp://read.info/readv2,A78,x,false\n", false},
		{"Read v2 bad term code", "system,code,display,hierarchy\nhttp://read.info/readv2,A788.1x,x,false\n", false},
		{"hierarchy word", "system,code,display,hierarchy\nhttp://read.info/readv2,A788.,x,yes\n", false},
		{"Read v2 chapter family", "system,code,display,hierarchy\nhttp://read.info/readv2,A....00,x,true\n", false},
		{"Read v2 chapter code without family", "system,code,display,hierarchy\nhttp://read.info/readv2,A....00,x,false\n", true},
		{"Read v2 two-character family", "system,code,display,hierarchy\nhttp://read.info/readv2,A7...,x,true\n", true},
		{"short row", "system,code,display,hierarchy\nhttp://read.info/readv2,A788.\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs, err := ParseCodeSet(strings.NewReader(c.body), CategorySTI)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v (%+v)", err, c.ok, cs)
			}
		})
	}
	if _, err := ParseCodeSet(strings.NewReader("system,code,display,hierarchy\n"), ""); err == nil {
		t.Error("no category accepted")
	}
}

// TestSensitiveMatchTable: per category and system, listed codes match and
// near misses do not (Read v2 prefix boundaries, CTV3 and SNOMED exact).
func TestSensitiveMatchTable(t *testing.T) {
	e := DefaultExclusions()
	const other = "http://example.org/codes"
	cases := []struct {
		name, sys, code, want string
	}{
		// Read v2: families by hierarchy prefix, term codes ignored.
		{"readv2 AIDS family head", fhir.ReadV2, "A788.", CategorySTI},
		{"readv2 AIDS family head with term", fhir.ReadV2, "A788.11", CategorySTI},
		{"readv2 AIDS child", fhir.ReadV2, "A7880", CategorySTI},
		{"readv2 AIDS child unlisted term code", fhir.ReadV2, "A788z99", CategorySTI},
		{"readv2 HIV disease family", fhir.ReadV2, "A789X00", CategorySTI},
		{"readv2 [X]HIV family", fhir.ReadV2, "AyuCD00", CategorySTI},
		{"readv2 A78 sibling is not HIV", fhir.ReadV2, "A78A.", ""},
		{"readv2 A78 parent is not HIV", fhir.ReadV2, "A78..", ""},
		{"readv2 A787 sibling", fhir.ReadV2, "A787.00", ""},
		{"readv2 case matters", fhir.ReadV2, "a788.", ""},
		{"readv2 listed leaf", fhir.ReadV2, "43C3.11", CategorySTI},
		{"readv2 leaf has no children", fhir.ReadV2, "43C30", ""},
		{"readv2 termination family", fhir.ReadV2, "L0511", CategoryTermination},
		{"readv2 termination family head", fhir.ReadV2, "L05..00", CategoryTermination},
		{"readv2 spontaneous abortion is not", fhir.ReadV2, "L04..", ""},
		{"readv2 L0 parent is not", fhir.ReadV2, "L0...", ""},
		{"readv2 counselling family", fhir.ReadV2, "67761", CategoryTermination},
		{"readv2 next counselling code", fhir.ReadV2, "6777.", ""},
		{"readv2 termination NEC exact", fhir.ReadV2, "7E08600", CategoryTermination},
		{"readv2 7E08 sibling", fhir.ReadV2, "7E087", ""},
		// CTV3: exact.
		{"ctv3 AIDS", fhir.CTV3, "XE0RX", CategorySTI},
		{"ctv3 HIV child", fhir.CTV3, "A7880", CategorySTI},
		{"ctv3 not hierarchical", fhir.CTV3, "A788a", ""},
		{"ctv3 termination", fhir.CTV3, "XaXIc", CategoryTermination},
		{"ctv3 case matters", fhir.CTV3, "xaxic", ""},
		// SNOMED CT: exact, every category.
		{"snomed HIV", fhir.SNOMED, "86406008", CategorySTI},
		{"snomed STI parent", fhir.SNOMED, "8098009", CategorySTI},
		{"snomed UK extension HIV review", fhir.SNOMED, "504901000000109", CategorySTI},
		{"snomed corrected id", fhir.SNOMED, "1010871000000101", CategorySTI},
		{"snomed termination", fhir.SNOMED, "386639001", CategoryTermination},
		{"snomed IVF", fhir.SNOMED, "52637005", CategoryAssistedConcept},
		{"snomed artificial insemination", fhir.SNOMED, "58533008", CategoryAssistedConcept},
		{"snomed gender", fhir.SNOMED, "407377005", CategoryGenderReassigned},
		{"snomed gender dysphoria", fhir.SNOMED, "93461009", CategoryGenderReassigned},
		// SNOMED CT STI beyond HIV (CSTE value sets): listed concepts
		// match; what the lists leave out does not.
		{"snomed gonorrhoea", fhir.SNOMED, "15628003", CategorySTI},
		{"snomed gonococcal conjunctivitis neonatorum", fhir.SNOMED, "28438004", CategorySTI},
		{"snomed chlamydia trachomatis infection", fhir.SNOMED, "240589008", CategorySTI},
		{"snomed lymphogranuloma venereum", fhir.SNOMED, "186946009", CategorySTI},
		{"snomed chlamydial PID", fhir.SNOMED, "198176005", CategorySTI},
		{"snomed congenital syphilis", fhir.SNOMED, "35742006", CategorySTI},
		{"snomed syphilis", fhir.SNOMED, "76272004", CategorySTI},
		{"snomed genital herpes simplex", fhir.SNOMED, "33839006", CategorySTI},
		// SNOMED CT termination beyond the CPRD "probable" list (Manchester
		// OpenSAFELY list, uom-preg-top): listed concepts match, the generic
		// perinatal concept it also carries does not.
		{"snomed legally induced abortion", fhir.SNOMED, "39406005", CategoryTermination},
		{"snomed illegal abortion with complication", fhir.SNOMED, "198744009", CategoryTermination},
		{"snomed referral for termination counselling", fhir.SNOMED, "183606009", CategoryTermination},
		{"snomed selective feticide", fhir.SNOMED, "177095006", CategoryTermination},
		{"snomed UK extension admission for abortifacient", fhir.SNOMED, "439741000000107", CategoryTermination},
		{"snomed UK extension menstrual extraction", fhir.SNOMED, "444361000000109", CategoryTermination},
		{"snomed fetal effect of maternal complication left out", fhir.SNOMED, "206035009", ""},
		{"snomed legally induced abortion under ctv3", fhir.CTV3, "39406005", ""},
		{"snomed intrauterine insemination", fhir.SNOMED, "265064001", CategoryAssistedConcept},
		{"snomed fertility treatment type", fhir.SNOMED, "425866000", CategoryAssistedConcept},
		{"snomed transsexual", fhir.SNOMED, "407374003", CategoryGenderReassigned},
		{"snomed transsexual under readv2", fhir.ReadV2, "407374003", ""},
		{"snomed chlamydial bronchitis left out", fhir.SNOMED, "233600003", ""},
		{"snomed chlamydial endocarditis left out", fhir.SNOMED, "460618008", ""},
		{"snomed chlamydial conjunctivitis not in the lists", fhir.SNOMED, "231861005", ""},
		{"snomed trachoma not in the lists", fhir.SNOMED, "2576002", ""},
		{"snomed US-extension concept not shipped", fhir.SNOMED, "112121000119105", ""},
		{"snomed failed check digit not shipped", fhir.SNOMED, "186647001", ""},
		{"snomed gonorrhoea under ctv3", fhir.CTV3, "15628003", ""},
		{"snomed gonorrhoea without system", "", "15628003", CategorySTI},
		{"snomed diabetes", fhir.SNOMED, "44054006", ""},
		{"snomed prefix of a listed id", fhir.SNOMED, "8640600", ""},
		{"snomed listed id with suffix", fhir.SNOMED, "864060081", ""},
		// System-aware: the same string in another system does not match.
		{"read code under snomed", fhir.SNOMED, "A788.", ""},
		{"snomed id under readv2", fhir.ReadV2, "86406008", ""},
		{"snomed id under other system", other, "86406008", ""},
		{"read code under ctv3 not listed", fhir.CTV3, "L0511", ""},
		// No system: treated as possibly sensitive.
		{"no system snomed", "", "86406008", CategorySTI},
		{"no system read family", "", "A7881", CategorySTI},
		{"no system harmless", "", "44054006", ""},
		{"empty code", fhir.SNOMED, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := e.Match(c.sys, c.code); got != c.want {
				t.Errorf("Match(%s, %s) = %q, want %q", c.sys, c.code, got, c.want)
			}
		})
	}
	var nilE *Exclusions
	if nilE.Match(fhir.SNOMED, "86406008") != "" || nilE.Sensitive(codedRes(t, "Condition", "n", fhir.SNOMED, "86406008", "2020-01-01")) {
		t.Error("nil Exclusions matched")
	}
}

// sensitiveCoding is a coding of the shipped list used in the fixtures.
const sensitiveCoding = `{"code":"86406008","system":"http://snomed.info/sct"}`

// TestSensitiveSecondaryElements: a resource whose main code is harmless
// but which carries a listed code in a secondary element is caught; the
// same resources with a harmless coding there are not; text that merely
// looks like a coding is not a coding.
func TestSensitiveSecondaryElements(t *testing.T) {
	e := DefaultExclusions()
	s := fmt.Sprintf(subj, pidA)
	harmless := `{"code":"44054006","system":"http://snomed.info/sct"}`
	forms := map[string]string{
		"reasonCode":                     `{"code":{"coding":[{"code":"1022441000000108","system":"http://snomed.info/sct"}]},"id":"X","reasonCode":[{"coding":[@C@]}],"resourceType":"Observation","status":"final",` + s + `}`,
		"valueCodeableConcept":           `{"code":{"coding":[{"code":"1022441000000108","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Observation","status":"final",` + s + `,"valueCodeableConcept":{"coding":[@C@]}}`,
		"component code":                 `{"code":{"coding":[{"code":"85354-9","system":"http://loinc.org"}]},"component":[{"code":{"coding":[@C@]},"valueQuantity":{"value":1}}],"id":"X","resourceType":"Observation","status":"final",` + s + `}`,
		"component value":                `{"code":{"coding":[{"code":"85354-9","system":"http://loinc.org"}]},"component":[{"code":{"coding":[{"code":"8480-6","system":"http://loinc.org"}]},"valueCodeableConcept":{"coding":[@C@]}}],"id":"X","resourceType":"Observation","status":"final",` + s + `}`,
		"bodySite":                       `{"bodySite":[{"coding":[@C@]}],"code":{"coding":[{"code":"80146002","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Procedure","status":"completed",` + s + `}`,
		"medicationCodeableConcept":      `{"id":"X","intent":"order","medicationCodeableConcept":{"coding":[{"code":"39695211000001102","system":"https://dmd.nhs.uk"},@C@]},"resourceType":"MedicationRequest","status":"active",` + s + `}`,
		"second coding of code":          `{"code":{"coding":[{"code":"G30..","system":"http://read.info/readv2"},@C@]},"id":"X","resourceType":"Condition",` + s + `}`,
		"category":                       `{"category":[{"coding":[@C@]}],"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Condition",` + s + `}`,
		"evidence":                       `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"evidence":[{"code":[{"coding":[@C@]}]}],"id":"X","resourceType":"Condition",` + s + `}`,
		"extension valueCodeableConcept": `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"extension":[{"url":"https://example.org/x","valueCodeableConcept":{"coding":[@C@]}}],"id":"X","resourceType":"Condition",` + s + `}`,
		"nested extension valueCoding":   `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"extension":[{"extension":[{"url":"a","valueCoding":@C@}],"url":"https://example.org/x"}],"id":"X","resourceType":"Condition",` + s + `}`,
		"reaction manifestation":         `{"code":{"coding":[{"code":"91936005","system":"http://snomed.info/sct"}]},"id":"X","patient":{"reference":"Patient/` + pidA + `"},"reaction":[{"manifestation":[{"coding":[@C@]}]}],"resourceType":"AllergyIntolerance"}`,
		"meta tag":                       `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"id":"X","meta":{"tag":[@C@]},"resourceType":"Condition",` + s + `}`,
	}
	names := make([]string, 0, len(forms))
	for n := range forms {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		raw := strings.ReplaceAll(forms[name], `"id":"X"`, `"id":"`+pidA+`-x"`)
		t.Run(name, func(t *testing.T) {
			r := mustRes(t, strings.ReplaceAll(raw, "@C@", sensitiveCoding))
			if e.Category(r) != CategorySTI || !e.Sensitive(r) {
				t.Fatalf("not caught: %s", r.JSON)
			}
			ok := mustRes(t, strings.ReplaceAll(strings.ReplaceAll(raw, "@C@", harmless), pidA+"-x", pidA+"-y"))
			if e.Sensitive(ok) {
				t.Fatalf("harmless twin withheld: %s", ok.JSON)
			}
			rec := recordOf(t, "1980-01-01", r, ok)
			got, withheld := Redact(rec, permit(fhir.AllAreas), testNow, e)
			if !withheld || got.Find(r.Type, r.ID) != nil {
				t.Fatalf("Redact kept the sensitive resource (withheld=%v)", withheld)
			}
			for _, g := range got.Resources {
				if bytes.Contains(g.JSON, []byte("86406008")) {
					t.Fatalf("sensitive code left in %s", g.JSON)
				}
			}
			if len(got.Warnings) == 0 || got.Warnings[len(got.Warnings)-1].Code != fhir.WarnConfidentialItems {
				t.Fatalf("no confidential-items warning: %+v", got.Warnings)
			}
		})
	}
	// Things that look like codings but are not.
	fakes := map[string]string{
		"code inside a note":         `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"id":"X","note":[{"text":"see \"code\":\"86406008\",\"system\":\"http://snomed.info/sct\""}],"resourceType":"Condition",` + s + `}`,
		"code as a display":          `{"code":{"coding":[{"code":"38341003","display":"86406008","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Condition",` + s + `}`,
		"identifier value":           `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"id":"X","identifier":[{"system":"http://snomed.info/sct","value":"86406008"}],"resourceType":"Condition",` + s + `}`,
		"quantity with a ucum code":  `{"code":{"coding":[{"code":"1022441000000108","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Observation","status":"final",` + s + `,"valueQuantity":{"code":"86406008","system":"http://unitsofmeasure.org","value":1}}`,
		"read code under other text": `{"code":{"coding":[{"code":"G30..","system":"http://read.info/readv2"}],"text":"A788. L0511"},"id":"X","resourceType":"Condition",` + s + `}`,
	}
	for name, raw := range fakes {
		raw = strings.ReplaceAll(raw, `"id":"X"`, `"id":"`+pidA+`-x"`)
		t.Run("not "+name, func(t *testing.T) {
			if r := mustRes(t, raw); e.Sensitive(r) {
				t.Fatalf("withheld: %s", r.JSON)
			}
		})
	}
}

func TestSensitiveUnreadableFailsClosed(t *testing.T) {
	e := DefaultExclusions()
	for _, raw := range []string{`{"code":{"coding":[{"code":"1"`, `{"a":1]`, `[1,2]]`, `{}{}`, `"x"`, `{"code":"\u00zz"}`} {
		r := &fhir.Resource{Type: "Condition", ID: "x", JSON: []byte(raw)}
		if !e.Sensitive(r) || e.Category(r) != "unreadable" {
			t.Errorf("%s: not withheld", raw)
		}
	}
}

// referenceCodings is the straightforward walk the scanner must agree
// with: encoding/json into interfaces, every object with a string "code".
func referenceCodings(raw []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
			if c, ok := x["code"].(string); ok {
				s, _ := x["system"].(string)
				out = append(out, s+"|"+c)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	sort.Strings(out)
	return out, nil
}

func scannedCodings(raw []byte) ([]string, error) {
	var out []string
	err := walkCodings(raw, func(s, c []byte) bool { out = append(out, string(s)+"|"+string(c)); return true })
	sort.Strings(out)
	return out, err
}

// hasDuplicateKeys reports an object with a repeated member name anywhere.
func hasDuplicateKeys(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type obj struct {
		keys      map[string]bool
		expectKey bool
	}
	var stack []*obj
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &obj{keys: map[string]bool{}, expectKey: true})
				continue
			case '[':
				stack = append(stack, nil)
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1] != nil && stack[n-1].expectKey {
				if stack[n-1].keys[v] {
					return true
				}
				stack[n-1].keys[v] = true
				stack[n-1].expectKey = false
				continue
			}
		}
		if n := len(stack); n > 0 && stack[n-1] != nil {
			stack[n-1].expectKey = true
		}
	}
}

// FuzzWalkCodings checks the single-pass scanner against encoding/json on
// every valid JSON object or array: the same codings, no error; on invalid
// input it must not panic.
func FuzzWalkCodings(f *testing.F) {
	for _, r := range bigRecord(f).Resources[:12] {
		f.Add(r.JSON)
	}
	f.Add([]byte(`{"code":"a","code":1,"system":"s","system":null}`))
	f.Add([]byte(`{"c\u006fde":"x","system":"\u0068"}`))
	f.Add([]byte(`{"note":"\"code\":\"86406008\""}`))
	f.Add([]byte(`[{"code":"A788."},{"a":[{"code":"L0511","system":"http://read.info/readv2"}]}]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := scannedCodings(raw)
		trim := bytes.TrimLeft(raw, " \t\r\n")
		if !json.Valid(raw) || !utf8.Valid(raw) || len(trim) == 0 || (trim[0] != '{' && trim[0] != '[') {
			return
		}
		want, rerr := referenceCodings(raw)
		if rerr != nil {
			t.Fatalf("reference failed on valid JSON: %v", rerr)
		}
		if err != nil {
			t.Fatalf("scanner failed on valid JSON %q: %v", raw, err)
		}
		// Every coding the reference finds, the scanner finds. The scanner
		// may find more: with duplicate keys encoding/json keeps only the
		// last member, the scanner sees every one (safer for exclusion).
		left := map[string]int{}
		for _, g := range got {
			left[g]++
		}
		for _, w := range want {
			if left[w] == 0 {
				t.Fatalf("scanner %q misses %q (reference %q) in %s", got, w, want, raw)
			}
			left[w]--
		}
		if !hasDuplicateKeys(raw) && len(got) != len(want) {
			t.Fatalf("scanner %q, reference %q for %s", got, want, raw)
		}
	})
}

// FuzzParseCodeSet: the loader never panics, every accepted row is valid,
// and accepted sets survive a CSV round trip unchanged.
func FuzzParseCodeSet(f *testing.F) {
	if b, err := codesetFS.ReadFile("codesets/termination-of-pregnancy.readv2.csv"); err == nil {
		f.Add(b)
	}
	if b, err := codesetFS.ReadFile("codesets/gender-reassignment.snomed.csv"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("system,code,display,hierarchy\nhttp://read.info/ctv3,XE0RX,\"a,b\",false\n"))
	f.Add([]byte("system,code,display,hierarchy\nhttp://snomed.info/sct,86406009,x,false\n"))
	f.Add([]byte("\ufeffsystem,code,display,hierarchy\n\"unterminated"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := ParseCodeSet(bytes.NewReader(b), CategoryTermination)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{"system", "code", "display", "hierarchy"})
		for _, c := range cs {
			if err := c.check(); err != nil || c.Category != CategoryTermination {
				t.Fatalf("accepted invalid row %+v: %v", c, err)
			}
			_ = w.Write([]string{c.System, c.Code, c.Display, fmt.Sprint(c.Hierarchy)})
		}
		w.Flush()
		again, err := ParseCodeSet(&buf, CategoryTermination)
		if err != nil || len(again) != len(cs) {
			t.Fatalf("round trip: %v (%d vs %d rows)", err, len(again), len(cs))
		}
		for i := range cs {
			if again[i] != cs[i] {
				t.Fatalf("round trip changed row %d: %+v vs %+v", i, again[i], cs[i])
			}
		}
	})
}

// BenchmarkSensitiveRecord is the exclusion check over a 500-resource
// record, as the redactor runs it once per record version.
func BenchmarkSensitiveRecord(b *testing.B) {
	rec := bigRecord(b)
	e := DefaultExclusions()
	n := 0
	for _, r := range rec.Resources {
		n += len(r.JSON)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		hits := 0
		for _, r := range rec.Resources {
			if e.Sensitive(r) {
				hits++
			}
		}
		if hits != 1 {
			b.Fatalf("%d sensitive, want 1", hits)
		}
	}
}

// TestSensitiveSecondaryPerCategory: one listed code of every category and
// system the files ship, placed only in a secondary element (the main code
// is harmless), is caught and withheld; the same resource with the code
// one character off is not.
func TestSensitiveSecondaryPerCategory(t *testing.T) {
	e := DefaultExclusions()
	s := fmt.Sprintf(subj, pidA)
	placements := map[string]string{
		"reasonCode":           `{"code":{"coding":[{"code":"80146002","system":"http://snomed.info/sct"}]},"id":"X","reasonCode":[{"coding":[@C@]}],"resourceType":"Procedure","status":"completed",` + s + `}`,
		"valueCodeableConcept": `{"code":{"coding":[{"code":"1022441000000108","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Observation","status":"final",` + s + `,"valueCodeableConcept":{"coding":[@C@]}}`,
		"second coding":        `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"},@C@]},"id":"X","resourceType":"Condition",` + s + `}`,
		"extension":            `{"code":{"coding":[{"code":"38341003","system":"http://snomed.info/sct"}]},"extension":[{"url":"https://example.org/x","valueCoding":@C@}],"id":"X","resourceType":"Condition",` + s + `}`,
	}
	cases := []struct {
		name, sys, code, miss, want string
	}{
		{"STI snomed gonorrhoea", fhir.SNOMED, "15628003", "15628004", CategorySTI},
		{"STI snomed chlamydia", fhir.SNOMED, "240589008", "240589009", CategorySTI},
		{"STI snomed congenital syphilis", fhir.SNOMED, "35742006", "35742007", CategorySTI},
		{"STI readv2 family", fhir.ReadV2, "A7881", "A7871", CategorySTI},
		{"STI ctv3", fhir.CTV3, "XE0RX", "XE0RY", CategorySTI},
		{"termination snomed", fhir.SNOMED, "386639001", "386639002", CategoryTermination},
		{"termination readv2 family", fhir.ReadV2, "L0511", "L0411", CategoryTermination},
		{"termination ctv3", fhir.CTV3, "XaXIc", "XaXId", CategoryTermination},
		{"IVF snomed", fhir.SNOMED, "52637005", "52637006", CategoryAssistedConcept},
		{"gender snomed", fhir.SNOMED, "93461009", "93461008", CategoryGenderReassigned},
	}
	for _, c := range cases {
		for pl, form := range placements {
			t.Run(c.name+"/"+pl, func(t *testing.T) {
				coding := func(code string) string {
					return `{"code":"` + code + `","system":"` + c.sys + `"}`
				}
				raw := strings.ReplaceAll(form, `"id":"X"`, `"id":"`+pidA+`-x"`)
				r := mustRes(t, strings.ReplaceAll(raw, "@C@", coding(c.code)))
				if got := e.Category(r); got != c.want {
					t.Fatalf("Category = %q, want %q: %s", got, c.want, r.JSON)
				}
				got, withheld := Redact(recordOf(t, "1980-01-01", r), permit(fhir.AllAreas), testNow, e)
				if !withheld || got.Find(r.Type, r.ID) != nil {
					t.Fatalf("not withheld: %s", r.JSON)
				}
				near := mustRes(t, strings.ReplaceAll(raw, "@C@", coding(c.miss)))
				if got := e.Category(near); got != "" {
					t.Fatalf("near miss %s matched %q", c.miss, got)
				}
			})
		}
	}
}
