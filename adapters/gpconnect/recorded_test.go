package gpconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestParseRecordedName(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		want RecordedName
	}{
		{"9465698490_Daniels_full_20210119.json", true, RecordedName{"9465698490", "Daniels", "full", "20210119"}},
		{"9000000009.json", true, RecordedName{NHS: "9000000009"}},
		{"9000000009_Smith.json", true, RecordedName{NHS: "9000000009", Name: "Smith"}},
		{"900000000_Smith_full_20210119.json", false, RecordedName{}},
		{"90000000x9_Smith.json", false, RecordedName{}},
		{"9000000009_Smith_full_20210119.xml", false, RecordedName{}},
		{"Smith_9000000009.json", false, RecordedName{}},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, ok := ParseRecordedName(c.in)
			if ok != c.ok || got != c.want {
				t.Errorf("got %+v %v, want %+v %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name string, body []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRecordedBinding(t *testing.T) {
	obs := map[string]any{"resourceType": "Observation", "id": "o1", "status": "final", "code": cc(sct, "1234")}
	pretty := func(b []byte) []byte {
		var out bytes.Buffer
		_ = json.Indent(&out, b, "", "    ")
		return out.Bytes()
	}
	cases := []struct {
		name  string
		files map[string][]byte
		want  []fhir.NHSNumber
	}{
		{"placeholder body: the name's number", map[string][]byte{"9000000009_Testpatient_full_20210101.json": bundle("1234567890", obs)}, []fhir.NHSNumber{"9000000009"}},
		{"valid body agreeing with its name", map[string][]byte{"9000000009_Testpatient_full_20210101.json": bundle("9000000009")}, []fhir.NHSNumber{"9000000009"}},
		{"valid body, no number in the name", map[string][]byte{"record.json": bundle("9000000017")}, []fhir.NHSNumber{"9000000017"}},
		{"valid body disagreeing with its name is refused", map[string][]byte{"9000000009_Testpatient_full_20210101.json": bundle("9000000017")}, nil},
		{"no valid number anywhere", map[string][]byte{"1234567890_Testpatient_full_20210101.json": bundle("1234567890")}, nil},
		{"not a record", map[string][]byte{"9000000009_Testpatient_full_20210101.json": []byte("{")}, nil},
		{"one response recorded twice is served once", map[string][]byte{
			"9000000009_Testpatient_full_20210101.json": bundle("1234567890", obs),
			"9000000009_Other_full_20210101.json":       pretty(bundle("1234567890", obs))}, []fhir.NHSNumber{"9000000009"}},
		{"different responses: the one whose name matches its patient", map[string][]byte{
			"9000000009_Testpatient_full_20210101.json": bundle("1234567890", obs),
			"9000000009_Other_full_20210101.json":       bundle("1234567890")}, []fhir.NHSNumber{"9000000009"}},
		{"different responses, neither name matching: none", map[string][]byte{
			"9000000009_Jones_full_20210101.json": bundle("1234567890", obs),
			"9000000009_Other_full_20210101.json": bundle("1234567890")}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range c.files {
				writeFile(t, dir, n, b)
			}
			r, err := NewRecorded(dir, "A12345")
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Patients(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
				t.Fatalf("patients %v, want %v", got, c.want)
			}
			for _, n := range got {
				rec, err := r.Record(context.Background(), n, fhir.AllAreas)
				if err != nil {
					t.Fatal(err)
				}
				if rec.NHS != n || rec.PatientID != fhir.PatientID(n) || rec.Practice != "A12345" || rec.Version == "" {
					t.Errorf("record %+v", rec)
				}
			}
		})
	}
	t.Run("the served record under two names is the lexically first file's", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "9000000009_B_full.json", bundle("1234567890", obs))
		writeFile(t, dir, "9000000009_A_full.json", pretty(bundle("1234567890", obs)))
		r, _ := NewRecorded(dir, "A12345")
		raw, err := r.Raw(context.Background(), "9000000009")
		if err != nil || !bytes.Contains(raw, []byte("\n")) {
			t.Errorf("served %q..., %v", raw[:min(len(raw), 20)], err)
		}
	})
}

func TestRecordedAreasAndChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "9000000009_Testpatient.json", bundle("1234567890",
		map[string]any{"resourceType": "AllergyIntolerance", "id": "a1", "code": cc(sct, "91936005"), "clinicalStatus": "active", "verificationStatus": "unconfirmed"},
		map[string]any{"resourceType": "Encounter", "id": "e1", "status": "finished"}))
	r, _ := NewRecorded(dir, "A12345")
	ctx := context.Background()
	rec, err := r.Record(ctx, "9000000009", fhir.AreaAllergies)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Resources) != 2 || rec.Resources[0].Type != "Patient" || rec.Resources[1].Type != "AllergyIntolerance" {
		t.Errorf("allergies only: %d resources", len(rec.Resources))
	}
	if _, err := r.Record(ctx, "9000000017", fhir.AllAreas); fhir.AsError(err).Code != fhir.CodePatientNotFound {
		t.Errorf("unknown patient: %v", err)
	}
	v1 := rec.Version
	writeFile(t, dir, "9000000009_Testpatient.json", bundle("1234567890"))
	rec, err = r.Record(ctx, "9000000009", fhir.AllAreas)
	if err != nil || rec.Version == v1 || len(rec.Resources) != 1 {
		t.Errorf("a changed file is served at once: version %s -> %v, %v", v1, rec, err)
	}
	os.Remove(filepath.Join(dir, "9000000009_Testpatient.json"))
	if ps, _ := r.Patients(ctx); len(ps) != 0 {
		t.Errorf("removed file still listed: %v", ps)
	}
}

// The shared folder: every file is served except that two files claim one
// NHS number; they hold one response (formatted differently), served once.
func TestRecordedSharedFolder(t *testing.T) {
	files := sharedFiles(t)
	r, err := NewRecorded(sharedDir(t), "A82038")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := r.Patients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		n, _ := ParseRecordedName(filepath.Base(f))
		names[n.NHS] = true
	}
	if len(ps) != len(names) {
		t.Fatalf("%d patients served, %d distinct numbers in the file names", len(ps), len(names))
	}
	for _, n := range ps {
		if !names[string(n)] {
			t.Errorf("served a number no file name carries")
		}
	}
}
