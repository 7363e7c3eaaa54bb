package gp2gp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func featureFiles(tb testing.TB) []string {
	root := filepath.Join(sharedDir(tb), "gp2gp", "features")
	var out []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".xml") {
			out = append(out, p)
		}
		return nil
	})
	if len(out) == 0 {
		tb.Fatal("no feature files")
	}
	return out
}

// TestFeatureExtractsMap maps every whole EhrExtract among the feature files;
// the rest are fragments (single statements, agents, quantities) and must be
// refused as not an extract, never crash.
func TestFeatureExtractsMap(t *testing.T) {
	whole := 0
	for _, f := range featureFiles(t) {
		rel := strings.TrimPrefix(f, filepath.Join(sharedDir(t), "gp2gp", "features")+"/")
		t.Run(rel, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			x, err := ParseExtract(b, 0)
			if err != nil {
				if !errors.Is(err, ErrNotExtract) && !errors.Is(err, ErrNamespace) {
					t.Fatalf("fragment refused for the wrong reason: %v", err)
				}
				return
			}
			whole++
			m, err := x.Map(MapOptions{NHS: "9000000009", Practice: "B83002"})
			if err != nil {
				t.Fatalf("map: %v", err)
			}
			checkResources(t, rel, "9000000009", m.Resources)
			checkSignals(t, m)
		})
	}
	if whole < 150 {
		t.Errorf("only %d whole extracts among the features", whole)
	}
}

func mapFeature(t *testing.T, rel string) *Mapped {
	t.Helper()
	return mapFile(t, filepath.Join(sharedDir(t), "gp2gp", "features", rel), "9000000009")
}

func byType(m *Mapped, typ string) []*fhir.Resource {
	var out []*fhir.Resource
	for _, r := range m.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// TestConfidentialLabelled: NOPAT entries (on the statement, its
// composition, or what a problem names) are served labelled NOPAT, so that
// redaction withholds them and tells the consumer; the same structure
// without NOPAT carries no label. The mapper itself never says what was
// confidential.
func TestConfidentialLabelled(t *testing.T) {
	cases := []struct {
		file, typ string
		clear     string // the same structure without NOPAT, for contrast ("" = none)
	}{
		{"Condition/linkset_valid_nopat_confidentiality_code.xml", "Condition", "Condition/linkset_valid.xml"},
		{"Condition/linkset_valid_ehr_composition_nopat_confidentiality_code.xml", "Condition", "Condition/linkset_valid.xml"},
		{"AllergyIntolerance/allergy-structure-with-observation-statement-nopat-confidentiality-code.xml", "AllergyIntolerance", "AllergyIntolerance/allergy-structure-with-observation-statement-noscrub-confidentiality-code.xml"},
		{"AllergyIntolerance/allergy-structure-with-ehr-composition-nopat-confidentiality-code.xml", "AllergyIntolerance", ""},
		{"MedicationStatement/ehrExtract_nopatConfidentialityCodePresentWithinMedicationStatement.xml", "MedicationRequest", ""},
		{"MedicationStatement/ehrExtract_nopatConfidentialityCodePresentWithinEhrComposition.xml", "MedicationStatement", ""},
		{"RequestStatement/full_valid_data_example_with_nopat_confidentiality_code.xml", "ServiceRequest", "RequestStatement/full_valid_data_example.xml"},
		{"BloodPressure/battery_compound_statement_containing_confidentiality_code.xml", "Observation", ""},
		{"Encounter/encounter_with_nopat_confidentiality_code_within_ehr_composition.xml", "Encounter", "Encounter/encounter_with_noscrub_confidentiality_code_within_ehr_composition.xml"},
		{"Specimen/specimen_valid_with_nopat_compound_statement.xml", "Specimen", "Specimen/specimen_valid.xml"},
	}
	labelled := func(m *Mapped, typ string) int {
		n := 0
		for _, r := range byType(m, typ) {
			if r.Ix.Confidential {
				n++
				if !strings.Contains(string(r.JSON), `"security":[{"code":"NOPAT"`) && !strings.Contains(string(r.JSON), `"code":"NOPAT"`) {
					t.Errorf("%s is confidential without the NOPAT label", r.Reference())
				}
			}
		}
		return n
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			m := mapFeature(t, c.file)
			checkSignals(t, m)
			if m.Confidential == 0 || labelled(m, c.typ) == 0 {
				t.Fatalf("no %s labelled confidential (%d labelled in all)", c.typ, m.Confidential)
			}
			for _, w := range m.Warnings {
				if w.Code == fhir.WarnConfidentialItems {
					t.Errorf("the mapper warns of confidential items: %+v", w)
				}
			}
			if c.clear != "" {
				open := mapFeature(t, c.clear)
				if n := labelled(open, c.typ); n != 0 || len(byType(open, c.typ)) == 0 {
					t.Errorf("%s without NOPAT: %d labelled of %d", c.typ, n, len(byType(open, c.typ)))
				}
			}
		})
	}
}

// TestElementMappers exercises single features end to end through the
// mapper, checking the element each file was made for.
func TestElementMappers(t *testing.T) {
	type check func(t *testing.T, m *Mapped)
	hasJSON := func(typ string, subs ...string) check {
		return func(t *testing.T, m *Mapped) {
			rs := byType(m, typ)
			if len(rs) == 0 {
				t.Fatalf("no %s", typ)
			}
			for _, s := range subs {
				found := false
				for _, r := range rs {
					found = found || strings.Contains(string(r.JSON), s)
				}
				if !found {
					t.Errorf("no %s contains %s", typ, s)
				}
			}
		}
	}
	warned := func(code fhir.Code) check {
		return func(t *testing.T, m *Mapped) {
			for _, w := range m.Warnings {
				if w.Code == code {
					return
				}
			}
			t.Errorf("no %s warning in %+v", code, m.Warnings)
		}
	}
	none := func(typ string) check {
		return func(t *testing.T, m *Mapped) {
			if n := len(byType(m, typ)); n != 0 {
				t.Errorf("%d %s, want none", n, typ)
			}
		}
	}
	cases := []struct {
		file   string
		checks []check
	}{
		{"BloodPressure/full_valid_data_bp_example.xml", []check{hasJSON("Observation", `"code":"85354-9"`, `"code":"8480-6"`, `"code":"8462-4"`, `"mm[Hg]"`, fhir.ProfileBloodPressure, `"vital-signs"`)}},
		{"BloodPressure/non-conformant-blood-pressure-triple-not-mapped.xml", []check{func(t *testing.T, m *Mapped) {
			for _, r := range byType(m, "Observation") {
				if fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
					t.Error("a non-conformant triple became a BP Observation")
				}
			}
		}}},
		{"Condition/linkset_valid.xml", []check{hasJSON("Condition", `"problem-list-item"`, extProblemSignificance, `"onsetDateTime"`)}},
		{"Condition/linkset_medication_refs.xml", []check{hasJSON("Condition", extRelatedClinicalContent)}},
		{"AllergyIntolerance/drug-allergy-structure.xml", []check{hasJSON("AllergyIntolerance", `"medication"`)}},
		{"AllergyIntolerance/non-drug-allergy-structure.xml", []check{hasJSON("AllergyIntolerance", `"environment"`)}},
		{"AllergyIntolerance/allergy-structure-with-multiple-allergy.xml", []check{func(t *testing.T, m *Mapped) {
			// The three allergies repeat one statement id: the first wins,
			// and the degraded (uncoded) entries take the category's code.
			rs := byType(m, "AllergyIntolerance")
			if len(rs) != 1 || len(rs[0].Ix.Code) == 0 {
				t.Errorf("%d allergies, want 1 coded", len(rs))
			}
		}}},
		{"MedicationStatement/ehrExtract_MultipleSupplyPrescribeInFulfilmentOfSingleAcuteSupplyAuthorise.xml", []check{func(t *testing.T, m *Mapped) {
			plans, orders := 0, 0
			for _, r := range byType(m, "MedicationRequest") {
				if r.Ix.Intent == "plan" {
					plans++
				} else {
					orders++
				}
			}
			if plans != orders || plans < 2 || len(byType(m, "MedicationStatement")) != plans {
				t.Errorf("acute issued %d times: %d plans, %d statements; want one of each per issue", orders, plans, len(byType(m, "MedicationStatement")))
			}
		}}},
		{"MedicationStatement/ehrExtract_MultipleSupplyPrescribeInFulfilmentOfSingleNonAcuteSupplyAuthorise.xml", []check{func(t *testing.T, m *Mapped) {
			if n := len(byType(m, "MedicationStatement")); n != 1 {
				t.Errorf("repeat authorisation: %d statements, want 1", n)
			}
		}}},
		{"RequestStatement/full_valid_data_example.xml", []check{hasJSON("ServiceRequest", `"intent":"order"`, `"3457005"`, `"priority":"routine"`)}},
		{"Observation/full_valid_data_observation_example.xml", []check{hasJSON("Observation", `"referenceRange"`, `"interpretation"`, `"valueQuantity"`)}},
		// Uncoded statements are free text: withheld with a warning, never an empty code.
		{"Observation/high_low_reference_range_observation_example.xml", []check{none("Observation"), warned(fhir.WarnUncodedItems)}},
		// A drug without a code: served with the transfer-degraded medication
		// concept (the course, its dates and dosage are coded facts).
		{"MedicationStatement/ehrExtract_discontinue.xml", []check{hasJSON("MedicationStatement", `"status":"stopped"`), hasJSON("Medication", `"196421000000109"`)}},
		{"Observation/value_st_observation_example.xml", []check{func(t *testing.T, m *Mapped) {
			for _, r := range byType(m, "Observation") {
				if strings.Contains(string(r.JSON), "valueString") {
					t.Error("a string value (free text) left the record")
				}
			}
		}}},
		{"Encounter/invalid_encounter_code_1.xml", []check{none("Encounter")}},
		{"Encounter/suppressed_with_ehr_empty.xml", []check{none("Encounter")}},
		{"Encounter/full_valid_structured_encounter.xml", []check{hasJSON("Encounter", `"status":"finished"`, `"period"`)}},
		{"DocumentReference/narrative_statement_has_referred_to_external_document.xml", []check{none("DocumentReference"), none("Observation"), warned(fhir.WarnAttachmentsWithheld)}},
		{"Specimen/specimen_valid.xml", []check{hasJSON("Specimen", `"accessionIdentifier":{"system":"urn:oid:2.16.840.1.113883.2.1.4.5.2","value":"SPECIMEN_ROLE_ID_EXTENSION"}`, `"collectedDateTime":"2010-02-23`)}},
		{"Immunization/full_valid_immunization_with_translation.xml", []check{hasJSON("Immunization", extVaccinationProcedure, `"code":"65E..00"`, `"code":"UNK"`, `"occurrenceDateTime"`)}},
		{"Template/full_valid_template.xml", []check{hasJSON("Observation", `"hasMember"`, `"PKyz500"`)}},
		{"ProcedureRequest/full_valid_data_example.xml", []check{hasJSON("ServiceRequest", `"intent":"plan"`, `"occurrenceDateTime"`)}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m := mapFeature(t, c.file)
			for _, ck := range c.checks {
				ck(t, m)
			}
		})
	}
}

// TestFlagsFromConfiguredCodes: a PlanStatement becomes a Flag only when
// its code is configured as a risk or warning.
func TestFlagsFromConfiguredCodes(t *testing.T) {
	path := filepath.Join(sharedDir(t), "gp2gp", "features", "ProcedureRequest", "full_valid_data_example.xml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ParseExtract(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	var code coding
	x.extract.walk(func(n *node) bool {
		if n.Name == "PlanStatement" && code.Code == "" {
			if cs := codings(n.child("code")); len(cs) > 0 {
				code = cs[0]
			}
		}
		return true
	})
	if code.Code == "" {
		t.Fatal("feature has no coded PlanStatement")
	}
	for _, flagged := range []bool{false, true} {
		opt := MapOptions{NHS: "9000000009", Practice: "B83002"}
		if flagged {
			opt.Flags = map[string]bool{code.System + "|" + code.Code: true}
		}
		m, err := x.Map(opt)
		if err != nil {
			t.Fatal(err)
		}
		checkResources(t, "flags", "9000000009", m.Resources)
		if got := len(byType(m, "Flag")); (got == 1) != flagged {
			t.Errorf("flagged=%v: %d Flags", flagged, got)
		}
	}
}

// TestFragments unit-tests the element readers on the fragment files.
func TestFragments(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "gp2gp", "features")
	frag := func(t *testing.T, rel string) *node {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		n, err := parseXML(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("quantities", func(t *testing.T) {
		cases := map[string]string{
			"Quantity/pq_standard_unit.xml":     `"value":`,
			"Quantity/ivlpq_high_inclusive.xml": `"comparator":"<="`,
			"Quantity/ivlpq_high_exclusive.xml": `"comparator":"<"`,
			"Quantity/ivlpq_low_inclusive.xml":  `"comparator":">="`,
			"Quantity/ivlpq_low_exclusive.xml":  `"comparator":">"`,
		}
		for rel, want := range cases {
			q := quantity(frag(t, rel))
			if q == nil {
				t.Errorf("%s: no quantity", rel)
				continue
			}
			raw := jsonNoEscape(q)
			if !strings.Contains(string(raw), want) {
				t.Errorf("%s: %s lacks %s", rel, raw, want)
			}
		}
	})
	t.Run("codes", func(t *testing.T) {
		n := &node{Attr: attrs("code", "G30..00", "codeSystem", OIDReadV2, "displayName", "Acute MI"),
			Kids: []*node{
				{Name: "originalText", Text: "free text never read"},
				{Name: "translation", Attr: attrs("code", "22298006", "codeSystem", OIDSNOMED)},
				{Name: "translation", Attr: attrs("code", "X200E", "codeSystem", OIDCTV3)},
				{Name: "translation", Attr: attrs("code", "EMISD_1", "codeSystem", OIDEMISCodes)},
				{Name: "translation", Attr: attrs("code", "22298006", "codeSystem", OIDSNOMED)},
				{Name: "translation", Attr: attrs("code", "nosystem")},
				{Name: "translation", Attr: attrs("code", "x", "codeSystem", "1.2.3")},
			}}
		got := codings(n)
		want := []coding{{fhir.ReadV2, "G30..00", "Acute MI"}, {fhir.SNOMED, "22298006", ""}, {fhir.CTV3, "X200E", ""}, {SystemEMISCodes, "EMISD_1", ""}, {"urn:oid:1.2.3", "x", ""}}
		if len(got) != len(want) {
			t.Fatalf("codings = %+v", got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("coding %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		if conceptOf(&node{Attr: attrs("nullFlavor", "UNK")}) != nil {
			t.Error("a null-flavoured code became a concept")
		}
	})
	t.Run("agents", func(t *testing.T) {
		m := mapFeature(t, "RequestStatement/full_valid_data_with_referral_request.xml")
		if len(byType(m, "Practitioner")) == 0 {
			t.Error("no Practitioner from the agent directory")
		}
	})
}

func TestParseTS(t *testing.T) {
	cases := []struct{ in, want string }{
		{"2010", "2010"}, {"201001", "2010-01"}, {"20100113", "2010-01-13"},
		{"201001131137", "2010-01-13T11:37:00+00:00"}, {"20100613113731", "2010-06-13T11:37:31+01:00"},
		{"20100613113731+0200", "2010-06-13T11:37:31+02:00"}, {"20100231", ""}, {"2010x", ""}, {"", ""}, {"20101301", ""},
	}
	for _, c := range cases {
		if got := parseTS(c.in).Date; got != c.want {
			t.Errorf("parseTS(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNumber(t *testing.T) {
	cases := map[string]string{"10": "10", "10.50": "10.50", "007": "7", "+3": "3", "1e2": "100", ".5": "0.5", "x": "", "NaN": "", "": ""}
	for in, want := range cases {
		got, _ := number(in)
		if string(got) != want {
			t.Errorf("number(%q) = %q, want %q", in, got, want)
		}
	}
}
