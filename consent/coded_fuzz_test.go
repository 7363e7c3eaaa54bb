package consent

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// FuzzKeepCoded: whatever JSON object comes in, the redacted resource is
// valid JSON, never larger than the input, every string in it was in the
// input at the same path (so a string the input held only in a dropped
// element cannot come out elsewhere), a second pass changes nothing, and an
// unchanged resource has nothing to report.
func FuzzKeepCoded(f *testing.F) {
	for _, typ := range servedTypes() {
		r, raw := fixture(f, typ)
		f.Add(raw)
		f.Add([]byte(typeFixtures[typ]))
		if nr, _, _ := keepCoded(r); nr != nil {
			f.Add(nr.JSON)
		}
	}
	for _, r := range redactFixture(f).Resources {
		f.Add(r.JSON)
	}
	f.Add([]byte(`{"resourceType":"Observation","id":"x","status":"final","code":{"coding":[{"code":"1"}],"text":"Systolic blood pressure"},"code":{"text":"dup"}}`))
	f.Add([]byte(`{"resourceType":"Patient","id":"x","extension":[{"valueString":"a","url":"https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AddressKey","url":"x"}]}`))
	f.Add([]byte(`{"resourceType":"Condition","id":"x","code":{"coding":[{"code":"1\u0020x"}]},"subject":{"reference":"Patient/\u0070"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := fhir.NewResource(b)
		if err != nil {
			return // not a resource gpgate could hold
		}
		nr, withhold, err := keepCoded(r)
		if err != nil || withhold {
			if nr != nil {
				t.Fatal("withheld or failed, yet a resource returned")
			}
			return
		}
		if nr == r {
			if paths, err := FreeTextPaths(r); err != nil || len(paths) != 0 {
				t.Fatalf("unchanged, yet %v reported (%v)", paths, err)
			}
			return
		}
		if !json.Valid(nr.JSON) {
			t.Fatalf("not JSON: %s", nr.JSON)
		}
		if len(nr.JSON) > len(b) {
			t.Fatalf("grew from %d to %d bytes", len(b), len(nr.JSON))
		}
		if nr.Type != r.Type || nr.ID != r.ID {
			t.Fatalf("identity changed: %s/%s", nr.Type, nr.ID)
		}
		inStr, _, err := jsonLeaves(b)
		if err != nil {
			return // JSON encoding/json accepts but a token walk does not (invalid UTF-8): nothing to compare
		}
		have := map[leaf]bool{}
		for _, l := range inStr {
			have[l] = true
		}
		outStr, _, err := jsonLeaves(nr.JSON)
		if err != nil {
			t.Fatalf("output: %v", err)
		}
		for _, l := range outStr {
			if !have[l] && !bytes.Contains(b, []byte(`\`)) {
				t.Fatalf("%s=%q is not in the input at that path", l.path, l.val)
			}
			if strings.HasSuffix(l.path, ".text") && !strings.Contains(l.path, "dosage") && !strings.Contains(l.path, "Dosage") && !fhir.IsProfileFixedText(l.val) {
				t.Fatalf("text kept at %s: %q", l.path, l.val)
			}
		}
		again, w, err := keepCoded(nr)
		if err != nil || w || again != nr {
			t.Fatalf("second pass: withhold %v err %v changed %v", w, err, again != nr)
		}
	})
}
