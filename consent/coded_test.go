package consent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// leaf is one scalar of a JSON document: its path (keys joined by ".",
// array indices left out) and its value as written.
type leaf struct{ path, val string }

// jsonLeaves walks a JSON document token by token (so repeated keys are all
// seen) and returns its string leaves and its other scalars. It knows
// nothing of FHIR nor of the allowlist: it is the tests' independent view.
func jsonLeaves(raw []byte) (strs, scalars []leaf, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					p := k.(string)
					if path != "" {
						p = path + "." + p
					}
					if err := walk(p); err != nil {
						return err
					}
				}
			case '[':
				for dec.More() {
					if err := walk(path); err != nil {
						return err
					}
				}
			}
			_, err := dec.Token() // closing delimiter
			return err
		case string:
			strs = append(strs, leaf{path, v})
		default:
			scalars = append(scalars, leaf{path, fmt.Sprint(v)})
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data")
	}
	return strs, scalars, nil
}

// freeMarked reports a string the fixtures mark as free text or as going
// with its element.
func freeMarked(s string) bool { return strings.Contains(s, "free:") || strings.Contains(s, "gone") }

// checkCodedOutput is the independent check of a redacted fixture: no
// marked string is left; every unmarked string of the input is in the output
// at the same path (extension urls, the narrative's status and contained
// resources aside: they are the structure of what goes, not coded data); every scalar of the output
// was in the input at the same path.
func checkCodedOutput(t *testing.T, in, out []byte) {
	t.Helper()
	inStr, inSc, err := jsonLeaves(in)
	if err != nil {
		t.Fatalf("input: %v", err)
	}
	outStr, outSc, err := jsonLeaves(out)
	if err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("free:")) || bytes.Contains(out, []byte("gone")) {
		t.Errorf("a marked string survived: %s", out)
	}
	count := map[leaf]int{}
	for _, l := range outStr {
		if freeMarked(l.val) {
			t.Errorf("marked string kept at %s: %q", l.path, l.val)
		}
		count[l]++
	}
	for _, l := range inStr {
		if freeMarked(l.val) || strings.HasSuffix(l.path, ".url") || strings.HasPrefix(l.path, "contained") || strings.HasPrefix(l.path, "text.") {
			continue
		}
		if count[l] == 0 {
			t.Errorf("coded string lost at %s: %q", l.path, l.val)
			continue
		}
		count[l]--
	}
	inSet := map[leaf]int{}
	for _, l := range inSc {
		inSet[l]++
	}
	for _, l := range outSc {
		if inSet[l] == 0 {
			t.Errorf("scalar %s=%s in the output, not in the input", l.path, l.val)
		}
		inSet[l]--
	}
	for _, l := range inStr {
		count[leaf{l.path, l.val}]++
	}
	for _, l := range outStr {
		if count[l] == 0 {
			t.Errorf("string %s=%q in the output, not in the input", l.path, l.val)
		}
	}
}

// fixture builds the resource of typ with the common free text added.
func fixture(t testing.TB, typ string) (*fhir.Resource, []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(typeFixtures[typ]), &m); err != nil {
		t.Fatalf("%s fixture: %v", typ, err)
	}
	for k, v := range commonJunk {
		m[k] = v
	}
	exts, _ := m["extension"].([]any)
	m["extension"] = append(exts, commonExtensions...)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return mustRes(t, string(raw)), raw
}

// servedTypes are the resource types gpgate serves (fhir.AreaTable) and
// those it builds.
func servedTypes() []string {
	seen := map[string]bool{"PractitionerRole": true, "List": true, "Consent": true}
	for _, d := range fhir.AreaTable {
		for _, at := range d.Types {
			seen[at.Type] = true
		}
	}
	var out []string
	for typ := range seen {
		out = append(out, typ)
	}
	sort.Strings(out)
	return out
}

// goldenTypes have their redacted fixture in testdata/coded.
var goldenTypes = map[string]bool{"Patient": true, "Observation": true, "MedicationRequest": true, "AllergyIntolerance": true, "Immunization": true}

// TestCodedEveryType redacts a resource of every served type carrying free
// text in every element an adapter might fill, and checks the output
// independently: no free text, every coded element kept, valid R4.
func TestCodedEveryType(t *testing.T) {
	for _, typ := range servedTypes() {
		t.Run(typ, func(t *testing.T) {
			if typeFixtures[typ] == "" {
				t.Fatalf("no fixture for %s", typ)
			}
			r, raw := fixture(t, typ)
			if paths, err := FreeTextPaths(r); err != nil || len(paths) < 5 {
				t.Fatalf("fixture reports %v (%v): too little free text", paths, err)
			}
			nr, withhold, err := keepCoded(r)
			if err != nil || withhold {
				t.Fatalf("withhold %v err %v", withhold, err)
			}
			if nr == r {
				t.Fatal("returned unchanged")
			}
			checkCodedOutput(t, raw, nr.JSON)
			if _, err := fhir.Parse(nr.JSON); err != nil {
				t.Errorf("output is not valid R4: %v\n%s", err, nr.JSON)
			}
			if nr.Type != r.Type || nr.ID != r.ID || nr.Ix.Area != r.Ix.Area || nr.Ix.Patient != r.Ix.Patient {
				t.Errorf("index changed: %+v vs %+v", nr.Ix, r.Ix)
			}
			// Idempotent: nothing left to drop.
			if again, w, err := keepCoded(nr); again != nr || w || err != nil {
				t.Errorf("second pass changed it (withhold %v, err %v)", w, err)
			}
			if paths, err := FreeTextPaths(nr); err != nil || len(paths) != 0 {
				t.Errorf("output reports %v (%v)", paths, err)
			}
			if goldenTypes[typ] {
				golden := filepath.Join("testdata", "coded", typ+".json")
				got := append(append([]byte(nil), nr.JSON...), '\n')
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("differs from %s:\n%s", golden, got)
				}
			}
		})
	}
}

// TestCodedKeeps checks, per type, elements the allowlist must keep as they
// are (a regression in the table shows here, not only in goldens).
func TestCodedKeeps(t *testing.T) {
	cases := map[string][]string{
		"Patient": {`"family":"Smith"`, `"birthDate":"1950-02-03"`, `"valueString":"12345678"`, `"valueCoding":{"code":"textphone","system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-OtherContactSystem"}`,
			`"url":"PreferredContactMethod"`, `"identifier":{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y12345"}`},
		"MedicationStatement": {`"text":"one tablet daily"`, `"doseQuantity":{`, `"valueDateTime":"2025-01-02"`},
		"MedicationRequest":   {`"text":"one tablet twice a day"`, `"valueString":"56 tablets"`, `"numberOfRepeatsAllowed":5`, `"valueUnsignedInt":3`, `"maxDosePerPeriod":{`, `"allowedBoolean":false`},
		"Observation":         {`"text":"Systolic blood pressure"`, `"value":135`, `"low":{"unit":"mmol/L","value":133}`},
		"Condition":           {`"valueCode":"major"`, `"valueReference":{"reference":"Observation/x1"}`, `"onsetDateTime":"2015-04-01"`},
		"Immunization":        {`"lotNumber":"EJ1685"`, `"doseNumberPositiveInt":1`, `"valueBoolean":true`},
		"Consent":             {`"type":"deny"`, `"class":[{"code":"Observation","system":"http://hl7.org/fhir/resource-types"}]`},
	}
	for typ, wants := range cases {
		t.Run(typ, func(t *testing.T) {
			r, _ := fixture(t, typ)
			nr, _, err := keepCoded(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range wants {
				if !bytes.Contains(nr.JSON, []byte(w)) {
					t.Errorf("%s lost:\n%s", w, nr.JSON)
				}
			}
		})
	}
}

// TestCodedWithholds: entries that must not leave at all.
func TestCodedWithholds(t *testing.T) {
	s := `"subject":{"reference":"Patient/p1"}`
	sct := func(code string) string {
		return `{"coding":[{"system":"http://snomed.info/sct","code":"` + code + `"}]}`
	}
	cases := []struct {
		name, raw string
		withhold  bool
	}{
		{"uncoded condition", `{"resourceType":"Condition","id":"x","code":{"text":"chest pain"},` + s + `}`, true},
		{"coding without a code", `{"resourceType":"Condition","id":"x","code":{"coding":[{"system":"http://snomed.info/sct","display":"chest pain"}]},` + s + `}`, true},
		{"uncoded medication", `{"resourceType":"MedicationStatement","id":"x","status":"active","medicationCodeableConcept":{"text":"the blue ones"},` + s + `}`, true},
		{"medication by display only", `{"resourceType":"MedicationRequest","id":"x","status":"active","intent":"order","medicationReference":{"display":"the blue ones"},` + s + `}`, true},
		{"uncoded vaccine", `{"resourceType":"Immunization","id":"x","status":"completed","vaccineCode":{"text":"flu jab"},"patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2020-01-01"}`, true},
		{"vaccination date as text", `{"resourceType":"Immunization","id":"x","status":"completed","vaccineCode":` + sct("1") + `,"patient":{"reference":"Patient/p1"},"occurrenceString":"last autumn"}`, true},
		{"uncoded observation", `{"resourceType":"Observation","id":"x","status":"final","code":{"text":"feels better"}}`, true},
		{"status as free text", `{"resourceType":"Observation","id":"x","status":"final  (see note)","code":` + sct("1") + `}`, true},
		{"status of the wrong type", `{"resourceType":"Observation","id":"x","status":{"text":"final"},"code":` + sct("1") + `}`, true},
		{"subject by display only", `{"resourceType":"Condition","id":"x","code":` + sct("1") + `,"subject":{"display":"Jane"}}`, true},
		{"encounter class as text", `{"resourceType":"Encounter","id":"x","status":"finished","class":{"display":"a chat"}}`, true},
		{"modifier extension", `{"resourceType":"Condition","id":"x","code":` + sct("1") + `,"modifierExtension":[{"url":"http://example.org/negated","valueBoolean":true}],` + s + `}`, true},
		{"nested modifier extension", `{"resourceType":"Observation","id":"x","status":"final","code":` + sct("1") + `,"component":[{"code":` + sct("2") + `,"modifierExtension":[{"url":"http://example.org/x","valueBoolean":true}]}]}`, true},
		{"modifier in a dosage", `{"resourceType":"MedicationRequest","id":"x","status":"active","intent":"order","medicationCodeableConcept":` + sct("1") + `,"dosageInstruction":[{"text":"one daily","modifierExtension":[{"url":"http://example.org/x","valueBoolean":true}]}],` + s + `}`, true},
		{"modifier on a patient", `{"resourceType":"Patient","id":"x","modifierExtension":[{"url":"http://example.org/x","valueBoolean":true}]}`, true},
		{"implicit rules", `{"resourceType":"Flag","id":"x","implicitRules":"http://example.org/rules","status":"active","code":` + sct("1") + `,` + s + `}`, true},
		{"type not served", `{"resourceType":"DocumentReference","id":"x","status":"current"}`, true},
		{"basic", `{"resourceType":"Basic","id":"x","code":` + sct("1") + `}`, true},
		{"no id left", `{"resourceType":"Condition","id":"x y","code":` + sct("1") + `,` + s + `}`, true},
		{"vaccination without a date", `{"resourceType":"Immunization","id":"x","status":"completed","vaccineCode":` + sct("1") + `,"patient":{"reference":"Patient/p1"}}`, true},
		{"vaccination date absent with free text for a reason", `{"resourceType":"Immunization","id":"x","status":"completed","vaccineCode":` + sct("1") + `,"patient":{"reference":"Patient/p1"},"_occurrenceDateTime":{"extension":[{"url":"http://example.org/why","valueString":"lost"}]}}`, true},
		{"encounter without a class", `{"resourceType":"Encounter","id":"x","status":"finished",` + s + `}`, true},
		{"request without an intent", `{"resourceType":"MedicationRequest","id":"x","status":"active","medicationCodeableConcept":` + sct("1") + `,` + s + `}`, true},
		// Not withheld.
		{"vaccination date absent for a reason", `{"resourceType":"Immunization","id":"x","status":"completed","vaccineCode":` + sct("1") + `,"patient":{"reference":"Patient/p1"},"_occurrenceDateTime":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`, false},
		{"no code at all", `{"resourceType":"Condition","id":"x",` + s + `}`, false},
		{"coded and text", `{"resourceType":"Condition","id":"x","code":{"coding":[{"system":"http://snomed.info/sct","code":"1"}],"text":"t"},` + s + `}`, false},
		{"one of two codings without a code", `{"resourceType":"Condition","id":"x","code":{"coding":[{"display":"t"},{"system":"http://snomed.info/sct","code":"1"}]},` + s + `}`, false},
		{"unknown extension", `{"resourceType":"Condition","id":"x","code":` + sct("1") + `,"extension":[{"url":"http://example.org/x","valueString":"t"}],` + s + `}`, false},
		{"patient with free text only in name", `{"resourceType":"Patient","id":"x","name":[{"text":"Jane"}]}`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawRes(t, c.raw)
			nr, withhold, err := keepCoded(r)
			if err != nil {
				t.Fatal(err)
			}
			if withhold != c.withhold {
				t.Fatalf("withhold = %v, want %v (%v)", withhold, c.withhold, nr)
			}
			if withhold && nr != nil {
				t.Fatal("withheld but returned a resource")
			}
			if !withhold {
				if _, err := fhir.Parse(nr.JSON); err != nil && c.name != "no code at all" {
					t.Errorf("not valid R4: %v\n%s", err, nr.JSON)
				}
			}
			// And through Redact: withheld entries are signalled.
			rec := &fhir.Record{PatientID: "p1", Resources: []*fhir.Resource{r}}
			got, signalled := Redact(rec, permit(fhir.AllAreas), testNow, nil)
			if c.withhold && (len(got.Resources) != 0 || (r.Ix.Area != 0 && !signalled)) {
				t.Fatalf("Redact kept it (%d) or did not signal (%v)", len(got.Resources), signalled)
			}
		})
	}
}

// TestCodedLocalReferences: references into contained resources, which
// never leave, go with them.
func TestCodedLocalReferences(t *testing.T) {
	r := mustRes(t, `{"resourceType":"MedicationRequest","id":"x","status":"active","intent":"order","contained":[{"resourceType":"Medication","id":"m","code":{"text":"the blue ones"}}],"medicationReference":{"reference":"#m"},"subject":{"reference":"Patient/p1"}}`)
	if _, withhold, err := keepCoded(r); err != nil || !withhold {
		t.Fatalf("a medication only known from a contained resource: withhold %v err %v", withhold, err)
	}
}

// TestCodedPrimitiveFormats: allowlisted elements keep only values of their
// R4 type.
func TestCodedPrimitiveFormats(t *testing.T) {
	cases := []struct {
		elem, val string
		keep      bool
	}{
		{"effectiveDateTime", `"2020"`, true},
		{"effectiveDateTime", `"2020-02"`, true},
		{"effectiveDateTime", `"2020-02-29"`, true},
		{"effectiveDateTime", `"2020-02-29T10:00:00Z"`, true},
		{"effectiveDateTime", `"2020-02-29T10:00:00.123+01:00"`, true},
		{"effectiveDateTime", `"2020-02-29T10:00"`, false},
		{"effectiveDateTime", `"2020-02-29T10:00:00"`, false},
		{"effectiveDateTime", `"last Tuesday"`, false},
		{"effectiveDateTime", `"2020-13-01"`, false},
		{"effectiveDateTime", `20200101`, false},
		{"issued", `"2020-02-29T10:00:00Z"`, true},
		{"issued", `"2020-02-29"`, false},
		{"valueTime", `"10:00:00"`, true},
		{"valueTime", `"10am"`, false},
		{"valueInteger", `3`, true},
		{"valueInteger", `-3`, true},
		{"valueInteger", `3.5`, false},
		{"valueInteger", `1e3`, false},
		{"valueInteger", `3000000000`, false},
		{"valueInteger", `"3"`, false},
		{"valueBoolean", `true`, true},
		{"valueBoolean", `"true"`, false},
		{"valueBoolean", `null`, false},
		{"language", `"en-GB"`, true},
		{"language", `"en  GB"`, false},
		{"language", `" en"`, false},
		{"language", `""`, false},
		{"id", `"x"`, true},
	}
	for _, c := range cases {
		t.Run(c.elem+"="+c.val, func(t *testing.T) {
			raw := `{"resourceType":"Observation","id":"x","status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"1"}]},"` + c.elem + `":` + c.val + `}`
			if c.elem == "id" {
				raw = `{"resourceType":"Observation","id":` + c.val + `,"status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":"1"}]}}`
			}
			r := rawRes(t, raw)
			nr, withhold, err := keepCoded(r)
			if err != nil || withhold {
				t.Fatalf("withhold %v err %v", withhold, err)
			}
			if kept := bytes.Contains(nr.JSON, []byte(`"`+c.elem+`":`+c.val)); kept != c.keep {
				t.Fatalf("kept = %v, want %v: %s", kept, c.keep, nr.JSON)
			}
		})
	}
	// Numbers other than integers are kept as written.
	r := mustRes(t, `{"resourceType":"Observation","id":"x","status":"final","code":{"coding":[{"code":"1"}]},"valueQuantity":{"value":128.50}}`)
	if nr, _, _ := keepCoded(r); nr != r {
		t.Fatalf("decimal re-rendered: %s", nr.JSON)
	}
}

// TestCodedUnchangedKeepsPointer: a resource with nothing to drop comes
// back as it is, without allocating.
func TestCodedUnchangedKeepsPointer(t *testing.T) {
	rec := bigRecord(t)
	for _, r := range rec.Resources {
		if bytes.Contains(r.JSON, []byte(`"free"`)) || bytes.Contains(r.JSON, []byte(`"name"`)) {
			continue // the few with free text; the organisation is checked below
		}
		nr, withhold, err := keepCoded(r)
		if err != nil || withhold || nr != r {
			paths, _ := FreeTextPaths(r)
			t.Fatalf("%s re-rendered (%v %v): %v", r.ID, withhold, err, paths)
		}
	}
	org := rec.Resources[1]
	if nr, _, _ := keepCoded(org); nr != org {
		t.Fatal("organisation re-rendered")
	}
	r := rec.Resources[4] // a blood pressure
	allocs := testing.AllocsPerRun(200, func() {
		if nr, _, _ := keepCoded(r); nr != r {
			t.Fatal("re-rendered")
		}
	})
	if allocs >= 1 {
		t.Fatalf("%.1f allocations for a resource with nothing to drop", allocs)
	}
}

// TestCodedDeterministic: the same input gives the same bytes.
func TestCodedDeterministic(t *testing.T) {
	for _, typ := range servedTypes() {
		r, _ := fixture(t, typ)
		a, _, _ := keepCoded(r)
		b, _, _ := keepCoded(r)
		if a == nil || b == nil || !bytes.Equal(a.JSON, b.JSON) || a == b {
			t.Fatalf("%s: not deterministic or shared", typ)
		}
	}
}

// TestFreeTextPaths: the report names what goes.
func TestFreeTextPaths(t *testing.T) {
	r, _ := fixture(t, "Observation")
	paths, err := FreeTextPaths(r)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(paths, " ")
	for _, want := range []string{"Observation.note", "Observation.code.text", "Observation.valueString", "Observation.comment", "Observation.text",
		"Observation.contained", "Observation.specimen.display", "Observation.component.valueString", "Observation.unknownElement",
		"Observation.extension(https://example.org/fhir/StructureDefinition/unknown)"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("%s not reported in %v", want, paths)
		}
	}
	if strings.Contains(got, "Systolic") || strings.Contains(got, "Observation.component.code.text Observation.component.code.text Observation.component.code.text") {
		t.Errorf("the fixed label reported: %v", paths)
	}
	if p, _ := FreeTextPaths(mustRes(t, `{"resourceType":"Basic","id":"x"}`)); len(p) != 1 || p[0] != "Basic" {
		t.Errorf("unknown type: %v", p)
	}
}

// TestCodedTableErrors: the builder refuses a malformed table.
func TestCodedTableErrors(t *testing.T) {
	good := []row{{"Coding.code", "code"}, {"CodeableConcept.coding", "Coding"}, {"Meta.profile", "canonical"}}
	cases := map[string]struct {
		rows  []row
		needs []row
		exts  []ExtensionDef
	}{
		"unknown type":        {rows: []row{{"Condition.code", "Concept"}}},
		"listed twice":        {rows: []row{{"Condition.code", "CodeableConcept"}, {"Condition.code", "CodeableConcept"}}},
		"backbone missing":    {rows: []row{{"Condition.stage.summary", "CodeableConcept"}}},
		"never without !":     {rows: []row{{"Condition.onsetString", "-"}}},
		"needs unknown":       {needs: []row{{"CodeableConcept", "text"}}},
		"extension twice":     {exts: []ExtensionDef{{URL: "u", Value: []string{"code"}}, {URL: "u", Value: []string{"code"}}}},
		"extension bad type":  {exts: []ExtensionDef{{URL: "u", Value: []string{"Narrative"}}}},
		"extension both":      {exts: []ExtensionDef{{URL: "u", Value: []string{"code"}, Sub: []ExtensionDef{{URL: "a", Value: []string{"code"}}}}}},
		"extension neither":   {exts: []ExtensionDef{{URL: "u"}}},
		"common element":      {rows: []row{{"Condition.id", "id"}}},
		"sub restricts types": {exts: []ExtensionDef{{URL: "u", Sub: []ExtensionDef{{URL: "a", Value: []string{"code"}, In: []string{"Patient"}}}}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := buildCoded(good, c.rows, c.needs, c.exts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := buildCoded(datatypeRows, resourceRows, needRows, extensionTable); err != nil {
		t.Fatal(err)
	}
}

// TestRedactRecordOfEveryType: the whole record through Redact and the
// cached Redactor.
func TestRedactRecordOfEveryType(t *testing.T) {
	rec := &fhir.Record{PatientID: "p1", Practice: practice, Version: "v1"}
	for _, typ := range servedTypes() {
		r, _ := fixture(t, typ)
		rec.Resources = append(rec.Resources, r)
	}
	for _, got := range []*fhir.Record{first(Redact(rec, permit(fhir.AllAreas), testNow, DefaultExclusions())), first(NewRedactor(DefaultExclusions(), 0).Redact(rec, permit(fhir.AllAreas), testNow))} {
		kept := 0
		for _, r := range got.Resources {
			kept++
			if bytes.Contains(r.JSON, []byte("free:")) {
				t.Errorf("%s: free text survived", r.Reference())
			}
		}
		// PractitionerRole, List and Consent have no area: not shared.
		if want := len(servedTypes()) - 3; kept != want {
			t.Errorf("kept %d resources, want %d", kept, want)
		}
	}
}

func first(r *fhir.Record, _ bool) *fhir.Record { return r }

// rawRes is a resource whose JSON fhir.NewResource may refuse to index (an
// element of the wrong JSON type): the redactor must cope all the same.
func rawRes(t testing.TB, raw string) *fhir.Resource {
	t.Helper()
	if r, err := fhir.NewResource([]byte(raw)); err == nil {
		return r
	}
	var head struct{ ResourceType, ID string }
	if err := json.Unmarshal([]byte(raw), &head); err != nil {
		t.Fatal(err)
	}
	return &fhir.Resource{Type: head.ResourceType, ID: head.ID, JSON: []byte(raw)}
}

// TestSpecialMask: the eight-byte scan finds exactly the first '"',
// backslash or control character, wherever it is.
func TestSpecialMask(t *testing.T) {
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			for _, fill := range []byte{'a', 0xc3, 0x7f, '~', ' '} {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				special := c == '"' || c == '\\' || c < 0x20
				first := -1
				for i, x := range b {
					if x == '"' || x == '\\' || x < 0x20 {
						first = i
						break
					}
				}
				m := specialMask(binary.LittleEndian.Uint64(b))
				if (m != 0) != (first >= 0) || (special && first != pos) {
					t.Fatalf("%q: mask %x, first special %d", b, m, first)
				}
				if m != 0 && bits.TrailingZeros64(m)>>3 != first {
					t.Fatalf("%q: mask says %d, first special is %d", b, bits.TrailingZeros64(m)>>3, first)
				}
			}
		}
	}
}

// TestCodedRepeatedKeys: a key repeated in an object (which a consumer
// would read as its last value) is kept once, the first time.
func TestCodedRepeatedKeys(t *testing.T) {
	r := rawRes(t, `{"resourceType":"Condition","id":"x","code":{"coding":[{"code":"1"}]},"code":{"text":"second"},"subject":{"reference":"Patient/p1"},`+
		`"extension":[{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ProblemSignificance","valueCode":"major"}],"extension":[{"url":"x","valueString":"second"}]}`)
	nr, withhold, err := keepCoded(r)
	if err != nil || withhold {
		t.Fatal(withhold, err)
	}
	if bytes.Contains(nr.JSON, []byte("second")) || bytes.Count(nr.JSON, []byte(`"extension"`)) != 1 || bytes.Count(nr.JSON, []byte(`"code":{`)) != 1 {
		t.Fatalf("repeated keys kept: %s", nr.JSON)
	}
}
