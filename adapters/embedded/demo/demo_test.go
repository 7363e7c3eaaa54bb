package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

var update = flag.Bool("update", false, "rewrite golden files")

// digest generates a region and hashes every byte the sink sees.
func digest(t *testing.T, o Options) (string, *Summary) {
	t.Helper()
	h := sha256.New()
	s, err := Generate(o, func(p Practice, rec *fhir.Record) error {
		fmt.Fprintf(h, "%s|%s|%s|%d\n", p.ODS, rec.NHS, rec.PatientID, len(rec.Resources))
		for _, r := range rec.Resources {
			h.Write(r.JSON)
			h.Write([]byte{'\n'})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), s
}

func TestDeterminism(t *testing.T) {
	tests := []struct {
		name string
		a, b Options
		same bool
	}{
		{"same seed skip-validation, 1 vs 3 workers", Options{Patients: 120, SkipValidation: true, Workers: 1}, Options{Patients: 120, SkipValidation: true, Workers: 3}, true},
		{"different seed", Options{Patients: 40, SkipValidation: true, Seed: 1}, Options{Patients: 40, SkipValidation: true, Seed: 2}, false},
		{"different clock", Options{Patients: 40, SkipValidation: true}, Options{Patients: 40, SkipValidation: true, Now: DefaultNow.AddDate(0, 0, 1)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			da, sa := digest(t, tc.a)
			db, sb := digest(t, tc.b)
			if (da == db) != tc.same {
				t.Fatalf("digests equal = %v, want %v", da == db, tc.same)
			}
			ja, _ := json.Marshal(sa)
			jb, _ := json.Marshal(sb)
			if tc.same && !bytes.Equal(ja, jb) {
				t.Fatalf("summaries differ:\n%s\n%s", ja, jb)
			}
		})
	}
}

// TestDeterminismValidated checks the jsonformat path patient by patient
// (a whole region would include the 2,000+-resource notable, slow to validate).
func TestDeterminismValidated(t *testing.T) {
	o := Options{}.withDefaults()
	ps := buildPractices(o)
	nhs := nhsNumbers(12, 3)
	for idx := 4; idx < 12; idx++ {
		kind := NotableKind("")
		if idx < len(notableAt) {
			kind = notableAt[idx]
		}
		a, _, err := generatePatient(&o, ps[idx%len(ps)], idx, nhs[idx], kind)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := generatePatient(&o, ps[idx%len(ps)], idx, nhs[idx], kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Resources) != len(b.Resources) {
			t.Fatalf("patient %d: %d vs %d resources", idx, len(a.Resources), len(b.Resources))
		}
		for i := range a.Resources {
			if !bytes.Equal(a.Resources[i].JSON, b.Resources[i].JSON) {
				t.Fatalf("patient %d resource %d differs", idx, i)
			}
		}
	}
}

// region is a 200-patient region generated once for the content tests.
var region struct {
	once    sync.Once
	recs    []*fhir.Record
	summary *Summary
	err     error
}

func loadRegion(t *testing.T) ([]*fhir.Record, *Summary) {
	t.Helper()
	region.once.Do(func() {
		region.summary, region.err = Generate(Options{Patients: 200, SkipValidation: true}, func(p Practice, rec *fhir.Record) error {
			region.recs = append(region.recs, rec)
			return nil
		})
	})
	if region.err != nil {
		t.Fatal(region.err)
	}
	return region.recs, region.summary
}

// TestRegionParsesAsR4 validates every resource of the region with jsonformat.
func TestRegionParsesAsR4(t *testing.T) {
	recs, _ := loadRegion(t)
	type item struct {
		nhs string
		r   *fhir.Resource
	}
	work := make(chan item)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if _, err := fhir.Parse(it.r.JSON); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %s: %v", it.r.Type, it.r.ID, err))
					mu.Unlock()
				}
			}
		}()
	}
	n := 0
	for _, rec := range recs {
		for _, r := range rec.Resources {
			work <- item{string(rec.NHS), r}
			n++
		}
	}
	close(work)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d resources fail R4 parsing, first: %s", len(failures), n, failures[0])
	}
	t.Logf("%d resources of %d patients parse as R4", n, len(recs))
}

type node = map[string]any

// walk visits every object in a JSON value with its path.
func walk(v any, path string, f func(path string, obj node)) {
	switch x := v.(type) {
	case node:
		f(path, x)
		for k, c := range x {
			walk(c, path+"."+k, f)
		}
	case []any:
		for _, c := range x {
			walk(c, path, f)
		}
	}
}

func TestRegionContent(t *testing.T) {
	recs, _ := loadRegion(t)
	types := map[string]int{}
	for _, rec := range recs {
		ids := map[string]bool{}
		for _, r := range rec.Resources {
			ids[r.Reference()] = true
		}
		if p := rec.Resources[0]; p.Type != "Patient" || p.ID != rec.PatientID || rec.PatientID != fhir.PatientID(rec.NHS) {
			t.Fatalf("record %s: first resource %s/%s is not its Patient", rec.NHS, p.Type, p.ID)
		}
		for _, r := range rec.Resources {
			types[r.Type]++
			where := rec.PatientID + " " + r.Type + "/" + r.ID
			var m node
			if err := json.Unmarshal(r.JSON, &m); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if r.Type != "Patient" && !strings.HasPrefix(r.ID, rec.PatientID+"-") {
				t.Errorf("%s: id does not start with the patient id", where)
			}
			if r.Type != "Patient" && r.Type != "Organization" && r.Type != "Practitioner" && r.Type != "Medication" && r.Ix.Patient != rec.PatientID {
				t.Errorf("%s: subject/patient is %q", where, r.Ix.Patient)
			}
			want := fhir.ProfileFor(r.Type)
			if r.Type == "Observation" && r.Ix.Area == fhir.AreaExamination {
				want = fhir.ProfileBloodPressure
			}
			meta, _ := m["meta"].(node)
			if prof, _ := meta["profile"].([]any); len(prof) != 1 || prof[0] != want {
				t.Errorf("%s: meta.profile %v, want %s", where, meta["profile"], want)
			}
			if lu, _ := meta["lastUpdated"].(string); lu == "" {
				t.Errorf("%s: no meta.lastUpdated", where)
			}
			if r.Ix.Area == 0 {
				t.Errorf("%s: in no dataset area", where)
			}
			walk(m, r.Type, func(path string, obj node) {
				for _, k := range []string{"text", "note", "comment"} {
					v, ok := obj[k]
					if s, isStr := v.(string); ok && k == "text" && isStr && obj["coding"] != nil && fhir.IsProfileFixedText(s) {
						continue // a label UK Core fixes (BP components), not free text
					}
					if ok {
						t.Errorf("%s: free-text key %q at %s", where, k, path)
					}
				}
				if ref, ok := obj["reference"].(string); ok && !ids[ref] {
					t.Errorf("%s: reference %s at %s does not resolve in the record", where, ref, path)
				}
				if c, ok := obj["coding"]; ok {
					if l, _ := c.([]any); len(l) == 0 {
						t.Errorf("%s: CodeableConcept without coding at %s", where, path)
					}
				}
				if sys, _ := obj["system"].(string); sys == "http://unitsofmeasure.org" {
					if _, ok := obj["code"]; !ok {
						t.Errorf("%s: UCUM quantity without code at %s", where, path)
					}
				}
			})
		}
	}
	for _, typ := range []string{"Patient", "Organization", "Practitioner", "Condition", "AllergyIntolerance", "Medication",
		"MedicationRequest", "MedicationStatement", "Flag", "Procedure", "DiagnosticReport", "Observation", "Specimen",
		"Encounter", "ServiceRequest", "Immunization"} {
		if types[typ] == 0 {
			t.Errorf("region has no %s", typ)
		}
	}
	t.Logf("resource types: %v", types)
}

func TestNotables(t *testing.T) {
	recs, s := loadRegion(t)
	byNHS := map[string]*fhir.Record{}
	for _, r := range recs {
		byNHS[string(r.NHS)] = r
	}
	got := map[NotableKind]Notable{}
	for _, n := range s.Notable {
		got[n.Kind] = n
	}
	count := func(rec *fhir.Record, typ string) int { return len(rec.Select(typ, fhir.AllAreas)) }
	patient := func(rec *fhir.Record) node {
		var m node
		json.Unmarshal(rec.Patient().JSON, &m)
		return m
	}
	tests := []struct {
		kind  NotableKind
		check func(n Notable, rec *fhir.Record) string
	}{
		{NotableLargest, func(n Notable, rec *fhir.Record) string {
			if n.Resources < 2000 || n.Resources != s.MaxResources {
				return fmt.Sprintf("%d resources, region max %d", n.Resources, s.MaxResources)
			}
			if count(rec, "Immunization") == 0 {
				return "no Immunization (every type must be readable from the largest record)"
			}
			return ""
		}},
		{NotableNoAllergies, func(n Notable, rec *fhir.Record) string {
			if c := count(rec, "AllergyIntolerance"); c != 0 {
				return fmt.Sprintf("%d AllergyIntolerance", c)
			}
			if n.Resources < 20 {
				return "record too thin to make the point"
			}
			return ""
		}},
		{NotableDeceased, func(n Notable, rec *fhir.Record) string {
			d, _ := patient(rec)["deceasedDateTime"].(string)
			if d == "" {
				return "no deceasedDateTime"
			}
			death, _ := fhir.ParseInstantLoose(d)
			for _, r := range rec.Resources {
				if r.Ix.Start.After(death.Add(24 * time.Hour)) {
					return fmt.Sprintf("%s/%s dated after death", r.Type, r.ID)
				}
				if r.Type == "MedicationStatement" && r.Ix.Status == "active" {
					return "active medication after death"
				}
			}
			return ""
		}},
		{NotableInvalidNHS, func(n Notable, rec *fhir.Record) string {
			if fhir.ValidNHSNumber(n.NHS) || len(n.NHS) != 10 {
				return "NHS number passes Modulus 11"
			}
			return ""
		}},
		{NotableSmall, func(n Notable, rec *fhir.Record) string {
			if n.Resources > 6 {
				return fmt.Sprintf("%d resources", n.Resources)
			}
			return ""
		}},
		{NotableTypical, func(n Notable, rec *fhir.Record) string {
			if n.Resources < s.MedianResources/2 || n.Resources > s.MedianResources*2 {
				return fmt.Sprintf("%d resources, median %d", n.Resources, s.MedianResources)
			}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(string(tc.kind), func(t *testing.T) {
			n, ok := got[tc.kind]
			if !ok {
				t.Fatalf("no %s notable in %+v", tc.kind, s.Notable)
			}
			rec := byNHS[n.NHS]
			if rec == nil || rec.PatientID != n.PatientID || len(rec.Resources) != n.Resources || n.Description == "" || n.Practice == "" {
				t.Fatalf("notable %+v does not match its record", n)
			}
			if msg := tc.check(n, rec); msg != "" {
				t.Fatalf("%s: %s", tc.kind, msg)
			}
			if tc.kind != NotableInvalidNHS && !fhir.ValidNHSNumber(n.NHS) {
				t.Fatalf("%s has an invalid NHS number %s", tc.kind, n.NHS)
			}
		})
	}
	if s.Patients != 200 || len(s.Practices) != 3 || s.Practices[0].Patients+s.Practices[1].Patients+s.Practices[2].Patients != 200 {
		t.Fatalf("summary %+v", s)
	}
}

// TestImmunisations checks the immunisations of the region: UK Core
// Immunization, a SNOMED CT procedure from the catalogue, a dm+d product or
// UNK, given between birth and death (or now), and flu only to those the
// programme offers it to.
func TestImmunisations(t *testing.T) {
	recs, _ := loadRegion(t)
	procedures := map[string]bool{}
	for _, d := range childhood {
		procedures[d.v.procedure.sct] = true
	}
	for _, c := range append(append(vFiveInOne, covidDoses...), covidLater, vFlu.procedure, vShingles.procedure) {
		procedures[c.sct] = true
	}
	n, children, adults := 0, 0, 0
	for _, rec := range recs {
		var pat struct {
			BirthDate string `json:"birthDate"`
			Deceased  string `json:"deceasedDateTime"`
		}
		if err := json.Unmarshal(rec.Patient().JSON, &pat); err != nil {
			t.Fatal(err)
		}
		birth, _ := time.Parse("2006-01-02", pat.BirthDate)
		end := DefaultNow
		if pat.Deceased != "" {
			end, _ = time.Parse(time.RFC3339, pat.Deceased)
		}
		for _, r := range rec.Resources {
			if r.Type != "Immunization" {
				continue
			}
			n++
			where := rec.PatientID + " " + r.Reference()
			var im struct {
				Extension []struct {
					URL   string `json:"url"`
					Value struct {
						Coding []fhir.Coding `json:"coding"`
					} `json:"valueCodeableConcept"`
				} `json:"extension"`
				Status      string `json:"status"`
				VaccineCode struct {
					Coding []fhir.Coding `json:"coding"`
				} `json:"vaccineCode"`
				Occurrence string `json:"occurrenceDateTime"`
				Protocol   []struct {
					Dose int `json:"doseNumberPositiveInt"`
				} `json:"protocolApplied"`
			}
			if err := json.Unmarshal(r.JSON, &im); err != nil {
				t.Fatal(err)
			}
			at, err := time.Parse(time.RFC3339, im.Occurrence)
			if err != nil || at.Before(birth) || at.After(end) {
				t.Errorf("%s: given %s, born %s, record ends %s", where, im.Occurrence, pat.BirthDate, end)
			}
			if len(im.Extension) != 1 || im.Extension[0].URL != extVaccinationProcedure || len(im.Extension[0].Value.Coding) != 1 ||
				im.Extension[0].Value.Coding[0].System != fhir.SNOMED || !procedures[im.Extension[0].Value.Coding[0].Code] {
				t.Errorf("%s: vaccination procedure %+v", where, im.Extension)
				continue
			}
			vc := im.VaccineCode.Coding
			switch {
			case len(vc) == 1 && vc[0].System == systemNullFlavor && vc[0].Code == "UNK":
			case len(vc) == 2 && vc[0].System == fhir.DMD && vc[1].System == fhir.SNOMED && vc[0].Code == vc[1].Code:
			default:
				t.Errorf("%s: vaccineCode %+v", where, vc)
			}
			if im.Status != "completed" || r.Ix.Area != fhir.AreaImmunisations || !fhir.HasCoding(r.Ix.Code, "", "") {
				t.Errorf("%s: status %s, area %v, indexed codes %v", where, im.Status, r.Ix.Area, r.Ix.Code)
			}
			for _, p := range im.Protocol {
				if p.Dose < 1 {
					t.Errorf("%s: dose %d", where, p.Dose)
				}
			}
			age := at.Sub(birth).Hours() / 24 / 365.25
			if im.Extension[0].Value.Coding[0].Code == vFlu.procedure.sct && age < 18 {
				t.Errorf("%s: adult flu vaccine at %.1f", where, age)
			}
			if age < 16 {
				children++
			} else {
				adults++
			}
		}
	}
	if children == 0 || adults == 0 || n < len(recs) {
		t.Errorf("%d immunisations in %d records (%d children's, %d adults')", n, len(recs), children, adults)
	}
	t.Logf("%d immunisations: %d in childhood, %d adult", n, children, adults)
}

func TestNHSNumbers(t *testing.T) {
	nums := nhsNumbers(500, 3)
	seen := map[string]bool{}
	for i, n := range nums {
		if seen[n] || !strings.HasPrefix(n, "999") || len(n) != 10 {
			t.Fatalf("number %d: %s", i, n)
		}
		seen[n] = true
		if fhir.ValidNHSNumber(n) != (i != 3) {
			t.Fatalf("number %d: %s valid=%v", i, n, fhir.ValidNHSNumber(n))
		}
	}
}

func TestSinkErrorStops(t *testing.T) {
	calls := 0
	_, err := Generate(Options{Patients: 50, SkipValidation: true}, func(p Practice, rec *fhir.Record) error {
		calls++
		if calls == 10 {
			return fmt.Errorf("disk full")
		}
		return nil
	})
	if err == nil || err.Error() != "disk full" || calls != 10 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}

// TestGolden pins one small, validated record byte for byte.
func TestGolden(t *testing.T) {
	o := Options{}.withDefaults()
	ps := buildPractices(o)
	const idx = 4 // the very small notable
	nhs := nhsNumbers(idx+1, 3)
	rec, info, err := generatePatient(&o, ps[idx%len(ps)], idx, nhs[idx], notableAt[idx])
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "// %s\n", info.desc)
	for _, r := range rec.Resources {
		buf.Write(r.JSON)
		buf.WriteByte('\n')
	}
	path := filepath.Join("testdata", "small-record.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("record differs from %s (go test -update rewrites it):\n%s", path, buf.String())
	}
}

func BenchmarkGeneratePatient(b *testing.B) {
	for _, skip := range []bool{false, true} {
		b.Run(fmt.Sprintf("skipValidation=%v", skip), func(b *testing.B) {
			o := Options{SkipValidation: skip}.withDefaults()
			ps := buildPractices(o)
			nhs := nhsNumbers(200, -1)
			resources := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				idx := 5 + i%195 // ordinary patients only
				rec, _, err := generatePatient(&o, ps[idx%len(ps)], idx, nhs[idx], "")
				if err != nil {
					b.Fatal(err)
				}
				resources += len(rec.Resources)
			}
			b.ReportMetric(float64(resources)/float64(b.N), "resources/patient")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(resources), "ns/resource")
		})
	}
}

// BenchmarkRegion measures whole regions: go test -bench Region -benchtime 1x.
func BenchmarkRegion(b *testing.B) {
	for _, tc := range []struct {
		n    int
		skip bool
	}{{1000, false}, {1000, true}, {10000, false}, {10000, true}} {
		b.Run(fmt.Sprintf("patients=%d/skipValidation=%v", tc.n, tc.skip), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s, err := Generate(Options{Patients: tc.n, SkipValidation: tc.skip}, func(Practice, *fhir.Record) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(s.Resources), "resources")
			}
		})
	}
}
