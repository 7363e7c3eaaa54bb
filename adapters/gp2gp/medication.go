package gp2gp

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
)

// medicationStatement indexes an HL7 MedicationStatement: its authorisations,
// issues and discontinuations are mapped together once the whole extract is
// read (an issue refers to its authorisation by id, wherever it is). A drug
// without a code is served with the transfer-degraded medication concept:
// the authorisation, its dates, dosage and quantities are what is coded
// about it.
func (m *mapper) medicationStatement(s *node, sc scope) {
	drug := s.path("consumable", "manufacturedProduct", "manufacturedMaterial", "code")
	for _, k := range s.children("component") {
		for _, c := range k.Kids {
			conf := sc.conf || nopat(c)
			switch c.Name {
			case "ehrSupplyAuthorise":
				if c.id() == "" {
					m.uncoded++
					continue
				}
				a := &medAuth{comp: sc.comp, conf: conf, ms: s, a: c, med: m.medication(drug, conf)}
				if _, dup := m.authByID[c.id()]; !dup {
					m.authByID[c.id()] = a
					m.auths = append(m.auths, a)
				}
			case "ehrSupplyPrescribe":
				if c.id() == "" {
					m.uncoded++
					continue
				}
				m.prescs = append(m.prescs, &medIssue{comp: sc.comp, conf: conf, ms: s, p: c, med: m.medication(drug, conf)})
			case "ehrSupplyDiscontinue":
				m.discontinue(c)
			}
		}
	}
	// A discontinuation may also sit directly under the statement.
	if d := s.child("ehrSupplyDiscontinue"); d != nil {
		m.discontinue(d)
	}
}

func (m *mapper) discontinue(d *node) {
	for _, r := range d.children("reversalOf") {
		if id := r.path("priorMedicationRef", "id").attr("root"); id != "" {
			m.stopped[id] = d
		}
	}
}

// medication returns the local id of the Medication for a drug code,
// emitting it once per distinct coding set (and confidentiality: a drug
// only confidential entries name is itself confidential). A code with no
// SNOMED CT (dm+d) gets the transfer-degraded medication concept; a missing
// one is that concept alone.
func (m *mapper) medication(code *node, conf bool) string {
	cs := withSNOMED(codings(code), degradedMedication)
	var key strings.Builder
	for _, c := range cs {
		key.WriteString(c.System + "|" + c.Code + ";")
	}
	if conf {
		key.WriteString("#conf")
	}
	if l, ok := m.meds[key.String()]; ok {
		return l
	}
	sum := sha256.Sum256([]byte(key.String()))
	local := "med." + hex.EncodeToString(sum[:10])
	m.meds[key.String()] = local
	m.emit("Medication", local, obj{"code": concept{Coding: cs}}, "", conf)
	return local
}

// acute reports whether an authorisation is for a single issue: no repeats
// allowed (EMIS writes repeatNumber 0 for an acute).
func acute(a *node) bool {
	rn := a.child("repeatNumber")
	if rn == nil {
		return true
	}
	n, err := strconv.Atoi(strings.TrimSpace(rn.attr("value")))
	return err != nil || n == 0
}

func dosage(ms *node) []obj {
	for _, pi := range ms.children("pertinentInformation") {
		if t := pi.path("pertinentMedicationDosage", "text"); t != nil && t.Text != "" {
			return []obj{{"text": t.Text}}
		}
	}
	return nil
}

func supplyQuantity(x *node) obj {
	q := x.child("quantity")
	if q == nil {
		return nil
	}
	n, ok := number(q.attr("value"))
	if !ok || strings.HasPrefix(string(n), "-") {
		return nil
	}
	out := obj{"value": n}
	if u := unit(q); u != "" {
		out["unit"] = u
	}
	return out
}

func statusOf(x *node) string {
	switch strings.ToUpper(x.child("statusCode").attr("code")) {
	case "ACTIVE":
		return "active"
	case "COMPLETE":
		return "completed"
	case "ABORTED", "NULLIFIED", "SUSPENDED":
		return "stopped"
	}
	return "unknown"
}

// medications emits, per authorisation, a MedicationRequest plan and a
// MedicationStatement; per issue, a MedicationRequest order based on its
// plan. An acute authorisation issued more than once is split, as the GP2GP
// translator does: each further issue gets its own plan and statement, with
// the original as prior prescription.
func (m *mapper) medications() {
	for _, p := range m.prescs {
		for _, f := range p.p.children("inFulfillmentOf") {
			if a := m.authByID[f.path("priorMedicationRef", "id").attr("root")]; a != nil {
				a.issues = append(a.issues, p)
				break
			}
		}
	}
	planOf := map[*medIssue]string{}
	for _, a := range m.auths {
		sort.SliceStable(a.issues, func(i, j int) bool {
			return tsOf(a.issues[i].p.child("availabilityTime")).Time.Before(tsOf(a.issues[j].p.child("availabilityTime")).Time)
		})
		planLocal := localID(a.a.id())
		issues := a.issues
		extra := []*medIssue(nil)
		if acute(a.a) && len(issues) > 1 {
			issues, extra = issues[:1], issues[1:]
		}
		if !m.plan0(a, planLocal, issues, "") {
			continue
		}
		for _, is := range issues {
			planOf[is] = planLocal
		}
		for _, is := range extra {
			gen := localID(is.p.id() + "-P")
			if len(gen) > 40 {
				gen = gen[:40]
			}
			if m.plan0(a, gen, []*medIssue{is}, planLocal) {
				planOf[is] = gen
			}
		}
	}
	for _, p := range m.prescs {
		m.order(p, planOf[p])
	}
}

// plan0 emits the plan MedicationRequest with local id and its
// MedicationStatement (local id + "-MS").
func (m *mapper) plan0(a *medAuth, local string, issues []*medIssue, prior string) bool {
	auth, ms, comp := a.a, a.ms, a.comp
	status := statusOf(auth)
	if prior != "" {
		status = "completed"
	}
	d := m.stopped[auth.id()]
	if d != nil && prior == "" {
		status = "stopped"
	}
	eff := ivlOf(auth.child("effectiveTime"))
	start := eff.start()
	if !start.ok() {
		start = tsOf(auth.child("availabilityTime"))
	}
	if prior != "" && len(issues) > 0 {
		start = tsOf(issues[0].p.child("availabilityTime"))
	}
	course := coding{System: systemCourseOfTherapy, Code: "continuous", Display: "Continuous long term therapy"}
	if acute(auth) {
		course = coding{System: systemCourseOfTherapy, Code: "acute", Display: "Short course (acute) therapy"}
	}
	r := obj{
		"status":              status,
		"intent":              "plan",
		"medicationReference": m.ref("Medication", a.med),
		"subject":             m.subject(),
		"courseOfTherapyType": concept{Coding: []coding{course}},
		"substitution":        noSubstitution,
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	if t := tsOf(auth.child("availabilityTime")); t.ok() && prior == "" {
		r["authoredOn"] = t.Date
	} else if start.ok() {
		r["authoredOn"] = start.Date
	}
	if p := m.performer(ms, comp); p != nil {
		r["requester"] = p
	}
	if p := m.recorder(comp); p != nil {
		r["recorder"] = p
	}
	if ds := dosage(ms); ds != nil {
		r["dosageInstruction"] = ds
	}
	dr := obj{}
	end := eff.High
	if prior != "" {
		end = start
	}
	if p := period(start, end); p != nil {
		dr["validityPeriod"] = p
	}
	if q := supplyQuantity(auth); q != nil && prior == "" {
		dr["quantity"] = q
	} else if prior != "" && len(issues) > 0 {
		if q := supplyQuantity(issues[0].p); q != nil {
			dr["quantity"] = q
		}
	}
	if !acute(auth) && prior == "" {
		if n, err := strconv.Atoi(strings.TrimSpace(auth.child("repeatNumber").attr("value"))); err == nil && n > 0 {
			dr["numberOfRepeatsAllowed"] = n
		}
	}
	if len(dr) > 0 {
		r["dispenseRequest"] = dr
	}
	if prior != "" {
		r["priorPrescription"] = m.ref("MedicationRequest", prior)
	}
	if d != nil && prior == "" {
		if c := conceptOf(d.child("code")); c != nil {
			r["statusReason"] = c
		}
	}
	if !m.emit("MedicationRequest", local, r, "", a.conf) {
		return false
	}
	if prior == "" {
		m.refs[auth.id()] = "MedicationRequest/" + m.fullID(local)
		m.refs[ms.id()] = "MedicationRequest/" + m.fullID(local)
	}
	// The MedicationStatement: what the patient is (or was) taking under this
	// authorisation.
	msStatus := map[string]string{"active": "active", "completed": "completed", "stopped": "stopped"}[status]
	if msStatus == "" {
		msStatus = "unknown"
	}
	s := obj{
		"status":              msStatus,
		"basedOn":             []obj{m.ref("MedicationRequest", local)},
		"medicationReference": m.ref("Medication", a.med),
		"subject":             m.subject(),
	}
	if e := m.encounterRef(comp); e != nil {
		s["context"] = e
	}
	msEnd := eff.High
	if len(issues) > 0 && status != "active" {
		last := tsOf(issues[len(issues)-1].p.child("availabilityTime"))
		if !msEnd.ok() && last.ok() {
			msEnd = last
		}
	}
	if d != nil && prior == "" {
		if t := tsOf(d.child("availabilityTime")); t.ok() {
			msEnd = t
		}
		if c := conceptOf(d.child("code")); c != nil {
			s["statusReason"] = []*concept{c}
		}
	}
	if p := period(start, msEnd); p != nil {
		s["effectivePeriod"] = p
	}
	if rec := m.recorded(comp); rec.ok() {
		s["dateAsserted"] = rec.Date
	}
	if ds := dosage(ms); ds != nil {
		s["dosage"] = ds
	}
	msLocal := local + "-MS"
	if len(msLocal) > 46 {
		msLocal = msLocal[:46]
	}
	m.emit("MedicationStatement", msLocal, s, "", a.conf)
	return true
}

// order emits the MedicationRequest order for one issue.
func (m *mapper) order(p *medIssue, plan string) {
	id := p.p.id()
	local := localID(id)
	comp := p.comp
	status := statusOf(p.p)
	if status == "unknown" {
		status = "completed"
	}
	r := obj{
		"status":              status,
		"intent":              "order",
		"medicationReference": m.ref("Medication", p.med),
		"subject":             m.subject(),
		"substitution":        noSubstitution,
	}
	if plan != "" {
		r["basedOn"] = []obj{m.ref("MedicationRequest", plan)}
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	t := tsOf(p.p.child("availabilityTime"))
	if t.ok() {
		r["authoredOn"] = t.Date
	}
	if pr := m.performer(p.ms, comp); pr != nil {
		r["requester"] = pr
	}
	if pr := m.recorder(comp); pr != nil {
		r["recorder"] = pr
	}
	if ds := dosage(p.ms); ds != nil {
		r["dosageInstruction"] = ds
	}
	dr := obj{}
	if t.ok() {
		dr["validityPeriod"] = obj{"start": t.Date}
	}
	if q := supplyQuantity(p.p); q != nil {
		dr["quantity"] = q
	}
	if len(dr) > 0 {
		r["dispenseRequest"] = dr
	}
	if m.emit("MedicationRequest", local, r, "", p.conf) {
		m.refs[id] = "MedicationRequest/" + m.fullID(local)
	}
}

// noSubstitution fills MedicationRequest.substitution, which UK Core
// requires (1..1): a GP2GP extract says nothing of substitution, and the
// prescription is dispensed as written.
var noSubstitution = obj{"allowedBoolean": false}
