package gp2gp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseExtract feeds arbitrary bytes through the hardened parser and the
// mapper: no input may panic, and whatever maps must validate as R4.
func FuzzParseExtract(f *testing.F) {
	// One seed per feature folder (the smallest file), so baseline coverage
	// stays quick: every seed is validated with jsonformat.
	root := filepath.Join(sharedDir(f), "gp2gp", "features")
	smallest := map[string][]byte{}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".xml") {
			if b, err := os.ReadFile(p); err == nil && len(b) < 16<<10 {
				dir := filepath.Dir(p)
				if cur, ok := smallest[dir]; !ok || len(b) < len(cur) {
					smallest[dir] = b
				}
			}
		}
		return nil
	})
	for _, b := range smallest {
		f.Add(b)
	}
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "a">]><EhrExtract xmlns="urn:hl7-org:v3"/>`))
	f.Add([]byte(`<EhrExtract xmlns="urn:hl7-org:v3"><recordTarget><patient><id extension="9000000009"/></patient></recordTarget></EhrExtract>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseExtract(b, 1<<20)
		if err != nil {
			return
		}
		x.NHSNumber()
		m, err := x.Map(MapOptions{NHS: "9000000009", Practice: "A12345"})
		if err != nil {
			// Mapping may only fail on R4 validation of a built resource:
			// that is a bug in a mapper, reported with the input.
			t.Fatalf("map failed: %v", err)
		}
		if len(m.Resources) < 2 || m.Resources[0].Type != "Patient" {
			t.Fatalf("record without Patient and Organization")
		}
	})
}
