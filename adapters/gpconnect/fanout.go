package gpconnect

import (
	"errors"

	"github.com/gpgate/gpgate/fhir"
)

// FanOut is the default grouping of the structured record's sections for a
// fanned-out fetch (Config.Groups): allergies alone (small, and what a
// clinician needs first); medication; the problem-oriented record
// (problems, consultations, referrals, diary entries); results
// (investigations, uncategorised data, immunisations). Four calls per
// record at most, each answering within its own deadline.
//
// The answers are merged as STU3 Bundles (one Patient; a resource two
// answers carry, a practitioner say, once) and converted together, so a
// reference from one group's entry to another group's (a problem's
// consultation) resolves as it would in a single call: when every group
// answers, the record is the one a single call returns. A group that fails
// (timeout, transport, server error, garbage, a refusal of the request) is
// left out and the areas it holds carry a WarnAreaUnavailable warning; what
// other groups brought of those areas as linked items stays (the warning
// says the area is missing or incomplete). An answer about the patient
// (not found, dissent, invalid number) or another patient's record from any
// group is the answer for the whole record; every group failing is the
// first group's error.
var FanOut = []Sections{
	SectionAllergies,
	SectionMedication,
	SectionProblems | SectionConsultations | SectionReferrals | SectionDiaryEntries,
	SectionInvestigations | SectionUncategorised | SectionImmunisations,
}

// split divides the sections asked into the configured groups, in group
// order; sections no group names go in a group of their own.
func (c *Client) split(s Sections) []Sections {
	if len(c.cfg.Groups) < 2 {
		return []Sections{s}
	}
	var out []Sections
	rest := s
	for _, g := range c.cfg.Groups {
		if x := g & rest; x != 0 {
			out = append(out, x)
			rest &^= x
		}
	}
	if rest != 0 {
		out = append(out, rest)
	}
	return out
}

// patientLevel reports whether err is an answer about the patient rather
// than a failure of one call.
func patientLevel(err error) bool {
	if errors.Is(err, ErrWrongPatient) {
		return true
	}
	switch fhir.AsError(err).Code {
	case fhir.CodePatientNotFound, fhir.CodeNoPatientConsent, fhir.CodeInvalidNHSNumber, fhir.CodeNoRecordFound:
		return true
	}
	return false
}

// unavailableWarnings names each area asked whose sections were left out.
func unavailableWarnings(areas fhir.Areas, failed Sections, diary bool) []fhir.Issue {
	if failed == 0 {
		return nil
	}
	var out []fhir.Issue
	for _, a := range areas.List() {
		if sectionsOf(a, diary)&failed == 0 {
			continue
		}
		out = append(out, fhir.Issue{Severity: "warning", Code: fhir.WarnAreaUnavailable,
			Diagnostics: "the practice system did not return the " + a.Name() + " area in time: it is missing or incomplete in this answer"})
	}
	return out
}

// mergeBundles joins the answers of a fanned-out fetch into one record:
// the first answer's Patient (every answer was checked to be for the same
// NHS number, and references to any answer's Patient resolve to it), each
// resource with an id once (the first answer's copy), the OperationOutcome
// warnings of all.
func mergeBundles(bs []*Bundle) *Bundle {
	out := &Bundle{byKey: map[string]obj{}, owner: map[string]obj{}, patient: bs[0].patient}
	for i, b := range bs {
		out.issues = append(out.issues, b.issues...)
		for k, r := range b.owner {
			out.owner[k] = r
		}
		for _, r := range b.entries {
			if str(r["resourceType"]) == "Patient" {
				if i > 0 {
					continue
				}
			} else if str(r["id"]) != "" {
				if _, dup := out.byKey[key(r)]; dup {
					continue
				}
			}
			out.entries = append(out.entries, r)
			if str(r["id"]) != "" {
				out.byKey[key(r)] = r
			}
		}
	}
	// Every answer's keys (ids and fullUrls) lead to the kept copy.
	for _, b := range bs {
		for k, r := range b.byKey {
			if _, have := out.byKey[k]; have {
				continue
			}
			switch {
			case str(r["resourceType"]) == "Patient":
				out.byKey[k] = out.patient
			case str(r["id"]) != "" && out.byKey[key(r)] != nil:
				out.byKey[k] = out.byKey[key(r)]
			default:
				out.byKey[k] = r
			}
		}
	}
	return out
}
