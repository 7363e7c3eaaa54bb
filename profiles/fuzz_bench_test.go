package profiles

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// FuzzCheckJSON: CheckJSON and CheckBundle never panic, whatever the input,
// and a problem always has a rule and a severity.
func FuzzCheckJSON(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "good", "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"resourceType":"Observation","meta":{"profile":[1,null,"` + fhir.ProfileBloodPressure + `"]},"component":[null,1,{"code":null}]}`,
		`{"resourceType":"Bundle","type":"searchset","total":-1,"entry":[null,{"resource":1},{"fullUrl":"/","resource":{"resourceType":"Patient"}}]}`,
		`{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":9000000009}],"extension":[{}]}`,
		`{"resourceType":"List","meta":{"profile":["` + fhir.ProfileList + `"]},"extension":[{"url":"` + extListWarningCode + `","valueCodeableConcept":"x"}]}`,
		`{"resourceType":"Condition","contained":[{"resourceType":"Patient","text":1}],"clinicalStatus":[],"abatementString":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, ps := range [][]Problem{CheckJSON(raw), CheckBundle(raw, ResolveReferences())} {
			for _, p := range ps {
				if p.Rule == "" || (p.Severity != Error && p.Severity != Warning) {
					t.Fatalf("malformed problem %+v", p)
				}
			}
		}
	})
}

func BenchmarkCheckCondition(b *testing.B) {
	r, err := fhir.NewResource(readGood(b, "condition.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(r.JSON)))
	b.ReportAllocs()
	for b.Loop() {
		if ps := Check(r); len(ps) != 0 {
			b.Fatal(ps)
		}
	}
}

func BenchmarkCheckBundle500(b *testing.B) {
	raw := bigBundle(b, 500)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if ps := CheckBundle(raw, ResolveReferences()); len(ps) != 0 {
			b.Fatal(ps[0])
		}
	}
}
