package consent

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

var update = flag.Bool("update", false, "rewrite golden files")

const subj = `"subject":{"reference":"Patient/` + "%s" + `"}`

// redactFixture is a small record with one of everything Redact handles.
func redactFixture(t testing.TB) *fhir.Record {
	s := fmt.Sprintf(subj, pidA)
	return &fhir.Record{NHS: nhsA, PatientID: pidA, Practice: practice, Version: "v7", Resources: []*fhir.Resource{
		mustRes(t, `{"birthDate":"1980-05-05","id":"`+pidA+`","name":[{"family":"Smith","given":["Jane"],"text":"Jane Smith"}],"resourceType":"Patient","text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>","status":"generated"}}`),
		mustRes(t, `{"id":"`+pidA+`-org","name":"Moorland Surgery","resourceType":"Organization"}`),
		mustRes(t, `{"category":[{"coding":[{"code":"problem-list-item","system":"http://terminology.hl7.org/CodeSystem/condition-category"}]}],"code":{"coding":[{"code":"44054006","system":"http://snomed.info/sct"}],"text":"Diabetes (patient worried)"},"extension":[{"url":"https://example.org/worry","valueString":"worried about feet"}],"id":"`+pidA+`-c1","note":[{"text":"lives alone"}],"resourceType":"Condition",`+s+`}`),
		mustRes(t, `{"code":{"text":"chest pain, see letter"},"id":"`+pidA+`-c2","resourceType":"Condition",`+s+`}`),
		mustRes(t, `{"code":{"coding":[{"code":"386639001","system":"http://snomed.info/sct"}]},"id":"`+pidA+`-top","resourceType":"Procedure","status":"completed",`+s+`}`),
		mustRes(t, `{"code":{"coding":[{"code":"L0511","system":"http://read.info/readv2"}]},"id":"`+pidA+`-top2","resourceType":"Procedure","status":"completed",`+s+`}`),
		mustRes(t, `{"code":{"coding":[{"code":"271737000","system":"http://snomed.info/sct"}]},"id":"`+pidA+`-conf","meta":{"security":[{"code":"R","system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality"}]},"resourceType":"Condition",`+s+`}`),
		mustRes(t, `{"dosageInstruction":[{"patientInstruction":"with food if queasy","route":{"coding":[{"code":"26643006","system":"http://snomed.info/sct"}],"text":"by mouth"},"text":"one tablet twice a day"}],"id":"`+pidA+`-mr","intent":"order","medicationCodeableConcept":{"coding":[{"code":"39695211000001102","system":"https://dmd.nhs.uk"}]},"note":[{"text":"pt prefers liquid"}],"requester":{"display":"Dr Jones","reference":"Practitioner/`+pidA+`-prac"},"resourceType":"MedicationRequest","status":"active",`+s+`}`),
		mustRes(t, `{"code":{"coding":[{"code":"85354-9","system":"http://loinc.org"}]},"component":[{"code":{"coding":[{"code":"8480-6","system":"http://loinc.org"}]},"valueQuantity":{"code":"mm[Hg]","system":"http://unitsofmeasure.org","unit":"mmHg","value":128.50}}],"effectiveDateTime":"2025-01-01","id":"`+pidA+`-bp","resourceType":"Observation","status":"final",`+s+`}`),
		mustRes(t, `{"code":{"coding":[{"code":"1022441000000108","system":"http://snomed.info/sct"}]},"comment":"haemolysed","id":"`+pidA+`-lab","reasonCode":[{"coding":[{"code":"8098009","system":"http://snomed.info/sct"}]}],"resourceType":"Observation","status":"final",`+s+`}`),
	}}
}

func bytesOf(rec *fhir.Record) [][]byte {
	out := make([][]byte, len(rec.Resources))
	for i, r := range rec.Resources {
		out[i] = append([]byte(nil), r.JSON...)
	}
	return out
}

func TestRedactGolden(t *testing.T) {
	rec := redactFixture(t)
	before := bytesOf(rec)
	warnBefore := len(rec.Warnings)
	got, withheld := Redact(rec, permit(fhir.AllAreas), testNow, DefaultExclusions())
	if !withheld {
		t.Fatal("withheld = false, want true")
	}
	var buf bytes.Buffer
	for _, r := range got.Resources {
		buf.Write(r.JSON)
		buf.WriteByte('\n')
	}
	for _, w := range got.Warnings {
		buf.Write(fhir.OperationOutcome(w))
		buf.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "redact.golden.ndjson")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("redacted record differs from %s:\n%s", golden, buf.String())
	}
	// Input untouched: same resource bytes, same warnings.
	after := bytesOf(rec)
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Errorf("input resource %d changed", i)
		}
	}
	if len(rec.Warnings) != warnBefore || len(rec.Resources) != len(before) {
		t.Error("input record changed")
	}
	// What went: text-only condition, both terminations, the confidential
	// entry, the Observation with an STI reason. What stayed: patient, org,
	// c1, mr, bp.
	ids := map[string]bool{}
	for _, r := range got.Resources {
		ids[strings.TrimPrefix(r.ID, pidA)] = true
	}
	for _, id := range []string{"", "-org", "-c1", "-mr", "-bp"} {
		if !ids[id] {
			t.Errorf("%q withheld, want kept", id)
		}
	}
	for _, id := range []string{"-c2", "-top", "-top2", "-conf", "-lab"} {
		if ids[id] {
			t.Errorf("%q kept, want withheld", id)
		}
	}
	if len(got.Warnings) != 1 || got.Warnings[0].Code != fhir.WarnConfidentialItems || got.Warnings[0].Severity != "warning" {
		t.Errorf("warnings = %+v", got.Warnings)
	}
	if strings.Contains(got.Warnings[0].Diagnostics, "pregnan") || strings.Contains(got.Warnings[0].Diagnostics, "infect") {
		t.Error("warning says what was withheld")
	}
}

func TestRedactAreas(t *testing.T) {
	rec := redactFixture(t)
	cases := []struct {
		name     string
		areas    fhir.Areas
		types    string
		withheld bool
	}{
		{"examination only", fhir.AreaExamination, "Patient,Organization,Observation", false},
		{"medication only", fhir.AreaMedication, "Patient,Organization,MedicationRequest", false},
		{"procedures: terminations withheld", fhir.AreaProcedures, "Patient,Organization", true},
		{"none: demographics stay", 0, "Patient,Organization", false},
		{"problems: confidential withheld", fhir.AreaProblems, "Patient,Organization,Condition", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, withheld := Redact(rec, permit(c.areas), testNow, DefaultExclusions())
			var types []string
			for _, r := range got.Resources {
				types = append(types, r.Type)
			}
			if strings.Join(types, ",") != c.types || withheld != c.withheld {
				t.Fatalf("types %v withheld %v, want %s %v", types, withheld, c.types, c.withheld)
			}
			if hasWarn := len(got.Warnings) > 0; hasWarn != c.withheld {
				t.Fatalf("warnings %+v with withheld=%v", got.Warnings, withheld)
			}
		})
	}
}

// TestRedactEveryFreeTextForm builds resources with every free-text form and
// proves none survives.
func TestRedactEveryFreeTextForm(t *testing.T) {
	s := fmt.Sprintf(subj, pidA)
	forms := map[string]string{
		"narrative":          `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Condition","text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">secret</div>","status":"generated"},` + s + `}`,
		"note":               `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}]},"id":"X","note":[{"authorString":"Dr A","text":"secret"}],"resourceType":"Condition",` + s + `}`,
		"comment":            `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}]},"comment":"secret","id":"X","resourceType":"Observation","status":"final",` + s + `}`,
		"concept text":       `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}],"text":"secret"},"id":"X","resourceType":"Condition",` + s + `}`,
		"nested concept":     `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}]},"id":"X","reaction":[{"manifestation":[{"coding":[{"code":"2","system":"http://snomed.info/sct"}],"text":"secret"}],"note":[{"text":"secret"}]}],"resourceType":"AllergyIntolerance",` + s + `}`,
		"text-only category": `{"category":[{"text":"secret"}],"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}]},"id":"X","resourceType":"Condition",` + s + `}`,
		"reference range":    `{"code":{"coding":[{"code":"1","system":"http://snomed.info/sct"}]},"id":"X","referenceRange":[{"text":"secret"}],"resourceType":"Observation","status":"final",` + s + `}`,
		"dosage sub-concept": `{"dosageInstruction":[{"route":{"text":"secret"},"text":"one daily"}],"id":"X","intent":"order","medicationCodeableConcept":{"coding":[{"code":"1","system":"https://dmd.nhs.uk"}]},"resourceType":"MedicationRequest","status":"active",` + s + `}`,
		"uncoded entry":      `{"code":{"text":"secret"},"id":"X","resourceType":"Condition",` + s + `}`,
		"uncoded medication": `{"id":"X","medicationCodeableConcept":{"text":"secret"},"resourceType":"MedicationStatement","status":"active",` + s + `}`,
		"patient name text":  `{"id":"X","name":[{"family":"Smith","text":"secret"}],"resourceType":"Patient"}`,
	}
	for name, raw := range forms {
		t.Run(name, func(t *testing.T) {
			raw = strings.ReplaceAll(raw, `"id":"X"`, `"id":"`+pidA+`-x"`)
			r := mustRes(t, raw)
			if paths, _ := FreeTextPaths(r); len(paths) == 0 {
				t.Fatalf("fixture has no free text")
			}
			rec := &fhir.Record{PatientID: pidA, Resources: []*fhir.Resource{r}}
			got, _ := Redact(rec, permit(fhir.AllAreas), testNow, nil)
			for _, g := range got.Resources {
				if bytes.Contains(g.JSON, []byte("secret")) {
					t.Fatalf("free text survived: %s", g.JSON)
				}
				paths, err := FreeTextPaths(g)
				if err != nil || len(paths) != 0 {
					t.Fatalf("free text paths %v (%v) in %s", paths, err, g.JSON)
				}
				var m map[string]any
				if err := json.Unmarshal(g.JSON, &m); err != nil {
					t.Fatalf("not JSON: %v", err)
				}
				if g.ID != r.ID || g.Type != r.Type || g.Ix.Area != r.Ix.Area {
					t.Fatalf("index changed: %+v vs %+v", g, r)
				}
			}
			if strings.HasPrefix(name, "uncoded") && len(got.Resources) != 0 {
				t.Fatalf("uncoded entry kept: %s", got.Resources[0].JSON)
			}
			if name == "dosage sub-concept" && !bytes.Contains(got.Resources[0].JSON, []byte(`"text":"one daily"`)) {
				t.Fatalf("dosage text removed: %s", got.Resources[0].JSON)
			}
		})
	}
}

func TestRedactCleanResourceKeepsBytes(t *testing.T) {
	rec := redactFixture(t)
	got, _ := Redact(rec, permit(fhir.AllAreas), testNow, DefaultExclusions())
	for _, r := range got.Resources {
		if strings.HasSuffix(r.ID, "-bp") || strings.HasSuffix(r.ID, "-org") {
			orig := rec.Find(r.Type, r.ID)
			if r != orig {
				t.Errorf("%s re-rendered though it had no free text", r.ID)
			}
		}
	}
}

func TestRedactorCache(t *testing.T) {
	rec := redactFixture(t)
	probe := NewRedactor(DefaultExclusions(), 0)
	probe.Redact(rec, permit(fhir.AllAreas), testNow)
	one := probe.Bytes()
	if one == 0 {
		t.Fatal("a cached record accounts for no bytes")
	}
	// Room for two records of the fixture's size, not three.
	z := NewRedactor(DefaultExclusions(), 2*one+one/2)
	a, wa := z.Redact(rec, permit(fhir.AreaProblems), testNow)
	b, wb := z.Redact(rec, permit(fhir.AreaProblems), testNow)
	if wa != wb || len(a.Resources) != len(b.Resources) || a == b {
		t.Fatalf("cached answer differs or is shared: %v %v", wa, wb)
	}
	for i := range a.Resources {
		if a.Resources[i] != b.Resources[i] {
			t.Fatalf("cached resource %d re-rendered", i)
		}
	}
	// Another areas set from the same cache entry equals the uncached answer.
	c, _ := z.Redact(rec, permit(fhir.AllAreas), testNow)
	d, _ := Redact(rec, permit(fhir.AllAreas), testNow, DefaultExclusions())
	if len(c.Resources) != len(d.Resources) {
		t.Fatalf("cached %d resources, uncached %d", len(c.Resources), len(d.Resources))
	}
	// Appending to the answer's warnings never reaches the cache.
	c.Warnings = append(c.Warnings, fhir.Issue{Code: "x"})
	e, _ := z.Redact(rec, permit(fhir.AllAreas), testNow)
	if len(e.Warnings) != 1 {
		t.Fatalf("warnings leaked between answers: %+v", e.Warnings)
	}
	// A different version is a different entry; the cache is bounded.
	for i := 0; i < 5; i++ {
		r2 := redactFixture(t)
		r2.Version = fmt.Sprint("v", 100+i)
		z.Redact(r2, permit(fhir.AllAreas), testNow)
	}
	if z.Len() != 2 || z.Bytes() > 2*one+one/2 {
		t.Fatalf("cache len %d (%d bytes), want 2 within %d bytes", z.Len(), z.Bytes(), 2*one+one/2)
	}
	// Same version with other resources (a misuse) is not served stale.
	r3 := redactFixture(t)
	r3.Version = "v104"
	r3.Resources = r3.Resources[:2]
	f, _ := z.Redact(r3, permit(fhir.AllAreas), testNow)
	if len(f.Resources) != 2 {
		t.Fatalf("stale cache entry served: %d resources", len(f.Resources))
	}
}

func TestSensitiveMatching(t *testing.T) {
	e := DefaultExclusions()
	for _, c := range []struct {
		sys, code string
		want      bool
	}{
		{fhir.SNOMED, "386639001", true},
		{fhir.SNOMED, "8098009", true},
		{fhir.ReadV2, "L05..", true},
		{fhir.ReadV2, "L0517", true},
		{fhir.ReadV2, "L051700", true},
		{fhir.ReadV2, "7E08600", true},
		{fhir.ReadV2, "L04..", false},
		{fhir.ReadV2, "67761", true},
		{fhir.SNOMED, "677610001", false}, // a SNOMED id is not a Read hierarchy
		{fhir.SNOMED, "44054006", false},
	} {
		r := codedRes(t, "Condition", "s", c.sys, c.code, "2020-01-01")
		if got := e.Sensitive(r); got != c.want {
			t.Errorf("%s|%s sensitive = %v, want %v", c.sys, c.code, got, c.want)
		}
	}
}
