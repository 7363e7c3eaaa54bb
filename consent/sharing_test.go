package consent

import (
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestSharingFromRecord(t *testing.T) {
	cases := []struct {
		name string
		rs   func(t *testing.T) []*fhir.Resource
		want fhir.SharingConsent
	}{
		{"no entry", func(t *testing.T) []*fhir.Resource { return nil }, fhir.SharingUnknown},
		{"read v2 consent with term code", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "a", fhir.ReadV2, "9Nd7.00", "2020-01-01")}
		}, fhir.SharingConsented},
		{"ctv3 dissent", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "a", fhir.CTV3, "XaKRw", "2020-01-01")}
		}, fhir.SharingDissent},
		{"snomed dissent as Flag", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Flag", "a", fhir.SNOMED, "416409005", "2020-01-01")}
		}, fhir.SharingDissent},
		{"latest wins: consent after dissent", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "a", fhir.ReadV2, "93C1.", "2019-01-01"), codedRes(t, "Condition", "b", fhir.SNOMED, "425691002", "2021-06-01")}
		}, fhir.SharingConsented},
		{"latest wins: dissent after consent", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "b", fhir.SNOMED, "416409005", "2022-01-01"), codedRes(t, "Observation", "a", fhir.ReadV2, "9Nd7.", "2021-01-01")}
		}, fhir.SharingDissent},
		{"equal dates: dissent wins", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "a", fhir.ReadV2, "9Nd1.", "2021-01-01"), codedRes(t, "Procedure", "b", fhir.SNOMED, "417528008", "2021-01-01")}
		}, fhir.SharingDissent},
		{"equal dates, consent listed last: dissent still wins", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Procedure", "b", fhir.SNOMED, "417528008", "2021-01-01"), codedRes(t, "Observation", "a", fhir.ReadV2, "9Nd1.", "2021-01-01")}
		}, fhir.SharingDissent},
		{"SCR dissent is not record-sharing dissent", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "a", fhir.ReadV2, "9Ndo.", "2021-01-01")}
		}, fhir.SharingUnknown},
		{"code in the wrong system", func(t *testing.T) []*fhir.Resource {
			return []*fhir.Resource{codedRes(t, "Observation", "a", fhir.SNOMED, "9Nd1.", "2021-01-01")}
		}, fhir.SharingUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := recordOf(t, "1980-01-01", c.rs(t)...)
			if got := SharingFromRecord(rec); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	rec := recordOf(t, "1980-01-01", codedRes(t, "Observation", "a", fhir.ReadV2, "9Ndo.", "2021-01-01"))
	if got := SharingFromRecordWith(rec, ScopeRecordSharing, ScopeNational); got != fhir.SharingDissent {
		t.Fatalf("with national scope: %v", got)
	}
}
