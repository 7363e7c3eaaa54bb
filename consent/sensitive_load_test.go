package consent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// writeCodeSet writes body to dir/name and returns the path.
func writeCodeSet(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadCodeSetFile: a region's own file loads when its name and rows
// agree with the shipped format, and is refused otherwise.
func TestLoadCodeSetFile(t *testing.T) {
	dir := t.TempDir()
	// 999004361000000107 is the GP summary exclusion (termination) refset
	// id itself: a valid UK-extension SCTID no shipped list carries.
	const snomedRow = "http://snomed.info/sct,999004361000000107,refset member,false,region\n"
	const head = "system,code,display,hierarchy,source\n"
	for _, c := range []struct {
		name, file, body string
		want             int    // codes loaded; 0 means refused
		errHas           string // part of the error
	}{
		{"snomed", "termination-of-pregnancy.snomed.csv", head + snomedRow, 1, ""},
		{"four-column header with BOM", "gender-reassignment.snomed.csv", "\ufeffsystem,code,display,hierarchy\nhttp://snomed.info/sct,999004361000000107,x,false\n", 1, ""},
		{"read v2 family", "sexually-transmitted-infection.readv2.csv", head + "http://read.info/readv2,A78A.,x,true,region\nhttp://read.info/readv2,A9800,y,false,region\n", 2, ""},
		{"ctv3", "ivf-assisted-conception.ctv3.csv", head + "http://read.info/ctv3,XaXIc,x,false,region\n", 1, ""},
		{"unknown category", "mental-health.snomed.csv", head + snomedRow, 0, "file name"},
		{"no system in name", "termination-of-pregnancy.csv", head + snomedRow, 0, "file name"},
		{"unknown system", "termination-of-pregnancy.icd10.csv", head + snomedRow, 0, "file name"},
		{"not csv", "termination-of-pregnancy.snomed.txt", head + snomedRow, 0, "file name"},
		{"row of another system", "termination-of-pregnancy.ctv3.csv", head + snomedRow, 0, "in a ctv3 file"},
		{"bad check digit", "termination-of-pregnancy.snomed.csv", head + "http://snomed.info/sct,999004361000000108,x,false,r\n", 0, "not a valid concept id"},
		{"description id", "termination-of-pregnancy.snomed.csv", head + "http://snomed.info/sct,2560881000000117,x,false,r\n", 0, "not a valid concept id"},
		{"header only", "termination-of-pregnancy.snomed.csv", head, 0, "no codes"},
		{"empty", "termination-of-pregnancy.snomed.csv", "", 0, "header"},
		{"wrong header", "termination-of-pregnancy.snomed.csv", "code,system,display,hierarchy\n", 0, "header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			p := writeCodeSet(t, sub, c.file, c.body)
			cs, err := LoadCodeSetFile(p)
			if c.want == 0 {
				if err == nil {
					t.Fatalf("accepted: %+v", cs)
				}
				if !strings.Contains(err.Error(), c.errHas) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %q lacks %q or the file name", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != c.want {
				t.Fatalf("%d codes, want %d", len(cs), c.want)
			}
			cat := strings.Split(c.file, ".")[0]
			for _, x := range cs {
				if x.Category != cat {
					t.Fatalf("category %q, want %q from the file name", x.Category, cat)
				}
			}
		})
	}
	if _, err := LoadCodeSetFile(filepath.Join(dir, "missing", "termination-of-pregnancy.snomed.csv")); err == nil {
		t.Error("missing file accepted")
	}
}

// TestExclusionsWithFiles: region files add to the shipped lists (both
// match afterwards, including Read v2 families), a bad file is an error,
// and no file gives the shipped list unchanged.
func TestExclusionsWithFiles(t *testing.T) {
	if e, err := ExclusionsWithFiles(); err != nil || e != DefaultExclusions() {
		t.Fatalf("no files: %v, %p", err, e)
	}
	dir := t.TempDir()
	snomed := writeCodeSet(t, dir, "termination-of-pregnancy.snomed.csv",
		"system,code,display,hierarchy,source\nhttp://snomed.info/sct,999004361000000107,refset,false,region\n")
	read := writeCodeSet(t, dir, "sexually-transmitted-infection.readv2.csv",
		"system,code,display,hierarchy\nhttp://read.info/readv2,A98..00,family,true\n")
	e, err := ExclusionsWithFiles(snomed, read)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ sys, code, want string }{
		{fhir.SNOMED, "999004361000000107", CategoryTermination}, // from the region file
		{fhir.ReadV2, "A9800", CategorySTI},                      // region family, child
		{fhir.ReadV2, "A98z.00", CategorySTI},                    // region family, child with term code
		{fhir.ReadV2, "A99..", ""},                               // sibling family stays out
		{fhir.SNOMED, "86406008", CategorySTI},                   // shipped list still there
		{fhir.ReadV2, "L0511", CategoryTermination},              // shipped family still there
		{fhir.SNOMED, "44054006", ""},
	} {
		if got := e.Match(c.sys, c.code); got != c.want {
			t.Errorf("Match(%s, %s) = %q, want %q", c.sys, c.code, got, c.want)
		}
	}
	if DefaultExclusions().Match(fhir.SNOMED, "999004361000000107") != "" {
		t.Error("region file changed the shipped list")
	}
	bad := writeCodeSet(t, dir, "termination-of-pregnancy.ctv3.csv",
		"system,code,display,hierarchy\nhttp://snomed.info/sct,999004361000000107,x,false\n")
	if _, err := ExclusionsWithFiles(snomed, bad); err == nil {
		t.Error("a bad file was dropped silently")
	}
}
