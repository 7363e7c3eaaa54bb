package smart

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestScopesOfCachesParsesAndStaysBounded(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		ok     bool
	}{
		{"v2 patient scopes", []string{"patient/Condition.rs", "patient/Observation.rs?category=laboratory"}, true},
		{"v1 system wildcard", []string{"system/*.read"}, true},
		{"unreadable", []string{"patient/Condition.zz"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, werr := ParseScopes(strings.Join(tc.scopes, " "))
			for i := 0; i < 3; i++ { // a miss, then hits
				got, err := scopesOf(tc.scopes)
				if (err == nil) != tc.ok || (werr == nil) != tc.ok {
					t.Fatalf("call %d: err %v (parse: %v), want ok=%v", i, err, werr, tc.ok)
				}
				var gotScopes []Scope
				if got != nil {
					gotScopes = got.scopes
				}
				if !reflect.DeepEqual(gotScopes, want) {
					t.Fatalf("call %d: %+v, want %+v", i, got, want)
				}
			}
		})
	}
	t.Run("bounded by bytes", func(t *testing.T) {
		for i := 0; i < 20000; i++ {
			if _, err := scopesOf([]string{fmt.Sprintf("patient/Condition.rs?code=http://snomed.info/sct|%d", i)}); err != nil {
				t.Fatal(err)
			}
			parsedScopes.mu.RLock()
			b := parsedScopes.bytes
			parsedScopes.mu.RUnlock()
			if b > parsedScopes.max {
				t.Fatalf("after %d scope strings the cache holds %d bytes (bound %d)", i+1, b, parsedScopes.max)
			}
		}
	})
}

// TestAuthorizeCachedDecisions: a decision answered from the cache is the
// decision made afresh, whatever was decided before on the same scopes:
// the same and another patient, each interaction, type and set of areas.
func TestAuthorizeCachedDecisions(t *testing.T) {
	pid, other := "p1", "p2"
	principals := []*fhir.Principal{
		{ClientID: "c", Scopes: []string{"patient/Condition.rs", "patient/Observation.rs?category=laboratory", "patient/Patient.r"}, PatientID: pid},
		{ClientID: "c", Scopes: []string{"system/*.rs"}},
		{ClientID: "c", Scopes: []string{"user/MedicationStatement.rs", "user/AllergyIntolerance.rs"}, PatientID: pid},
	}
	interactions := []string{"read", "search-type", "operation"}
	types := []string{"Patient", "Condition", "Observation", "MedicationStatement", "AllergyIntolerance"}
	areas := []fhir.Areas{fhir.AllAreas, fhir.AreaDemographics, fhir.AreaProblems | fhir.AreaInvestigations, fhir.AreaMedication}
	for i, p := range principals {
		for _, patient := range []string{pid, other, pid} { // the same patient again after another: from the cache
			for _, ia := range interactions {
				for _, typ := range types {
					for _, a := range areas {
						req := &fhir.Request{Interaction: ia, Type: typ, PatientID: patient, Areas: a}
						t.Run(fmt.Sprintf("principal%d/%s/%s/%s/%v", i, patient, ia, typ, a), func(t *testing.T) {
							interaction := "search"
							if ia == "read" {
								interaction = "read"
							}
							want := areaDecision(mustParse(t, p.Scopes), p.PatientID, patient, interaction, req)
							for n := 0; n < 2; n++ {
								if got := (Authorizer{}).Authorize(p, req); !reflect.DeepEqual(got, want) {
									t.Fatalf("call %d: %+v\nwant %+v", n, got, want)
								}
							}
						})
					}
				}
			}
		}
	}
}

func mustParse(t *testing.T, s []string) []Scope {
	t.Helper()
	sc, err := ParseScopes(strings.Join(s, " "))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}
