package gp2gp

import (
	"github.com/gpgate/gpgate/fhir"
)

// condition maps a LinkSet (a problem) to a Condition (problem-list-item).
//
//   - code: the named statement's code (conditionNamed/namedStatementRef),
//     with the transfer-degraded record entry concept beside a code that has
//     no SNOMED CT, or alone when the problem names nothing coded;
//   - the named statement keeps its own resource (an Observation, allergy,
//     medication...), referenced as the UK Core ActualProblem;
//   - clinicalStatus: active (394774009) or inactive (394775005); any other
//     LinkSet code (an unspecified problem) is served as active and the record
//     carries a STATUS_DEFAULTED issue naming the Condition;
//   - related statements (LinkSet/component/statementRef) become UK Core
//     RelatedClinicalContent references;
//   - NOPAT on the LinkSet, its composition or the named statement labels the
//     Condition confidential.
func (m *mapper) condition(ls *stmt) {
	s, comp := ls.n, ls.comp
	id := s.id()
	if id == "" {
		return
	}
	conf := ls.conf
	namedID := s.path("conditionNamed", "namedStatementRef", "id").attr("root")
	var named *stmt
	var code []coding
	if namedID != "" {
		if named = m.stmts[namedID]; named != nil {
			conf = conf || named.conf // the problem would reveal a confidential entry
			code = codings(named.n.child("code"))
			if len(code) == 0 && named.n.Name == "MedicationStatement" {
				code = codings(named.n.path("consumable", "manufacturedProduct", "manufacturedMaterial", "code"))
			}
		}
	}
	local := localID(id)
	lsCode := codings(s.child("code"))
	status := "active"
	switch {
	case hasCode(lsCode, fhir.SNOMED, snomedInactiveProblem):
		status = "inactive"
	case hasCode(lsCode, fhir.SNOMED, snomedActiveProblem):
	default:
		m.defaulted = append(m.defaulted, m.fullID(local))
	}
	significance := "minor"
	for _, q := range s.child("code").children("qualifier") {
		if q.child("name").attr("code") == snomedSignificant {
			significance = "major"
		}
	}
	r := obj{
		"clinicalStatus": concept{Coding: []coding{{System: systemConditionClinical, Code: status,
			Display: map[string]string{"active": "Active", "inactive": "Inactive"}[status]}}},
		"category": []concept{{Coding: []coding{{System: fhir.ConditionCategorySystem, Code: "problem-list-item", Display: "Problem List Item"}}}},
		"code":     concept{Coding: withSNOMED(code, degradedRecordEntry)},
		"subject":  m.subject(),
	}
	exts := []obj{{"url": extProblemSignificance, "valueCode": significance}}
	if named != nil {
		if ref, ok := m.refs[namedID]; ok {
			exts = append(exts, obj{"url": extActualProblem, "valueReference": obj{"reference": ref}})
		}
	}
	seen := map[string]bool{}
	for _, c := range s.children("component") {
		rid := c.path("statementRef", "id").attr("root")
		if rid == "" || rid == namedID || seen[rid] {
			continue
		}
		seen[rid] = true
		if ref, ok := m.refs[rid]; ok {
			exts = append(exts, obj{"url": extRelatedClinicalContent, "valueReference": obj{"reference": ref}})
		} else if tgt := m.stmts[rid]; tgt != nil && tgt.n.Name == "LinkSet" && rid != id {
			exts = append(exts, obj{"url": extRelatedClinicalContent, "valueReference": obj{"reference": "Condition/" + m.fullID(localID(rid))}})
		}
	}
	r["extension"] = exts
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	eff := ivlOf(s.child("effectiveTime"))
	onset := eff.start()
	if !onset.ok() {
		onset = tsOf(s.child("availabilityTime"))
	}
	if onset.ok() {
		r["onsetDateTime"] = onset.Date
	}
	if status == "inactive" && eff.High.ok() && (!onset.ok() || !eff.High.Time.Before(onset.Time)) {
		r["abatementDateTime"] = eff.High.Date
	}
	if rec := m.recorded(comp); rec.ok() {
		r["recordedDate"] = rec.Date
	}
	if p := m.recorder(comp); p != nil {
		r["recorder"] = p
	}
	if p := m.practitionerRef(comp.path("Participant2", "agentRef").id()); p != nil {
		r["asserter"] = p
	}
	if m.emit("Condition", local, r, "", conf) {
		m.refs[id] = "Condition/" + m.fullID(local)
	} else if status != "inactive" && len(m.defaulted) > 0 && m.defaulted[len(m.defaulted)-1] == m.fullID(local) {
		m.defaulted = m.defaulted[:len(m.defaulted)-1] // a duplicate id: not served, nothing defaulted
	}
}
