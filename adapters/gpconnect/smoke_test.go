package gpconnect

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

func TestSmoke(t *testing.T) {
	files, _ := filepath.Glob("../../../shared/testdata/gpconnect-stu3/*.json")
	for _, f := range files {
		body, _ := os.ReadFile(f)
		res, err := Convert(body, Options{NHS: "9000000009", Practice: "A82038"})
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		n := 0
		for _, r := range res.Resources {
			for _, p := range profiles.Errors(profiles.Check(r)) {
				if n < 5 {
					t.Errorf("%s %s/%s: %v", filepath.Base(f), r.Type, r.ID, p)
				}
				n++
			}
		}
		t.Logf("%s: %d resources, dropped %d, problems %d, warnings %v", filepath.Base(f), len(res.Resources), res.Dropped, n, res.Warnings)
		_ = fhir.AreaDemographics
	}
}

func TestDump(t *testing.T) {
	body, _ := os.ReadFile("../../../shared/testdata/gpconnect-stu3/" + os.Getenv("F"))
	res, err := Convert(body, Options{NHS: "9000000009", Practice: "A82038"})
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, r := range res.Resources {
		all = append(all, r.JSON...)
		all = append(all, '\n')
	}
	os.WriteFile("/tmp/gpc/out.ndjson", all, 0o644)
}
