package gp2gp

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// counts of the dataset areas the issue compares with NHS Digital's own
// GP2GP translator output.
type counts struct {
	Problems, MedStatements, Allergies, BP, Encounters, Referrals int
}

func (c counts) String() string {
	return fmt.Sprintf("%8d %8d %8d %4d %10d %9d", c.Problems, c.MedStatements, c.Allergies, c.BP, c.Encounters, c.Referrals)
}

// expectedCounts reads a GP Connect STU3 bundle produced by the translator.
// A blood pressure there is a battery header Observation whose has-member
// targets include a systolic and a diastolic reading (that translator version
// does not yet fold them into components).
func expectedCounts(t *testing.T, path string) counts {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	type res struct {
		ResourceType string            `json:"resourceType"`
		ID           string            `json:"id"`
		Category     []json.RawMessage `json:"category"` // AllergyIntolerance: codes
		Code         struct {
			Coding []coding `json:"coding"`
		} `json:"code"`
		Related []struct {
			Type   string `json:"type"`
			Target struct {
				Reference string `json:"reference"`
			} `json:"target"`
		} `json:"related"`
	}
	all := map[string]res{}
	var list []res
	for _, e := range bundle.Entry {
		var r res
		if err := json.Unmarshal(e.Resource, &r); err != nil {
			t.Fatal(err)
		}
		all[r.ResourceType+"/"+r.ID] = r
		list = append(list, r)
	}
	var c counts
	for _, r := range list {
		switch r.ResourceType {
		case "Condition":
			for _, raw := range r.Category {
				var cat concept
				_ = json.Unmarshal(raw, &cat)
				if hasCodeAny(cat.Coding, "problem-list-item") {
					c.Problems++
				}
			}
		case "MedicationStatement":
			c.MedStatements++
		case "AllergyIntolerance":
			c.Allergies++
		case "Encounter":
			c.Encounters++
		case "ReferralRequest":
			c.Referrals++
		case "Observation":
			sys, dia := false, false
			for _, rel := range r.Related {
				if rel.Type != "has-member" {
					continue
				}
				m := all[rel.Target.Reference]
				sys = sys || inSet(m.Code.Coding, systolicCodes)
				dia = dia || inSet(m.Code.Coding, diastolicCodes)
			}
			if sys && dia {
				c.BP++
			}
		}
	}
	return c
}

func ourCounts(rs []*fhir.Resource) counts {
	var c counts
	for _, r := range rs {
		switch r.Type {
		case "Condition":
			if fhir.HasCoding(r.Ix.Category, fhir.ConditionCategorySystem, "problem-list-item") {
				c.Problems++
			}
		case "MedicationStatement":
			c.MedStatements++
		case "AllergyIntolerance":
			c.Allergies++
		case "Encounter":
			c.Encounters++
		case "ServiceRequest":
			c.Referrals++
		case "Observation":
			if fhir.HasCoding(r.Ix.Code, fhir.LOINC, fhir.LOINCBloodPressurePanel) {
				c.BP++
			}
		}
	}
	return c
}

// TestExtractsMatchTranslatorCounts maps every shared extract and compares,
// per dataset area, the number of resources with NHS Digital's expected STU3
// output. There is no deliberate deviation in these counts: Medication
// resources (deduplicated here by coding) and uncategorised Observations
// (named problem statements are folded into their Condition here) differ by
// design and are not compared.
func TestExtractsMatchTranslatorCounts(t *testing.T) {
	shared := sharedDir(t)
	files, _ := filepath.Glob(filepath.Join(shared, "gp2gp", "extracts", "*.xml"))
	if len(files) == 0 {
		t.Fatal("no extracts in the shared test data")
	}
	sort.Strings(files)
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-8s %-5s %8s %8s %8s %4s %10s %9s\n", "extract", "", "problems", "med-stmt", "allergy", "BP", "encounters", "referrals")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".xml")
		t.Run(name, func(t *testing.T) {
			nhs := testBindings[filepath.Base(f)]
			if nhs == "" {
				nhs = "9000000009"
			}
			m := mapFile(t, f, nhs)
			checkResources(t, name, nhs, m.Resources)
			want := expectedCounts(t, filepath.Join(shared, "gp2gp", "expected-stu3", name+"-output.json"))
			got := ourCounts(m.Resources)
			fmt.Fprintf(&table, "%-8s %-5s %s\n%-8s %-5s %s\n", name, "want", want, "", "got", got)
			if got != want {
				t.Errorf("counts differ from the translator's output:\nwant %+v\ngot  %+v", want, got)
			}
		})
	}
	t.Log(table.String())
}
