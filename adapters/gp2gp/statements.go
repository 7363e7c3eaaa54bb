package gp2gp

import (
	"strconv"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// statement kinds the index knows.
var statementNames = map[string]bool{
	"ObservationStatement": true, "CompoundStatement": true, "LinkSet": true, "MedicationStatement": true,
	"RequestStatement": true, "PlanStatement": true, "NarrativeStatement": true, "RegistrationStatement": true,
	"ehrSupplyAuthorise": true, "ehrSupplyPrescribe": true, "ehrSupplyDiscontinue": true,
}

// statement maps one statement of a composition (recursively for compound
// statements). Every kind of statement has a rule here; see doc.go.
func (m *mapper) statement(s *node, sc scope) {
	sc.conf = sc.conf || nopat(s)
	switch s.Name {
	case "ObservationStatement":
		m.observationStatement(s, sc)
	case "CompoundStatement":
		m.compound(s, sc)
	case "LinkSet":
		if st := m.stmts[s.id()]; st != nil && st.n == s {
			m.linksets = append(m.linksets, st)
		} else if s.id() == "" {
			m.uncoded++ // a problem with no identity cannot be linked: withheld, signalled
		}
	case "MedicationStatement":
		m.medicationStatement(s, sc)
	case "RequestStatement":
		m.request(s, sc)
	case "PlanStatement":
		m.plan(s, sc)
	case "NarrativeStatement":
		m.narrative(s)
	case "RegistrationStatement", "EhrEmpty":
		// Registration history is administrative, outside the dataset;
		// EhrEmpty says a composition has nothing in it.
	default:
		// An element of a kind the message model (RCMR_IN030000UK06/UK07)
		// does not have: not mapped, so withheld and signalled.
		if s.id() != "" || s.child("code") != nil {
			m.uncoded++
		}
	}
}

// narrative: free text is never shared. A NarrativeStatement that points at
// an external document is an attachment; any other is an uncoded entry.
// Both are withheld and signalled on the record.
func (m *mapper) narrative(s *node) {
	for _, r := range s.children("reference") {
		if r.child("referredToExternalDocument") != nil {
			m.attachments++
			return
		}
	}
	m.uncoded++
}

// observationStatement maps an ObservationStatement: an immunisation
// procedure (outside a laboratory report) to an Immunization, anything else
// coded to an Observation. An uncoded one is free text: withheld, signalled.
func (m *mapper) observationStatement(s *node, sc scope) {
	cs := codings(s.child("code"))
	if len(cs) == 0 || s.id() == "" {
		m.uncoded++
		return
	}
	if !sc.lab && immunisations.is(cs) && m.immunization(s, sc, cs) {
		return
	}
	m.observation(s, sc)
}

// compound maps a CompoundStatement by what it is: an allergy category, a
// blood-pressure triple, a laboratory report, a specimen inside one, a coded
// battery or cluster (a grouping Observation), or structure (topic,
// category, an uncoded container) whose statements are mapped in its place.
func (m *mapper) compound(s *node, sc scope) {
	code := codings(s.child("code"))
	class := strings.ToUpper(s.attr("classCode"))
	switch {
	case inSet(code, drugAllergyHeader) || inSet(code, nonDrugAllergyHeader):
		drug := inSet(code, drugAllergyHeader)
		for _, k := range s.children("component") {
			for _, c := range k.Kids {
				if c.Name == "ObservationStatement" {
					m.allergy(c, scope{comp: sc.comp, conf: sc.conf || nopat(c)}, drug)
				} else {
					m.statement(c, sc)
				}
			}
		}
		return
	case m.bloodPressure(s, sc):
		return
	case !sc.lab && class == "CLUSTER" && hasCodeAny(code, snomedLabReporting):
		m.report(s, sc)
		return
	case hasCode(code, fhir.SNOMED, snomedSpecimen):
		m.specimen(s, sc)
		return
	case class == "BATTERY" || class == "CLUSTER":
		m.group(s, sc)
		return
	}
	m.components(s, sc)
}

// components maps the statements inside s.
func (m *mapper) components(s *node, sc scope) {
	for _, k := range s.children("component") {
		for _, c := range k.Kids {
			m.statement(c, sc)
		}
	}
}

func hasCodeAny(cs []coding, code string) bool {
	for _, c := range cs {
		if c.Code == code {
			return true
		}
	}
	return false
}

// --- Observations --------------------------------------------------------------

var (
	categoryLaboratory = []concept{{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "laboratory", Display: "Laboratory"}}}}
	categoryVitalSigns = []concept{{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "vital-signs", Display: "Vital Signs"}}}}
)

// observationHead is what an Observation mapped from statement s (a result
// or a battery header) carries whatever it is: status, code, subject, the
// laboratory category inside a report, encounter, dates, performer and
// specimen of its scope.
func (m *mapper) observationHead(s *node, sc scope, code *concept) obj {
	r := obj{"status": "final", "code": code, "subject": m.subject()}
	if sc.lab {
		r["category"] = categoryLaboratory
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if is := m.issued(sc.comp); is != "" {
		r["issued"] = is
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["performer"] = []obj{p}
	}
	if sc.specimen != "" {
		r["specimen"] = obj{"reference": sc.specimen}
	}
	return r
}

// observation maps a coded ObservationStatement to an Observation (a
// laboratory result inside a report, with its specimen).
func (m *mapper) observation(s *node, sc scope) string {
	id := s.id()
	code := conceptWith(s.child("code"), degradedRecordEntry)
	if code == nil || id == "" {
		m.uncoded++
		return ""
	}
	local := localID(id)
	r := m.observationHead(s, sc, code)
	observationBody(s, r)
	if !m.emit("Observation", local, r, "", sc.conf) {
		return ""
	}
	m.refs[id] = "Observation/" + m.fullID(local)
	return local
}

// observationBody fills the parts an Observation and a BP component share:
// value, interpretation, reference ranges. It reports whether a value was set.
func observationBody(s *node, r obj) bool {
	hasValue := false
	if v := s.child("value"); v != nil && v.attr("nullFlavor") == "" {
		switch typ := valueType(v); typ {
		case "PQ", "IVL_PQ", "IVLPQ":
			if q := quantity(v); q != nil {
				r["valueQuantity"] = q
				hasValue = true
			}
		case "CD", "CV", "CE", "CO":
			if c := conceptOf(v); c != nil {
				r["valueCodeableConcept"] = c
				hasValue = true
			}
		case "INT":
			if n, err := strconv.ParseInt(strings.TrimSpace(v.attr("value")), 10, 32); err == nil {
				r["valueInteger"] = n
				hasValue = true
			}
		case "BL":
			if b, err := strconv.ParseBool(v.attr("value")); err == nil {
				r["valueBoolean"] = b
				hasValue = true
			}
		}
		// ST/ED values are free text: never shared.
	}
	if iv := interpretation(s.child("interpretationCode")); iv != nil {
		r["interpretation"] = []concept{{Coding: iv}}
	}
	var ranges []obj
	for _, rr := range s.children("referenceRange") {
		v := rr.path("referenceInterpretationRange", "value")
		if v == nil {
			continue
		}
		rg := obj{}
		for _, k := range []string{"low", "high"} {
			if x := v.child(k); x != nil {
				if n, ok := number(x.attr("value")); ok {
					q := obj{"value": n}
					if u := unit(x); u != "" {
						q["unit"] = u
					}
					rg[k] = q
				}
			}
		}
		if len(rg) > 0 {
			ranges = append(ranges, rg)
		}
	}
	if len(ranges) > 0 {
		r["referenceRange"] = ranges
	}
	return hasValue
}

func valueType(v *node) string {
	for _, a := range v.Attr {
		if a.Name.Local == "type" {
			t := a.Value
			if i := strings.IndexByte(t, ':'); i >= 0 {
				t = t[i+1:]
			}
			return strings.ToUpper(t)
		}
	}
	if v.attr("code") != "" {
		return "CD"
	}
	if v.attr("value") != "" {
		return "PQ"
	}
	return ""
}

// unit is the PQ unit unless it is the unity "1", else the unit the
// translation names (EMIS puts the unit there).
func unit(q *node) string {
	u := strings.TrimSpace(q.attr("unit"))
	if u != "" && u != "1" {
		return cleanDisplay(u)
	}
	if t := q.child("translation"); t != nil {
		if ot := t.child("originalText"); ot != nil && ot.Text != "" && len(ot.Text) <= 64 {
			return cleanDisplay(ot.Text)
		}
	}
	return ""
}

// quantity maps PQ or IVL_PQ to a Quantity (an interval becomes a
// comparator on its bound).
func quantity(v *node) obj {
	q := obj{}
	if n, ok := number(v.attr("value")); ok {
		q["value"] = n
		if u := unit(v); u != "" {
			q["unit"] = u
			if u2 := strings.TrimSpace(v.attr("unit")); u2 != "" && u2 != "1" {
				q["system"], q["code"] = systemUCUM, u2
			}
		}
		return q
	}
	for _, b := range []struct{ el, incl, excl string }{{"high", "<=", "<"}, {"low", ">=", ">"}} {
		x := v.child(b.el)
		if x == nil {
			continue
		}
		if n, ok := number(x.attr("value")); ok {
			q["value"] = n
			q["comparator"] = b.incl
			if x.attr("inclusive") == "false" {
				q["comparator"] = b.excl
			}
			if u := unit(x); u != "" {
				q["unit"] = u
			}
			return q
		}
	}
	return nil
}

func (m *mapper) effective(s *node, r obj) {
	eff := ivlOf(s.child("effectiveTime"))
	switch {
	case eff.Center.ok():
		r["effectiveDateTime"] = eff.Center.Date
	case eff.Low.ok() && eff.High.ok():
		if p := period(eff.Low, eff.High); p != nil {
			r["effectivePeriod"] = p
		}
	case eff.Low.ok():
		r["effectiveDateTime"] = eff.Low.Date
	case eff.High.ok():
		r["effectivePeriod"] = obj{"end": eff.High.Date}
	default:
		if t := tsOf(s.child("availabilityTime")); t.ok() {
			r["effectiveDateTime"] = t.Date
		}
	}
}

// bloodPressure maps a BP triple: a compound statement whose header code is
// a blood-pressure reading and which holds exactly one systolic and one
// diastolic ObservationStatement, both with values. It reports whether s was
// one (and so is consumed). NOPAT on any of the three makes it confidential.
func (m *mapper) bloodPressure(s *node, sc scope) bool {
	head := codings(s.child("code"))
	if !inSet(head, bpHeaderCodes) {
		return false
	}
	var sys, dia *node
	var others []*node
	for _, k := range s.children("component") {
		for _, c := range k.Kids {
			switch {
			case c.Name == "ObservationStatement" && sys == nil && inSet(codings(c.child("code")), systolicCodes):
				sys = c
			case c.Name == "ObservationStatement" && dia == nil && inSet(codings(c.child("code")), diastolicCodes):
				dia = c
			case c.Name == "NarrativeStatement":
			default:
				others = append(others, c)
			}
		}
	}
	if sys == nil || dia == nil || len(others) > 0 || s.id() == "" {
		return false
	}
	comp1 := obj{}
	comp2 := obj{}
	if !observationBody(sys, comp1) || !observationBody(dia, comp2) || comp1["valueQuantity"] == nil || comp2["valueQuantity"] == nil {
		return false
	}
	for _, c := range []obj{comp1, comp2} {
		q := c["valueQuantity"].(obj)
		q["unit"], q["system"], q["code"] = "millimeter of mercury", systemUCUM, "mm[Hg]"
		delete(c, "valueCodeableConcept")
	}
	comp1["code"] = concept{Coding: append([]coding{
		{System: fhir.LOINC, Code: fhir.LOINCSystolic, Display: "Systolic blood pressure"},
		{System: fhir.SNOMED, Code: snomedSystolic, Display: "Systolic blood pressure"},
	}, without(codings(sys.child("code")), fhir.SNOMED, snomedSystolic)...), Text: fhir.TextSystolicBP}
	comp2["code"] = concept{Coding: append([]coding{
		{System: fhir.LOINC, Code: fhir.LOINCDiastolic, Display: "Diastolic blood pressure"},
		{System: fhir.SNOMED, Code: snomedDiastolic, Display: "Diastolic blood pressure"},
	}, without(codings(dia.child("code")), fhir.SNOMED, snomedDiastolic)...), Text: fhir.TextDiastolicBP}
	id := s.id()
	local := localID(id)
	r := obj{
		"status":   "final",
		"category": categoryVitalSigns,
		"code": concept{Coding: append([]coding{
			{System: fhir.LOINC, Code: fhir.LOINCBloodPressurePanel, Display: "Blood pressure panel with all children optional"},
			{System: fhir.SNOMED, Code: snomedBPPanel, Display: "Blood pressure"},
		}, without(head, fhir.SNOMED, snomedBPPanel)...)},
		"subject":   m.subject(),
		"component": []obj{comp1, comp2},
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if _, ok := r["effectiveDateTime"]; !ok && r["effectivePeriod"] == nil {
		if t := m.recorded(sc.comp); t.ok() {
			r["effectiveDateTime"] = t.Date
		}
	}
	if r["effectiveDateTime"] == nil && r["effectivePeriod"] == nil {
		return false // the BP profile requires an effective time
	}
	if is := m.issued(sc.comp); is != "" {
		r["issued"] = is
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["performer"] = []obj{p}
	}
	conf := sc.conf || nopat(sys) || nopat(dia)
	if m.emit("Observation", local, r, fhir.ProfileBloodPressure, conf) {
		ref := "Observation/" + m.fullID(local)
		m.refs[id], m.refs[sys.id()], m.refs[dia.id()] = ref, ref, ref
	}
	for _, k := range s.children("component") {
		for _, c := range k.Kids {
			if c.Name == "NarrativeStatement" {
				m.narrative(c)
			}
		}
	}
	return true
}

func without(cs []coding, system, code string) []coding {
	out := cs[:0:0]
	for _, c := range cs {
		if c.System == system && c.Code == code || c.System == fhir.LOINC {
			continue
		}
		out = append(out, c)
	}
	return out
}

// report maps a laboratory report (CLUSTER coded 16488004) to a
// DiagnosticReport whose results are the Observations mapped inside it
// (test group headers and results not already members of a group) and
// whose specimens are the Specimens mapped inside it.
func (m *mapper) report(s *node, sc scope) {
	id := s.id()
	code := conceptOf(s.child("code"))
	before := len(m.res)
	in := sc
	in.lab = true
	m.components(s, in)
	if id == "" || code == nil {
		return
	}
	var results, specimens []obj
	for _, r := range m.res[before:] {
		switch {
		case r["resourceType"] == "Observation" && !isMember(r):
			results = append(results, obj{"reference": "Observation/" + r["id"].(string)})
		case r["resourceType"] == "Specimen":
			specimens = append(specimens, obj{"reference": "Specimen/" + r["id"].(string)})
		}
	}
	local := localID(id)
	r := obj{
		"status":   "final",
		"category": []concept{{Coding: []coding{{System: systemV20074, Code: "LAB", Display: "Laboratory"}}}},
		"code":     code,
		"subject":  m.subject(),
	}
	// The laboratory's own report identifier (the second id, in the NHS
	// pathology report id OID), when the extract carries it.
	for _, x := range s.children("id") {
		if x.attr("root") == oidLabReportID && validCode(x.attr("extension")) {
			r["identifier"] = []obj{{"system": "urn:oid:" + oidLabReportID, "value": x.attr("extension")}}
		}
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if is := m.issued(sc.comp); is != "" {
		r["issued"] = is
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["performer"] = []obj{p}
	}
	if len(specimens) > 0 {
		r["specimen"] = specimens
	}
	if len(results) > 0 {
		r["result"] = results
	}
	if m.emit("DiagnosticReport", local, r, "", sc.conf) {
		m.refs[id] = "DiagnosticReport/" + m.fullID(local)
	}
}

// specimen maps a specimen CompoundStatement (code 123038009, normally
// inside a laboratory report) to a UK Core Specimen: the lab's accession
// number (the specimenRole id that carries an extension), the collection
// time; the results inside it are laboratory results that refer to it. The
// material description is free text and is not read.
func (m *mapper) specimen(s *node, sc scope) {
	id := s.id()
	in := sc
	in.lab = true
	if id != "" {
		local := localID(id)
		r := obj{"subject": m.subject()}
		if c := conceptOf(s.child("code")); c != nil {
			r["type"] = c
		}
		role := s.path("specimen", "specimenRole")
		for _, x := range role.children("id") {
			if ext := x.attr("extension"); ext != "" && validCode(ext) && validOID(x.attr("root")) {
				r["accessionIdentifier"] = obj{"system": "urn:oid:" + x.attr("root"), "value": ext}
				break
			}
		}
		if t := ivlOf(role.child("effectiveTime")).start(); t.ok() {
			r["collection"] = obj{"collectedDateTime": t.Date}
		}
		if m.emit("Specimen", local, r, "", sc.conf) {
			m.refs[id] = "Specimen/" + m.fullID(local)
			in.specimen = m.refs[id]
		}
	}
	m.components(s, in)
}

// isMember marks Observations already referenced by a group header.
func isMember(r obj) bool { _, ok := r["_member"]; return ok }

// group maps a BATTERY or CLUSTER (a test group inside a report, a
// template or cluster anywhere else) to a grouping Observation whose
// hasMember are the Observations mapped inside it. A group without a code
// of its own (a template named in free text) is served with the
// transfer-degraded record entry concept when it has members: the grouping
// is what is coded about it; an empty one is withheld and signalled.
func (m *mapper) group(s *node, sc scope) {
	before := len(m.res)
	m.components(s, sc)
	var members []obj
	for _, r := range m.res[before:] {
		if r["resourceType"] == "Observation" && !isMember(r) {
			members = append(members, obj{"reference": "Observation/" + r["id"].(string)})
			r["_member"] = true
		}
	}
	code := conceptWith(s.child("code"), degradedRecordEntry)
	id := s.id()
	if code == nil && len(members) > 0 {
		code = &concept{Coding: []coding{degradedRecordEntry}}
	}
	if code == nil || id == "" {
		if code != nil || len(members) == 0 {
			m.uncoded++
		}
		return
	}
	local := localID(id)
	r := m.observationHead(s, sc, code)
	if len(members) > 0 {
		r["hasMember"] = members
	}
	if m.emit("Observation", local, r, "", sc.conf) {
		m.refs[id] = "Observation/" + m.fullID(local)
	}
}

// --- Allergies -------------------------------------------------------------------

// allergy maps an ObservationStatement inside an allergy category to an
// AllergyIntolerance. The code is the statement's; a degraded entry that
// carries only the category header (or nothing) takes its coded value as the
// substance, and the transfer-degraded drug / non-drug allergy concept
// stands in when it has no SNOMED CT.
func (m *mapper) allergy(s *node, sc scope, drug bool) {
	id := s.id()
	if id == "" {
		m.uncoded++
		return
	}
	generic := degradedNonDrugAllergy
	cat := "environment"
	if drug {
		generic, cat = degradedDrugAllergy, "medication"
	}
	code := codings(s.child("code"))
	if len(code) == 0 || inSet(code, drugAllergyHeader) || inSet(code, nonDrugAllergyHeader) {
		if v := codings(s.child("value")); len(v) > 0 {
			code = append(v, code...)
		}
	}
	code = withSNOMED(code, generic)
	local := localID(id)
	r := obj{
		"clinicalStatus":     concept{Coding: []coding{{System: systemAllergyClinical, Code: "active", Display: "Active"}}},
		"verificationStatus": concept{Coding: []coding{{System: systemAllergyVerif, Code: "unconfirmed", Display: "Unconfirmed"}}},
		"category":           []string{cat},
		"code":               concept{Coding: code},
		"patient":            m.subject(),
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	eff := ivlOf(s.child("effectiveTime"))
	if st := eff.start(); st.ok() {
		r["onsetDateTime"] = st.Date
	}
	if rec := m.recorded(sc.comp); rec.ok() {
		r["recordedDate"] = rec.Date
	}
	if p := m.recorder(sc.comp); p != nil {
		r["recorder"] = p
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["asserter"] = p
	}
	if m.emit("AllergyIntolerance", local, r, "", sc.conf) {
		m.refs[id] = "AllergyIntolerance/" + m.fullID(local)
	}
}
