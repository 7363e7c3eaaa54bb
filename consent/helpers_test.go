package consent

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const (
	practice = "Y99001"
	nhsA     = fhir.NHSNumber("9990000050")
)

var pidA = fhir.PatientID(nhsA)

func mustRes(t testing.TB, raw string) *fhir.Resource {
	t.Helper()
	r, err := fhir.NewResource([]byte(raw))
	if err != nil {
		t.Fatalf("resource %s: %v", raw, err)
	}
	return r
}

func patientRes(t testing.TB, pid, birth string) *fhir.Resource {
	return mustRes(t, fmt.Sprintf(`{"birthDate":%q,"gender":"female","id":%q,"resourceType":"Patient"}`, birth, pid))
}

// obs is an Observation with a code, a date and optionally a category.
func codedRes(t testing.TB, typ, id, system, code, date string) *fhir.Resource {
	dateKey := map[string]string{"Observation": "effectiveDateTime", "Condition": "recordedDate", "Procedure": "performedDateTime", "Flag": "period"}[typ]
	d := fmt.Sprintf(`%q:%q`, dateKey, date)
	if typ == "Flag" {
		d = fmt.Sprintf(`"period":{"start":%q}`, date)
	}
	return mustRes(t, fmt.Sprintf(`{"code":{"coding":[{"code":%q,"system":%q}]},%s,"id":%q,"resourceType":%q,"status":"final","subject":{"reference":"Patient/%s"}}`,
		code, system, d, pidA+"-"+id, typ, pidA))
}

func recordOf(t testing.TB, birth string, rs ...*fhir.Resource) *fhir.Record {
	all := append([]*fhir.Resource{patientRes(t, pidA, birth)}, rs...)
	return &fhir.Record{NHS: nhsA, PatientID: pidA, Practice: practice, Version: "v1", Resources: all}
}

func openDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testNow is the clock of redaction tests.
var testNow = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// permit is a permit decision for areas (whole, no summary).
func permit(areas fhir.Areas) fhir.Decision {
	return fhir.Decision{Permit: true, Areas: areas | fhir.AreaDemographics}
}
