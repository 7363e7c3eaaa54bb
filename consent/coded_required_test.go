package consent

import (
	"encoding/json"
	"strings"
	"testing"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
)

// r4Required lists, per resource type, the elements R4 requires of it
// (minimum cardinality 1), read from google/fhir's R4 protos (the
// REQUIRED_BY_FHIR annotation): a source independent of the allowlist's
// own table. A choice element is named without its type suffix.
func r4Required(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	oneof := (&rpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().Get(0).Fields()
	for i := 0; i < oneof.Len(); i++ {
		m := oneof.Get(i).Message()
		fs := m.Fields()
		for j := 0; j < fs.Len(); j++ {
			fd := fs.Get(j)
			if proto.GetExtension(fd.Options(), apb.E_ValidationRequirement).(apb.Requirement) == apb.Requirement_REQUIRED_BY_FHIR {
				out[string(m.Name())] = append(out[string(m.Name())], string(fd.JSONName()))
			}
		}
	}
	if len(out["Immunization"]) == 0 {
		t.Fatal("no required elements read from the R4 protos")
	}
	return out
}

// isElement reports whether JSON key k is element name (or, for a choice,
// one of its typed forms, e.g. occurrenceDateTime), or its "_" form.
func isElement(k, name string) bool {
	k = strings.TrimPrefix(k, "_")
	if k == name {
		return true
	}
	rest, ok := strings.CutPrefix(k, name)
	return ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z'
}

// TestCodedWithholdsWithoutRequired: for every served type, a resource
// without an element R4 requires of it is withheld (an invalid resource
// never leaves), and with all of them it is kept with all of them.
func TestCodedWithholdsWithoutRequired(t *testing.T) {
	required := r4Required(t)
	for _, typ := range servedTypes() {
		for _, name := range required[typ] {
			t.Run(typ+"."+name, func(t *testing.T) {
				r, raw := fixture(t, typ)
				var m map[string]json.RawMessage
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				// The fixture has it, and it survives redaction.
				nr, withhold, err := keepCoded(r)
				if err != nil || withhold {
					t.Fatalf("complete fixture withheld (%v, %v)", withhold, err)
				}
				var out map[string]json.RawMessage
				if err := json.Unmarshal(nr.JSON, &out); err != nil {
					t.Fatal(err)
				}
				found := false
				for k := range out {
					found = found || isElement(k, name)
				}
				if !found {
					t.Fatalf("%s.%s, which R4 requires, is not in the redacted fixture:\n%s", typ, name, nr.JSON)
				}
				// Without it: withheld.
				for k := range m {
					if isElement(k, name) {
						delete(m, k)
					}
				}
				without, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if nr, withhold, err := keepCoded(mustRes(t, string(without))); err != nil || !withhold {
					t.Fatalf("without %s: withhold %v, err %v:\n%v", name, withhold, err, nr)
				}
			})
		}
	}
}
