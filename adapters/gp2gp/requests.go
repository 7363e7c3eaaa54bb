package gp2gp

import (
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

var priorities = map[string]string{
	"394848005": "routine", // Normal
	"394849002": "urgent",  // High
	"88694003":  "stat",    // Immediate
}

// selfReferral reports whether a RequestStatement is a self referral
// (code/qualifier/value @code "SelfReferral"): GP Connect and NHS Digital's
// translator record those as an Observation, not a referral.
func selfReferral(s *node) bool {
	for _, q := range s.child("code").children("qualifier") {
		if strings.EqualFold(q.child("value").attr("code"), "SelfReferral") {
			return true
		}
	}
	return false
}

// request maps a RequestStatement (a referral) to a ServiceRequest (intent
// order, category referral). A self referral is an Observation. A referral
// whose code has no SNOMED CT gets the transfer-degraded referral concept;
// one without any code is served with that concept alone (the referral, its
// dates and priority are what is coded about it).
func (m *mapper) request(s *node, sc scope) {
	id := s.id()
	if id == "" {
		m.uncoded++
		return
	}
	if selfReferral(s) && len(codings(s.child("code"))) > 0 {
		m.observation(s, sc)
		return
	}
	local := localID(id)
	status := "unknown"
	switch strings.ToUpper(s.child("statusCode").attr("code")) {
	case "COMPLETE":
		status = "completed"
	case "ACTIVE":
		status = "active"
	case "ABORTED", "CANCELLED":
		status = "revoked"
	case "NULLIFIED":
		status = "entered-in-error"
	}
	r := obj{
		"status":   status,
		"intent":   "order",
		"category": []concept{{Coding: []coding{{System: fhir.SNOMED, Code: snomedReferral, Display: "Patient referral"}}}},
		"code":     concept{Coding: withSNOMED(codings(s.child("code")), degradedReferral)},
		"subject":  m.subject(),
	}
	if p, ok := priorities[s.child("priorityCode").attr("code")]; ok {
		r["priority"] = p
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	if t := tsOf(s.child("availabilityTime")); t.ok() {
		r["authoredOn"] = t.Date
	} else if t := m.recorded(sc.comp); t.ok() {
		r["authoredOn"] = t.Date
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["requester"] = p
	}
	if m.emit("ServiceRequest", local, r, "", sc.conf) {
		m.refs[id] = "ServiceRequest/" + m.fullID(local)
	}
}

// plan maps a PlanStatement (a recall, review or follow-up) to a UK Core
// ServiceRequest with intent plan, as NHS Digital's translator makes a plan
// request of it: code (plus the transfer-degraded plan concept where there
// is no SNOMED CT; alone for an uncoded plan), occurrence = when it is due
// (effectiveTime), authoredOn = when it was recorded. A PlanStatement whose
// code is configured as a risk or warning (Options.FlagCodes) is a Flag.
func (m *mapper) plan(s *node, sc scope) {
	code := codings(s.child("code"))
	if len(code) > 0 && inSet(code, m.opt.Flags) {
		m.flag(s, sc, code)
		return
	}
	id := s.id()
	if id == "" {
		m.uncoded++
		return
	}
	local := localID(id)
	status := "active"
	switch strings.ToUpper(s.child("statusCode").attr("code")) {
	case "ABORTED", "CANCELLED":
		status = "revoked"
	case "NULLIFIED":
		status = "entered-in-error"
	}
	r := obj{
		"status":  status,
		"intent":  "plan",
		"code":    concept{Coding: withSNOMED(code, degradedPlan)},
		"subject": m.subject(),
	}
	eff := ivlOf(s.child("effectiveTime"))
	switch {
	case eff.Center.ok():
		r["occurrenceDateTime"] = eff.Center.Date
	case eff.Low.ok() || eff.High.ok():
		if p := period(eff.Low, eff.High); p != nil {
			r["occurrencePeriod"] = p
		}
	}
	if t := tsOf(s.child("availabilityTime")); t.ok() {
		r["authoredOn"] = t.Date
	} else if t := m.recorded(sc.comp); t.ok() {
		r["authoredOn"] = t.Date
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["requester"] = p
	}
	if m.emit("ServiceRequest", local, r, "", sc.conf) {
		m.refs[id] = "ServiceRequest/" + m.fullID(local)
	}
}

func (m *mapper) flag(s *node, sc scope, code []coding) {
	id := s.id()
	if id == "" {
		m.uncoded++
		return
	}
	local := localID(id)
	status := "active"
	if strings.EqualFold(s.child("statusCode").attr("code"), "COMPLETE") && ivlOf(s.child("effectiveTime")).High.ok() {
		status = "inactive"
	}
	r := obj{
		"status":   status,
		"category": []concept{{Coding: []coding{{System: systemFlagCategory, Code: "clinical", Display: "Clinical"}}}},
		"code":     concept{Coding: code},
		"subject":  m.subject(),
	}
	eff := ivlOf(s.child("effectiveTime"))
	start := eff.start()
	if !start.ok() {
		start = tsOf(s.child("availabilityTime"))
	}
	if p := period(start, eff.High); p != nil {
		r["period"] = p
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	if p := m.recorder(sc.comp); p != nil {
		r["author"] = p
	}
	if m.emit("Flag", local, r, "", sc.conf) {
		m.refs[id] = "Flag/" + m.fullID(local)
	}
}
