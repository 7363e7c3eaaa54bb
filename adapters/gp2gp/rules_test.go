package gp2gp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// synthetic wraps statements in a minimal RCMR_IN030000UK06 message: one
// consultation (ehrComposition) authored by one agent. Only made-up
// content: no shared test data is copied.
func synthetic(statements string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<RCMR_IN030000UK06 xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <ControlActEvent><subject><EhrExtract classCode="EXTRACT" moodCode="EVN">
  <availabilityTime value="20240101120000"/>
  <recordTarget><patient><id root="2.16.840.1.113883.2.1.4.1" extension="9000000009"/></patient></recordTarget>
  <component><ehrFolder>
   <responsibleParty><agentDirectory><part><Agent><id root="AGENT-1"/><agentPerson><name><family>Test</family></name></agentPerson></Agent></part></agentDirectory></responsibleParty>
   <component><ehrComposition classCode="COMPOSITION" moodCode="EVN">
    <id root="COMP-1"/>
    <code code="185317003" codeSystem="2.16.840.1.113883.2.1.3.2.4.15" displayName="Telephone encounter"/>
    <effectiveTime><center value="20230601093000"/></effectiveTime>
    <availabilityTime value="20230601093000"/>
    <author><time value="20230601094512"/><agentRef><id root="AGENT-1"/></agentRef></author>
    ` + statements + `
   </ehrComposition></component>
  </ehrFolder></component>
 </EhrExtract></subject></ControlActEvent>
</RCMR_IN030000UK06>`)
}

func obsXML(id, code, sys string, extra string) string {
	return fmt.Sprintf(`<component><ObservationStatement classCode="OBS" moodCode="EVN"><id root="%s"/><code code="%s" codeSystem="%s"/><statusCode code="COMPLETE"/><effectiveTime><center value="20230601"/></effectiveTime><availabilityTime value="20230601"/>%s</ObservationStatement></component>`, id, code, sys, extra)
}

func mapSynthetic(t *testing.T, statements string) *Mapped {
	t.Helper()
	doc := synthetic(statements)
	if strings.HasPrefix(statements, compositionNOPAT) {
		doc = []byte(strings.Replace(string(doc), `<id root="COMP-1"/>`, `<id root="COMP-1"/><confidentialityCode code="NOPAT" codeSystem="2.16.840.1.113883.4.642.3.47"/>`, 1))
	}
	x, err := ParseExtract(doc, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := x.Map(MapOptions{NHS: "9000000009", Practice: "A12345"})
	if err != nil {
		t.Fatal(err)
	}
	checkResources(t, "synthetic", "9000000009", m.Resources)
	checkSignals(t, m)
	return m
}

func resourceOf(t *testing.T, m *Mapped, typ, src string) map[string]any {
	t.Helper()
	for _, r := range m.Resources {
		if r.Type == typ && r.ID == fhir.ResourceID(fhir.PatientID("9000000009"), localID(src)) {
			var doc map[string]any
			if err := json.Unmarshal(r.JSON, &doc); err != nil {
				t.Fatal(err)
			}
			return doc
		}
	}
	t.Fatalf("no %s made of %s; have %v", typ, src, countTypes(m.Resources))
	return nil
}

func warningOf(m *Mapped, c fhir.Code) *fhir.Issue {
	for i := range m.Warnings {
		if m.Warnings[i].Code == c {
			return &m.Warnings[i]
		}
	}
	return nil
}

func TestSyntheticRules(t *testing.T) {
	const read, ctv3, sct, emis = OIDReadV2, OIDCTV3, OIDSNOMED, OIDEMISCodes
	cases := []struct {
		name  string
		xml   string
		check func(t *testing.T, m *Mapped)
	}{
		{"local code gets the generic SNOMED concept", obsXML("O1", "EMISLOCAL1", emis, ""), func(t *testing.T, m *Mapped) {
			o := resourceOf(t, m, "Observation", "O1")
			if !jsonHasCoding(mustJSON(o), SystemEMISCodes, "EMISLOCAL1") || !jsonHasCoding(mustJSON(o), fhir.SNOMED, degradedRecordEntry.Code) {
				t.Errorf("want the EMIS code and %s: %v", degradedRecordEntry.Code, o["code"])
			}
		}},
		{"SNOMED translation: no generic concept", `<component><ObservationStatement><id root="O2"/><code code="H33..00" codeSystem="` + read + `"><translation code="195967001" codeSystem="` + sct + `"/></code><availabilityTime value="20230601"/></ObservationStatement></component>`, func(t *testing.T, m *Mapped) {
			o := mustJSON(resourceOf(t, m, "Observation", "O2"))
			if !jsonHasCoding(o, fhir.ReadV2, "H33..00") || !jsonHasCoding(o, fhir.SNOMED, "195967001") || jsonHasCoding(o, fhir.SNOMED, degradedRecordEntry.Code) {
				t.Errorf("codes: %s", o)
			}
		}},
		{"uncoded observation withheld and signalled", `<component><ObservationStatement><id root="O3"/><code nullFlavor="UNK"/><value xsi:type="PQ" value="5" unit="mmol/L"/></ObservationStatement></component>`, func(t *testing.T, m *Mapped) {
			if len(byType(m, "Observation")) != 0 || warningOf(m, fhir.WarnUncodedItems) == nil {
				t.Errorf("observations %d, warnings %+v", len(byType(m, "Observation")), m.Warnings)
			}
		}},
		{"attachment withheld and signalled", `<component><NarrativeStatement><id root="N1"/><text>x</text><reference><referredToExternalDocument><id root="D1"/><code code="25821000000100" codeSystem="` + sct + `"/></referredToExternalDocument></reference></NarrativeStatement></component>`, func(t *testing.T, m *Mapped) {
			if warningOf(m, fhir.WarnAttachmentsWithheld) == nil || warningOf(m, fhir.WarnUncodedItems) != nil {
				t.Errorf("warnings %+v", m.Warnings)
			}
		}},
		{"unknown element signalled", `<component><FutureStatement><id root="F1"/><code code="X" codeSystem="` + sct + `"/></FutureStatement></component>`, func(t *testing.T, m *Mapped) {
			if warningOf(m, fhir.WarnUncodedItems) == nil {
				t.Errorf("warnings %+v", m.Warnings)
			}
		}},
		{"plan is a ServiceRequest with intent plan", `<component><PlanStatement classCode="OBS" moodCode="INT"><id root="P1"/><code code="8B31400" codeSystem="` + read + `"/><statusCode code="ACTIVE"/><effectiveTime><center value="20240315"/></effectiveTime><availabilityTime value="20230601"/></PlanStatement></component>`, func(t *testing.T, m *Mapped) {
			p := resourceOf(t, m, "ServiceRequest", "P1")
			if p["intent"] != "plan" || p["status"] != "active" || p["occurrenceDateTime"] != "2024-03-15" || !jsonHasCoding(mustJSON(p), fhir.SNOMED, degradedPlan.Code) {
				t.Errorf("plan %v", p)
			}
		}},
		{"self referral is an Observation", `<component><RequestStatement classCode="OBS" moodCode="RQO"><id root="R1"/><code code="183561008" codeSystem="` + sct + `"><qualifier><name code="X"/><value code="SelfReferral"/></qualifier></code><availabilityTime value="20230601"/></RequestStatement></component>`, func(t *testing.T, m *Mapped) {
			resourceOf(t, m, "Observation", "R1")
			if len(byType(m, "ServiceRequest")) != 0 {
				t.Error("a self referral became a ServiceRequest")
			}
		}},
		{"battery under a consultation groups its members", `<component><CompoundStatement classCode="BATTERY" moodCode="EVN"><id root="B1"/><code code="44D6.00" codeSystem="` + read + `"/><availabilityTime value="20230601"/>` +
			obsXML("B1a", "44E..00", read, `<value xsi:type="PQ" value="4.1" unit="mmol/L"/><interpretationCode code="HI" codeSystem="2.16.840.1.113883.2.1.6.5"/>`) + obsXML("B1b", "44F..00", read, "") + `</CompoundStatement></component>`, func(t *testing.T, m *Mapped) {
			g := resourceOf(t, m, "Observation", "B1")
			if members, _ := g["hasMember"].([]any); len(members) != 2 {
				t.Errorf("hasMember %v", g["hasMember"])
			}
			a := mustJSON(resourceOf(t, m, "Observation", "B1a"))
			if !jsonHasCoding(a, systemInterpretation, "H") {
				t.Errorf("PMIP HI not mapped to v3 H: %s", a)
			}
		}},
		{"uncoded cluster with members: the generic concept", `<component><CompoundStatement classCode="CLUSTER"><id root="C1"/><code nullFlavor="UNK"/>` + obsXML("C1a", "1683.00", read, "") + `</CompoundStatement></component>`, func(t *testing.T, m *Mapped) {
			g := mustJSON(resourceOf(t, m, "Observation", "C1"))
			if !jsonHasCoding(g, fhir.SNOMED, degradedRecordEntry.Code) || !strings.Contains(string(g), "hasMember") {
				t.Errorf("group %s", g)
			}
		}},
		{"laboratory report, specimen and results", `<component><CompoundStatement classCode="CLUSTER"><id root="L1"/><id root="2.16.840.1.113883.2.1.4.5.5" extension="LAB/123"/><code code="16488004" codeSystem="` + sct + `"/><availabilityTime value="20230601"/>
			<component><CompoundStatement classCode="CLUSTER"><id root="S1"/><code code="123038009" codeSystem="` + sct + `"/><specimen><specimenRole><id root="SR1"/><id root="2.16.840.1.113883.2.1.4.5.2" extension="ACC-9"/><effectiveTime><center value="20230530"/></effectiveTime></specimenRole></specimen>
			<component><CompoundStatement classCode="BATTERY"><id root="T1"/><code code="44O..00" codeSystem="` + read + `"/>` + obsXML("T1a", "44O5.00", read, `<value xsi:type="PQ" value="5" unit="mmol/L"/><interpretationCode code="LL" codeSystem="2.16.840.1.113883.5.83"/>`) + `</CompoundStatement></component>
			</CompoundStatement></component></CompoundStatement></component>`, func(t *testing.T, m *Mapped) {
			dr := resourceOf(t, m, "DiagnosticReport", "L1")
			sp := resourceOf(t, m, "Specimen", "S1")
			res := resourceOf(t, m, "Observation", "T1a")
			spRef := "Specimen/" + sp["id"].(string)
			if !strings.Contains(string(mustJSON(dr)), spRef) || !strings.Contains(string(mustJSON(res)), spRef) {
				t.Errorf("specimen %s not referenced: report %v result %v", spRef, dr["specimen"], res["specimen"])
			}
			if acc, _ := sp["accessionIdentifier"].(map[string]any); acc["value"] != "ACC-9" {
				t.Errorf("accession %v", sp["accessionIdentifier"])
			}
			if c, _ := sp["collection"].(map[string]any); c["collectedDateTime"] != "2023-05-30" {
				t.Errorf("collection %v", sp["collection"])
			}
			if !jsonHasCoding(mustJSON(res), systemInterpretation, "LL") || !strings.Contains(string(mustJSON(res)), `"laboratory"`) {
				t.Errorf("result %v", res)
			}
			if ids, _ := dr["identifier"].([]any); len(ids) != 1 {
				t.Errorf("report identifier %v", dr["identifier"])
			}
			if r, _ := dr["result"].([]any); len(r) != 1 {
				t.Errorf("report results %v (want the test group only)", dr["result"])
			}
		}},
		{"immunisation by Read prefix and CTV3 prefix", obsXML("I1", "65E..00", read, "") + obsXML("I2", "653..", ctv3, "") + obsXML("I3", "65V..00", read, ""), func(t *testing.T, m *Mapped) {
			for _, id := range []string{"I1", "I2"} {
				im := mustJSON(resourceOf(t, m, "Immunization", id))
				if !jsonHasCoding(im, fhir.SNOMED, immunisationProcedure.Code) || !jsonHasCoding(im, systemNullFlavor, "UNK") {
					t.Errorf("%s: %s", id, im)
				}
			}
			resourceOf(t, m, "Observation", "I3") // not an immunisation heading: stays an Observation
		}},
		{"unspecified problem: active, and signalled", `<component><LinkSet classCode="OBS" moodCode="EVN"><id root="LS1"/><code code="394776006" codeSystem="` + sct + `"/><availabilityTime value="20230601"/><conditionNamed><namedStatementRef><id root="O9"/></namedStatementRef></conditionNamed></LinkSet></component>` + obsXML("O9", "G20..00", read, ""), func(t *testing.T, m *Mapped) {
			c := resourceOf(t, m, "Condition", "LS1")
			w := warningOf(m, fhir.WarnStatusDefaulted)
			if w == nil || !strings.Contains(w.Expression, c["id"].(string)) || !strings.Contains(string(mustJSON(c)), `"active"`) {
				t.Errorf("condition %v, warning %+v", c["clinicalStatus"], w)
			}
			named := resourceOf(t, m, "Observation", "O9")
			if !strings.Contains(string(mustJSON(c)), "Observation/"+named["id"].(string)) || !jsonHasCoding(mustJSON(c), fhir.ReadV2, "G20..00") {
				t.Errorf("the named observation is not the actual problem: %s", mustJSON(c))
			}
		}},
		{"confidential and open prescriptions of one drug", `<component><MedicationStatement><id root="M1"/><confidentialityCode code="NOPAT" codeSystem="2.16.840.1.113883.4.642.3.47"/><consumable><manufacturedProduct><manufacturedMaterial><code code="322236009" codeSystem="` + sct + `"/></manufacturedMaterial></manufacturedProduct></consumable><component><ehrSupplyAuthorise><id root="A1"/><statusCode code="ACTIVE"/><availabilityTime value="20230601"/><repeatNumber value="3"/></ehrSupplyAuthorise></component></MedicationStatement></component>` +
			`<component><MedicationStatement><id root="M2"/><consumable><manufacturedProduct><manufacturedMaterial><code code="322236009" codeSystem="` + sct + `"/></manufacturedMaterial></manufacturedProduct></consumable><component><ehrSupplyAuthorise><id root="A2"/><statusCode code="ACTIVE"/><availabilityTime value="20230601"/><repeatNumber value="3"/></ehrSupplyAuthorise></component></MedicationStatement></component>`, func(t *testing.T, m *Mapped) {
			conf, open := 0, 0
			for _, r := range byType(m, "Medication") {
				if r.Ix.Confidential {
					conf++
				} else {
					open++
				}
			}
			if conf != 1 || open != 1 {
				t.Errorf("Medications: %d confidential, %d open; want one of each", conf, open)
			}
			for _, r := range m.Resources {
				if (r.Type == "MedicationRequest" || r.Type == "MedicationStatement") && strings.Contains(r.ID, "A1") != r.Ix.Confidential {
					t.Errorf("%s confidential=%v", r.Reference(), r.Ix.Confidential)
				}
			}
		}},
		{"uncoded drug: the generic medication concept", `<component><MedicationStatement><id root="M3"/><component><ehrSupplyAuthorise><id root="A3"/><statusCode code="ACTIVE"/><availabilityTime value="20230601"/><repeatNumber value="0"/></ehrSupplyAuthorise></component></MedicationStatement></component>`, func(t *testing.T, m *Mapped) {
			meds := byType(m, "Medication")
			if len(meds) != 1 || !fhir.HasCoding(meds[0].Ix.Code, fhir.SNOMED, degradedMedication.Code) {
				t.Errorf("medications %v", countTypes(m.Resources))
			}
		}},
		{"NOPAT composition labels everything in it", compositionNOPAT + obsXML("O7", "G20..00", read, "") + `<component><PlanStatement><id root="P7"/><code code="8B31400" codeSystem="` + read + `"/></PlanStatement></component>`, func(t *testing.T, m *Mapped) {
			n := 0
			for _, r := range m.Resources {
				switch r.Type {
				case "Patient", "Organization", "Practitioner":
					continue
				}
				n++
				if !r.Ix.Confidential {
					t.Errorf("%s in a NOPAT composition is not labelled", r.Reference())
				}
			}
			if n != 3 || m.Confidential != 3 { // Encounter, Observation, ServiceRequest
				t.Errorf("%d clinical resources, %d labelled", n, m.Confidential)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, mapSynthetic(t, c.xml))
		})
	}
}

// compositionNOPAT, at the start of a synthetic extract's statements, marks
// its composition confidential.
const compositionNOPAT = "<!--NOPAT-->"

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestInterpretations: every v3 ObservationInterpretation code of R4 maps
// to itself, retired and PMIP codes to their successor, anything else to
// nothing.
func TestInterpretations(t *testing.T) {
	ic := func(code, sys string) *node {
		n := &node{Attr: attrs("code", code)}
		if sys != "" {
			n.Attr = append(n.Attr, attrs("codeSystem", sys)...)
		}
		return n
	}
	for code := range interpretationDisplay {
		got := interpretation(ic(code, oidInterpretation))
		if len(got) != 1 || got[0].Code != code || got[0].System != systemInterpretation {
			t.Errorf("%s -> %+v", code, got)
		}
	}
	cases := []struct{ code, sys, want, wantSys string }{
		{"HI", oidPMIPInterpretation, "H", systemInterpretation},
		{"LO", oidPMIPInterpretation, "L", systemInterpretation},
		{"OR", oidPMIPInterpretation, "A", systemInterpretation},
		{"PA", oidPMIPInterpretation, "PA", systemUKCoreInterpretation},
		{"H>", oidInterpretation, "HU", systemInterpretation},
		{"MS", oidInterpretation, "I", systemInterpretation},
		{"hh", "", "HH", systemInterpretation},
		{"H", "1.2.3.4", "", ""},
		{"ZZ", oidInterpretation, "", ""},
	}
	for _, c := range cases {
		got := interpretation(ic(c.code, c.sys))
		if c.want == "" {
			if got != nil {
				t.Errorf("%s|%s -> %+v, want nothing", c.sys, c.code, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Code != c.want || got[0].System != c.wantSys {
			t.Errorf("%s|%s -> %+v, want %s|%s", c.sys, c.code, got, c.wantSys, c.want)
		}
	}
	if interpretation(&node{Attr: attrs("nullFlavor", "UNK")}) != nil {
		t.Error("a null flavour became an interpretation")
	}
}

// TestImmunisationCodes: the shipped table parses, has each kind of rule,
// and refuses malformed lines.
func TestImmunisationCodes(t *testing.T) {
	if len(immunisations.exact) < 50 || len(immunisations.prefixes[fhir.ReadV2]) < 5 || len(immunisations.prefixes[fhir.CTV3]) < 3 {
		t.Errorf("table: %d exact, prefixes %v", len(immunisations.exact), immunisations.prefixes)
	}
	yes := [][]coding{
		{{System: fhir.SNOMED, Code: "86198006"}},
		{{System: fhir.ReadV2, Code: "65ED.00"}},
		{{System: "urn:oid:1.2", Code: "x"}, {System: fhir.SNOMED, Code: "1324681000000101"}},
	}
	no := [][]coding{
		{{System: fhir.SNOMED, Code: "304250009"}}, // immunisation status: a finding
		{{System: fhir.ReadV2, Code: "6E..."}},
		{{System: fhir.SNOMED, Code: "65E"}}, // a prefix is for Read codes only
		nil,
	}
	for _, cs := range yes {
		if !immunisations.is(cs) {
			t.Errorf("%v is an immunisation", cs)
		}
	}
	for _, cs := range no {
		if immunisations.is(cs) {
			t.Errorf("%v is not an immunisation", cs)
		}
	}
	for _, bad := range []string{"snomed\t1\n", "loinc\t1\texact\tx\n", "snomed\t1\tfuzzy\tx\n", "snomed\t\texact\tx\n"} {
		if _, err := parseImmunisationCodes([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
