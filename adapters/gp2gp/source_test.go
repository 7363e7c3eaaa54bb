package gp2gp

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// testSource builds a temp folder whose manifest binds the shared extracts
// (by absolute path) to PDS patients, as doc.go describes for gpgate serve.
func testSource(t *testing.T) (*Source, string, string) {
	shared := sharedDir(t)
	dir := t.TempDir()
	b := map[string]fhir.NHSNumber{}
	for f, n := range testBindings {
		b[filepath.Join(shared, "gp2gp", "extracts", f)] = n
	}
	if err := WriteManifest(filepath.Join(dir, "manifest.json"), b); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Dir: dir, PDSDir: filepath.Join(shared, "pds"), Practice: "A12345"})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir, shared
}

func TestSourceServesManifestPatients(t *testing.T) {
	s, _, _ := testSource(t)
	ctx := context.Background()
	ps, err := s.Patients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(testBindings) {
		t.Fatalf("patients = %v", ps)
	}
	for f, nhs := range testBindings {
		t.Run(f, func(t *testing.T) {
			rec, err := s.Record(ctx, nhs, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			if rec.NHS != nhs || rec.PatientID != fhir.PatientID(nhs) || rec.Practice != "A12345" || rec.Version == "" {
				t.Errorf("record header %+v", rec)
			}
			checkResources(t, f, nhs, rec.Resources)
			p := string(rec.Patient().JSON)
			wants := []string{fhir.ExtNHSNumberVerificationStatus, `"value":"` + string(nhs) + `"`, `"generalPractitioner"`}
			if nhs == "9000000009" {
				wants = append(wants, `"family":"Smith"`, `"birthDate"`)
			}
			for _, want := range wants {
				if !strings.Contains(p, want) {
					t.Errorf("Patient lacks %s: %s", want, p)
				}
			}
			again, err := s.Record(ctx, nhs, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			if again.Version != rec.Version || &again.Resources[0].JSON[0] != &rec.Resources[0].JSON[0] {
				t.Error("second Record was not served from the cache")
			}
			some, err := s.Record(ctx, nhs, fhir.AreaAllergies)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range some.Resources {
				if r.Type != "Patient" && r.Type != "AllergyIntolerance" {
					t.Errorf("areas=allergies returned %s", r.Type)
				}
			}
		})
	}
	if _, err := s.Record(ctx, "9434765919", fhir.AllAreas); fhir.AsError(err).Code != fhir.CodePatientNotFound {
		t.Errorf("unknown patient: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSourcePicksUpChanges: new files, changed files and manifest edits take
// effect without a restart, and a changed file is never served stale.
func TestSourcePicksUpChanges(t *testing.T) {
	s, dir, shared := testSource(t)
	ctx := context.Background()
	// A new extract with a valid NHS number of its own, no manifest entry.
	b, err := os.ReadFile(filepath.Join(shared, "gp2gp", "extracts", "PWTP3.xml"))
	if err != nil {
		t.Fatal(err)
	}
	own := strings.Replace(string(b), `extension="Test Harness"`, `extension="9736363015"`, 1)
	if own == string(b) {
		t.Skip("PWTP3 no longer carries the Test Harness placeholder")
	}
	path := filepath.Join(dir, "new.xml")
	if err := os.WriteFile(path, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Record(ctx, "9736363015", fhir.AllAreas)
	if err != nil {
		t.Fatalf("new file not picked up: %v", err)
	}
	v1 := rec.Version
	// Change it: one allergy fewer.
	changed := strings.Replace(own, `<code code="14L..00"`, `<code code="XXXXX00"`, 1)
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	rec2, err := s.Record(ctx, "9736363015", fhir.AllAreas)
	if err != nil {
		t.Fatal(err)
	}
	if rec2.Version == v1 || len(byTypeR(rec2, "AllergyIntolerance")) != len(byTypeR(rec, "AllergyIntolerance"))-1 {
		t.Errorf("changed file served stale: version %s -> %s, allergies %d -> %d", v1, rec2.Version,
			len(byTypeR(rec, "AllergyIntolerance")), len(byTypeR(rec2, "AllergyIntolerance")))
	}
	// A manifest that disagrees with the file's own number refuses it.
	m, err := ReadManifest(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m[path] = "9736363023"
	if err := WriteManifest(filepath.Join(dir, "manifest.json"), m); err != nil {
		t.Fatal(err)
	}
	ps, _ := s.Patients(ctx)
	for _, p := range ps {
		if p == "9736363015" || p == "9736363023" {
			t.Errorf("refused extract still lists %s", p)
		}
	}
	_, err = s.Record(ctx, "9736363023", fhir.AllAreas)
	if !errors.Is(err, ErrNHSMismatch) {
		t.Errorf("mismatch: %v", err)
	}
	// Removing the file removes the patient.
	delete(m, path)
	if err := WriteManifest(filepath.Join(dir, "manifest.json"), m); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if _, err := s.Record(ctx, "9736363015", fhir.AllAreas); fhir.AsError(err).Code != fhir.CodePatientNotFound {
		t.Errorf("removed file still served: %v", err)
	}
}

func byTypeR(r *fhir.Record, typ string) []*fhir.Resource { return r.Select(typ, fhir.AllAreas) }

// TestSourceRejectsHostileExtracts: each bad file is refused for its patient
// with a coded error, never a crash, never a partial record.
func TestSourceRejectsHostileExtracts(t *testing.T) {
	dir, pds := t.TempDir(), t.TempDir()
	good := `<?xml version="1.0" encoding="UTF-8"?>
<EhrExtract xmlns="urn:hl7-org:v3"><recordTarget><patient><id root="2.16.840.1.113883.2.1.4.1" extension="%s"/></patient></recordTarget>
<component><ehrFolder><component><ehrComposition><id root="C1"/><code code="25671000000102" codeSystem="2.16.840.1.113883.2.1.3.2.4.15"/>
<availabilityTime value="20200101"/><component><ObservationStatement><id root="O1"/><code code="22A..00" codeSystem="2.16.840.1.113883.2.1.6.2"/>
<availabilityTime value="20200101"/></ObservationStatement></component></ehrComposition></component></ehrFolder></component></EhrExtract>`
	cases := []struct {
		name, nhs, body string
		want            error
	}{
		{"doctype", "9000000009", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>` + strings.SplitN(good, "\n", 2)[1], ErrHostile},
		{"wrong-namespace", "9000000017", strings.Replace(good, "urn:hl7-org:v3", "urn:evil", 1), ErrNamespace},
		{"truncated", "9000000025", good[:len(good)/2], ErrMalformed},
		{"huge-attribute", "9000000033", strings.Replace(good, `root="O1"`, `root="`+strings.Repeat("A", maxAttrBytes+1)+`"`, 1), ErrLimits},
		{"latin1", "9000000041", strings.Replace(good, "UTF-8", "ISO-8859-1", 1), ErrMalformed},
	}
	for _, c := range cases {
		body := strings.Replace(c.body, "%s", c.nhs, 1)
		if err := os.WriteFile(filepath.Join(dir, c.name+".xml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// No NHS number anywhere: never listed.
	if err := os.WriteFile(filepath.Join(dir, "anon.xml"), []byte(strings.Replace(good, "%s", "Test Harness", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The manifest binds each file to its patient (a file that cannot be
	// read cannot say whose it is).
	bind := map[string]fhir.NHSNumber{}
	for _, c := range cases {
		bind[filepath.Join(dir, c.name+".xml")] = fhir.NHSNumber(c.nhs)
	}
	if err := WriteManifest(filepath.Join(dir, "manifest.json"), bind); err != nil {
		t.Fatal(err)
	}
	// A good file with its own number still works beside them.
	if err := os.WriteFile(filepath.Join(dir, "ok.xml"), []byte(strings.Replace(good, "%s", "9000000068", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Dir: dir, PDSDir: pds, Practice: "A12345"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if rec, err := s.Record(ctx, "9000000068", fhir.AllAreas); err != nil || len(rec.Resources) < 3 {
		t.Fatalf("good extract: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec, err := s.Record(ctx, fhir.NHSNumber(c.nhs), fhir.AllAreas)
			if rec != nil || err == nil {
				t.Fatal("a record came back")
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Code != fhir.CodeInternal {
				t.Errorf("error %v is not a coded internal error", err)
			}
			if !errors.Is(err, c.want) {
				t.Errorf("cause = %v, want %v", err, c.want)
			}
			if strings.Contains(string(fe.OperationOutcome()), c.nhs) {
				t.Error("the OperationOutcome names the patient")
			}
		})
	}
	for _, c := range cases {
		b, _ := os.ReadFile(filepath.Join(dir, c.name+".xml"))
		if _, err := ParseExtract(b, 0); !errors.Is(err, c.want) {
			t.Errorf("%s: ParseExtract = %v, want %v", c.name, err, c.want)
		}
	}
	ps, err := s.Patients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p == "" {
			t.Error("empty NHS number listed")
		}
	}
	if _, err := ParseExtract([]byte(strings.Repeat(" ", 101)), 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size limit: %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "manifest.json")
	for _, body := range []string{`[]`, `{"a.xml":"1234567890"}`, `{"":"9000000009"}`, `not json`} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadManifest(p); err == nil {
			t.Errorf("manifest %s accepted", body)
		}
		if _, err := New(Options{Dir: dir, PDSDir: dir, Practice: "A1"}); err == nil {
			t.Errorf("New accepted manifest %s", body)
		}
	}
	if err := os.WriteFile(p, []byte(`{"a.xml":"900 000 0009","/abs/b.xml":"9000000017"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	if m[filepath.Join(dir, "a.xml")] != "9000000009" || m["/abs/b.xml"] != "9000000017" {
		t.Errorf("manifest = %v", m)
	}
}
