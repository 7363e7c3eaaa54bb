package fhir

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// withID returns a copy of a canonical template resource with a new id. Ids
// are spliced, so the bytes stay canonical.
func withID(t testing.TB, tpl *Resource, id string) *Resource {
	t.Helper()
	raw := bytes.Replace(tpl.JSON, []byte(`"id":"TEMPLATEID00"`), []byte(`"id":"`+id+`"`), 1)
	if bytes.Equal(raw, tpl.JSON) {
		t.Fatal("template has no id TEMPLATEID00")
	}
	r, err := NewResource(raw)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func canonicalTemplates(t testing.TB) map[string]*Resource {
	t.Helper()
	out := map[string]*Resource{}
	for name, raw := range templates(t) {
		out[name] = mustCanonical(t, raw)
	}
	return out
}

const testBase = "https://gpgate.example/fhir"

func goldenBundles(t *testing.T) map[string]*Bundle {
	tpl := canonicalTemplates(t)
	ts := time.Date(2021, 1, 19, 10, 15, 30, 123456789, time.FixedZone("", 3600))
	outcome := &Resource{Type: "OperationOutcome", ID: "4f9d6a8e-3c1b-4e2a-9f00-1a2b3c4d5e6f",
		JSON: OperationOutcome(Issue{Severity: "warning", Code: WarnConfidentialItems, Diagnostics: "1 item withheld"})}
	return map[string]*Bundle{
		"searchset": {
			ID: "b6a1d0c2-1111-4222-8333-944455556666", Type: "searchset", Timestamp: ts, Total: 3,
			Links: []Link{
				{"self", testBase + "/Condition?patient=p1&_count=2"},
				{"next", testBase + "/Condition?patient=p1&_count=2&_offset=2"},
			},
			Base: testBase,
			Entries: []BundleEntry{
				{withID(t, tpl["condition"], "p1-c1"), "match"},
				{withID(t, tpl["condition"], "p1-c2"), "match"},
				{withID(t, tpl["patient"], "p1"), "include"},
				{outcome, "outcome"},
			},
		},
		"collection": {
			ID: "c0ffee00-0000-4000-8000-000000000001", Type: "collection", Timestamp: ts, Total: 99,
			Base: testBase,
			Entries: []BundleEntry{
				{withID(t, tpl["patient"], "p1"), ""},
				{withID(t, tpl["allergyintolerance"], "p1-a1"), ""},
				{withID(t, tpl["observation-bp"], "p1-bp1"), ""},
				{withID(t, tpl["medicationrequest"], "p1-mr1"), ""},
				{withID(t, tpl["encounter"], "p1-e1"), ""},
				{&Resource{Type: "OperationOutcome", ID: "5e8c7b6a-0000-4000-8000-00000000000a",
					JSON: OperationOutcome(Issue{Severity: "warning", Code: WarnAreaUnavailable})}, ""},
			},
		},
	}
}

func TestBundleGolden(t *testing.T) {
	for name, b := range goldenBundles(t) {
		t.Run(name, func(t *testing.T) {
			got := b.AppendJSON(nil)
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, append(bytes.Clone(got), '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBundleGolden -update to create it)", err)
			}
			if !bytes.Equal(append(bytes.Clone(got), '\n'), want) {
				t.Errorf("Bundle differs from %s (rerun with -update if the change is intended):\n got %s\nwant %s", path, got, want)
			}
			// Appending keeps what dst held.
			if pre := b.AppendJSON([]byte("prefix")); !bytes.Equal(pre, append([]byte("prefix"), got...)) {
				t.Error("AppendJSON did not append")
			}
			if b.Size() < len(got) {
				t.Errorf("Size() = %d underestimates %d bytes", b.Size(), len(got))
			}
		})
	}
}

type bundleJSON struct {
	ResourceType string    `json:"resourceType"`
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Timestamp    string    `json:"timestamp"`
	Total        *int      `json:"total"`
	Link         []Link    `json:"link"`
	Entry        []entryJS `json:"entry"`
}
type entryJS struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Search   *struct {
		Mode string `json:"mode"`
	} `json:"search"`
}

// TestBundleRoundTrip checks the spliced Bundle is valid R4 (jsonformat) and
// says what it was built from (encoding/json).
func TestBundleRoundTrip(t *testing.T) {
	for name, b := range goldenBundles(t) {
		t.Run(name, func(t *testing.T) {
			raw := b.AppendJSON(nil)
			if !json.Valid(raw) {
				t.Fatalf("not JSON: %s", raw)
			}
			if _, err := Parse(raw); err != nil {
				t.Fatalf("jsonformat rejects the Bundle: %v", err)
			}
			// Canonicalising the whole Bundle keeps every entry's resource bytes.
			c, err := Canonicalize(raw)
			if err != nil {
				t.Fatal(err)
			}
			var bj bundleJSON
			if err := json.Unmarshal(raw, &bj); err != nil {
				t.Fatal(err)
			}
			if bj.ResourceType != "Bundle" || bj.ID != b.ID || bj.Type != b.Type {
				t.Errorf("header = %+v", bj)
			}
			if bj.Timestamp != b.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z") {
				t.Errorf("timestamp = %q", bj.Timestamp)
			}
			if b.Type == "searchset" {
				if bj.Total == nil || *bj.Total != b.Total {
					t.Errorf("total = %v, want %d", bj.Total, b.Total)
				}
			} else if bj.Total != nil {
				t.Errorf("a %s has total %d", b.Type, *bj.Total)
			}
			if len(bj.Link) != len(b.Links) {
				t.Errorf("links = %+v", bj.Link)
			}
			for i, l := range bj.Link {
				if l != b.Links[i] {
					t.Errorf("link %d = %+v, want %+v", i, l, b.Links[i])
				}
			}
			if len(bj.Entry) != len(b.Entries) {
				t.Fatalf("%d entries, want %d", len(bj.Entry), len(b.Entries))
			}
			for i, e := range bj.Entry {
				src := b.Entries[i]
				wantURL := testBase + "/" + src.Resource.Reference()
				if src.Resource.Type == "OperationOutcome" {
					wantURL = "urn:uuid:" + src.Resource.ID
				}
				if e.FullURL != wantURL {
					t.Errorf("entry %d fullUrl = %q, want %q", i, e.FullURL, wantURL)
				}
				if !bytes.Equal(e.Resource, src.Resource.JSON) {
					t.Errorf("entry %d resource bytes changed", i)
				}
				if (e.Search == nil) != (src.Mode == "") || e.Search != nil && e.Search.Mode != src.Mode {
					t.Errorf("entry %d search = %+v, want mode %q", i, e.Search, src.Mode)
				}
			}
			var cj bundleJSON
			if err := json.Unmarshal(c.JSON, &cj); err != nil {
				t.Fatal(err)
			}
			for i, e := range cj.Entry {
				if b.Entries[i].Resource.Type == "OperationOutcome" {
					// OperationOutcome() renders in struct order, not
					// jsonformat's: compare the content only.
					var x, y any
					if json.Unmarshal(e.Resource, &x) != nil || json.Unmarshal(bj.Entry[i].Resource, &y) != nil || !jsonEquivalent(x, y) {
						t.Errorf("entry %d: jsonformat reads the outcome differently:\n%s\n%s", i, e.Resource, bj.Entry[i].Resource)
					}
					continue
				}
				if !bytes.Equal(e.Resource, bj.Entry[i].Resource) {
					t.Errorf("entry %d is not canonical: jsonformat renders it as\n%s\nnot\n%s", i, e.Resource, bj.Entry[i].Resource)
				}
			}
		})
	}
}

func TestBundleMinimal(t *testing.T) {
	tests := []struct {
		name string
		b    Bundle
		want string
	}{
		{"empty searchset", Bundle{Type: "searchset"},
			`{"resourceType":"Bundle","meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"]},"type":"searchset","total":0}`},
		{"searchset without total", Bundle{Type: "searchset", Total: -1},
			`{"resourceType":"Bundle","meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"]},"type":"searchset"}`},
		{"empty collection", Bundle{Type: "collection", Total: 5},
			`{"resourceType":"Bundle","meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"]},"type":"collection"}`},
		{"escaped header", Bundle{ID: `x"y`, Type: "searchset", Total: -1, Links: []Link{{"self", "https://a.example/C?code=a&b=<c>"}}},
			`{"resourceType":"Bundle","id":"x\"y","meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Bundle"]},"type":"searchset","link":[{"relation":"self","url":"https://a.example/C?code=a&b=<c>"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.b.AppendJSON(nil)
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if tc.b.ID == "" {
				if _, err := Parse(got); err != nil {
					t.Errorf("jsonformat rejects it: %v", err)
				}
			}
		})
	}
}

var trickyStrings = []string{
	"",
	"plain",
	`quote " and backslash \ and slash /`,
	"\x00\x01\x07\b\t\n\v\f\r\x1b\x1f\x7f",
	"<script>alert('&amp;')</script>",
	"invalid \xff\xfe utf-8 \xc3 truncated",
	"overlong \xc0\xaf and surrogate \xed\xa0\x80",
	"line\u2028separator\u2029paragraph",
	"emoji 🏥 and é and ñ and 中文",
	"\u00a0nbsp\ufeffbom\ufffdreplacement",
	strings.Repeat("a\"", 100),
}

// TestAppendJSONString compares with encoding/json without HTML escaping
// (AppendJSONString leaves <, > and & as they are): byte for byte, except
// that encoding/json spells \b and \f as two-character escapes and escapes
// U+2028/U+2029, where AppendJSONString writes \u0008, \u000c and the raw
// characters. Those are the same JSON string, which is checked for every input.
func TestAppendJSONString(t *testing.T) {
	for _, s := range trickyStrings {
		t.Run(fmt.Sprintf("%.20q", s), func(t *testing.T) {
			checkJSONString(t, s)
		})
	}
	// Pin the spellings that differ from encoding/json.
	for in, want := range map[string]string{
		"<a&b>":       `"<a&b>"`,
		`\b\f`:        `"\\b\\f"`,
		"":            `""`,
		"\b\f":        `"\u0008\u000c"`,
		"\u2028":      "\"\u2028\"",
		"\xff":        `"\ufffd"`,
		"\x7f":        "\"\x7f\"",
		"tab\there\r": `"tab\there\r"`,
	} {
		if got := string(AppendJSONString(nil, in)); got != want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}

func checkJSONString(t *testing.T, s string) {
	t.Helper()
	got := AppendJSONString([]byte("x"), s)
	if got[0] != 'x' {
		t.Fatal("AppendJSONString did not append")
	}
	got = got[1:]
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !strings.ContainsAny(s, "\b\f\u2028\u2029") && !bytes.Equal(got, want) {
		t.Errorf("AppendJSONString(%q) = %s, encoding/json gives %s", s, got, want)
	}
	var back, wantBack string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("not a JSON string: %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &wantBack); err != nil {
		t.Fatal(err)
	}
	if back != wantBack {
		t.Errorf("AppendJSONString(%q) decodes to %q, encoding/json's to %q", s, back, wantBack)
	}
	if utf8.ValidString(s) && back != s {
		t.Errorf("round trip %q -> %q", s, back)
	}
	if !utf8.Valid(got) {
		t.Errorf("output is not UTF-8: %q", got)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkJSONString(t, s)
	})
}

// benchBundle is a 500-resource searchset of realistic canonical resources.
func benchBundle(b *testing.B) *Bundle {
	tpl := canonicalTemplates(b)
	names := sortedKeys(tpl)
	bd := &Bundle{
		ID: "b6a1d0c2-1111-4222-8333-944455556666", Type: "searchset", Total: 500,
		Timestamp: time.Date(2021, 1, 19, 10, 15, 30, 0, time.UTC), Base: testBase,
		Links: []Link{{"self", testBase + "/Observation?patient=p1&_count=500"}},
	}
	for i := 0; i < 500; i++ {
		r := withID(b, tpl[names[i%len(names)]], fmt.Sprintf("pabcdefghijklmnop-%06d", i))
		bd.Entries = append(bd.Entries, BundleEntry{Resource: r, Mode: "match"})
	}
	return bd
}

// BenchmarkBundleAssembly splices a 500-resource searchset into a reused,
// preallocated buffer. Compare with BenchmarkBundleCopy: the issue's bar is
// assembly within 2x of a plain copy of the same resource bytes.
func BenchmarkBundleAssembly(b *testing.B) {
	bd := benchBundle(b)
	buf := make([]byte, 0, bd.Size())
	out := bd.AppendJSON(buf[:0])
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		out = bd.AppendJSON(buf[:0])
	}
	if cap(out) != cap(buf) {
		b.Fatalf("Size() = %d did not cover %d bytes: assembly reallocated", bd.Size(), len(out))
	}
}

// BenchmarkBundleCopy is the baseline: the same 500 resources' bytes copied
// one after another into a preallocated buffer, nothing else.
func BenchmarkBundleCopy(b *testing.B) {
	bd := benchBundle(b)
	buf := make([]byte, 0, bd.Size())
	b.SetBytes(int64(len(bd.AppendJSON(nil)))) // same unit as assembly
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		out = buf[:0]
		for _, e := range bd.Entries {
			out = append(out, e.Resource.JSON...)
		}
	}
	if cap(out) != cap(buf) {
		b.Fatal("copy reallocated")
	}
}

// BenchmarkBundleWriteJSON streams the same 500-resource searchset in
// 64 KiB chunks (what the REST layer does): no buffer of the whole Bundle.
func BenchmarkBundleWriteJSON(b *testing.B) {
	bd := benchBundle(b)
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(int64(len(bd.AppendJSON(nil))))
	b.ReportAllocs()
	for b.Loop() {
		if err := bd.WriteJSON(io.Discard, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBundleWriteJSONIsAppendJSON(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		bd := &Bundle{ID: "b", Type: "searchset", Total: n, Base: testBase, Links: []Link{{"self", testBase + "/x"}}}
		for i := 0; i < n; i++ {
			bd.Entries = append(bd.Entries, BundleEntry{Resource: &Resource{Type: "Flag", ID: fmt.Sprint("f", i), JSON: []byte(`{"resourceType":"Flag","id":"f` + fmt.Sprint(i) + `","padding":"` + strings.Repeat("x", 100) + `"}`)}, Mode: "match"})
		}
		for _, chunk := range []int{1, 50, 64 << 10} {
			var w bytes.Buffer
			if err := bd.WriteJSON(&w, make([]byte, 0, chunk)); err != nil {
				t.Fatal(err)
			}
			if got, want := w.String(), string(bd.AppendJSON(nil)); got != want {
				t.Fatalf("%d entries, chunk %d:\n got %s\nwant %s", n, chunk, got, want)
			}
		}
	}
}

// TestBundleRendered checks that a Bundle whose first entries come
// pre-rendered (AppendEntries, as a render cache keeps them) is the same
// bytes as the one that splices them all, at every split point and through
// both writers; and that EntriesSize is exact.
func TestBundleRendered(t *testing.T) {
	for name, whole := range goldenBundles(t) {
		want := whole.AppendJSON(nil)
		for k := 0; k <= len(whole.Entries); k++ {
			// Pre-rendered entries share one mode (a cache renders a list
			// of matches): a head that mixes modes is not a split made.
			var rs []*Resource
			mode := ""
			for i, e := range whole.Entries[:k] {
				if i > 0 && e.Mode != mode {
					rs = nil
					break
				}
				mode = e.Mode
				rs = append(rs, e.Resource)
			}
			if len(rs) != k {
				continue
			}
			t.Run(fmt.Sprintf("%s/first %d rendered", name, k), func(t *testing.T) {
				block := AppendEntries(nil, whole.Base, mode, rs)
				if n := EntriesSize(whole.Base, mode, rs); n != len(block) {
					t.Errorf("EntriesSize = %d, AppendEntries appended %d", n, len(block))
				}
				b := *whole
				b.Rendered, b.Entries = block, whole.Entries[k:]
				if got := b.AppendJSON(nil); !bytes.Equal(got, want) {
					t.Fatalf("AppendJSON:\n got %s\nwant %s", got, want)
				}
				for _, chunk := range []int{1, 64, 64 << 10} {
					var w bytes.Buffer
					if err := b.WriteJSON(&w, make([]byte, 0, chunk)); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(w.Bytes(), want) {
						t.Fatalf("WriteJSON, chunk %d:\n got %s\nwant %s", chunk, w.Bytes(), want)
					}
				}
				parts, split := b.AppendParts([]byte("prefix"))
				if got := append(append(bytes.Clone(parts[:split]), block...), parts[split:]...); !bytes.Equal(got, append([]byte("prefix"), want...)) {
					t.Fatalf("AppendParts, Rendered at %d:\n got %s\nwant prefix%s", split, got, want)
				}
				if b.Size() < len(want) {
					t.Errorf("Size() = %d underestimates %d bytes", b.Size(), len(want))
				}
			})
		}
	}
}
