package gpconnect

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestValidateSharedRecords runs the third-party R4 + UK Core validator
// (../shared/tools/fhir-validate) over the converted resources of every
// shared record, one collection Bundle per record, and requires zero
// errors. It is slow (the first run installs npm packages), so it runs
// only with GPGATE_VALIDATE=1.
func TestValidateSharedRecords(t *testing.T) {
	if os.Getenv("GPGATE_VALIDATE") != "1" {
		t.Skip("set GPGATE_VALIDATE=1 to run the fhir-validate tool over every converted shared record")
	}
	files := sharedFiles(t)
	tool := filepath.Join(filepath.Dir(filepath.Dir(sharedDir(t))), "tools", "fhir-validate", "run")
	if _, err := os.Stat(tool); err != nil {
		t.Skip("../shared/tools/fhir-validate is absent")
	}
	out := t.TempDir()
	var args []string
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Convert(body, Options{NHS: testNHS, Practice: "A12345"})
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f)[:10], err)
		}
		var entries []map[string]any
		for _, r := range res.Resources {
			entries = append(entries, map[string]any{"fullUrl": "https://gpgate.example/" + r.Reference(), "resource": json.RawMessage(r.JSON)})
		}
		b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "collection", "entry": entries})
		p := filepath.Join(out, filepath.Base(f))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.Command(tool, append([]string{"--quiet"}, args...)...)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fhir-validate: %v\n%s", err, msg)
	}
	t.Logf("fhir-validate: %d records, zero errors\n%s", len(args), msg)
}
