package audit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sharedDir finds ../shared beside the checkout (the directory holding
// go.mod, then ../shared), or "".
func sharedDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// TestGoldenUKCoreValidator runs the independent R4 + UK Core validator over
// the golden AuditEvents.
func TestGoldenUKCoreValidator(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the external validator (about 7 s)")
	}
	run := filepath.Join(sharedDir(), "tools", "fhir-validate", "run")
	if _, err := os.Stat(run); err != nil {
		t.Skipf("../shared/tools/fhir-validate is absent (%v): independent UK Core validation not run", err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out, err := exec.Command(run, append([]string{"--quiet"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("fhir-validate: %v\n%s", err, out)
	}
}
