package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/gp2gp"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// The bar for sensitive data: a real GP2GP extract whose codes are swapped
// for codes of the shipped sensitive sets serves none of them.

const (
	oidReadV2 = gp2gp.OIDReadV2
	oidSNOMED = gp2gp.OIDSNOMED
	oidCTV3   = gp2gp.OIDCTV3
)

// swapClass is one class of coded statement whose codes the test swaps.
type swapClass struct {
	name string
	// find returns the (code, codeSystem OID) pairs of the class in the
	// extract, in document order.
	find func(xml string) [][2]string
	// attr is the XML element the swap rewrites ("code", "translation" or
	// "value xsi:type=\"CD\"").
	elem string
}

var (
	// A problem (LinkSet) names its statement by id.
	linkSetRe   = regexp.MustCompile(`(?s)<LinkSet\b.*?</LinkSet>`)
	namedRefRe  = regexp.MustCompile(`(?s)<namedStatementRef\b[^>]*>\s*<id root="([^"]+)"`)
	codeAttrsRe = regexp.MustCompile(`<code code="([^"]+)" codeSystem="([^"]+)"`)
	// A medication's material code and its SNOMED CT (dm+d) translation.
	materialRe = regexp.MustCompile(`(?s)<manufacturedMaterial\b[^>]*>\s*<code code="[^"]+" codeSystem="[^"]+"[^>]*>\s*<translation code="([^"]+)" codeSystem="(` + regexp.QuoteMeta(oidSNOMED) + `)"`)
	// A coded observation value.
	valueCDRe = regexp.MustCompile(`<value xsi:type="CD" code="([^"]+)" codeSystem="([^"]+)"`)
)

var swapClasses = []swapClass{
	{name: "problem codes", elem: "code", find: func(xml string) [][2]string {
		var out [][2]string
		for _, ls := range linkSetRe.FindAllString(xml, -1) {
			m := namedRefRe.FindStringSubmatch(ls)
			if m == nil {
				continue
			}
			// The named statement: its own <id root=...>, not a reference to it.
			for off := 0; ; {
				i := strings.Index(xml[off:], `<id root="`+m[1]+`"`)
				if i < 0 {
					break
				}
				i += off
				off = i + 1
				if strings.Contains(xml[max(0, i-200):i], "StatementRef") {
					continue
				}
				if c := codeAttrsRe.FindStringSubmatch(xml[i:]); c != nil {
					out = append(out, [2]string{c[1], c[2]})
				}
				break
			}
		}
		return out
	}},
	{name: "medication codes", elem: "translation", find: func(xml string) [][2]string {
		var out [][2]string
		for _, m := range materialRe.FindAllStringSubmatch(xml, -1) {
			out = append(out, [2]string{m[1], m[2]})
		}
		return out
	}},
	{name: "observation values", elem: `value xsi:type="CD"`, find: func(xml string) [][2]string {
		var out [][2]string
		for _, m := range valueCDRe.FindAllStringSubmatch(xml, -1) {
			out = append(out, [2]string{m[1], m[2]})
		}
		return out
	}},
}

// valuePQRe is the opening tag of a quantity observation value.
var valuePQRe = regexp.MustCompile(`<value xsi:type="PQ"[^>]*?(/?)>`)

// codeQuantityValues turns up to n quantity values into coded values
// carrying codes taken from the pool: the extracts hold few coded values
// (EMIS codes allergies that way), so the observation-value class also
// swaps measured values for coded findings. The element's children and
// closing tag stay as they were.
func codeQuantityValues(xml string, n int, take func() string) (string, []swapped) {
	locs := valuePQRe.FindAllStringSubmatchIndex(xml, n)
	var out []swapped
	for i := len(locs) - 1; i >= 0; i-- {
		l := locs[i]
		to := take()
		tag := `<value xsi:type="CD" code="` + to + `" codeSystem="` + oidSNOMED + `"` + xml[l[2]:l[3]] + `>`
		out = append(out, swapped{class: "observation values", from: xml[l[0]:l[1]], to: to})
		xml = xml[:l[0]] + tag + xml[l[1]:]
	}
	return xml, out
}

// sensitivePool returns codes of the shipped sets by system, every category
// represented, in a fixed order.
func sensitivePool(t *testing.T) map[string][]string {
	t.Helper()
	pool := map[string][]string{}
	seenCat := map[string]map[string]bool{}
	for _, c := range consent.ShippedCodes() {
		if seenCat[c.System] == nil {
			seenCat[c.System] = map[string]bool{}
		}
		// First, one code per category; then a few more of each system.
		if !seenCat[c.System][c.Category] || len(pool[c.System]) < 12 {
			seenCat[c.System][c.Category] = true
			pool[c.System] = append(pool[c.System], c.Code)
		}
	}
	for _, sys := range []string{fhir.SNOMED, fhir.ReadV2, fhir.CTV3} {
		if len(pool[sys]) == 0 {
			t.Fatalf("no shipped %s codes", sys)
		}
	}
	return pool
}

type swapped struct {
	class, from, to string
}

// swapCodes rewrites up to perClass statements of each class to sensitive
// codes (same system for problems, SNOMED CT for the others) by string
// replacement in the XML.
func swapCodes(t *testing.T, xml string, pool map[string][]string, perClass int) (string, []swapped) {
	t.Helper()
	next := map[string]int{}
	take := func(sys string) string {
		for {
			c := pool[sys][next[sys]%len(pool[sys])]
			next[sys]++
			if next[sys] > 10*len(pool[sys]) {
				t.Fatalf("no unused %s code left in the pool", sys)
			}
			if !strings.Contains(xml, `"`+c+`"`) {
				return c
			}
		}
	}
	var out []swapped
	for _, cl := range swapClasses {
		done := map[string]bool{}
		for _, p := range cl.find(xml) {
			if len(done) == perClass {
				break
			}
			from, oid := p[0], p[1]
			if done[from] {
				continue
			}
			sys, newOID := fhir.SNOMED, oidSNOMED
			if cl.name == "problem codes" {
				switch oid {
				case oidReadV2:
					sys, newOID = fhir.ReadV2, oidReadV2
				case oidCTV3:
					sys, newOID = fhir.CTV3, oidCTV3
				}
			}
			to := take(sys)
			old := `<` + cl.elem + ` code="` + from + `" codeSystem="` + oid + `"`
			if !strings.Contains(xml, old) {
				continue
			}
			xml = strings.ReplaceAll(xml, old, `<`+cl.elem+` code="`+to+`" codeSystem="`+newOID+`"`)
			done[from] = true
			out = append(out, swapped{class: cl.name, from: from, to: to})
		}
		if cl.name == "observation values" {
			var more []swapped
			xml, more = codeQuantityValues(xml, perClass, func() string { return take(fhir.SNOMED) })
			out = append(out, more...)
		}
	}
	return xml, out
}

// TestGP2GPSwappedSensitiveCodesWithheld maps each real GP2GP extract with
// some problem codes, medication codes and coded observation values swapped
// for codes of the shipped sensitive sets, redacts it as gpgate does, and
// requires that none of the swapped codes appears anywhere in what leaves
// and that a confidential-items warning says something was withheld.
func TestGP2GPSwappedSensitiveCodesWithheld(t *testing.T) {
	td := sharedTestdata(t)
	pool := sensitivePool(t)
	files := make([]string, 0, len(gp2gpBindings))
	for f := range gp2gpBindings {
		files = append(files, f)
	}
	sort.Strings(files)
	classesSeen := map[string]bool{}
	for _, f := range files {
		nhs := gp2gpBindings[f]
		t.Run(f, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(td, "gp2gp", "extracts", f))
			if err != nil {
				t.Fatal(err)
			}
			xml, swaps := swapCodes(t, string(raw), pool, 3)
			if len(swaps) == 0 {
				t.Fatalf("no coded statement to swap in %s", f)
			}
			x, err := gp2gp.ParseExtract([]byte(xml), 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := x.Map(gp2gp.MapOptions{NHS: nhs, Practice: "Y99001"})
			if err != nil {
				t.Fatal(err)
			}
			// Which swaps reach the mapped resources: every class must in
			// some extract (checked at the end), or the test proves nothing.
			// (EMIS codes allergies with a coded value the mapper does not
			// carry, so those swaps reach nothing; they must not leak either.)
			mapped := map[string]bool{}
			for _, s := range swaps {
				for _, r := range m.Resources {
					if bytes.Contains(r.JSON, []byte(`"`+s.to+`"`)) {
						mapped[s.class] = true
						classesSeen[s.class] = true
					}
				}
			}
			for _, cl := range swapClasses {
				if !mapped[cl.name] {
					t.Logf("%s: no swapped %s reached the mapped record", f, cl.name)
				}
			}
			rec := &fhir.Record{NHS: nhs, PatientID: fhir.PatientID(nhs), Practice: "Y99001", Version: "swapped-1",
				Resources: m.Resources, Warnings: m.Warnings}
			out, withheld := consent.NewRedactor(consent.DefaultExclusions(), 0).Redact(rec, fhir.Decision{Permit: true, Areas: fhir.AllAreas}, time.Now())
			if !withheld {
				t.Fatal("nothing withheld")
			}
			warned := false
			for _, w := range out.Warnings {
				warned = warned || w.Code == fhir.WarnConfidentialItems
				for _, s := range swaps {
					if strings.Contains(w.Diagnostics, s.to) {
						t.Errorf("warning names swapped code %s", s.to)
					}
				}
			}
			if !warned {
				t.Errorf("no %s warning: %+v", fhir.WarnConfidentialItems, out.Warnings)
			}
			kept := 0
			for _, r := range out.Resources {
				for _, s := range swaps {
					if bytes.Contains(r.JSON, []byte(s.to)) {
						t.Errorf("%s %s carries swapped %s code %s (was %s): %s", r.Type, r.ID, s.class, s.to, s.from, r.JSON)
					}
				}
				kept++
			}
			if kept <= 1 {
				t.Errorf("only %d resources kept: the redaction withheld everything", kept)
			}
			t.Logf("%s: %d swaps, %d mapped resources, %d served", f, len(swaps), len(m.Resources), kept)
		})
	}
	for _, cl := range swapClasses {
		if !classesSeen[cl.name] {
			t.Errorf("no extract exercised %s", cl.name)
		}
	}
}
