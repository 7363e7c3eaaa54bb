package fhir

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// templates reads testdata/resources/*.json: realistic UK Core resources of
// 1-2 KB each, with id TEMPLATEID00.
func templates(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "resources", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no templates in testdata/resources: %v", err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = b
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func mustCanonical(t testing.TB, raw []byte) *Resource {
	t.Helper()
	r, err := Canonicalize(raw)
	if err != nil {
		t.Fatalf("Canonicalize: %v", err)
	}
	return r
}

func TestCanonicalizeIdempotent(t *testing.T) {
	tpl := templates(t)
	for _, name := range sortedKeys(tpl) {
		t.Run(name, func(t *testing.T) {
			raw := tpl[name]
			r1 := mustCanonical(t, raw)
			r2 := mustCanonical(t, r1.JSON)
			if !bytes.Equal(r1.JSON, r2.JSON) {
				t.Fatalf("Canonicalize is not idempotent:\n%s\n%s", r1.JSON, r2.JSON)
			}
			if r1.Type != r2.Type || r1.ID != "TEMPLATEID00" || r2.ID != r1.ID {
				t.Errorf("type/id %s/%s vs %s/%s", r1.Type, r1.ID, r2.Type, r2.ID)
			}
			if !reflect.DeepEqual(r1.Ix, r2.Ix) {
				t.Errorf("index differs: %+v vs %+v", r1.Ix, r2.Ix)
			}
			// Canonical means compact: no insignificant whitespace.
			var compact bytes.Buffer
			if err := json.Compact(&compact, r1.JSON); err != nil || !bytes.Equal(compact.Bytes(), r1.JSON) {
				t.Errorf("canonical JSON is not compact (err %v)", err)
			}
			// The same content in another key order and layout canonicalises
			// to the same bytes.
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			shuffled, err := json.MarshalIndent(m, "", "\t") // keys sorted, not jsonformat's order
			if err != nil {
				t.Fatal(err)
			}
			if r3 := mustCanonical(t, shuffled); !bytes.Equal(r3.JSON, r1.JSON) {
				t.Errorf("layout changed the canonical bytes:\n%s\n%s", r3.JSON, r1.JSON)
			}
			// The canonical form says the same as the input.
			var a, b any
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(r1.JSON, &b); err != nil {
				t.Fatal(err)
			}
			if !jsonEquivalent(a, b) {
				t.Errorf("canonical form changed the content:\n%s\n%s", raw, r1.JSON)
			}
		})
	}
}

// jsonEquivalent compares decoded JSON, treating numbers by value and
// date-times with an explicit +00:00 offset as jsonformat may rewrite them.
func jsonEquivalent(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !jsonEquivalent(v, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEquivalent(x[i], y[i]) {
				return false
			}
		}
		return true
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		dx, err1 := ParseDate(x)
		dy, err2 := ParseDate(y)
		return err1 == nil && err2 == nil && dx.Start.Equal(dy.Start) && dx.End.Equal(dy.End)
	default:
		return reflect.DeepEqual(a, b)
	}
}

// TestRenderResource renders the resource inside a ContainedResource, the
// other branch of Render, and gets the same bytes.
func TestRenderResource(t *testing.T) {
	tpl := templates(t)
	for _, name := range sortedKeys(tpl) {
		t.Run(name, func(t *testing.T) {
			r := mustCanonical(t, tpl[name])
			msg, err := Parse(tpl[name])
			if err != nil {
				t.Fatal(err)
			}
			pr := msg.ProtoReflect()
			oneof := pr.Descriptor().Oneofs().Get(0)
			fd := pr.WhichOneof(oneof)
			if fd == nil {
				t.Fatal("empty ContainedResource")
			}
			inner := pr.Get(fd).Message().Interface()
			before := proto.Clone(msg)
			r2, err := Render(inner)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.JSON, r2.JSON) {
				t.Errorf("Render(resource) differs from Render(ContainedResource):\n%s\n%s", r2.JSON, r.JSON)
			}
			r3, err := Render(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.JSON, r3.JSON) {
				t.Errorf("Render(ContainedResource) differs from Canonicalize:\n%s\n%s", r3.JSON, r.JSON)
			}
			// Render leaves the caller's message as it was (jsonformat
			// rewrites typed references in the message it marshals).
			if !proto.Equal(before, msg) {
				t.Error("Render modified its argument")
			}
			// And the proto round-trips through the canonical bytes.
			back, err := Parse(r.JSON)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, msg) {
				t.Error("Parse(canonical) differs from Parse(original)")
			}
		})
	}
}

func TestCanonicalizeRejectsInvalid(t *testing.T) {
	tpl := templates(t)
	patient := string(tpl["patient"])
	tests := []struct {
		name string
		raw  string
	}{
		{"bad date", strings.Replace(patient, `"1970-10-22"`, `"1970-13-22"`, 1)},
		{"impossible date", strings.Replace(patient, `"1970-10-22"`, `"1970-02-30"`, 1)},
		{"date with a time", strings.Replace(patient, `"1970-10-22"`, `"1970-10-22T10:00:00"`, 1)},
		{"unknown element", strings.Replace(patient, `"active": true`, `"active": true, "favouriteColour": "blue"`, 1)},
		{"wrong type: boolean as string", strings.Replace(patient, `"active": true`, `"active": "yes"`, 1)},
		{"wrong type: object for a list", strings.Replace(patient, `"given": ["Jane", "Rose"]`, `"given": {"first": "Jane"}`, 1)},
		{"wrong type: number for a string", strings.Replace(patient, `"family": "Smith"`, `"family": 42`, 1)},
		{"bad code value", strings.Replace(patient, `"gender": "female"`, `"gender": "f"`, 1)},
		{"bad instant", strings.Replace(patient, `"lastUpdated": "2021-01-19T10:15:00Z"`, `"lastUpdated": "2021-01-19"`, 1)},
		{"unknown resource type", `{"resourceType":"Patientt","id":"x"}`},
		{"no resource type", `{"id":"x","active":true}`},
		{"STU3-only element", `{"resourceType":"Condition","id":"x","subject":{"reference":"Patient/p"},"assertedDate":"2015-01-01"}`},
		{"not JSON", `{"resourceType":"Patient",`},
		{"empty", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.raw == patient {
				t.Fatal("the replacement did not apply: fix the test")
			}
			if r, err := Canonicalize([]byte(tc.raw)); err == nil {
				t.Fatalf("Canonicalize accepted invalid R4:\n%s", r.JSON)
			}
		})
	}
}

// BenchmarkCanonicalize is the jsonformat path (parse, validate, marshal, index)
// that runs once per resource at ingest, never per request. Compare its MB/s
// with BenchmarkBundleAssembly's.
func BenchmarkCanonicalize(b *testing.B) {
	tpl := templates(b)
	for _, name := range []string{"observation-bp", "medicationrequest"} {
		raw := mustCanonical(b, tpl[name]).JSON
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Canonicalize(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
