package consent

import (
	"sort"

	"github.com/gpgate/gpgate/fhir"
)

// What every AgreementStore implementation shares (bbolt here,
// PostgreSQL in consent/pgstore), so they refuse and answer alike.

// NewAgreementID is a random agreement id, for Add with an empty ID.
func NewAgreementID() string { return newID() }

// CanTransition reports whether an agreement of status from may become to
// (Activate, Suspend, End).
func CanTransition(from, to Status) bool { return transitions[to][from] }

// TransitionError is the error for a refused status change.
func TransitionError(a Agreement, to Status) error {
	return fhir.Errorf(fhir.CodeInvalidParameter, "agreement %s is %s and cannot become %s", a.ID, a.Status, to).At("status")
}

// DuplicateAgreementError is the error Add returns for an id in use.
func DuplicateAgreementError(id string) error {
	return fhir.Errorf(fhir.CodeInvalidParameter, "an agreement with id %q exists", id).At("id")
}

// NotFoundError is the REFERENCE_NOT_FOUND error of a store for what
// ("agreement", "group", "Consent") with id.
func NotFoundError(what, id string) error { return notFound(what, id) }

// GroupMembers validates a consumer group (name and ODS codes) and returns
// its members deduplicated and sorted, as stored.
func GroupMembers(name string, members []string) ([]string, error) {
	if !validGroupName(name) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "group name must be 1..64 of [A-Za-z0-9._-]").At("name")
	}
	set := map[string]bool{}
	for _, m := range members {
		if !ValidODS(m) {
			return nil, fhir.Errorf(fhir.CodeInvalidParameter, "group members must be ODS codes").At("members")
		}
		set[m] = true
	}
	ms := make([]string, 0, len(set))
	for m := range set {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms, nil
}
