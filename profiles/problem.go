// Package profiles checks resources against the rules of the UK Core 2.6.1
// profiles gpgate claims in meta.profile, the R4 base rules underneath them,
// and gpgate's own rule that only coded data leaves the server.
//
// The rules are a table in Go (table.go), derived by hand from the UK Core
// StructureDefinition snapshots and keyed by their element ids; a test
// cross-checks the table against the snapshots when ../shared/ukcore is
// present. Nothing is loaded at run time.
//
// A resource is checked against:
//   - the R4 base rules of its type (required elements, required bindings,
//     invariants such as con-4 or lst-1), whatever it claims;
//   - every profile it claims in meta.profile; a claimed profile gpgate does
//     not know, or one for another resource type, is itself a problem;
//   - gpgate-coded-only (CodedOnly, coded.go): every string is coded or
//     structural by its R4 type and position, decided from the R4 type
//     system and one decision table; no narrative, note, comment, free-text
//     string, or CodeableConcept with text but no coding;
//   - identifier systems gpgate relies on anywhere in the resource: NHS numbers
//     are ten digits with a valid Modulus 11 check digit, ODS and SDS codes
//     are well formed.
package profiles

import (
	"fmt"
	"sort"
)

// Severity of a Problem, named as OperationOutcome.issue.severity names it.
type Severity string

const (
	// Error means the resource does not satisfy a rule it must satisfy.
	Error Severity = "error"
	// Warning means a rule is bent but the resource is still conformant
	// (a "should", or a best-practice invariant).
	Warning Severity = "warning"
)

// Problem is one rule a resource breaks.
type Problem struct {
	// Path locates the element, FHIRPath style with indexes:
	// "Patient.identifier[0].value". Inside a Bundle it starts at
	// "Bundle.entry[3].resource".
	Path string
	// Rule names the rule: a snapshot element id for table rules
	// ("Patient.identifier:nhsNumber.value"), an invariant key ("con-4",
	// "bdl-1"), or a gpgate rule ("gpgate-coded-only").
	Rule     string
	Message  string
	Severity Severity
	// Profile is the canonical URL of the profile the rule comes from; empty
	// for R4 base rules and gpgate's own rules.
	Profile string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s [%s]", p.Severity, p.Path, p.Message, p.Rule)
}

// HasErrors reports whether any problem has Error severity.
func HasErrors(ps []Problem) bool {
	for _, p := range ps {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

// Errors returns only the problems of Error severity.
func Errors(ps []Problem) []Problem {
	var out []Problem
	for _, p := range ps {
		if p.Severity == Error {
			out = append(out, p)
		}
	}
	return out
}

// sortProblems orders problems by path then rule, and drops exact duplicates
// (a rule shared by two claimed profiles is reported once).
func sortProblems(ps []Problem) []Problem {
	if len(ps) < 2 {
		return ps
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Path != ps[j].Path {
			return ps[i].Path < ps[j].Path
		}
		return ps[i].Rule < ps[j].Rule
	})
	out := ps[:1]
	for _, p := range ps[1:] {
		last := out[len(out)-1]
		if p.Path == last.Path && p.Rule == last.Rule && p.Message == last.Message {
			continue
		}
		out = append(out, p)
	}
	return out
}
