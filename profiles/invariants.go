package profiles

import (
	"sort"
	"strconv"

	"github.com/gpgate/gpgate/fhir"
)

// invariants are the R4 constraints (snapshot constraint keys) of each
// type that a table row cannot say, written out in Go. They hold whatever
// the resource claims.
var invariants = map[string]func(c *checker, res obj, path string){
	"Condition":          conditionInvariants,
	"AllergyIntolerance": allergyInvariants,
	"Observation":        observationInvariants,
	"List":               listInvariants,
	"Organization":       organizationInvariants,
	"Patient":            patientInvariants,
	"Consent":            consentInvariants,
	"AuditEvent":         auditEventInvariants,
}

const (
	condVerSystem    = thoCS + "condition-ver-status"
	condClinSystem   = thoCS + "condition-clinical"
	allergyVerSystem = thoCS + "allergyintolerance-verification"
)

func has(o obj, k string) bool {
	v, ok := o[k]
	if !ok || v == nil {
		return false
	}
	if l, ok := v.([]any); ok {
		return len(l) > 0
	}
	return true
}

func hasChoice(o obj, prefix string) bool {
	return len(children(node{v: o}, prefix+"[x]")) > 0
}

func coded(o obj, k, system string, codes ...string) bool {
	for _, code := range codes {
		if conceptHas(system, code)(o[k]) {
			return true
		}
	}
	return false
}

func conditionInvariants(c *checker, r obj, path string) {
	eie := coded(r, "verificationStatus", condVerSystem, "entered-in-error")
	// con-3 (warning): a problem-list item has a clinicalStatus unless it is
	// entered-in-error.
	if !has(r, "clinicalStatus") && !eie {
		for _, cat := range asList(r["category"]) {
			if conceptHas(fhir.ConditionCategorySystem, "problem-list-item")(cat) {
				c.add(path+".clinicalStatus", "con-3", Warning, "", "a problem-list item should have a clinicalStatus unless it is entered-in-error")
				break
			}
		}
	}
	// con-4: abated means inactive, resolved or remission.
	if hasChoice(r, "abatement") && !coded(r, "clinicalStatus", condClinSystem, "inactive", "resolved", "remission") {
		c.add(path+".clinicalStatus", "con-4", Error, "", "an abated condition has clinicalStatus inactive, resolved or remission")
	}
	// con-5: no clinicalStatus when entered-in-error.
	if eie && has(r, "clinicalStatus") {
		c.add(path+".clinicalStatus", "con-5", Error, "", "clinicalStatus must be absent when verificationStatus is entered-in-error")
	}
}

func allergyInvariants(c *checker, r obj, path string) {
	eie := coded(r, "verificationStatus", allergyVerSystem, "entered-in-error")
	if !eie && !has(r, "clinicalStatus") {
		c.add(path+".clinicalStatus", "ait-1", Error, "", "clinicalStatus is required unless verificationStatus is entered-in-error")
	}
	if eie && has(r, "clinicalStatus") {
		c.add(path+".clinicalStatus", "ait-2", Error, "", "clinicalStatus must be absent when verificationStatus is entered-in-error")
	}
}

func observationInvariants(c *checker, r obj, path string) {
	hasValue := hasChoice(r, "value")
	if hasValue && has(r, "dataAbsentReason") {
		c.add(path+".dataAbsentReason", "obs-6", Error, "", "dataAbsentReason only when there is no value")
	}
	// obs-7: a value on the observation itself may not repeat a component's code.
	if hasValue {
		code, _ := r["code"].(obj)
		for i, comp := range asList(r["component"]) {
			cc, _ := comp.(obj)
			if sharesCoding(code, cc["code"]) {
				c.add(path+".component["+itoa(i)+"].code", "obs-7", Error, "", "an observation with a value may not have a component with its own code")
			}
		}
	}
	for i, rr := range asList(r["referenceRange"]) {
		o, _ := rr.(obj)
		if !has(o, "low") && !has(o, "high") && !has(o, "text") {
			c.add(path+".referenceRange["+itoa(i)+"]", "obs-3", Error, "", "a reference range has a low, a high or a text")
		}
	}
}

func sharesCoding(a obj, bv any) bool {
	b, _ := bv.(obj)
	for _, x := range asList(a["coding"]) {
		xo, _ := x.(obj)
		for _, y := range asList(b["coding"]) {
			yo, _ := y.(obj)
			if xo["system"] == yo["system"] && xo["code"] == yo["code"] && xo["code"] != nil {
				return true
			}
		}
	}
	return false
}

func listInvariants(c *checker, r obj, path string) {
	entries := asList(r["entry"])
	if has(r, "emptyReason") && len(entries) > 0 {
		c.add(path+".emptyReason", "lst-1", Error, "", "a list can only have an emptyReason if it is empty")
	}
	mode, _ := r["mode"].(string)
	for i, e := range entries {
		o, _ := e.(obj)
		if mode != "changes" && has(o, "deleted") {
			c.add(path+".entry["+itoa(i)+"].deleted", "lst-2", Error, "", "deleted is only for lists of mode changes")
		}
		if mode != "working" && has(o, "date") {
			c.add(path+".entry["+itoa(i)+"].date", "lst-3", Error, "", "an entry date is only for lists of mode working")
		}
	}
	if len(entries) == 0 && !has(r, "emptyReason") {
		c.add(path+".emptyReason", "gpgate-list-empty-reason", Warning, "", "an empty list says why it is empty (list-empty-reason)")
	}
}

func organizationInvariants(c *checker, r obj, path string) {
	if !has(r, "identifier") && !has(r, "name") {
		c.add(path, "org-1", Error, "", "an organization has at least a name or an identifier")
	}
	for _, k := range []string{"telecom", "address"} {
		for i, t := range asList(r[k]) {
			o, _ := t.(obj)
			if o["use"] == "home" {
				rule := "org-3"
				if k == "address" {
					rule = "org-2"
				}
				c.add(path+"."+k+"["+itoa(i)+"].use", rule, Error, "", "an organization's %s is never of use home", k)
			}
		}
	}
}

func patientInvariants(c *checker, r obj, path string) {
	for i, ct := range asList(r["contact"]) {
		o, _ := ct.(obj)
		if !has(o, "name") && !has(o, "telecom") && !has(o, "address") && !has(o, "organization") {
			c.add(path+".contact["+itoa(i)+"]", "pat-1", Error, "", "a contact has a name, telecom, address or organization")
		}
	}
}

func consentInvariants(c *checker, r obj, path string) {
	if !has(r, "policy") && !has(r, "policyRule") {
		c.add(path+".policyRule", "ppc-1", Error, "", "a consent has a policy or a policyRule")
	}
}

func auditEventInvariants(c *checker, r obj, path string) {
	for i, e := range asList(r["entity"]) {
		o, _ := e.(obj)
		if has(o, "name") && has(o, "query") {
			c.add(path+".entity["+itoa(i)+"]", "sev-1", Error, "", "an entity has a name or a query, not both")
		}
	}
}

// checkLab: ukcore-obs-lab-001 (warning) — a lab result has a value, a
// dataAbsentReason or a note; gpgate never sends a note.
func checkLab(c *checker, r obj, path string) {
	if !hasChoice(r, "value") && !has(r, "dataAbsentReason") && !has(r, "note") &&
		!has(r, "hasMember") && !has(r, "component") {
		c.add(path+".value[x]", "ukcore-obs-lab-001", Warning, fhir.ProfileObservationLab, "a lab result should have a value or a dataAbsentReason")
	}
}

// checkBloodPressure: the component slicing of the BP profile is closed;
// every component is the systolic or the diastolic one.
func checkBloodPressure(c *checker, r obj, path string) {
	for i, comp := range asList(r["component"]) {
		if !slices["component:SystolicBP"](comp) && !slices["component:DiastolicBP"](comp) {
			c.add(path+".component["+itoa(i)+"]", "Observation.component", Error, fhir.ProfileBloodPressure,
				"blood pressure components are closed: only systolic (LOINC %s) and diastolic (LOINC %s)", fhir.LOINCSystolic, fhir.LOINCDiastolic)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func itoa(i int) string { return strconv.Itoa(i) }

func sortedKeys(o obj) []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
