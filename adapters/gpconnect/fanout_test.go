package gpconnect_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/adapters/gpconnect/emulator"
	"github.com/gpgate/gpgate/fhir"
)

// fanOutClient fans out with a per-group deadline of area (the tests
// that compare answers give every group ample time: a loaded machine must
// not turn a comparison into a partial answer).
func fanOutClient(t testing.TB, p *pki, url string, area time.Duration) *gpconnect.Client {
	t.Helper()
	c, err := gpconnect.NewClient(gpconnect.Config{
		URL: url, CertFile: p.clientCert, KeyFile: p.clientKey, CAFile: p.caFile,
		ODS: "A82038", FromASID: "200000000359", ToASID: "918999198993",
		Requester: &gpconnect.Requester{UserID: "u1", OrgODS: "RXX01"},
		Groups:    gpconnect.FanOut, AreaTimeout: area, Timeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signature lists a record's resources (type, id, JSON) in id order.
func signature(rec *fhir.Record) []string {
	var out []string
	for _, r := range rec.Resources {
		out = append(out, r.Type+"/"+r.ID+" "+string(r.JSON))
	}
	sort.Strings(out)
	return out
}

func hasWarning(rec *fhir.Record, area fhir.Area) bool {
	for _, w := range rec.Warnings {
		if w.Code == fhir.WarnAreaUnavailable && strings.Contains(w.Diagnostics, " "+area.Name()+" area") {
			return true
		}
	}
	return false
}

func TestFanOut(t *testing.T) {
	dir, nhs := folder(t)
	p := newPKI(t)
	em, srv := provider(t, p, dir)
	whole := client(t, p, srv.URL, p.caFile)
	base := srv.URL + "/B82617/STU3/1/gpconnect/structured/fhir"
	fan := fanOutClient(t, p, base, time.Minute)
	// slow: groups that answer do so well within 3s even on a loaded
	// machine; a slow one is held for a minute (until the client gives up).
	slow := fanOutClient(t, p, base, 3*time.Second)
	ctx := context.Background()

	t.Run("every group answering gives the single call's record", func(t *testing.T) {
		em.SetFault(emulator.Fault{})
		one, err := whole.Record(ctx, nhs, fhir.AllAreas)
		if err != nil {
			t.Fatal(err)
		}
		before := em.Requests()
		many, err := fan.Record(ctx, nhs, fhir.AllAreas)
		if err != nil {
			t.Fatal(err)
		}
		if n := em.Requests() - before; n != int64(len(gpconnect.FanOut)) {
			t.Errorf("provider calls = %d, want %d", n, len(gpconnect.FanOut))
		}
		a, b := signature(one), signature(many)
		if len(a) != len(b) {
			t.Fatalf("single call %d resources, fanned out %d", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("resource %d differs:\n single %.300s\n fanned %.300s", i, a[i], b[i])
			}
		}
		if len(many.Warnings) != len(one.Warnings) {
			t.Errorf("warnings: single %v, fanned %v", one.Warnings, many.Warnings)
		}
	})
	t.Run("only the groups of the areas asked are called", func(t *testing.T) {
		em.SetFault(emulator.Fault{})
		before := em.Requests()
		if _, err := fan.Record(ctx, nhs, fhir.AreaAllergies|fhir.AreaMedication); err != nil {
			t.Fatal(err)
		}
		if n := em.Requests() - before; n != 2 {
			t.Errorf("provider calls = %d, want 2", n)
		}
	})
	t.Run("a slow group is left out with a warning", func(t *testing.T) {
		em.SetFault(emulator.Fault{Latency: time.Minute, Sections: gpconnect.SectionMedication})
		rec, err := slow.Record(ctx, nhs, fhir.AllAreas)
		if err != nil {
			t.Fatal(err)
		}
		if !hasWarning(rec, fhir.AreaMedication) {
			t.Errorf("no medication warning: %v", rec.Warnings)
		}
		if hasWarning(rec, fhir.AreaAllergies) || hasWarning(rec, fhir.AreaProblems) {
			t.Errorf("warnings for areas that answered: %v", rec.Warnings)
		}
		if len(rec.Select("AllergyIntolerance", fhir.AllAreas)) == 0 || len(rec.Select("Condition", fhir.AllAreas)) == 0 {
			t.Error("the groups that answered are missing")
		}
	})
	faults := []struct {
		name  string
		fault emulator.Fault
		code  fhir.Code
		cause error
	}{
		{"every group slow", emulator.Fault{Latency: time.Minute}, fhir.CodeTimeout, gpconnect.ErrUnavailable},
		{"one group answers the patient is not found", emulator.Fault{Status: 404, Code: "PATIENT_NOT_FOUND", Sections: gpconnect.SectionMedication}, fhir.CodePatientNotFound, nil},
		{"one group answers dissent", emulator.Fault{Status: 403, Code: "NO_PATIENT_CONSENT", Sections: gpconnect.SectionAllergies}, fhir.CodeNoPatientConsent, nil},
		{"one group answers another patient's record", emulator.Fault{OtherPatient: true, Sections: gpconnect.SectionProblems}, fhir.CodeInternal, gpconnect.ErrWrongPatient},
		{"every group dead", emulator.Fault{Dead: true}, fhir.CodeTimeout, gpconnect.ErrUnavailable},
		{"every group garbage", emulator.Fault{Garbage: true}, fhir.CodeTimeout, gpconnect.ErrMalformed},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			em.SetFault(tc.fault)
			rec, err := slow.Record(ctx, nhs, fhir.AllAreas)
			if rec != nil || fhir.AsError(err).Code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("cause %v, want %v", err, tc.cause)
			}
		})
	}
	t.Run("a group refused for a server error is left out", func(t *testing.T) {
		em.SetFault(emulator.Fault{Status: 500, Code: "INTERNAL_SERVER_ERROR", Sections: gpconnect.SectionInvestigations})
		rec, err := fan.Record(ctx, nhs, fhir.AllAreas)
		if err != nil {
			t.Fatal(err)
		}
		if !hasWarning(rec, fhir.AreaInvestigations) || !hasWarning(rec, fhir.AreaImmunisations) || !hasWarning(rec, fhir.AreaExamination) {
			t.Errorf("warnings %v", rec.Warnings)
		}
	})
}

// TestFanOutEverySharedRecord: for every shared record, the fanned-out
// fetch (merged as STU3, converted once) gives exactly the single call's
// resources, so fanning out costs no cross-section references.
func TestFanOutEverySharedRecord(t *testing.T) {
	dir := sharedDirExt(t)
	p := newPKI(t)
	em, srv := provider(t, p, dir)
	whole := client(t, p, srv.URL, p.caFile)
	fan := fanOutClient(t, p, srv.URL+"/B82617/STU3/1/gpconnect/structured/fhir", time.Minute)
	patients, err := em.Patients(context.Background())
	if err != nil || len(patients) == 0 {
		t.Fatalf("patients: %v", err)
	}
	for _, nhs := range patients {
		t.Run(string(nhs), func(t *testing.T) {
			one, err := whole.Record(context.Background(), nhs, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			many, err := fan.Record(context.Background(), nhs, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			a, b := signature(one), signature(many)
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("fanned-out record differs: single %d resources, fanned %d", len(a), len(b))
			}
		})
	}
}

func sharedDirExt(t testing.TB) string {
	t.Helper()
	dir, _ := filepath.Abs(".")
	for {
		p := filepath.Join(dir, "shared", "testdata", "gpconnect-stu3")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("../shared/testdata/gpconnect-stu3 is absent (the shared test data sits beside the checkout)")
		}
		dir = parent
	}
}
