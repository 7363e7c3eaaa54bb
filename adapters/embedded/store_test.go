package embedded

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/fhir"
)

func res(t testing.TB, raw string) *fhir.Resource {
	t.Helper()
	r, err := fhir.NewResource([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// record builds a small record by hand: demographics, one problem, one
// blood pressure, one allergy.
func record(t testing.TB, nhs string) *fhir.Record {
	t.Helper()
	pid := fhir.PatientID(fhir.NHSNumber(nhs))
	id := func(l string) string { return fhir.ResourceID(pid, l) }
	subj := `"subject":{"reference":"Patient/` + pid + `"}`
	return &fhir.Record{
		NHS: fhir.NHSNumber(nhs), PatientID: pid,
		Resources: []*fhir.Resource{
			res(t, `{"resourceType":"Patient","id":"`+pid+`","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"`+nhs+`"}]}`),
			res(t, `{"resourceType":"Organization","id":"`+id("org")+`","name":"Test Surgery"}`),
			res(t, `{"resourceType":"Condition","id":"`+id("cond-1")+`","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}]}],"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},`+subj+`}`),
			res(t, `{"resourceType":"Observation","id":"`+id("bp-1")+`","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},`+subj+`}`),
			res(t, `{"resourceType":"AllergyIntolerance","id":"`+id("alg-1")+`","code":{"coding":[{"system":"http://snomed.info/sct","code":"91936005"}]},"patient":{"reference":"Patient/`+pid+`"}}`),
		},
	}
}

func open(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "gp.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, p := range []string{"Y99001", "Y99002"} {
		if err := s.PutPractice(p, "Practice "+p); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

const (
	nhsA       = "9990000018"
	nhsB       = "9990000026"
	nhsInvalid = "9990000019"
)

func code(err error) fhir.Code {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

func TestRoundTrip(t *testing.T) {
	s := open(t)
	in := record(t, nhsA)
	if err := s.PutRecord("Y99001", in); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	if rec.NHS != nhsA || rec.PatientID != in.PatientID || rec.Practice != "Y99001" || len(rec.Version) != 16 {
		t.Fatalf("record header %+v", rec)
	}
	if len(rec.Resources) != len(in.Resources) {
		t.Fatalf("%d resources, want %d", len(rec.Resources), len(in.Resources))
	}
	for i, r := range rec.Resources {
		if string(r.JSON) != string(in.Resources[i].JSON) || r.Ix.Area != in.Resources[i].Ix.Area || r.ID != in.Resources[i].ID {
			t.Fatalf("resource %d: %s, want %s", i, r.JSON, in.Resources[i].JSON)
		}
		if cap(r.JSON) != len(r.JSON) {
			t.Fatalf("resource %d JSON is not capacity-clipped: appending would overwrite its neighbour", i)
		}
	}
	// Same bytes, same version; a change, a new version.
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas)
	if again.Version != rec.Version {
		t.Fatalf("version changed for identical bytes: %s vs %s", again.Version, rec.Version)
	}
	changed := record(t, nhsA)
	changed.Resources = changed.Resources[:3]
	if err := s.PutRecord("Y99001", changed); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas)
	if after.Version == rec.Version || len(after.Resources) != 3 {
		t.Fatalf("after change: version %s (was %s), %d resources", after.Version, rec.Version, len(after.Resources))
	}
}

func TestAreas(t *testing.T) {
	s := open(t)
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		areas fhir.Areas
		want  []string
	}{
		{fhir.AllAreas, []string{"Patient", "Organization", "Condition", "Observation", "AllergyIntolerance"}},
		{fhir.AreaProblems, []string{"Patient", "Organization", "Condition"}},
		{fhir.AreaExamination | fhir.AreaAllergies, []string{"Patient", "Organization", "Observation", "AllergyIntolerance"}},
		{0, []string{"Patient", "Organization"}},
		{fhir.AreaEvents, []string{"Patient", "Organization"}},
	}
	for _, tc := range tests {
		t.Run(tc.areas.String(), func(t *testing.T) {
			rec, err := s.Source("Y99001").Record(context.Background(), nhsA, tc.areas)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rec.Resources {
				got = append(got, r.Type)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Filtering never touches the cached record.
	full, _ := s.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas)
	if len(full.Resources) != 5 {
		t.Fatalf("cached record was modified: %d resources", len(full.Resources))
	}
}

func TestPatientNotFound(t *testing.T) {
	s := open(t)
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ods string
		nhs       fhir.NHSNumber
	}{
		{"absent", "Y99001", nhsB},
		{"held by another practice", "Y99002", nhsA},
		{"unknown practice", "Y99999", nhsA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Source(tc.ods).Record(context.Background(), tc.nhs, fhir.AllAreas)
			if code(err) != fhir.CodePatientNotFound {
				t.Fatalf("err %v, want PATIENT_NOT_FOUND", err)
			}
			err = s.Source(tc.ods).RecordAccess(context.Background(), tc.nhs, &fhir.AuditEntry{Outcome: fhir.OutcomeGranted})
			if code(err) != fhir.CodePatientNotFound {
				t.Fatalf("access: err %v, want PATIENT_NOT_FOUND", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Source("Y99001").Record(ctx, nhsA, fhir.AllAreas); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestCacheSharesRecords(t *testing.T) {
	s := open(t)
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	src := s.Source("Y99001")
	a, _ := src.Record(context.Background(), nhsA, fhir.AllAreas)
	b, _ := src.Record(context.Background(), nhsA, fhir.AllAreas)
	if a != b {
		t.Fatal("same version decoded twice: cache missed")
	}
	p, _ := src.Record(context.Background(), nhsA, fhir.AreaProblems)
	if p == a || p.Resources[0] != a.Resources[0] {
		t.Fatal("a filtered record must be a new Record sharing the cached resources")
	}
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil { // same bytes, same version
		t.Fatal(err)
	}
	if c, _ := src.Record(context.Background(), nhsA, fhir.AllAreas); c != a {
		t.Fatal("rewriting identical bytes must keep the cached record")
	}

	off := open(t, WithCacheBytes(0))
	if err := off.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	x, _ := off.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas)
	y, _ := off.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas)
	if x == y {
		t.Fatal("cache disabled but the record was shared")
	}
}

func TestLRUEvicts(t *testing.T) {
	c := newLRU(100)
	r1, r2, r3 := &fhir.Record{}, &fhir.Record{}, &fhir.Record{}
	c.add("a", r1, 40)
	c.add("b", r2, 40)
	c.get("a") // a is now the most recent
	c.add("c", r3, 40)
	if c.get("b") != nil || c.get("a") != r1 || c.get("c") != r3 || c.len() != 2 {
		t.Fatalf("eviction order wrong: len %d", c.len())
	}
	if got := c.add("a", &fhir.Record{}, 40); got != r1 {
		t.Fatal("add of a cached key must return the cached record")
	}
	if c.add("huge", r2, 1000); c.get("huge") != nil {
		t.Fatal("an entry larger than the cache must not be kept")
	}
}

func TestInvalidNHSStoredNotEnumerated(t *testing.T) {
	s := open(t)
	for _, n := range []string{nhsA, nhsInvalid, nhsB} {
		if err := s.PutRecord("Y99001", record(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRecord("Y99002", record(t, "9990000034")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Source("Y99001").Patients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint([]fhir.NHSNumber{nhsA, nhsB}) {
		t.Fatalf("patients %v", got)
	}
	// Kept by the store all the same.
	rec, err := s.Source("Y99001").Record(context.Background(), nhsInvalid, fhir.AllAreas)
	if err != nil || string(rec.NHS) != nhsInvalid {
		t.Fatalf("invalid-NHS record: %v", err)
	}
	other, _ := s.Source("Y99002").Patients(context.Background())
	if fmt.Sprint(other) != "[9990000034]" {
		t.Fatalf("Y99002 patients %v", other)
	}
}

func TestAccessRecorder(t *testing.T) {
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	s := open(t, WithNow(func() time.Time { return now }))
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	src := s.Source("Y99001")
	entries := []*fhir.AuditEntry{
		{Time: now.Add(-time.Hour), Action: "PatientRead", Outcome: fhir.OutcomeGranted, ClientID: "ed-epr", ConsumerODS: "RXX01", RequestID: "r1"},
		{Action: "PatientRead", Outcome: fhir.OutcomeGranted, ClientID: "amb", ConsumerODS: "RYY02", BreakGlass: true, Reason: "unconscious patient, no consent possible"},
		{Time: now, Action: "PatientQuery", Outcome: fhir.OutcomeDenied, Code: fhir.CodeNoPatientConsent, ClientID: "ed-epr", ConsumerODS: "RXX01"},
	}
	for _, e := range entries {
		if err := src.RecordAccess(context.Background(), nhsA, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := src.Accesses(context.Background(), nhsA)
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		{Time: now.Add(-time.Hour), Action: "PatientRead", Outcome: "granted", ClientID: "ed-epr", ConsumerODS: "RXX01", RequestID: "r1"},
		{Time: now, Action: "PatientRead", Outcome: "granted", ClientID: "amb", ConsumerODS: "RYY02", BreakGlass: true},
		{Time: now, Action: "PatientQuery", Outcome: "denied", Code: fhir.CodeNoPatientConsent, ClientID: "ed-epr", ConsumerODS: "RXX01"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("accesses\n got %+v\nwant %+v", got, want)
	}
	if empty, err := src.Accesses(context.Background(), nhsA+"x"); code(err) != fhir.CodePatientNotFound || empty != nil {
		t.Fatalf("unknown patient: %v", err)
	}
}

func TestPracticesAndValidation(t *testing.T) {
	s := open(t)
	ps, err := s.Practices()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ps) != "[{Y99001 Practice Y99001 embedded} {Y99002 Practice Y99002 embedded}]" {
		t.Fatalf("practices %v", ps)
	}
	tests := []struct {
		name string
		err  error
	}{
		{"bad ODS", s.PutPractice("y9 01", "x")},
		{"unknown practice", s.PutRecord("Y99009", record(t, nhsA))},
		{"no NHS", s.PutRecord("Y99001", &fhir.Record{Resources: record(t, nhsA).Resources})},
		{"no Patient", s.PutRecord("Y99001", &fhir.Record{NHS: nhsA, Resources: record(t, nhsA).Resources[1:]})},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestBulkAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gp.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range demo.Practices(demo.Options{Patients: 30}) {
		if err := s.PutPractice(p.ODS, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	b := s.NewBulk(7)
	sum, err := demo.Generate(demo.Options{Patients: 30, SkipValidation: true}, func(p demo.Practice, rec *fhir.Record) error {
		return b.PutRecord(p.ODS, rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Count() != 30 || b.PutRecord("Y99001", record(t, nhsA)) == nil {
		t.Fatalf("bulk count %d / put after close accepted", b.Count())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	total := 0
	for _, p := range sum.Practices {
		ns, err := s.Source(p.ODS).Patients(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		total += len(ns)
	}
	if total != 29 { // the invalid-NHS notable is stored but not listed
		t.Fatalf("%d patients listed, want 29", total)
	}
	for _, n := range sum.Notable {
		rec, err := s.Source(n.Practice).Record(context.Background(), fhir.NHSNumber(n.NHS), fhir.AllAreas)
		if err != nil {
			t.Fatalf("%s: %v", n.Kind, err)
		}
		if len(rec.Resources) != n.Resources || rec.PatientID != n.PatientID {
			t.Fatalf("%s: %d resources, want %d", n.Kind, len(rec.Resources), n.Resources)
		}
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	e, err := encode("Y99001", record(t, nhsA), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := decode(e.blob); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{0, 1, 2, 3, 10, len(e.blob) - 1} {
		if _, _, err := decode(e.blob[:cut]); err == nil {
			t.Errorf("blob cut at %d decoded", cut)
		}
	}
	if _, _, err := decode(append(append([]byte(nil), e.blob...), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func FuzzDecode(f *testing.F) {
	e, _ := encode("Y99001", record(f, nhsA), nil)
	f.Add(e.blob)
	f.Add([]byte{1, 0, 1, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _, err := decode(b)
		if err == nil {
			for _, r := range rs {
				if r == nil || r.Type == "" || r.ID == "" {
					t.Fatal("decoded an incomplete resource")
				}
			}
		}
	})
}

// benchRecord stores the demo record closest to 500 resources.
func benchRecord(b *testing.B, opts ...Option) (*Source, fhir.NHSNumber, int) {
	s := open(b, opts...)
	var best *fhir.Record
	var bestODS string
	_, err := demo.Generate(demo.Options{Patients: 120, SkipValidation: true}, func(p demo.Practice, rec *fhir.Record) error {
		if best == nil || abs(len(rec.Resources)-500) < abs(len(best.Resources)-500) {
			best, bestODS = rec, p.ODS
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPractice(bestODS, "bench"); err != nil {
		b.Fatal(err)
	}
	if err := s.PutRecord(bestODS, best); err != nil {
		b.Fatal(err)
	}
	return s.Source(bestODS), best.NHS, len(best.Resources)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func BenchmarkRecord(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{{"warm", nil}, {"cold", []Option{WithCacheBytes(0)}}} {
		b.Run(tc.name, func(b *testing.B) {
			src, nhs, n := benchRecord(b, tc.opts...)
			ctx := context.Background()
			if _, err := src.Record(ctx, nhs, fhir.AllAreas); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := src.Record(ctx, nhs, fhir.AllAreas); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "resources")
		})
	}
	b.Run("warm-summary-areas", func(b *testing.B) {
		src, nhs, _ := benchRecord(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := src.Record(ctx, nhs, fhir.AreaSummary); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestConcurrentReaders(t *testing.T) {
	s := open(t, WithCacheBytes(1<<10)) // tiny cache: constant eviction and re-decoding
	for _, n := range []string{nhsA, nhsB} {
		if err := s.PutRecord("Y99001", record(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	src := s.Source("Y99001")
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		go func(g int) {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				n := fhir.NHSNumber(nhsA)
				if (g+i)%2 == 0 {
					n = nhsB
				}
				var rec *fhir.Record
				if rec, err = src.Record(context.Background(), n, fhir.AreaProblems); err == nil && (rec.NHS != n || len(rec.Resources) != 3) {
					err = fmt.Errorf("wrong record for %s: %d resources", n, len(rec.Resources))
				}
				if err == nil && i%10 == 0 {
					err = src.RecordAccess(context.Background(), n, &fhir.AuditEntry{Outcome: fhir.OutcomeGranted})
				}
			}
			errs <- err
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, _ := src.Accesses(context.Background(), nhsA)
	b, _ := src.Accesses(context.Background(), nhsB)
	if len(a)+len(b) != 40 {
		t.Fatalf("%d accesses recorded, want 40", len(a)+len(b))
	}
}
