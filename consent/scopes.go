package consent

import (
	"errors"

	"github.com/gpgate/gpgate/fhir"
)

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// ScopesForAreas maps dataset areas to SMART v2 patient scopes (read and
// search), granular where an area is narrower than a type; the mapping is
// fhir.AreaScopes, derived from the dataset table. Scopes are the token's
// ceiling; every request is still decided against the agreements.
func ScopesForAreas(areas fhir.Areas) []string { return fhir.AreaScopes(areas) }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
