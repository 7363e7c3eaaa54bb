package profiles

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// TestPDSPatients: the PDS sandbox Patients (real R4 demographics no one
// here wrote), once they claim UKCore-Patient, satisfy it with no error.
// This guards against the checker being stricter than UK Core.
func TestPDSPatients(t *testing.T) {
	dir := sharedDir(t, filepath.Join("testdata", "pds"))
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no PDS patients in %s: %v", dir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var root map[string]any
			if err := json.Unmarshal(b, &root); err != nil {
				t.Fatal(err)
			}
			if root["resourceType"] != "Patient" {
				t.Skipf("%s is a %v", f, root["resourceType"])
			}
			meta, _ := root["meta"].(map[string]any)
			if meta == nil {
				meta = map[string]any{}
				root["meta"] = meta
			}
			meta["profile"] = []any{fhir.ProfilePatient}

			// PDS still codes the verification status in the pre-2.0 UK
			// Core system, which the 2.6.1 required binding does not
			// include: the checker must say so, naming the replacement.
			legacy := 0
			ids, _ := root["identifier"].([]any)
			for _, id := range ids {
				for _, ext := range asList(id.(map[string]any)["extension"]) {
					cc, _ := ext.(map[string]any)["valueCodeableConcept"].(map[string]any)
					for _, cd := range asList(cc["coding"]) {
						cdo := cd.(map[string]any)
						if _, ok := legacySystems[cdo["system"].(string)]; ok {
							legacy++
							raw, _ := json.Marshal(root)
							ps := profileErrors(CheckJSON(raw))
							if len(ps) != 1 || ps[0].Rule != "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus.value[x]" ||
								!strings.Contains(ps[0].Message, fhir.NHSNumberVerificationSystem) {
								t.Errorf("legacy verification system: want one error naming the 2.6.1 system, got:\n%s", dump(ps))
							}
							cdo["system"] = fhir.NHSNumberVerificationSystem // what an adapter maps it to
						}
					}
				}
			}
			t.Logf("%d legacy verification-status codings mapped", legacy)
			raw, _ := json.Marshal(root)
			if ps := profileErrors(CheckJSON(raw)); len(ps) > 0 {
				t.Errorf("want no errors, got:\n%s", dump(ps))
			}
		})
	}
}

// profileErrors are the errors other than the coded-only rules: a source's
// Patient is input, not what gpgate emits, and may carry free text (a
// contact preference written out) that redaction removes; TestCodedPDS
// checks what the coded-only rule makes of it.
func profileErrors(ps []Problem) []Problem {
	var out []Problem
	for _, p := range Errors(ps) {
		if !strings.HasPrefix(p.Rule, RuleCodedOnly) {
			out = append(out, p)
		}
	}
	return out
}
