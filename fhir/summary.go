package fhir

import "time"

// SummaryMonths is how far back the summary view's investigations reach.
const SummaryMonths = 12

// ActiveStatus reports a clinical status that means "current" (Condition,
// AllergyIntolerance): active, recurrence or relapse.
func ActiveStatus(s string) bool {
	return s == "active" || s == "recurrence" || s == "relapse"
}

// CurrentMedication reports a MedicationStatement status that means the
// patient is taking it now: active, intended or on-hold.
func CurrentMedication(status string) bool {
	return status == "active" || status == "intended" || status == "on-hold"
}

// InSummary reports whether r belongs to the GP summary view at now:
// current problems (active, recurrence, relapse), current medication
// (MedicationStatement active, intended or on hold; MedicationRequest authorisations,
// intent plan, active), every allergy except those entered in error, and
// investigations dated within the last SummaryMonths months. A Medication
// resource is in the view only through a current statement or authorisation
// that names it (see Decision.Visible). Resources of other areas are not in
// the view; demographics are outside it and always shared with a permit.
func InSummary(r *Resource, now time.Time) bool {
	ix := &r.Ix
	switch ix.Area {
	case AreaProblems:
		return ActiveStatus(ix.ClinicalStatus)
	case AreaAllergies:
		return ix.Status != "entered-in-error"
	case AreaMedication:
		switch r.Type {
		case "MedicationStatement":
			return CurrentMedication(ix.Status)
		case "MedicationRequest":
			return ix.Intent == "plan" && ix.Status == "active"
		}
		return false
	case AreaInvestigations:
		when := ix.Start
		if when.IsZero() {
			when = ix.LastUpdated
		}
		return !when.IsZero() && !when.Before(now.AddDate(0, -SummaryMonths, 0))
	}
	return false
}

// Visible reports whether the decision lets r leave: r's area must be
// permitted, and an area the decision permits as summary only must hold r
// in the summary view. It does not know the record, so a Medication under a
// summary-only decision is not visible here: the redactor adds the
// Medications of visible statements.
func (d Decision) Visible(r *Resource, now time.Time) bool {
	if !d.Permit || !d.Areas.Any(r.Ix.Area) {
		return false
	}
	if d.Summary.Any(r.Ix.Area) {
		return InSummary(r, now)
	}
	return true
}
