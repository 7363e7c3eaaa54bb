package profiles

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestBundles(t *testing.T) {
	cases := []struct {
		name, file string
		edits      edits
		opts       []BundleOption
		rule, path string
		sev        Severity
	}{
		{"searchset without total", "bundle-searchset.json", e("total", del), nil, "gpgate-searchset-total", "Bundle.total", Error},
		{"searchset total below matches", "bundle-searchset.json", e("total", json.Number("0")), nil, "gpgate-searchset-total", "Bundle.total", Error},
		{"total on a collection", "bundle-collection.json", e("total", json.Number("3")), nil, "bdl-1", "Bundle.total", Error},
		{"entry without fullUrl", "bundle-collection.json", e("entry[2].fullUrl", del), nil, "gpgate-bundle-fullurl", "Bundle.entry[2].fullUrl", Error},
		{"fullUrl of another resource", "bundle-collection.json", e("entry[2].fullUrl", "https://gpgate.example/fhir/Condition/zz"), nil, "gpgate-bundle-fullurl", "Bundle.entry[2].fullUrl", Error},
		{"versioned fullUrl", "bundle-searchset.json", e("entry[0].fullUrl", "https://gpgate.example/fhir/Condition/c1/_history/1"), nil, "bdl-8", "Bundle.entry[0].fullUrl", Error},
		{"duplicate fullUrl", "bundle-searchset.json", e("entry[1]", parse(`{"fullUrl":"https://gpgate.example/fhir/Condition/c1","resource":{"resourceType":"Condition","id":"c1","meta":{"profile":["`+fhir.ProfileCondition+`"]},"subject":{"reference":"Patient/p1"}},"search":{"mode":"include"}}`)), nil, "bdl-7", "Bundle.entry[1].fullUrl", Error},
		{"entry without resource", "bundle-collection.json", e("entry[1].resource", del), nil, "bdl-5", "Bundle.entry[1].resource", Error},
		{"search mode", "bundle-searchset.json", e("entry[1].search.mode", "included"), nil, "Bundle.entry.search.mode", "Bundle.entry[1].search.mode", Error},
		{"search mode missing", "bundle-searchset.json", e("entry[1].search", parse(`{"score":1}`)), nil, "gpgate-search-mode", "Bundle.entry[1].search.mode", Warning},
		{"search on a collection", "bundle-collection.json", e("entry[0].search", parse(`{"mode":"match"}`)), nil, "bdl-2", "Bundle.entry[0].search", Error},
		{"request on a searchset", "bundle-searchset.json", e("entry[0].request", parse(`{"method":"GET","url":"Condition/c1"}`)), nil, "bdl-3", "Bundle.entry[0].request", Error},
		{"bundle type", "bundle-searchset.json", e("type", "search"), nil, "Bundle.type", "Bundle.type", Error},
		{"link without url", "bundle-searchset.json", e("link[0].url", del), nil, "Bundle.link.url", "Bundle.link[0].url", Error},
		{"narrative on the bundle (not an R4 element of Bundle)", "bundle-searchset.json", e("text", parse(`{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`)), nil, "gpgate-coded-only-unknown", "Bundle.text", Error},
		{"entry resource checked", "bundle-collection.json", e("entry[1].resource.subject", del), nil, "Condition.subject", "Bundle.entry[1].resource.subject", Error},
		{"entry resource coded only", "bundle-searchset.json", e("entry[0].resource.note", parse(`[{"text":"x"}]`)), nil, "gpgate-coded-only", "Bundle.entry[0].resource.note[0].text", Error},
		{"entry NHS number", "bundle-searchset.json", e("entry[1].resource.identifier[0].value", "9000000001"), nil, "gpgate-nhs-number", "Bundle.entry[1].resource.identifier[0].value", Error},
		{"dangling reference in a collection", "bundle-collection.json", e("entry[1].resource.asserter.reference", "Practitioner/nobody"), []BundleOption{ResolveReferences()}, "gpgate-reference-resolvable", "Bundle.entry[1].resource.asserter.reference", Error},
		{"dangling absolute reference on own base", "bundle-collection.json", e("entry[1].resource.subject.reference", "https://gpgate.example/fhir/Patient/p2"), []BundleOption{ResolveReferences()}, "gpgate-reference-resolvable", "Bundle.entry[1].resource.subject.reference", Error},
		{"dangling urn reference", "bundle-collection.json", e("entry[1].resource.subject.reference", "urn:uuid:0b8a6a5e-3c53-4bd6-9d1e-6f0f3c3c1b7f"), []BundleOption{ResolveReferences()}, "gpgate-reference-resolvable", "Bundle.entry[1].resource.subject.reference", Error},
		{"dangling contained reference", "bundle-collection.json", e("entry[1].resource.subject.reference", "#p"), []BundleOption{ResolveReferences()}, "gpgate-reference-resolvable", "Bundle.entry[1].resource.subject.reference", Error},
		{"searchset is not closed", "bundle-searchset.json", nil, []BundleOption{ResolveReferences()}, "gpgate-reference-resolvable", "Bundle.entry[0].resource.asserter.reference", Error},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := parse(string(readGood(t, tc.file))).(obj)
			for _, ed := range tc.edits {
				edit(t, root, ed.path, ed.v)
			}
			raw, err := json.Marshal(root)
			if err != nil {
				t.Fatal(err)
			}
			ps := CheckBundle(raw, tc.opts...)
			found := false
			for _, p := range ps {
				if p.Rule == tc.rule && p.Path == tc.path && p.Severity == tc.sev {
					found = true
				}
			}
			if !found {
				t.Errorf("want %s %s at %s, got:\n%s", tc.sev, tc.rule, tc.path, dump(ps))
			}
		})
	}
}

func TestResolveReferencesForms(t *testing.T) {
	root := parse(string(readGood(t, "bundle-collection.json"))).(obj)
	// relative, versioned relative, absolute, absolute on another server, urn
	edit(t, root, "entry[1].resource.subject.reference", "Patient/p1/_history/3")
	edit(t, root, "entry[1].resource.asserter.reference", "https://gpgate.example/fhir/Practitioner/pr1")
	edit(t, root, "entry[3].resource.subject.reference", "https://elsewhere.example/fhir/Patient/x")
	edit(t, root, "entry[0].fullUrl", "urn:uuid:5d3c56a4-3e7c-4b1c-8bb8-e0c6c0f8a0b1")
	edit(t, root, "entry[7].resource.entry[0].item.reference", "urn:uuid:5d3c56a4-3e7c-4b1c-8bb8-e0c6c0f8a0b1")
	edit(t, root, "entry[1].resource.contained", parse(`[{"resourceType":"Practitioner","id":"x"}]`))
	edit(t, root, "entry[1].resource.recorder", parse(`{"reference":"#x"}`))
	raw, _ := json.Marshal(root)
	if ps := CheckBundle(raw, ResolveReferences()); len(ps) != 0 {
		t.Errorf("want no problems, got:\n%s", dump(ps))
	}
}

func TestCheckBundleNotABundle(t *testing.T) {
	ps := CheckBundle(readGood(t, "patient.json"))
	if len(ps) != 1 || ps[0].Rule != "json" {
		t.Errorf("want one problem, got %v", ps)
	}
}

// TestSplicedBundle: a Bundle assembled by fhir.Bundle from good resources
// passes, so the checker agrees with the real assembly path.
func TestSplicedBundle(t *testing.T) {
	b := bigBundle(t, 50)
	if ps := CheckBundle(b, ResolveReferences()); len(ps) != 0 {
		t.Errorf("want no problems, got:\n%s", dump(ps[:min(len(ps), 10)]))
	}
}

// bigBundle splices n entries (Conditions and their Patient) with fhir.Bundle.
func bigBundle(t testing.TB, n int) []byte {
	t.Helper()
	cond := parse(string(readGood(t, "condition.json"))).(obj)
	pat, err := fhir.NewResource(readGood(t, "patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	org, err := fhir.NewResource(readGood(t, "organization.json"))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := fhir.NewResource(readGood(t, "practitioner.json"))
	if err != nil {
		t.Fatal(err)
	}
	entries := []fhir.BundleEntry{{Resource: pat}, {Resource: org}, {Resource: pr}}
	for i := len(entries); i < n; i++ {
		cond["id"] = fmt.Sprintf("c%d", i)
		raw, _ := json.Marshal(cond)
		r, err := fhir.NewResource(raw)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, fhir.BundleEntry{Resource: r})
	}
	bd := &fhir.Bundle{ID: "b", Type: "collection", Total: -1, Base: "https://gpgate.example/fhir", Entries: entries}
	out := bd.AppendJSON(nil)
	if !strings.Contains(string(out), `"type":"collection"`) {
		t.Fatalf("unexpected bundle: %.200s", out)
	}
	return out
}
