package profiles

import (
	"encoding/json"
	"fmt"
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

// FuzzCodedOnly: CodedOnly never panics, and every coded-only problem has a
// path, Error severity and one of the check's rules.
func FuzzCodedOnly(f *testing.F) {
	for _, b := range codedFiles(f) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"resourceType":"Patient","_birthDate":"x","birthDate":{"extension":[{"valueString":1}]},"name":[null,"x",{"given":[1,null,"a"]}]}`,
		`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Foo"}}]}},{"resource":"x"},null]}`,
		`{"resourceType":"Condition","contained":[{"resourceType":1},{"resourceType":"Condition","contained":[{"resourceType":"Condition","note":[{"text":"x"}]}]}],"code":{"text":"x","coding":{}}}`,
		`{"resourceType":"Observation","valueQuantity":"5","component":[{"valueString":"a","code":[[["x"]]]}],"_status":{"id":"x","extension":[{"url":1}]}}`,
		`{"resourceType":"List","title":"x","code":{"coding":[null,{"display":1},{"display":"x"}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, p := range CodedOnly(raw) {
			switch p.Rule {
			case "json":
			case RuleCodedOnly, RuleUnknownElement:
				if p.Path == "" || p.Severity != Error {
					t.Fatalf("malformed problem %+v", p)
				}
			default:
				t.Fatalf("unexpected rule %+v", p)
			}
		}
	})
}

// BenchmarkCodedOnly500: CodedOnly over a 500-resource collection Bundle of
// every clean resource type, over and over.
func BenchmarkCodedOnly500(b *testing.B) {
	base := codedBundle(b)
	entries := base["entry"].([]any)
	var all []any
	for i := 0; len(all) < 500; i++ {
		e := entries[i%len(entries)].(obj)
		r := parse(mustJSON(b, e["resource"])).(obj)
		r["id"] = fmt.Sprintf("%s-%d", r["id"], i)
		all = append(all, obj{"fullUrl": fmt.Sprintf("https://gpgate.example/fhir/%s/%s", r["resourceType"], r["id"]), "resource": r})
	}
	base["entry"] = all
	raw := []byte(mustJSON(b, base))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if ps := CodedOnly(raw); len(ps) != 0 {
			b.Fatal(ps[0])
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
