package fhir

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestPatientID(t *testing.T) {
	a, b := PatientID("9000000009"), PatientID("9434765919")
	if a != PatientID("9000000009") {
		t.Error("PatientID is not deterministic")
	}
	if a == b {
		t.Error("two NHS numbers share a patient id")
	}
	for _, id := range []string{a, b} {
		if !ValidID(id) || strings.Contains(id, "-") || strings.Contains(id, "9000000009") || strings.Contains(id, "9434765919") {
			t.Errorf("PatientID = %q: not a hyphen-free FHIR id hiding the NHS number", id)
		}
		// ResourceID promises 64-18 characters for the local part.
		if len(id)+1 > 18 {
			t.Errorf("PatientID %q is %d characters: local ids get less than 46", id, len(id))
		}
		rid := ResourceID(id, strings.Repeat("x", 64-18))
		if !ValidID(rid) || PatientIDOf(rid) != id {
			t.Errorf("ResourceID(%q, 46 chars) = %q, PatientIDOf = %q", id, rid, PatientIDOf(rid))
		}
		if PatientIDOf(ResourceID(id, "cond-1.2")) != id || PatientIDOf(id) != id {
			t.Errorf("PatientIDOf does not recover %q", id)
		}
	}
	if PatientIDOf("-x") != "-x" || PatientIDOf("") != "" {
		t.Error("PatientIDOf edge cases")
	}
}

func TestRecordLookups(t *testing.T) {
	rs := matchFixtures(t)
	pat := mustResource(t, `{"resourceType":"Patient","id":"p1"}`)
	rec := &Record{Resources: append([]*Resource{pat}, rs...)}
	if rec.Patient() != pat {
		t.Error("Patient() did not find the Patient")
	}
	if (&Record{Resources: rs}).Patient() != nil {
		t.Error("Patient() found one in a record without")
	}
	if rec.Find("Condition", "c2") != rs[1] || rec.Find("Observation", "c2") != nil || rec.Find("Condition", "nope") != nil {
		t.Error("Find")
	}
	tests := []struct {
		typ   string
		areas Areas
		want  string
	}{
		{"", AllAreas, "p1 c1 c2 c3 m1 m2 o1"},
		{"", AreaProblems, "c1 c3"},
		{"Condition", AreaDiagnoses, "c2"},
		{"Condition", AreaProblems | AreaDiagnoses, "c1 c2 c3"},
		{"", AreaDemographics | SummaryAreas, "p1 c1 c3 m1 m2 o1"},
		{"MedicationRequest", AreaProblems, ""},
		{"", 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.typ+"/"+tc.areas.String(), func(t *testing.T) {
			var ids []string
			for _, r := range rec.Select(tc.typ, tc.areas) {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, " "); got != tc.want {
				t.Errorf("Select = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestContextValues(t *testing.T) {
	ctx := context.Background()
	if PrincipalFrom(ctx) != nil || RequestIDFrom(ctx) != "" {
		t.Error("empty context carries values")
	}
	p := &Principal{ClientID: "c"}
	ctx = WithRequestID(WithPrincipal(ctx, p), "r-1")
	if PrincipalFrom(ctx) != p || RequestIDFrom(ctx) != "r-1" {
		t.Error("values not returned")
	}
}

func TestProfileFor(t *testing.T) {
	for _, typ := range slices.Concat(ReadableTypes, []string{"List", "Consent", "AuditEvent", "Bundle", "OperationOutcome"}) {
		if p := ProfileFor(typ); p != "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"+typ {
			t.Errorf("ProfileFor(%s) = %q", typ, p)
		}
	}
	for _, typ := range []string{"", "Basic", "patient"} {
		if p := ProfileFor(typ); p != "" {
			t.Errorf("ProfileFor(%q) = %q", typ, p)
		}
	}
	if ProfileFor("Bundle") != ProfileBundle || ProfileFor("OperationOutcome") != ProfileOperationOutcome {
		t.Error("ProfileFor disagrees with the constants")
	}
}

func TestDerivedSharingScansOncePerRecord(t *testing.T) {
	for _, want := range []SharingConsent{SharingUnknown, SharingConsented, SharingDissent} {
		t.Run(fmt.Sprint(want), func(t *testing.T) {
			rec := &Record{PatientID: "p"}
			scans := 0
			scan := func(r *Record) SharingConsent {
				if r != rec {
					t.Fatal("scanned another record")
				}
				scans++
				return want
			}
			for i := 0; i < 3; i++ {
				if got := rec.DerivedSharing(scan); got != want {
					t.Fatalf("call %d: %v, want %v", i, got, want)
				}
			}
			if scans != 1 {
				t.Fatalf("%d scans of one record, want 1", scans)
			}
			if other := (&Record{}).DerivedSharing(func(*Record) SharingConsent { return SharingDissent }); other != SharingDissent {
				t.Fatalf("another record answered %v from the first's scan", other)
			}
		})
	}
}
