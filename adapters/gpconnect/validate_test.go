package gpconnect

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidateSharedRecords runs the third-party R4 + UK Core validator
// (../shared/tools/fhir-validate) over the converted resources of every
// shared record, one collection Bundle per record, and requires zero
// errors (but for the validator's known blood-pressure limitation,
// filtered as make validate filters it). It is slow (the first run installs npm packages), so it runs
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
	if d := os.Getenv("GPGATE_VALIDATE_OUT"); d != "" { // keep the Bundles to look at
		out = d
	}
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
	cmd := exec.Command(tool, args...)
	msg, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("fhir-validate: %v\n%s", err, msg)
	}
	known, errs := 0, 0
	for _, line := range strings.Split(string(msg), "\n") {
		if !strings.HasPrefix(line, "  ERROR") && !strings.HasPrefix(line, "  FATAL") {
			continue
		}
		if knownLimitation.MatchString(line) {
			known++
			continue
		}
		errs++
		t.Error(strings.TrimSpace(line))
	}
	t.Logf("fhir-validate: %d records, %d errors, %d known-limitation lines (BP component slicing) filtered", len(args), errs, known)
}

// knownLimitation is the validator's one known false positive, filtered as
// conformance/validate.sh filters it: it cannot match the UK Core
// blood-pressure component slices (UK Core's own BP example fails the
// same way).
var knownLimitation = regexp.MustCompile(`\[profile\] .*Observation\.component: \[UKCoreObservationVitalSignsBloodPressure\] Incorrect number of values provided for slice '(loinc|SystolicBP|DiastolicBP)': expected 1\.\.1, but found 0$`)
