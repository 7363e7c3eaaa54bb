package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/fhir"
)

func TestMetadata(t *testing.T) {
	s := startServer(t)
	r := s.get(t, "/metadata")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if _, err := fhir.Parse(r.body); err != nil {
		t.Fatalf("CapabilityStatement is not valid R4: %v", err)
	}
	var cs struct {
		FHIRVersion string `json:"fhirVersion"`
		Rest        []struct {
			Resource []struct {
				Type        string `json:"type"`
				SearchParam []struct {
					Name string `json:"name"`
				} `json:"searchParam"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(r.body, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.FHIRVersion != "4.0.1" {
		t.Errorf("fhirVersion %q", cs.FHIRVersion)
	}
	declared := map[string]bool{}
	for _, res := range cs.Rest[0].Resource {
		for _, p := range res.SearchParam {
			declared[res.Type+"."+p.Name] = true
		}
	}
	for typ, defs := range fhir.SearchParams {
		for _, d := range defs {
			if !declared[typ+"."+d.Name] {
				t.Errorf("%s.%s is served but not declared", typ, d.Name)
			}
		}
	}
}

func TestPatientSearchByNHSNumber(t *testing.T) {
	s := startServer(t)
	typical := s.notable(t, demo.NotableTypical)
	b := decodeBundle(t, s.get(t, patientSearch(typical.NHS)))
	if b.Type != "searchset" || b.Total == nil || *b.Total != 1 || len(b.Entry) != 1 {
		t.Fatalf("want one Patient, got total %v entries %d", b.Total, len(b.Entry))
	}
	var p resourceHead
	_ = json.Unmarshal(b.Entry[0].Resource, &p)
	if p.ID != typical.PatientID || p.ResourceType != "Patient" {
		t.Fatalf("got %s/%s, want Patient/%s", p.ResourceType, p.ID, typical.PatientID)
	}
	if !strings.Contains(string(b.Entry[0].Resource), fhir.ExtNHSNumberVerificationStatus) {
		t.Error("Patient lacks the NHS number verification status extension")
	}
	if b.Entry[0].FullURL != s.base+"/Patient/"+p.ID {
		t.Errorf("fullUrl %q", b.Entry[0].FullURL)
	}

	// A valid NHS number nobody holds is refused exactly as a patient at a
	// practice without an agreement: nothing says whether it exists.
	expectOutcome(t, s.get(t, patientSearch("9000000009")), 403, fhir.CodeNoOrganisationConsent)
}

func TestReadEveryTypeByID(t *testing.T) {
	s := startServer(t)
	largest := s.notable(t, demo.NotableLargest)
	for _, typ := range fhir.ReadableTypes {
		t.Run(typ, func(t *testing.T) {
			b := decodeBundle(t, s.get(t, "/Patient/"+largest.PatientID+"/$everything?_type="+typ+"&_count=1"))
			if len(b.Entry) == 0 {
				t.Fatalf("the largest record has no %s", typ)
			}
			e := b.Entry[0]
			var h resourceHead
			_ = json.Unmarshal(e.Resource, &h)
			if h.ResourceType != typ {
				t.Fatalf("_type=%s gave a %s", typ, h.ResourceType)
			}
			r := s.get(t, "/"+h.ResourceType+"/"+h.ID)
			if r.status != http.StatusOK {
				t.Fatalf("read: %d %s", r.status, truncateBody(r.body))
			}
			if string(r.body) != string(e.Resource) {
				t.Fatalf("read body differs from the $everything entry")
			}
			etag := r.header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			if r2 := s.get(t, "/"+h.ResourceType+"/"+h.ID, "If-None-Match", etag); r2.status != http.StatusNotModified {
				t.Fatalf("If-None-Match: %d", r2.status)
			}
		})
	}
	expectOutcome(t, s.get(t, "/Condition/"+largest.PatientID+"-nosuchthing"), 404, fhir.CodeNoRecordFound)
}

// TestSearchParameters exercises every declared search parameter of every
// type over HTTP and checks each match really matches.
func TestSearchParameters(t *testing.T) {
	s := startServer(t)
	p := s.notable(t, demo.NotableLargest).PatientID
	cases := []struct {
		query string
		check func(t *testing.T, raw json.RawMessage)
	}{
		{"Condition?category=problem-list-item", hasString(`"problem-list-item"`)},
		{"Condition?category=http://terminology.hl7.org/CodeSystem/condition-category|encounter-diagnosis", hasString(`"encounter-diagnosis"`)},
		{"Condition?clinical-status=active", hasString(`"active"`)},
		{"Condition?code=http://snomed.info/sct|38341003", hasString(`"38341003"`)},
		{"Condition?onset-date=ge2000-01-01", nil},
		{"AllergyIntolerance?clinical-status=active", hasString(`"active"`)},
		{"AllergyIntolerance?date=le2026", nil},
		{"MedicationStatement?status=active", hasString(`"status":"active"`)},
		{"MedicationStatement?effective=ge2020", nil},
		{"MedicationRequest?intent=plan", hasString(`"intent":"plan"`)},
		{"MedicationRequest?intent=order&authoredon=ge2015-01-01", hasString(`"intent":"order"`)},
		{"MedicationRequest?status=active,completed", nil},
		// The drug is a referenced Medication: code searches follow it.
		{"MedicationStatement?code=https://dmd.nhs.uk|", hasString(`"medicationReference"`)},
		{"MedicationRequest?code=https://dmd.nhs.uk|&intent=plan", hasString(`"medicationReference"`)},
		{"Observation?category=vital-signs&code=http://loinc.org|85354-9", hasString(`"85354-9"`)},
		{"Observation?category=laboratory&date=ge2010", hasString(`"laboratory"`)},
		{"Observation?status=final", hasString(`"final"`)},
		{"DiagnosticReport?status=final&date=lt2030", nil},
		{"Encounter?date=ge2000&status=finished", hasString(`"finished"`)},
		{"Flag?date=le2030", nil},
		{"Procedure?status=completed", hasString(`"completed"`)},
		{"ServiceRequest?intent=order", hasString(`"intent":"order"`)},
		{"Specimen?_lastUpdated=ge2000", nil},
		{"Condition?_sort=date", nil},
		{"Condition?_sort=-_lastUpdated", nil},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			path := "/" + strings.Replace(c.query, "?", "?patient="+p+"&", 1)
			b := decodeBundle(t, s.get(t, path))
			if b.Total == nil {
				t.Fatal("searchset without total")
			}
			if *b.Total == 0 && c.check != nil {
				t.Fatalf("no matches for %s in the largest record", c.query)
			}
			typ := strings.SplitN(c.query, "?", 2)[0]
			for _, e := range b.Entry {
				var h resourceHead
				_ = json.Unmarshal(e.Resource, &h)
				if h.ResourceType != typ {
					t.Fatalf("entry of type %s", h.ResourceType)
				}
				if c.check != nil {
					c.check(t, e.Resource)
				}
			}
		})
	}
	// code with and without system, and :not, partition the record.
	all := decodeBundle(t, s.get(t, "/Condition?patient="+p+"&_count=0"))
	in := decodeBundle(t, s.get(t, "/Condition?patient="+p+"&code=38341003&_count=0"))
	out := decodeBundle(t, s.get(t, "/Condition?patient="+p+"&code:not=38341003&_count=0"))
	if *in.Total+*out.Total != *all.Total {
		t.Errorf("code + code:not = %d + %d, want %d", *in.Total, *out.Total, *all.Total)
	}
}

func hasString(s string) func(t *testing.T, raw json.RawMessage) {
	return func(t *testing.T, raw json.RawMessage) {
		t.Helper()
		if !strings.Contains(string(raw), s) {
			t.Fatalf("match lacks %s: %.300s", s, raw)
		}
	}
}

// TestPagingLinksFollowed follows next links to the end and previous links
// back, checking totals and that no entry repeats or goes missing.
func TestPagingLinksFollowed(t *testing.T) {
	s := startServer(t)
	p := s.notable(t, demo.NotableLargest).PatientID
	for _, path := range []string{
		"/Observation?patient=" + p + "&_count=37",
		"/Patient/" + p + "/$everything?_count=250",
	} {
		t.Run(path, func(t *testing.T) {
			first := decodeBundle(t, s.get(t, path))
			total := *first.Total
			seen := map[string]bool{}
			b := first
			pages := 0
			for {
				pages++
				for _, e := range b.Entry {
					if seen[e.FullURL] {
						t.Fatalf("entry %s repeats", e.FullURL)
					}
					seen[e.FullURL] = true
				}
				if *b.Total != total {
					t.Fatalf("total changed between pages: %d then %d", total, *b.Total)
				}
				next := b.link("next")
				if next == "" {
					break
				}
				if !strings.HasPrefix(next, s.base) {
					t.Fatalf("next link %q is not under the base URL", next)
				}
				b = decodeBundle(t, s.get(t, next))
			}
			if len(seen) != total {
				t.Fatalf("followed %d pages and saw %d entries, total says %d", pages, len(seen), total)
			}
			if total < 300 {
				t.Fatalf("largest record too small to page: %d", total)
			}
			if prev := b.link("previous"); prev == "" {
				t.Fatal("last page has no previous link")
			} else if pb := decodeBundle(t, s.get(t, prev)); len(pb.Entry) == 0 {
				t.Fatal("previous page is empty")
			}
			if self := first.link("self"); !strings.Contains(self, "_count=") {
				t.Fatalf("self link %q", self)
			}
		})
	}
}

func TestGetStructuredRecord(t *testing.T) {
	s := startServer(t)
	typical := s.notable(t, demo.NotableTypical)
	body := fmt.Sprintf(`{"resourceType":"Parameters","parameter":[
		{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"%s"}},
		{"name":"includeAllergies","part":[{"name":"includeResolvedAllergies","valueBoolean":true}]},
		{"name":"includeMedication","part":[{"name":"includePrescriptionIssues","valueBoolean":true}]},
		{"name":"includeProblems"},
		{"name":"includeDiagnoses"},
		{"name":"includeConsultations","part":[{"name":"includeNumberOfMostRecent","valuePositiveInt":3}]},
		{"name":"includeInvestigations"},
		{"name":"includeReferrals"},
		{"name":"includeRisksAndWarnings"},
		{"name":"includeProcedures"},
		{"name":"includeExamination"}]}`, typical.NHS)
	r := s.do(t, http.MethodPost, "/Patient/$getstructuredrecord", []byte(body), "Authorization", "Bearer "+s.patientToken(t, typical.PatientID))
	b := decodeBundle(t, r)
	if b.Type != "collection" {
		t.Fatalf("type %q", b.Type)
	}
	if _, err := fhir.Parse(r.body); err != nil {
		t.Fatalf("Bundle is not valid R4: %v", err)
	}
	ids := map[string]bool{}
	lists := 0
	for _, e := range b.Entry {
		var h resourceHead
		_ = json.Unmarshal(e.Resource, &h)
		ids[h.ResourceType+"/"+h.ID] = true
		if h.ResourceType == "List" {
			lists++
		}
	}
	if lists != 10 {
		t.Errorf("%d Lists, want one per requested section (10)", lists)
	}
	// Every reference resolves within the Bundle.
	for _, e := range b.Entry {
		for _, ref := range fhir.References(e.Resource) {
			if !ids[ref] {
				t.Errorf("reference %s does not resolve within the Bundle", ref)
			}
		}
	}
	encounters := 0
	for id := range ids {
		if strings.HasPrefix(id, "Encounter/") {
			encounters++
		}
	}
	if encounters == 0 || encounters > 3+countReferencedEncounters(b) {
		t.Errorf("%d encounters for includeNumberOfMostRecent=3", encounters)
	}
}

func countReferencedEncounters(b *bundle) int {
	n := 0
	for _, e := range b.Entry {
		if strings.Contains(string(e.Resource), `"reference":"Encounter/`) {
			n++
		}
	}
	return n
}

// TestBadInput: every malformed request gets a clear OperationOutcome with
// the documented code and status, never a 500.
func TestBadInput(t *testing.T) {
	s := startServer(t)
	p := s.notable(t, demo.NotableTypical)
	big := strings.Repeat("x", 2<<20)
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string
		status int
		code   fhir.Code
	}{
		{"malformed NHS number", "GET", patientSearch("123"), "", nil, 400, fhir.CodeInvalidNHSNumber},
		{"NHS number failing Modulus 11", "GET", patientSearch("9000000001"), "", nil, 400, fhir.CodeInvalidNHSNumber},
		{"source's invalid NHS number", "GET", patientSearch(s.notable(t, demo.NotableInvalidNHS).NHS), "", nil, 400, fhir.CodeInvalidNHSNumber},
		{"wrong identifier system", "GET", "/Patient?identifier=urn:x|9000000009", "", nil, 400, fhir.CodeInvalidIdentifier},
		{"patient search without identifier", "GET", "/Patient", "", nil, 422, fhir.CodeInvalidParameter},
		{"unknown resource type", "GET", "/Banana?patient=" + p.PatientID, "", nil, 404, fhir.CodeUnknownResourceType},
		{"unserved FHIR type", "GET", "/CarePlan/x", "", nil, 404, fhir.CodeUnknownResourceType},
		{"id with dots", "GET", "/Condition/..", "", nil, 422, fhir.CodeInvalidParameter},
		{"id with encoded slash", "GET", "/Condition/a%2F..%2Fb", "", nil, 422, fhir.CodeInvalidParameter},
		{"id too long", "GET", "/Condition/" + strings.Repeat("a", 65), "", nil, 422, fhir.CodeInvalidParameter},
		{"search without patient", "GET", "/Condition?code=x", "", nil, 422, fhir.CodeInvalidParameter},
		{"malformed date", "GET", "/Condition?patient=" + p.PatientID + "&onset-date=2020-13-01", "", nil, 422, fhir.CodeInvalidParameter},
		{"malformed date prefix", "GET", "/Observation?patient=" + p.PatientID + "&date=xx2020", "", nil, 422, fhir.CodeInvalidParameter},
		{"negative _count", "GET", "/Condition?patient=" + p.PatientID + "&_count=-1", "", nil, 422, fhir.CodeInvalidParameter},
		{"non-numeric _count", "GET", "/Condition?patient=" + p.PatientID + "&_count=lots", "", nil, 422, fhir.CodeInvalidParameter},
		{"_sort not served", "GET", "/Condition?patient=" + p.PatientID + "&_sort=name", "", nil, 501, fhir.CodeNotImplemented},
		{"bad _sort", "GET", "/Condition?patient=" + p.PatientID + "&_sort=name%20asc", "", nil, 422, fhir.CodeInvalidParameter},
		{"modifier not served", "GET", "/Condition?patient=" + p.PatientID + "&code:above=x", "", nil, 501, fhir.CodeNotImplemented},
		{"unknown modifier", "GET", "/Condition?patient=" + p.PatientID + "&code:sideways=x", "", nil, 422, fhir.CodeInvalidParameter},
		{"unknown parameter, strict", "GET", "/Condition?patient=" + p.PatientID + "&colour=blue", "", []string{"Prefer", "handling=strict"}, 400, fhir.CodeBadRequest},
		{"write", "PUT", "/Condition/" + p.PatientID + "-x", `{"resourceType":"Condition"}`, nil, 405, fhir.CodeMethodNotAllowed},
		{"create", "POST", "/Condition", `{"resourceType":"Condition"}`, nil, 405, fhir.CodeMethodNotAllowed},
		{"delete", "DELETE", "/Patient/" + p.PatientID, "", nil, 405, fhir.CodeMethodNotAllowed},
		{"XML wanted", "GET", "/metadata", "", []string{"Accept", "application/fhir+xml"}, 406, fhir.CodeNotAcceptable},
		{"_format xml", "GET", "/metadata?_format=xml", "", nil, 406, fhir.CodeNotAcceptable},
		{"Parameters not JSON", "POST", "/Patient/$getstructuredrecord", `{"resourceType":`, nil, 422, fhir.CodeInvalidResource},
		{"not Parameters", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Patient"}`, nil, 422, fhir.CodeInvalidResource},
		{"Parameters without NHS number", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Parameters","parameter":[{"name":"includeAllergies"}]}`, nil, 422, fhir.CodeInvalidParameter},
		{"Parameters with bad NHS number", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"1234567890"}}]}`, nil, 400, fhir.CodeInvalidNHSNumber},
		{"Parameters with bad part", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + p.NHS + `"}},{"name":"includeProblems","part":[{"name":"filterStatus","valueCode":"maybe"}]}]}`, nil, 422, fhir.CodeInvalidParameter},
		{"Parameters unknown, strict", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + p.NHS + `"}},{"name":"includeEverything"}]}`, []string{"Prefer", "handling=strict"}, 422, fhir.CodeInvalidParameter},
		{"body over the limit", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Parameters","x":"` + big + `"}`, nil, 413, fhir.CodeBodyTooLarge},
		{"wrong content type", "POST", "/Patient/$getstructuredrecord", `<Parameters/>`, []string{"Content-Type", "application/xml"}, 415, fhir.CodeUnsupportedMediaType},
		{"unknown patient for $getstructuredrecord", "POST", "/Patient/$getstructuredrecord", `{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}}]}`, nil, 403, fhir.CodeNoOrganisationConsent},
		{"unknown patient id", "GET", "/Patient/pnosuchpatient", "", nil, 403, fhir.CodeNoOrganisationConsent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			r := s.do(t, c.method, c.path, body, c.hdr...)
			expectOutcome(t, r, c.status, c.code)
		})
	}
	t.Run("huge _count is clamped", func(t *testing.T) {
		b := decodeBundle(t, s.get(t, "/Observation?patient="+p.PatientID+"&_count=99999999"))
		if self := b.link("self"); !strings.Contains(self, fmt.Sprintf("_count=%d", fhir.MaxCount)) {
			t.Fatalf("self link %q does not show the clamped count", self)
		}
	})
	t.Run("unknown parameter, lenient", func(t *testing.T) {
		b := decodeBundle(t, s.get(t, "/Condition?patient="+p.PatientID+"&colour=blue", "Prefer", "handling=lenient"))
		if self := b.link("self"); strings.Contains(self, "colour") {
			t.Fatalf("self link %q names the ignored parameter", self)
		}
		last := b.Entry[len(b.Entry)-1]
		if last.Search == nil || last.Search.Mode != "outcome" {
			t.Fatalf("no outcome entry warning of the ignored parameter")
		}
	})
}

var _ = url.QueryEscape
