package gpconnect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// sharedDir finds ../shared/testdata/gpconnect-stu3 above the package, or
// skips the test.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, _ := filepath.Abs(".")
	for {
		p := filepath.Join(dir, "shared", "testdata", "gpconnect-stu3")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("../shared/testdata/gpconnect-stu3 is absent (the shared test data sits beside the checkout)")
		}
		dir = parent
	}
}

func sharedFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(sharedDir(t), "*.json"))
	if err != nil || len(files) == 0 {
		t.Skip("no shared GP Connect records")
	}
	sort.Strings(files)
	return files
}

const testNHS fhir.NHSNumber = "9000000009"

// bundle builds a STU3 structured record Bundle around resources; the
// Patient (id "pat", NHS number nhs) comes first.
func bundle(nhs string, resources ...map[string]any) []byte {
	entries := []any{map[string]any{"resource": map[string]any{
		"resourceType": "Patient", "id": "pat",
		"identifier": []any{map[string]any{"system": fhir.NHSNumberSystem, "value": nhs}},
		"name":       []any{map[string]any{"use": "official", "family": "Testpatient", "given": []any{"Anne"}}},
		"gender":     "female", "birthDate": "1970-01-01",
	}}}
	for _, r := range resources {
		entries = append(entries, map[string]any{"resource": r})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries})
	return b
}

func cc(system, code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": system, "code": code, "display": "d"}}, "text": "free text that must not leave"}
}

func ref(s string) map[string]any { return map[string]any{"reference": s} }

// decoded converts and returns each resource as a map, by "Type/localid".
func decoded(t *testing.T, body []byte) (map[string]map[string]any, *Result) {
	t.Helper()
	res, err := Convert(body, Options{NHS: testNHS, Practice: "A12345"})
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	out := map[string]map[string]any{}
	pid := fhir.PatientID(testNHS)
	for _, r := range res.Resources {
		var m map[string]any
		if err := json.Unmarshal(r.JSON, &m); err != nil {
			t.Fatal(err)
		}
		local := r.ID
		if r.ID != pid {
			local = r.ID[len(pid)+1:]
		}
		out[r.Type+"/"+local] = m
	}
	return out, res
}

// sharedGlob lists the shared records without skipping (for fuzz seeds).
func sharedGlob() ([]string, error) {
	dir, _ := filepath.Abs(".")
	for {
		p := filepath.Join(dir, "shared", "testdata", "gpconnect-stu3")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return filepath.Glob(filepath.Join(p, "*.json"))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, os.ErrNotExist
		}
		dir = parent
	}
}
