package gp2gp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
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
	// The classes of the rules tests: report with specimen, group, plan,
	// immunisation, problem, confidential medication.
	f.Add(synthetic(`<component><CompoundStatement classCode="CLUSTER"><id root="L1"/><code code="16488004" codeSystem="2.16.840.1.113883.2.1.3.2.4.15"/><component><CompoundStatement classCode="CLUSTER"><id root="S1"/><code code="123038009" codeSystem="2.16.840.1.113883.2.1.3.2.4.15"/><specimen><specimenRole><id root="2.16.840.1.113883.2.1.4.5.2" extension="A1"/><effectiveTime><center value="20230530"/></effectiveTime></specimenRole></specimen>` +
		obsXML("T1", "44O5.00", OIDReadV2, `<interpretationCode code="HI" codeSystem="2.16.840.1.113883.2.1.6.5"/>`) + `</CompoundStatement></component></CompoundStatement></component>`))
	f.Add(synthetic(`<component><CompoundStatement classCode="BATTERY"><id root="B1"/><code nullFlavor="UNK"/>` + obsXML("B2", "65E..00", OIDReadV2, "") + `</CompoundStatement></component><component><PlanStatement><id root="P1"/><code code="X" codeSystem="2.16.840.1.113883.2.1.6.3"/></PlanStatement></component>`))
	f.Add(synthetic(`<component><LinkSet><id root="LS"/><code code="1" codeSystem="2.16.840.1.113883.2.1.3.2.4.15"/><conditionNamed><namedStatementRef><id root="M1"/></namedStatementRef></conditionNamed></LinkSet></component><component><MedicationStatement><id root="M1"/><confidentialityCode code="NOPAT"/><component><ehrSupplyAuthorise><id root="A"/></ehrSupplyAuthorise></component></MedicationStatement></component>`))
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

// FuzzParseImmunisationCodes: the code table parser never panics, and what
// it accepts classifies without panicking.
func FuzzParseImmunisationCodes(f *testing.F) {
	f.Add(immunisationTSV)
	f.Add([]byte("snomed\t86198006\texact\tInfluenza vaccination\t[x]\n"))
	f.Add([]byte("readv2\t65E\tprefix\tx\n# comment\n\n"))
	f.Add([]byte("ctv3\t\tprefix\tx\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ic, err := parseImmunisationCodes(b)
		if err != nil {
			return
		}
		ic.is([]coding{{System: fhir.SNOMED, Code: "86198006"}, {System: fhir.ReadV2, Code: "65E..00"}})
	})
}
