package gpconnect

import (
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Reference target types (R4) of the common elements.
var (
	performers = []string{"Practitioner", "Organization"}
	people     = []string{"Practitioner"}
)

// --- AllergyIntolerance -------------------------------------------------------

func (m *mapper) allergy(r obj) obj {
	c := conceptOf(r["code"])
	if c == nil {
		return nil // an uncoded allergy is free text
	}
	a := obj{"code": c, "patient": m.subject()}
	verif := code(r["verificationStatus"], "unconfirmed", "confirmed", "refuted", "entered-in-error")
	if verif != "" {
		a["verificationStatus"] = concept{Coding: []coding{{System: systemAllergyVerif, Code: verif}}}
	}
	clin := code(r["clinicalStatus"], "active", "inactive", "resolved")
	if clin == "" && verif != "entered-in-error" {
		// R4 requires a clinical status (ait-1) that STU3 left optional: an
		// allergy without one is resolved when it carries an end or sits in
		// the ended-allergies List, else active (it is on the allergy list).
		clin = "active"
		if m.ended[key(r)] || hasExt(r, "AllergyIntoleranceEnd") {
			clin = "resolved"
		}
	}
	if clin != "" && verif != "entered-in-error" {
		cs := obj{"coding": []coding{{System: systemAllergyClinical, Code: clin}}}
		// A resolved allergy keeps its end date (UK Core AllergyIntoleranceEnd
		// on clinicalStatus); the reason ended is free text and is not read.
		for _, e := range list(r["extension"]) {
			eo, _ := e.(obj)
			if !strings.Contains(str(eo["url"]), "AllergyIntoleranceEnd") {
				continue
			}
			for _, s := range list(eo["extension"]) {
				so, _ := s.(obj)
				if str(so["url"]) == "endDate" {
					if d := dateTime(so["valueDateTime"]); d != "" {
						cs["extension"] = []obj{{"url": extAllergyEnd, "extension": []obj{{"url": "endDate", "valueDateTime": d}}}}
					}
				}
			}
		}
		a["clinicalStatus"] = cs
	}
	set(a, "type", code(r["type"], "allergy", "intolerance"))
	var cats []string
	for _, x := range list(r["category"]) {
		if c := code(x, "food", "medication", "environment", "biologic"); c != "" {
			cats = append(cats, c)
		}
	}
	set(a, "category", cats)
	set(a, "criticality", code(r["criticality"], "low", "high", "unable-to-assess"))
	set(a, "onsetDateTime", dateTime(r["onsetDateTime"]))
	set(a, "onsetPeriod", period(r["onsetPeriod"]))
	set(a, "recordedDate", dateTime(r["assertedDate"]))
	set(a, "recorder", m.ref(r["recorder"], people...))
	set(a, "asserter", m.ref(r["asserter"], people...))
	set(a, "lastOccurrence", dateTime(r["lastOccurrence"]))
	for _, e := range list(r["extension"]) {
		eo, _ := e.(obj)
		if strings.HasSuffix(str(eo["url"]), "encounter-associatedEncounter") {
			set(a, "encounter", m.ref(eo["valueReference"], "Encounter"))
		}
	}
	var reactions []obj
	for _, x := range list(r["reaction"]) {
		xo, _ := x.(obj)
		man := concepts(xo["manifestation"])
		if len(man) == 0 {
			continue // manifestation is required; a described one is free text
		}
		re := obj{"manifestation": man}
		set(re, "substance", conceptOf(xo["substance"]))
		set(re, "onset", dateTime(xo["onset"]))
		set(re, "severity", code(xo["severity"], "mild", "moderate", "severe"))
		set(re, "exposureRoute", conceptOf(xo["exposureRoute"]))
		reactions = append(reactions, re)
	}
	set(a, "reaction", reactions)
	return a
}

// --- Condition (problem header) ----------------------------------------------------

func (m *mapper) condition(r obj) obj {
	c := obj{"subject": m.subject()}
	set(c, "code", conceptOf(r["code"]))
	verif := code(r["verificationStatus"], "provisional", "differential", "confirmed", "refuted", "entered-in-error", "unknown")
	if verif == "unknown" {
		verif = "" // STU3's unknown has no R4 equivalent: leave it out
	}
	if verif != "" {
		c["verificationStatus"] = concept{Coding: []coding{{System: systemConditionVerif, Code: verif}}}
	}
	if clin := code(r["clinicalStatus"], "active", "recurrence", "inactive", "remission", "resolved"); clin != "" && verif != "entered-in-error" {
		c["clinicalStatus"] = concept{Coding: []coding{{System: systemConditionClinical, Code: clin}}}
	}
	cats := concepts(r["category"])
	if len(cats) == 0 { // a GP Connect Condition is a problem header
		cats = []*concept{{Coding: []coding{{System: fhir.ConditionCategorySystem, Code: "problem-list-item", Display: "Problem List Item"}}}}
	}
	c["category"] = cats
	set(c, "severity", conceptOf(r["severity"]))
	set(c, "bodySite", concepts(r["bodySite"]))
	set(c, "encounter", m.ref(r["context"], "Encounter"))
	set(c, "onsetDateTime", dateTime(r["onsetDateTime"]))
	set(c, "onsetPeriod", period(r["onsetPeriod"]))
	if _, ok := c["clinicalStatus"]; ok && c["clinicalStatus"].(concept).Coding[0].Code != "active" {
		// con-4: an abatement only with a clinical status that is not active
		set(c, "abatementDateTime", dateTime(r["abatementDateTime"]))
		set(c, "abatementPeriod", period(r["abatementPeriod"]))
	}
	set(c, "recordedDate", dateTime(r["assertedDate"]))
	set(c, "asserter", m.ref(r["asserter"], people...))
	set(c, "recorder", m.ref(r["asserter"], people...))
	var exts []obj
	for _, e := range list(r["extension"]) {
		eo, _ := e.(obj)
		u := str(eo["url"])
		switch {
		case strings.Contains(u, "ProblemSignificance"):
			if s := code(eo["valueCode"], "major", "minor"); s != "" {
				exts = append(exts, obj{"url": extProblemSignificance, "valueCode": s})
			}
		case strings.Contains(u, "ActualProblem"):
			if ref := m.ref(eo["valueReference"], "Observation", "AllergyIntolerance", "MedicationStatement", "MedicationRequest", "Immunization", "Condition", "Procedure", "DiagnosticReport"); ref != nil {
				exts = append(exts, obj{"url": extActualProblem, "valueReference": ref})
			}
		case strings.Contains(u, "RelatedClinicalContent"):
			if ref := m.ref(eo["valueReference"], "Observation", "AllergyIntolerance", "MedicationStatement", "MedicationRequest", "Immunization",
				"Encounter", "DiagnosticReport", "ServiceRequest", "Condition", "Specimen"); ref != nil {
				exts = append(exts, obj{"url": extRelatedClinicalContent, "valueReference": ref})
			}
		case strings.Contains(u, "RelatedProblemHeader"):
			rel := obj{}
			var sub []obj
			for _, s := range list(eo["extension"]) {
				so, _ := s.(obj)
				switch str(so["url"]) {
				case "type":
					if t := code(so["valueCode"], "parent", "child", "sibling"); t != "" {
						sub = append(sub, obj{"url": "type", "valueCode": t})
					}
				case "target":
					if ref := m.ref(so["valueReference"], "Condition"); ref != nil {
						rel["target"] = ref
						sub = append(sub, obj{"url": "target", "valueReference": ref})
					}
				}
			}
			if rel["target"] != nil {
				exts = append(exts, obj{"url": extRelatedProblemHeader, "extension": sub})
			}
		}
	}
	set(c, "extension", exts)
	if c["code"] == nil {
		// A problem header without its own code takes its actual problem's.
		for _, e := range list(r["extension"]) {
			eo, _ := e.(obj)
			if strings.Contains(str(eo["url"]), "ActualProblem") {
				if tgt, _ := m.b.resolve(eo["valueReference"]); tgt != nil {
					set(c, "code", conceptOf(firstOf(tgt, "code", "vaccineCode")))
				}
			}
		}
	}
	if c["code"] == nil {
		return nil
	}
	return c
}

func hasExt(r obj, name string) bool {
	for _, e := range list(r["extension"]) {
		eo, _ := e.(obj)
		if strings.Contains(str(eo["url"]), name) {
			return true
		}
	}
	return false
}

func firstOf(r obj, keys ...string) any {
	for _, k := range keys {
		if v, ok := r[k]; ok {
			return v
		}
	}
	return nil
}

// --- Encounter ---------------------------------------------------------------------

// Encounter classes by the (coded) consultation type: home visits and
// remote consultations, in SNOMED CT and Read v2; any other coded GP
// consultation is ambulatory.
var (
	homeVisitTypes = codeSet(fhir.SNOMED, "439708006", "185460008", "185461007", "185462000", "185463005", "185464004", "185465003",
		"25651000000106", "24631000000103", "25761000000104", "25751000000102",
		fhir.ReadV2, "8B6..00", "9N1C.00", "9N1G.00")
	remoteTypes = codeSet(fhir.SNOMED, "185317003", "386472008", "386473003", "401267002", "325911000000101", "1092811000000108",
		"24671000000101", "25681000000103",
		fhir.ReadV2, "8H9..00", "9N31.00", "9N3A.00")
)

func (m *mapper) encounter(r obj) obj {
	e := obj{"subject": m.subject()}
	status := code(r["status"], "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown")
	if status == "" {
		status = "unknown"
	}
	e["status"] = status
	types := concepts(r["type"])
	set(e, "type", types)
	// R4 requires a class. Only a coded type can say what kind of
	// encounter it was; an uncoded one (EMIS sends the type as text) is
	// of unknown class.
	class := coding{System: systemNullFlavor, Code: "UNK", Display: "unknown"}
	if len(types) > 0 {
		class = coding{System: systemActCode, Code: "AMB", Display: "ambulatory"}
		for _, t := range types {
			switch {
			case hasCoding(t.Coding, homeVisitTypes):
				class = coding{System: systemActCode, Code: "HH", Display: "home health"}
			case hasCoding(t.Coding, remoteTypes):
				class = coding{System: systemActCode, Code: "VR", Display: "virtual"}
			}
		}
	}
	if c := codingOf(child(r, "class")); c != nil {
		class = *c
	}
	e["class"] = class
	var parts []obj
	for _, p := range list(r["participant"]) {
		po, _ := p.(obj)
		ind := m.ref(po["individual"], "Practitioner")
		if ind == nil {
			continue
		}
		pp := obj{"individual": ind}
		set(pp, "type", concepts(po["type"]))
		set(pp, "period", period(po["period"]))
		parts = append(parts, pp)
	}
	set(e, "participant", parts)
	set(e, "period", period(r["period"]))
	if q := quantity(r["length"]); q != nil {
		delete(q, "comparator")
		e["length"] = q
	}
	set(e, "reasonCode", concepts(r["reason"]))
	set(e, "serviceProvider", m.ref(r["serviceProvider"], "Organization"))
	set(e, "partOf", m.ref(r["partOf"], "Encounter"))
	return e
}

// --- Observation --------------------------------------------------------------------

// Blood pressure: the codes of the systolic and diastolic components of a
// reading, in SNOMED CT, Read v2 and LOINC, as GP Connect's guidance on
// uncategorised data lists them (GP systems record lying, sitting,
// standing, home and ambulatory readings under their own codes). Whatever
// its header code, an Observation whose two components are one systolic
// and one diastolic pressure is a blood-pressure reading.
var (
	systolicCodes = codeSet(
		fhir.SNOMED, "72313002", "271649006", "163030003", "407554009", "400974009", "407556006", "198081000000101",
		"314438006", "314439003", "314440001", "314464000", "399304008", "1091791000000100",
		fhir.ReadV2, "2469.00", "246c.00", "246N.00", "246Q.00", "246W.00", "246g.00", "246Y.00", "246S.00",
		fhir.LOINC, "8480-6",
	)
	diastolicCodes = codeSet(
		fhir.SNOMED, "1091811000000102", "271650006", "163031004", "400975005", "407555005", "407557002", "198091000000104",
		"314451001", "314452008", "314453003", "314465004", "716632005", "174255007",
		fhir.ReadV2, "246A.00", "246d.00", "246P.00", "246R.00", "246X.00", "246f.00", "246Z.00", "246T.00",
		fhir.LOINC, "8462-4",
	)
	// Narrative entries: a comment note carries its content as free text.
	narrativeCodes = codeSet(fhir.SNOMED, "37331000000100")
)

const (
	snomedBPPanel   = "75367002"
	snomedSystolic  = "271649006"
	snomedDiastolic = "271650006"
)

// observation maps an Observation; a blood-pressure reading with both
// values becomes a UK Core BP Observation.
func (m *mapper) observation(r obj) (obj, string) {
	c := conceptOf(r["code"])
	if c == nil {
		return nil, ""
	}
	o := obj{"code": c, "subject": m.subject()}
	status := code(r["status"], "registered", "preliminary", "final", "amended", "cancelled", "entered-in-error", "unknown", "corrected")
	if status == "" {
		status = "unknown"
	}
	o["status"] = status
	cats := concepts(r["category"])
	if len(cats) == 0 && m.labs[key(r)] {
		cats = []*concept{labCategory()}
	}
	set(o, "category", cats)
	set(o, "encounter", m.ref(r["context"], "Encounter"))
	set(o, "effectiveDateTime", dateTime(r["effectiveDateTime"]))
	set(o, "effectivePeriod", period(r["effectivePeriod"]))
	issued(r, o)
	set(o, "performer", m.refs(r["performer"], performers...))
	observationValue(r, o)
	set(o, "interpretation", concepts(r["interpretation"]))
	set(o, "bodySite", conceptOf(r["bodySite"]))
	set(o, "method", conceptOf(r["method"]))
	set(o, "specimen", m.ref(r["specimen"], "Specimen"))
	set(o, "referenceRange", referenceRanges(r["referenceRange"]))
	var members, derived []obj
	self := obj{"reference": "Observation/" + m.cand[key(r)].id}
	for _, x := range list(r["related"]) {
		xo, _ := x.(obj)
		ref := m.ref(xo["target"], "Observation")
		if ref == nil || ref["reference"] == self["reference"] {
			continue // an Observation is not its own member or source
		}
		switch str(xo["type"]) {
		case "has-member":
			members = append(members, ref)
		case "":
			// An untyped relation of a test group or result a laboratory
			// report reaches is its membership (GP Connect fixes the type
			// to has-member there; some records leave it out).
			if m.labs[key(r)] {
				members = append(members, ref)
			}
		case "derived-from":
			derived = append(derived, ref)
		}
	}
	set(o, "hasMember", members)
	set(o, "derivedFrom", derived)
	var comps []obj
	for _, x := range list(r["component"]) {
		xo, _ := x.(obj)
		cc := conceptOf(xo["code"])
		if cc == nil {
			continue
		}
		comp := obj{"code": cc}
		observationValue(xo, comp)
		set(comp, "interpretation", concepts(xo["interpretation"]))
		set(comp, "referenceRange", referenceRanges(xo["referenceRange"]))
		comps = append(comps, comp)
	}
	set(o, "component", comps)
	if _, ok := o["valueQuantity"]; ok || o["valueCodeableConcept"] != nil {
		delete(o, "dataAbsentReason") // obs-6
	}
	if bp := m.bloodPressure(o, c); bp {
		return o, fhir.ProfileBloodPressure
	}
	return o, fhir.ProfileObservation
}

// issued maps an Observation's or DiagnosticReport's issued time. R4
// issued is an instant (a time with a zone); one the source gives only to
// the day (or with a time but no zone) keeps its day as the effective date
// when the source has no effective[x], and is otherwise left out (the
// entry stays: R4 issued is optional).
func issued(r, o obj) {
	if i := instant(r["issued"]); i != "" {
		o["issued"] = i
		return
	}
	if r["effectiveDateTime"] != nil || r["effectivePeriod"] != nil || o["effectiveDateTime"] != nil || o["effectivePeriod"] != nil {
		return
	}
	set(o, "effectiveDateTime", dateTime(r["issued"]))
}

func labCategory() *concept {
	return &concept{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "laboratory", Display: "Laboratory"}}}
}

// observationValue copies the coded and numeric value kinds and the data
// absent reason; string and attachment values are free text.
func observationValue(r, o obj) {
	switch {
	case r["valueQuantity"] != nil:
		set(o, "valueQuantity", quantity(r["valueQuantity"]))
	case r["valueCodeableConcept"] != nil:
		set(o, "valueCodeableConcept", conceptOf(r["valueCodeableConcept"]))
	case r["valueBoolean"] != nil:
		if b, ok := boolean(r["valueBoolean"]); ok {
			o["valueBoolean"] = b
		}
	case r["valueRange"] != nil:
		rg, _ := r["valueRange"].(obj)
		out := obj{}
		set(out, "low", simpleQuantity(rg["low"]))
		set(out, "high", simpleQuantity(rg["high"]))
		set(o, "valueRange", out)
	case r["valueRatio"] != nil:
		rt, _ := r["valueRatio"].(obj)
		out := obj{}
		set(out, "numerator", quantity(rt["numerator"]))
		set(out, "denominator", quantity(rt["denominator"]))
		set(o, "valueRatio", out)
	case r["valueDateTime"] != nil:
		set(o, "valueDateTime", dateTime(r["valueDateTime"]))
	case r["valuePeriod"] != nil:
		set(o, "valuePeriod", period(r["valuePeriod"]))
	}
	if _, has := o["valueQuantity"]; !has {
		set(o, "dataAbsentReason", conceptOf(r["dataAbsentReason"]))
	}
}

func referenceRanges(v any) []obj {
	var out []obj
	for _, x := range list(v) {
		xo, _ := x.(obj)
		rr := obj{}
		set(rr, "low", simpleQuantity(xo["low"]))
		set(rr, "high", simpleQuantity(xo["high"]))
		if len(rr) == 0 {
			continue // a text-only range is free text
		}
		set(rr, "type", conceptOf(xo["type"]))
		set(rr, "appliesTo", concepts(xo["appliesTo"]))
		out = append(out, rr)
	}
	return out
}

// bloodPressure reshapes o into the UK Core BP profile when it is a
// reading with exactly a systolic and a diastolic component, both with a
// value, a final status and an effective time: LOINC 85354-9 panel and
// 8480-6 / 8462-4 components are added to the original codings, values
// in mm[Hg]. It reports whether o was reshaped; any other reading keeps
// its shape under the base Observation profile.
func (m *mapper) bloodPressure(o obj, head *concept) bool {
	comps, _ := o["component"].([]obj)
	if len(comps) != 2 || o["status"] != "final" || o["valueQuantity"] != nil || o["valueCodeableConcept"] != nil || o["specimen"] != nil {
		return false
	}
	if o["effectiveDateTime"] == nil && o["effectivePeriod"] == nil {
		return false
	}
	var sys, dia obj
	for _, c := range comps {
		cc := c["code"].(*concept)
		switch {
		case hasCoding(cc.Coding, systolicCodes) && sys == nil:
			sys = c
		case hasCoding(cc.Coding, diastolicCodes) && dia == nil:
			dia = c
		}
	}
	if sys == nil || dia == nil || sys["valueQuantity"] == nil || dia["valueQuantity"] == nil {
		return false
	}
	for _, c := range []obj{sys, dia} {
		q := c["valueQuantity"].(obj)
		if u, _ := q["code"].(string); u != "" && u != "mm[Hg]" {
			return false // not a pressure in mmHg
		}
		q["unit"], q["system"], q["code"] = "millimeter of mercury", systemUCUM, "mm[Hg]"
		delete(c, "dataAbsentReason")
	}
	sys["code"] = &concept{Coding: append([]coding{
		{System: fhir.LOINC, Code: fhir.LOINCSystolic, Display: fhir.TextSystolicBP},
		{System: fhir.SNOMED, Code: snomedSystolic, Display: "Systolic blood pressure"},
	}, without(sys["code"].(*concept).Coding, snomedSystolic)...), Text: fhir.TextSystolicBP}
	dia["code"] = &concept{Coding: append([]coding{
		{System: fhir.LOINC, Code: fhir.LOINCDiastolic, Display: fhir.TextDiastolicBP},
		{System: fhir.SNOMED, Code: snomedDiastolic, Display: "Diastolic blood pressure"},
	}, without(dia["code"].(*concept).Coding, snomedDiastolic)...), Text: fhir.TextDiastolicBP}
	o["component"] = []obj{sys, dia}
	o["code"] = &concept{Coding: append([]coding{
		{System: fhir.LOINC, Code: fhir.LOINCBloodPressurePanel, Display: "Blood pressure panel with all children optional"},
		{System: fhir.SNOMED, Code: snomedBPPanel, Display: "Blood pressure"},
	}, without(head.Coding, snomedBPPanel)...)}
	o["category"] = []*concept{{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "vital-signs", Display: "Vital Signs"}}}}
	delete(o, "referenceRange") // not at panel level
	delete(o, "dataAbsentReason")
	delete(o, "hasMember")
	return true
}

// without drops LOINC codings (the profile's slice allows one) and the
// given SNOMED code (added first).
func without(cs []coding, snomed string) []coding {
	out := cs[:0:0]
	for _, c := range cs {
		if c.System == fhir.LOINC || (c.System == fhir.SNOMED && c.Code == snomed) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// labLinked marks the Observations a laboratory DiagnosticReport reaches
// (its results and, transitively, their members), so an uncategorised
// test result still carries category laboratory.
func (m *mapper) labLinked() map[string]bool {
	out := map[string]bool{}
	var mark func(v any, depth int)
	mark = func(v any, depth int) {
		tgt, k := m.b.resolve(v)
		if tgt == nil || str(tgt["resourceType"]) != "Observation" || out[k] || depth > 16 {
			return
		}
		out[k] = true
		for _, x := range list(tgt["related"]) {
			xo, _ := x.(obj)
			if t := str(xo["type"]); t == "has-member" || t == "" {
				mark(xo["target"], depth+1)
			}
		}
	}
	for _, r := range m.b.entries {
		if str(r["resourceType"]) != "DiagnosticReport" || imaging(r) {
			continue
		}
		for _, x := range list(r["result"]) {
			mark(x, 0)
		}
	}
	return out
}

// imaging reports whether a report's category is radiology or another
// non-laboratory diagnostic service.
func imaging(r obj) bool {
	for _, c := range codings(r["category"]) {
		if c.System == systemV20074 && (c.Code == "RAD" || c.Code == "RX" || c.Code == "CT" || c.Code == "NMR" || c.Code == "NMS" || c.Code == "RUS" || c.Code == "VUS" || c.Code == "OUS" || c.Code == "CUS" || c.Code == "EC" || c.Code == "CG" || c.Code == "EN") {
			return true
		}
	}
	return false
}

// --- DiagnosticReport, Specimen ------------------------------------------------------

func (m *mapper) diagnosticReport(r obj) obj {
	c := conceptOf(r["code"])
	if c == nil {
		return nil
	}
	d := obj{"code": c, "subject": m.subject()}
	status := code(r["status"], "registered", "partial", "preliminary", "final", "amended", "corrected", "appended", "cancelled", "entered-in-error", "unknown")
	if status == "" {
		status = "unknown"
	}
	d["status"] = status
	set(d, "category", concepts(r["category"]))
	set(d, "basedOn", m.refs(r["basedOn"], "ServiceRequest"))
	set(d, "encounter", m.ref(r["context"], "Encounter"))
	set(d, "effectiveDateTime", dateTime(r["effectiveDateTime"]))
	set(d, "effectivePeriod", period(r["effectivePeriod"]))
	issued(r, d)
	var perf []obj
	for _, p := range list(r["performer"]) {
		po, _ := p.(obj)
		actor := po["actor"]
		if actor == nil {
			actor = p
		}
		if ref := m.ref(actor, performers...); ref != nil {
			perf = append(perf, ref)
		}
	}
	set(d, "performer", perf)
	set(d, "specimen", m.refs(r["specimen"], "Specimen"))
	set(d, "result", m.refs(r["result"], "Observation"))
	set(d, "conclusionCode", concepts(r["codedDiagnosis"]))
	return d
}

func (m *mapper) specimen(r obj) obj {
	s := obj{"subject": m.subject()}
	set(s, "status", code(r["status"], "available", "unavailable", "unsatisfactory", "entered-in-error"))
	set(s, "type", conceptOf(r["type"]))
	set(s, "receivedTime", dateTime(r["receivedTime"]))
	set(s, "parent", m.refs(r["parent"], "Specimen"))
	if col := child(r, "collection"); col != nil {
		c := obj{}
		set(c, "collector", m.ref(col["collector"], people...))
		set(c, "collectedDateTime", dateTime(col["collectedDateTime"]))
		set(c, "collectedPeriod", period(col["collectedPeriod"]))
		set(c, "quantity", simpleQuantity(col["quantity"]))
		set(c, "method", conceptOf(col["method"]))
		set(c, "bodySite", conceptOf(col["bodySite"]))
		set(s, "collection", c)
	}
	return s
}

// --- Immunization ----------------------------------------------------------------------

func (m *mapper) immunization(r obj) obj {
	im := obj{"patient": m.subject()}
	var exts []obj
	var recorded string
	for _, e := range list(r["extension"]) {
		eo, _ := e.(obj)
		u := str(eo["url"])
		switch {
		case strings.Contains(u, "VaccinationProcedure"):
			if c := conceptOf(eo["valueCodeableConcept"]); c != nil {
				exts = append(exts, obj{"url": extVaccinationProcedure, "valueCodeableConcept": c})
			}
		case strings.Contains(u, "ParentPresent"):
			if b, ok := boolean(eo["valueBoolean"]); ok {
				exts = append(exts, obj{"url": extParentPresent, "valueBoolean": b})
			}
		case strings.Contains(u, "DateRecorded"):
			recorded = dateTime(eo["valueDateTime"])
		}
	}
	set(im, "extension", exts)
	vc := conceptOf(r["vaccineCode"])
	if vc == nil {
		if len(exts) == 0 {
			return nil // neither vaccine nor procedure is coded
		}
		vc = &concept{Coding: []coding{{System: systemNullFlavor, Code: "UNK", Display: "unknown"}}}
	}
	im["vaccineCode"] = vc
	status := code(r["status"], "completed", "entered-in-error")
	if ng, _ := boolean(r["notGiven"]); ng && status != "entered-in-error" {
		status = "not-done"
	}
	if status == "" {
		status = "completed"
	}
	im["status"] = status
	expl := child(r, "explanation")
	if status == "not-done" {
		if cs := concepts(expl["reasonNotGiven"]); len(cs) > 0 {
			im["statusReason"] = cs[0]
		}
	}
	set(im, "reasonCode", concepts(expl["reason"]))
	set(im, "encounter", m.ref(r["encounter"], "Encounter"))
	// R4 requires the occurrence; a source without a date says nothing of
	// when it was given, which the data-absent-reason extension records.
	if d := dateTime(r["date"]); d != "" {
		im["occurrenceDateTime"] = d
	} else {
		im["_occurrenceDateTime"] = obj{"extension": []obj{{"url": extDataAbsentReason, "valueCode": "unknown"}}}
	}
	set(im, "recorded", recorded)
	if b, ok := boolean(r["primarySource"]); ok {
		im["primarySource"] = b
	}
	set(im, "reportOrigin", conceptOf(r["reportOrigin"]))
	set(im, "manufacturer", m.ref(r["manufacturer"], "Organization"))
	set(im, "lotNumber", cleanDisplay(str(r["lotNumber"])))
	set(im, "expirationDate", date(r["expirationDate"]))
	set(im, "site", conceptOf(r["site"]))
	set(im, "route", conceptOf(r["route"]))
	set(im, "doseQuantity", simpleQuantity(r["doseQuantity"]))
	var perf []obj
	for _, p := range list(r["practitioner"]) {
		po, _ := p.(obj)
		actor := m.ref(po["actor"], performers...)
		if actor == nil {
			continue
		}
		pf := obj{"actor": actor}
		set(pf, "function", conceptOf(po["role"]))
		perf = append(perf, pf)
	}
	set(im, "performer", perf)
	var protocols []obj
	for _, p := range list(r["vaccinationProtocol"]) {
		po, _ := p.(obj)
		n, ok := integer(po["doseSequence"], 1)
		if !ok {
			continue
		}
		pa := obj{"doseNumberPositiveInt": n}
		set(pa, "targetDisease", concepts(po["targetDisease"]))
		if s, ok := integer(po["seriesDoses"], 1); ok {
			pa["seriesDosesPositiveInt"] = s
		}
		protocols = append(protocols, pa)
	}
	set(im, "protocolApplied", protocols)
	return im
}

// --- ServiceRequest: referrals and diary entries -----------------------------------------

var requestStatus = map[string]string{
	"draft": "draft", "active": "active", "suspended": "on-hold", "cancelled": "revoked",
	"completed": "completed", "entered-in-error": "entered-in-error", "unknown": "unknown",
}

// referralCategory is the ServiceRequest category of a referral.
var referralCategory = &concept{Coding: []coding{{System: fhir.SNOMED, Code: "3457005", Display: "Patient referral"}}}

func (m *mapper) referral(r obj) obj {
	s := m.request(r, "order")
	s["category"] = []*concept{referralCategory}
	if sr := concepts(r["serviceRequested"]); len(sr) > 0 {
		s["code"] = sr[0]
	} else if t := conceptOf(r["type"]); t != nil {
		s["code"] = t
	}
	set(s, "reasonCode", concepts(r["reasonCode"]))
	set(s, "reasonReference", m.refs(r["reasonReference"], "Condition", "Observation", "DiagnosticReport"))
	set(s, "performer", m.refs(r["recipient"], "Practitioner", "Organization"))
	if sp := conceptOf(r["specialty"]); sp != nil {
		s["performerType"] = sp
	}
	set(s, "supportingInfo", m.refs(r["supportingInfo"], "Observation", "Condition", "AllergyIntolerance", "MedicationStatement",
		"MedicationRequest", "Immunization", "DiagnosticReport", "Encounter"))
	return s
}

// Test request categories (SNOMED CT, the R4 servicerequest-category
// codes UK Core's example binding names).
const (
	snomedLabProcedure = "108252007"
	snomedImaging      = "363679005"
)

var (
	labProcedureCategory = &concept{Coding: []coding{{System: fhir.SNOMED, Code: snomedLabProcedure, Display: "Laboratory procedure"}}}
	imagingCategory      = &concept{Coding: []coding{{System: fhir.SNOMED, Code: snomedImaging, Display: "Imaging"}}}
)

// orderIntents are the STU3 request intents of an order (GP Connect sends
// a test request with intent order, a diary entry with intent plan).
var orderIntents = map[string]bool{"order": true, "original-order": true, "reflex-order": true, "filler-order": true, "instance-order": true}

// testRequest says whether a ProcedureRequest is a test request rather
// than a diary entry, and whether it asks for imaging: a DiagnosticReport
// is based on it, its intent is an order, or its category is a laboratory
// procedure or imaging. A test request a laboratory report (or no report)
// is based on is a laboratory procedure.
func (m *mapper) testRequest(r obj) (test, img bool) {
	rep, reported := m.requested[key(r)]
	var cats []coding // STU3 ProcedureRequest.category is a list
	for _, c := range concepts(r["category"]) {
		cats = append(cats, c.Coding...)
	}
	img = (reported && rep) || hasCoding(cats, map[string]bool{fhir.SNOMED + "|" + snomedImaging: true})
	test = reported || orderIntents[str(r["intent"])] || img ||
		hasCoding(cats, map[string]bool{fhir.SNOMED + "|" + snomedLabProcedure: true})
	return test, img
}

// requestedBy maps the ProcedureRequests DiagnosticReports are based on to
// whether an imaging report is among them.
func (m *mapper) requestedBy() map[string]bool {
	out := map[string]bool{}
	for _, r := range m.b.entries {
		if str(r["resourceType"]) != "DiagnosticReport" {
			continue
		}
		for _, x := range list(r["basedOn"]) {
			if tgt, k := m.b.resolve(x); tgt != nil && str(tgt["resourceType"]) == "ProcedureRequest" {
				out[k] = out[k] || imaging(r)
			}
		}
	}
	return out
}

// procedureRequest maps a ProcedureRequest: a test request or a diary
// entry, both ServiceRequests (uncoded, each is free text and dropped).
func (m *mapper) procedureRequest(r obj) obj {
	if test, img := m.testRequest(r); test {
		return m.testOrder(r, img)
	}
	return m.diaryEntry(r)
}

func (m *mapper) diaryEntry(r obj) obj {
	s := m.request(r, "plan")
	c := conceptOf(r["code"])
	if c == nil {
		return nil // an uncoded plan is free text
	}
	s["code"] = c
	set(s, "reasonCode", concepts(r["reasonCode"]))
	set(s, "performer", m.refs(r["performer"], "Practitioner", "Organization"))
	return s
}

// testOrder maps a test request: category laboratory procedure (imaging
// when it asks for imaging) before the source's coded categories, the
// tests asked for, reasons, performer, specimens and supporting entries;
// notes are free text and stay behind.
func (m *mapper) testOrder(r obj, img bool) obj {
	s := m.request(r, "order")
	c := conceptOf(r["code"])
	if c == nil {
		return nil // "No code available": the request is free text
	}
	s["code"] = c
	cat := labProcedureCategory
	if img {
		cat = imagingCategory
	}
	cats := []*concept{cat}
	for _, sc := range concepts(r["category"]) {
		if !hasCoding(sc.Coding, map[string]bool{fhir.SNOMED + "|" + cat.Coding[0].Code: true}) {
			cats = append(cats, sc)
		}
	}
	s["category"] = cats
	set(s, "reasonCode", concepts(r["reasonCode"]))
	set(s, "reasonReference", m.refs(r["reasonReference"], "Condition", "Observation", "DiagnosticReport"))
	set(s, "performer", m.refs(r["performer"], "Practitioner", "Organization"))
	set(s, "specimen", m.refs(r["specimen"], "Specimen"))
	set(s, "supportingInfo", m.refs(r["supportingInfo"], "Observation", "Condition", "AllergyIntolerance", "MedicationStatement",
		"MedicationRequest", "Immunization", "DiagnosticReport", "Encounter"))
	return s
}

// request maps what ReferralRequest and ProcedureRequest share.
func (m *mapper) request(r obj, defIntent string) obj {
	s := obj{"subject": m.subject()}
	status := requestStatus[str(r["status"])]
	if status == "" {
		status = "unknown"
	}
	s["status"] = status
	intent := code(r["intent"], "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	if intent == "" {
		intent = defIntent
	}
	s["intent"] = intent
	set(s, "priority", code(r["priority"], "routine", "urgent", "asap", "stat"))
	set(s, "encounter", m.ref(r["context"], "Encounter"))
	set(s, "occurrenceDateTime", dateTime(r["occurrenceDateTime"]))
	set(s, "occurrencePeriod", period(r["occurrencePeriod"]))
	set(s, "authoredOn", dateTime(r["authoredOn"]))
	set(s, "basedOn", m.refs(r["basedOn"], "ServiceRequest"))
	set(s, "replaces", m.refs(r["replaces"], "ServiceRequest"))
	if rq := child(r, "requester"); rq != nil {
		agent := rq["agent"]
		if agent == nil && rq["reference"] != nil {
			agent = rq // a plain Reference, as some test requests give it
		}
		set(s, "requester", m.ref(agent, "Practitioner", "Organization"))
	}
	return s
}
