package profiles

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// codedFiles reads the hand-written clean resources of testdata/coded, by
// file name without .json.
func codedFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "coded", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata/coded: %v, %d files", err, len(files))
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
	}
	return out
}

func readCoded(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "coded", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// codedBundle is a collection Bundle of every clean resource.
func codedBundle(t testing.TB) obj {
	t.Helper()
	files := codedFiles(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []any
	for _, n := range names {
		r := parse(string(files[n])).(obj)
		entries = append(entries, obj{
			"fullUrl":  fmt.Sprintf("https://gpgate.example/fhir/%s/%s", r["resourceType"], r["id"]),
			"resource": r,
		})
	}
	return obj{
		"resourceType": "Bundle", "id": "b1", "type": "collection",
		"meta":  obj{"profile": []any{fhir.ProfileBundle}},
		"link":  []any{obj{"relation": "self", "url": "https://gpgate.example/fhir/Patient/p1/$everything"}},
		"entry": entries,
	}
}

// TestCodedClean: a hand-written resource of every type of the dataset
// table (fhir.AreaTable), each filling the coded, structural and
// demographic elements gpgate may emit, is valid R4 and passes CodedOnly
// and CheckJSON; so does a Bundle of them all.
func TestCodedClean(t *testing.T) {
	files := codedFiles(t)
	have := map[string]bool{}
	for name, raw := range files {
		var h struct{ ResourceType string }
		_ = json.Unmarshal(raw, &h)
		have[h.ResourceType] = true
		t.Run(name, func(t *testing.T) {
			if _, err := fhir.Parse(raw); err != nil {
				t.Fatalf("not valid R4: %v", err)
			}
			if ps := CodedOnly(raw); len(ps) != 0 {
				t.Errorf("CodedOnly: want no problems, got:\n%s", dump(ps))
			}
			if ps := CheckJSON(raw); HasErrors(ps) {
				t.Errorf("CheckJSON: want no errors, got:\n%s", dump(Errors(ps)))
			}
		})
	}
	for _, d := range fhir.AreaTable {
		for _, at := range d.Types {
			if !have[at.Type] {
				t.Errorf("no clean %s in testdata/coded (area %s)", at.Type, d.Name)
			}
		}
	}
	raw, _ := json.Marshal(codedBundle(t))
	if _, err := fhir.Parse(raw); err != nil {
		t.Fatalf("Bundle: not valid R4: %v", err)
	}
	if ps := CodedOnly(raw); len(ps) != 0 {
		t.Errorf("Bundle: want no problems, got:\n%s", dump(ps))
	}
}

// TestCodedViolations: each case puts free text (or an element R4 does not
// define) where an adapter might, and CodedOnly reports exactly the
// elements listed, at their paths, and nothing else.
func TestCodedViolations(t *testing.T) {
	const (
		free    = RuleCodedOnly
		unknown = RuleUnknownElement
	)
	type want struct{ path, rule string }
	cases := []struct {
		name, file string
		edits      edits
		want       []want
	}{
		// CodeableConcept
		{"concept text beside codings", "condition", e("code.text", "high blood pressure, worse in winter"),
			[]want{{"Condition.code.text", free}}},
		{"uncoded entry", "condition", e("code", parse(`{"text":"bad back"}`)),
			[]want{{"Condition.code", free}, {"Condition.code.text", free}}},
		{"uncoded entry with an empty coding", "condition", e("category[0]", parse(`{"coding":[],"text":"problem"}`)),
			[]want{{"Condition.category[0]", free}, {"Condition.category[0].text", free}}},
		{"fixed label without a coding", "condition", e("severity", parse(`{"text":"Systolic blood pressure"}`)),
			[]want{{"Condition.severity", free}, {"Condition.severity.text", free}}},
		{"identifier type text", "condition", e("identifier[0].type", parse(`{"text":"EMIS problem number"}`)),
			[]want{{"Condition.identifier[0].type", free}, {"Condition.identifier[0].type.text", free}}},
		{"a string where a CodeableConcept is", "condition", e("code", "hypertension"),
			[]want{{"Condition.code", free}}},

		// Reference, Annotation, narrative
		{"reference display", "condition", e("asserter.display", "Dr Jones (locum)"),
			[]want{{"Condition.asserter.display", free}}},
		{"reference display in a Patient", "patient", e("generalPractitioner[0].display", "Trevelyan Square Surgery"),
			[]want{{"Patient.generalPractitioner[0].display", free}}},
		{"note", "condition", e("note", parse(`[{"authorString":"Dr J","time":"2024-01-01","text":"seen in clinic"}]`)),
			[]want{{"Condition.note[0].authorString", free}, {"Condition.note[0].text", free}}},
		{"narrative", "condition", e("text", parse(`{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`)),
			[]want{{"Condition.text.div", free}}},
		{"attachment", "diagnosticreport", e("presentedForm", parse(`[{"contentType":"text/plain","title":"letter","data":"c2VlIGxldHRlcg=="}]`)),
			[]want{{"DiagnosticReport.presentedForm[0].data", free}, {"DiagnosticReport.presentedForm[0].title", free}}},

		// strings of the resource types
		{"onset string", "condition", e("onsetDateTime", del).and("onsetString", "childhood"),
			[]want{{"Condition.onsetString", free}}},
		{"observation valueString", "observation-lab", e("valueQuantity", del).and("valueString", "haemolysed, repeat"),
			[]want{{"Observation.valueString", free}}},
		{"reference range text", "observation-lab", e("referenceRange[0].text", "normal for age"),
			[]want{{"Observation.referenceRange[0].text", free}}},
		{"conclusion", "diagnosticreport", e("conclusion", "normal"),
			[]want{{"DiagnosticReport.conclusion", free}}},
		{"media comment", "diagnosticreport", e("media", parse(`[{"comment":"see scan","link":{"reference":"Media/m1"}}]`)),
			[]want{{"DiagnosticReport.media[0].comment", free}}},
		{"specimen container description", "specimen", e("container", parse(`[{"description":"red top, spun"}]`)),
			[]want{{"Specimen.container[0].description", free}}},
		{"reaction description", "allergyintolerance", e("reaction[0].description", "came up in hives"),
			[]want{{"AllergyIntolerance.reaction[0].description", free}}},
		{"reaction manifestation text", "allergyintolerance", e("reaction[0].manifestation[0].text", "itchy rash on both arms"),
			[]want{{"AllergyIntolerance.reaction[0].manifestation[0].text", free}}},
		{"reaction note", "allergyintolerance", e("reaction[0].note", parse(`[{"text":"mother says so"}]`)),
			[]want{{"AllergyIntolerance.reaction[0].note[0].text", free}}},
		{"dosage patient instruction", "medicationrequest", e("dosageInstruction[0].patientInstruction", "ring if dizzy"),
			[]want{{"MedicationRequest.dosageInstruction[0].patientInstruction", free}}},
		{"dosage additional instruction text", "medicationrequest", e("dosageInstruction[0].additionalInstruction[0].text", "take with food"),
			[]want{{"MedicationRequest.dosageInstruction[0].additionalInstruction[0].text", free}}},
		{"statement dosage patient instruction", "medicationstatement", e("dosage[0].patientInstruction", "ring if dizzy"),
			[]want{{"MedicationStatement.dosage[0].patientInstruction", free}}},
		{"referral patient instruction", "servicerequest", e("patientInstruction", "fast from midnight"),
			[]want{{"ServiceRequest.patientInstruction", free}}},
		{"immunisation series", "immunization", e("protocolApplied[0].series", "primary course, second of three"),
			[]want{{"Immunization.protocolApplied[0].series", free}}},
		{"immunisation dose number string", "immunization", e("protocolApplied[0].doseNumberPositiveInt", del).and("protocolApplied[0].doseNumberString", "booster"),
			[]want{{"Immunization.protocolApplied[0].doseNumberString", free}}},
		{"encounter participant display", "encounter", e("participant[0].individual.display", "Dr Jones"),
			[]want{{"Encounter.participant[0].individual.display", free}}},
		{"organization alias", "organization", e("alias", parse(`["The Square"]`)),
			[]want{{"Organization.alias[0]", free}}},
		{"list title not a code display", "list", e("title", "Mrs Smith's problems"),
			[]want{{"List.title", free}}},
		{"flag with a text-only code", "flag", e("code", parse(`{"text":"violent"}`)),
			[]want{{"Flag.code", free}, {"Flag.code.text", free}}},
		{"procedure outcome text", "procedure", e("outcome.text", "went well"),
			[]want{{"Procedure.outcome.text", free}}},
		{"medication form text", "medication", e("form.text", "big white ones"),
			[]want{{"Medication.form.text", free}}},

		// nested: components, contained resources
		{"component code text", "observation-bp", e("component[0].code.text", "Systolic (left arm, sitting)"),
			[]want{{"Observation.component[0].code.text", free}}},
		{"component valueString", "observation-bp", e("component[1].valueQuantity", del).and("component[1].valueString", "too high"),
			[]want{{"Observation.component[1].valueString", free}}},
		{"contained narrative", "medicationstatement", e("contained[0].text", parse(`{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`)),
			[]want{{"MedicationStatement.contained[0].text.div", free}}},
		{"contained code text", "medicationstatement", e("contained[0].code.text", "patient's own supply"),
			[]want{{"MedicationStatement.contained[0].code.text", free}}},
		{"contained unknown resource type", "medicationstatement", e("contained[0].resourceType", "Medicine"),
			[]want{{"MedicationStatement.contained[0]", unknown}}},

		// extensions
		{"extension valueString", "condition", e("extension", parse(`[{"url":"http://example.org/x","valueString":"worried"}]`)),
			[]want{{"Condition.extension[0].valueString", free}}},
		{"extension valueMarkdown", "condition", e("extension", parse(`[{"url":"http://example.org/x","valueMarkdown":"*worried*"}]`)),
			[]want{{"Condition.extension[0].valueMarkdown", free}}},
		{"extension valueAnnotation", "diagnosticreport", e("extension", parse(`[{"url":"http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note","valueAnnotation":{"text":"x"}}]`)),
			[]want{{"DiagnosticReport.extension[0].valueAnnotation.text", free}}},
		{"nested extension in a Patient", "patient", e("extension[0]", parse(`{"url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ContactPreference","extension":[{"url":"PreferredContactTimes","valueString":"Not after 7pm"}]}`)),
			[]want{{"Patient.extension[0].extension[0].valueString", free}}},
		{"extension on a primitive", "patient", e("_birthDate.extension", parse(`[{"url":"http://example.org/x","valueString":"about then"}]`)),
			[]want{{"Patient._birthDate.extension[0].valueString", free}}},
		{"a string as a primitive's extensions", "patient", e("_birthDate", "about 1970"),
			[]want{{"Patient._birthDate", free}}},
		{"modifier extension on a coding", "condition", e("code.coding[0].extension", parse(`[{"url":"http://example.org/x","valueString":"as the patient put it"}]`)),
			[]want{{"Condition.code.coding[0].extension[0].valueString", free}}},
		{"a name outside demographics", "condition", e("extension", parse(`[{"url":"http://example.org/x","valueHumanName":{"family":"Smith"}}]`)),
			[]want{{"Condition.extension[0].valueHumanName.family", free}}},
		{"an address outside demographics", "servicerequest", e("extension", parse(`[{"url":"http://example.org/x","valueAddress":{"line":["1 High St"]}}]`)),
			[]want{{"ServiceRequest.extension[0].valueAddress.line[0]", free}}},
		{"a telephone number outside demographics", "encounter", e("extension", parse(`[{"url":"http://example.org/x","valueContactPoint":{"system":"phone","value":"0113"}}]`)),
			[]want{{"Encounter.extension[0].valueContactPoint.value", free}}},

		// elements R4 does not define
		{"STU3 comment", "observation-lab", e("comment", "see letter"),
			[]want{{"Observation.comment", unknown}}},
		{"unknown element in a datatype", "condition", e("code.coding[0].note", "x"),
			[]want{{"Condition.code.coding[0].note", unknown}}},
		{"unknown element with no string", "condition", e("comments", parse(`[1,true]`)),
			[]want{{"Condition.comments", unknown}}},
		{"unknown element in a primitive's extensions", "patient", e("_birthDate.note", "x"),
			[]want{{"Patient._birthDate.note", unknown}}},
		{"a parsed reference field is not JSON", "condition", e("subject.patientId", parse(`{"value":"p1"}`)),
			[]want{{"Condition.subject.patientId", unknown}}},
		{"narrative on a Bundle", "bundle", e("text", parse(`{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`)),
			[]want{{"Bundle.text", unknown}}},

		// Bundles
		{"bundle entry note", "bundle", e("entry[1].resource.note", parse(`[{"text":"x"}]`)),
			[]want{{"Bundle.entry[1].resource.note[0].text", free}}},
		{"bundle entry contained", "bundle", e("entry[9].resource.contained[0].form.text", "x"),
			[]want{{"Bundle.entry[9].resource.contained[0].form.text", free}}},
		{"bundle link relation free text", "bundle", e("link[0].extension", parse(`[{"url":"http://example.org/x","valueString":"y"}]`)),
			[]want{{"Bundle.link[0].extension[0].valueString", free}}},
		{"bundle entry resource that is a string", "bundle", e("entry[0].resource", "Patient p1"),
			[]want{{"Bundle.entry[0].resource", free}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var root obj
			if tc.file == "bundle" {
				root = codedBundle(t)
			} else {
				root = parse(string(readCoded(t, tc.file))).(obj)
			}
			for _, ed := range tc.edits {
				edit(t, root, ed.path, ed.v)
			}
			raw, err := json.Marshal(root)
			if err != nil {
				t.Fatal(err)
			}
			var got, exp []string
			for _, p := range CodedOnly(raw) {
				if p.Severity != Error {
					t.Errorf("%s: severity %s", p, p.Severity)
				}
				got = append(got, p.Path+" "+p.Rule)
			}
			for _, w := range tc.want {
				exp = append(exp, w.path+" "+w.rule)
			}
			sort.Strings(exp)
			if strings.Join(got, "\n") != strings.Join(exp, "\n") {
				t.Errorf("want:\n  %s\ngot:\n  %s", strings.Join(exp, "\n  "), strings.Join(got, "\n  "))
			}
			// CheckJSON reports an error there too, whatever else the edit
			// breaks (an entry's resource that is not an object is bdl-5)
			all := map[string]bool{}
			for _, p := range Errors(CheckJSON(raw)) {
				all[p.Path] = true
			}
			for _, w := range tc.want {
				if !all[w.path] {
					t.Errorf("CheckJSON reports no error at %s", w.path)
				}
			}
		})
	}
}

// TestCodedAllowed: strings that are coded, structural, demographic, the
// prescription's dosage text or a fixed UK Core label pass, as do the
// administrative resources that are not GP record content.
func TestCodedAllowed(t *testing.T) {
	cases := []struct {
		name, file string
		edits      edits
	}{
		{"element id", "condition", e("code.coding[0].id", "c-1")},
		{"coding version and display", "condition", e("code.coding[1].version", "2024-04").and("code.coding[1].display", "Essential hypertension (any wording the code system gives)")},
		{"fixed label beside codings", "observation-bp", e("component[0].code.text", fhir.TextSystolicBP)},
		{"dosage text in a statement", "medicationstatement", e("dosage[0].text", "Two puffs when needed, up to four times a day")},
		{"quantity unit", "observation-lab", e("valueQuantity.unit", "millimoles per litre")},
		{"address key in a Patient's address", "patient", e("address[0].extension[0].extension[1].valueString", "123456789012")},
		{"name, telecom, address of a practitioner", "practitioner", e("telecom", parse(`[{"system":"email","value":"a.jones@nhs.net"}]`)).and("address", parse(`[{"line":["2 Trevelyan Square"],"postalCode":"LS1 6AE"}]`))},
		{"next of kin", "patient", e("contact[0].address", parse(`{"line":["3 Boar Lane"],"city":"Leeds"}`))},
		{"organisation name", "organization", e("name", "Boar Lane Medical Centre")},
		{"identifier values", "servicerequest", e("identifier[0].value", "UBRN 0000 0000 0001")},
		{"meta tag", "flag", e("meta.tag", parse(`[{"system":"http://example.org/tags","code":"t","display":"Tag"}]`))},
		{"uri and code extensions", "condition", e("extension", parse(`[{"url":"http://example.org/x","valueCode":"a"},{"url":"http://example.org/y","valueUri":"urn:oid:1.2.3"}]`))},
		{"list title repeating its code", "list", e("title", "Problems")},
		{"batch numbers", "immunization", e("lotNumber", "B-77/2")},
		{"bundle link relation", "bundle", e("link[0].relation", "next")},
		{"entry response", "bundle", e("entry[0].response", parse(`{"status":"200 OK","etag":"W/\"3\""}`))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var root obj
			if tc.file == "bundle" {
				root = codedBundle(t)
			} else {
				root = parse(string(readCoded(t, tc.file))).(obj)
			}
			for _, ed := range tc.edits {
				edit(t, root, ed.path, ed.v)
			}
			raw, _ := json.Marshal(root)
			if ps := CodedOnly(raw); len(ps) != 0 {
				t.Errorf("want no problems, got:\n%s", dump(ps))
			}
		})
	}
	for _, name := range []string{"operationoutcome", "auditevent", "consent"} {
		t.Run("not record content: "+name, func(t *testing.T) {
			root := parse(string(readGood(t, name+".json"))).(obj)
			root["text"] = parse(`{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`)
			raw, _ := json.Marshal(root)
			if ps := CodedOnly(raw); len(ps) != 0 {
				t.Errorf("want no problems, got:\n%s", dump(ps))
			}
		})
	}
}

// TestCodedDecisionTable: every row of the decision table names what R4
// defines, so a typo cannot silently allow or miss an element.
func TestCodedDecisionTable(t *testing.T) {
	r4types()
	for name := range codedTypes {
		if dt := r4.datatypes[name]; dt == nil || dt.kind != kindPrimitive {
			t.Errorf("codedTypes: %s is not an R4 primitive type", name)
		}
	}
	for _, name := range []string{"string", "markdown", "xhtml"} {
		if _, ok := codedTypes[name]; ok {
			t.Errorf("codedTypes allows %s, which carries prose", name)
		}
	}
	check := func(table, pos string, wantCoded bool) {
		t.Helper()
		segs := strings.Split(pos, ".")
		var cur *r4type
		if segs[0] == "Element" {
			cur = r4.datatypes["Coding"] // any element: Element.id is on every datatype
		} else if cur = r4.datatypes[segs[0]]; cur == nil || cur.kind != kindComplex {
			cur = r4.resources[segs[0]]
		}
		if cur == nil {
			t.Errorf("%s: %s: no R4 type %s", table, pos, segs[0])
			return
		}
		for _, s := range segs[1:] {
			f := cur.fields[s]
			if f == nil {
				t.Errorf("%s: %s: %s has no element %s", table, pos, pos, s)
				return
			}
			cur = f.typ
		}
		if cur.kind != kindPrimitive {
			t.Errorf("%s: %s is a %s, not a primitive", table, pos, typeLabel(cur))
			return
		}
		if _, coded := codedTypes[cur.name]; coded != wantCoded {
			t.Errorf("%s: %s is %s; the row is pointless", table, pos, cur.name)
		}
	}
	for pos, row := range codedPositions {
		if row.why == "" {
			t.Errorf("codedPositions: %s has no rationale", pos)
		}
		check("codedPositions", pos, false)
	}
	for pos := range documentPositions {
		check("documentPositions", pos, true)
	}
	for name := range demographicDatatypes {
		if dt := r4.datatypes[name]; dt == nil || dt.kind != kindComplex {
			t.Errorf("demographicDatatypes: %s is not an R4 datatype", name)
		}
	}
	for name := range demographicTypes {
		if r4.resources[name] == nil {
			t.Errorf("demographicTypes: %s is not an R4 resource", name)
		}
	}
	for name := range notRecord {
		if r4.resources[name] == nil {
			t.Errorf("notRecord: %s is not an R4 resource", name)
		}
		for _, d := range fhir.AreaTable {
			for _, at := range d.Types {
				if at.Type == name {
					t.Errorf("notRecord: %s is record content (area %s)", name, d.Name)
				}
			}
		}
	}
	if got := len(r4.resources); got != 146 {
		t.Errorf("%d R4 resource types, want 146", got)
	}
}

// TestCodedPDS: the PDS sandbox Patients (real R4 demographics no one here
// wrote) pass CodedOnly in their names, addresses, telecoms and
// identifiers; what it flags is text a source writes into an extension's
// value (a contact preference spelled out), which redaction must drop.
func TestCodedPDS(t *testing.T) {
	dir := sharedDir(t, filepath.Join("testdata", "pds"))
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no PDS patients in %s: %v", dir, err)
	}
	flagged := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range CodedOnly(b) {
			last := p.Path[strings.LastIndex(p.Path, ".")+1:]
			if p.Rule != RuleCodedOnly || !strings.Contains(p.Path, ".extension[") || !strings.HasPrefix(last, "value") {
				t.Errorf("%s: %s", filepath.Base(f), p)
			}
			flagged++
		}
	}
	t.Logf("%d extension strings flagged in %d PDS Patients", flagged, len(files))
}
