package gpconnect

import (
	"math"
	"strings"
)

// medication maps a Medication: its drug codes (EMIS drug codes, dm+d,
// SNOMED CT) and form. An uncoded drug is free text and is dropped, and
// with it every statement and request that names it.
func (m *mapper) medication(r obj) obj {
	c := conceptOf(r["code"])
	if c == nil {
		return nil
	}
	md := obj{"code": c}
	set(md, "form", conceptOf(r["form"]))
	return md
}

// medicationOf sets medicationReference or medicationCodeableConcept; it
// reports false when neither maps (the resource is then dropped).
func (m *mapper) medicationOf(r, out obj) bool {
	if ref := m.ref(r["medicationReference"], "Medication"); ref != nil {
		out["medicationReference"] = ref
		return true
	}
	if c := conceptOf(r["medicationCodeableConcept"]); c != nil {
		out["medicationCodeableConcept"] = c
		return true
	}
	return false
}

// dosages keeps a prescription's dosage instructions (text, timing, route,
// dose): they are part of the prescription. Patient instructions are
// free-text notes and are not read.
func dosages(v any) []obj {
	var out []obj
	for _, d := range list(v) {
		do, _ := d.(obj)
		ds := obj{}
		if n, ok := integer(do["sequence"], math.MinInt32); ok {
			ds["sequence"] = n
		}
		set(ds, "text", strings.TrimSpace(str(do["text"])))
		set(ds, "additionalInstruction", concepts(do["additionalInstruction"]))
		set(ds, "timing", timing(do["timing"]))
		if b, ok := boolean(do["asNeededBoolean"]); ok {
			ds["asNeededBoolean"] = b
		} else {
			set(ds, "asNeededCodeableConcept", conceptOf(do["asNeededCodeableConcept"]))
		}
		set(ds, "site", conceptOf(do["site"]))
		set(ds, "route", conceptOf(do["route"]))
		set(ds, "method", conceptOf(do["method"]))
		dr := obj{}
		if q := simpleQuantity(do["doseQuantity"]); q != nil {
			dr["doseQuantity"] = q
		}
		if len(dr) > 0 {
			ds["doseAndRate"] = []obj{dr}
		}
		set(ds, "maxDosePerAdministration", simpleQuantity(do["maxDosePerAdministration"]))
		if len(ds) > 0 {
			out = append(out, ds)
		}
	}
	return out
}

// timing keeps a Timing's structured repeat (frequency, period, bounds)
// and coded form.
func timing(v any) obj {
	t, _ := v.(obj)
	if t == nil {
		return nil
	}
	out := obj{}
	if rp := child(t, "repeat"); rp != nil {
		r := obj{}
		for _, k := range []string{"count", "countMax", "frequency", "frequencyMax"} {
			if n, ok := integer(rp[k], 1); ok {
				r[k] = n
			}
		}
		for _, k := range []string{"duration", "durationMax", "period", "periodMax"} {
			if n, ok := number(rp[k]); ok && !strings.HasPrefix(string(n), "-") {
				r[k] = n
			}
		}
		for _, k := range []string{"durationUnit", "periodUnit"} {
			set(r, k, code(rp[k], "s", "min", "h", "d", "wk", "mo", "a"))
		}
		if (r["duration"] != nil) != (r["durationUnit"] != nil) {
			delete(r, "duration")
			delete(r, "durationUnit")
		}
		if (r["period"] != nil) != (r["periodUnit"] != nil) {
			delete(r, "period")
			delete(r, "periodUnit")
		}
		set(r, "boundsPeriod", period(rp["boundsPeriod"]))
		set(out, "repeat", r)
	}
	set(out, "code", conceptOf(t["code"]))
	return out
}

func (m *mapper) medicationStatement(r obj) obj {
	s := obj{"subject": m.subject()}
	if !m.medicationOf(r, s) {
		return nil
	}
	status := code(r["status"], "active", "completed", "entered-in-error", "intended", "stopped", "on-hold")
	if t := str(r["taken"]); t == "n" && status != "entered-in-error" {
		status = "not-taken"
	}
	if status == "" {
		status = "unknown"
	}
	s["status"] = status
	set(s, "basedOn", m.refs(r["basedOn"], "MedicationRequest", "ServiceRequest"))
	set(s, "partOf", m.refs(r["partOf"], "MedicationStatement", "Observation"))
	set(s, "context", m.ref(r["context"], "Encounter"))
	set(s, "effectiveDateTime", dateTime(r["effectiveDateTime"]))
	set(s, "effectivePeriod", period(r["effectivePeriod"]))
	set(s, "dateAsserted", dateTime(r["dateAsserted"]))
	set(s, "informationSource", m.ref(r["informationSource"], "Practitioner", "Organization"))
	set(s, "derivedFrom", m.refs(r["derivedFrom"], "MedicationRequest", "MedicationStatement", "Observation"))
	set(s, "reasonCode", concepts(r["reasonCode"]))
	set(s, "statusReason", concepts(r["reasonNotTaken"]))
	set(s, "dosage", dosages(r["dosage"]))
	var exts []obj
	for _, e := range list(r["extension"]) {
		eo, _ := e.(obj)
		if strings.Contains(str(eo["url"]), "MedicationStatementLastIssueDate") {
			if d := dateTime(eo["valueDateTime"]); d != "" {
				exts = append(exts, obj{"url": extLastIssueDate, "valueDateTime": d})
			}
		}
	}
	set(s, "extension", exts)
	return s
}

var courseOfTherapy = map[string]coding{
	"acute":               {System: systemCourseOfTherapy, Code: "acute", Display: "Short course (acute) therapy"},
	"delayed-prescribing": {System: systemCourseOfTherapy, Code: "acute", Display: "Short course (acute) therapy"},
	"repeat":              {System: systemCourseOfTherapy, Code: "continuous", Display: "Continuous long term therapy"},
	"repeat-dispensing":   {System: systemCourseOfTherapy, Code: "continuous", Display: "Continuous long term therapy"},
}

func (m *mapper) medicationRequest(r obj) obj {
	q := obj{"subject": m.subject()}
	if !m.medicationOf(r, q) {
		return nil
	}
	status := code(r["status"], "active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft", "unknown")
	if status == "" {
		status = "unknown"
	}
	q["status"] = status
	intent := code(r["intent"], "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option")
	if intent == "" {
		intent = "order"
	}
	q["intent"] = intent
	set(q, "priority", code(r["priority"], "routine", "urgent", "asap", "stat"))
	set(q, "encounter", m.ref(r["context"], "Encounter"))
	set(q, "authoredOn", dateTime(r["authoredOn"]))
	if rq := child(r, "requester"); rq != nil {
		set(q, "requester", m.ref(rq["agent"], "Practitioner", "Organization"))
	}
	set(q, "recorder", m.ref(r["recorder"], people...))
	set(q, "reasonCode", concepts(r["reasonCode"]))
	set(q, "basedOn", m.refs(r["basedOn"], "MedicationRequest", "ServiceRequest"))
	set(q, "priorPrescription", m.ref(r["priorPrescription"], "MedicationRequest"))
	set(q, "dosageInstruction", dosages(r["dosageInstruction"]))
	dr := obj{}
	if d := child(r, "dispenseRequest"); d != nil {
		set(dr, "validityPeriod", period(d["validityPeriod"]))
		if n, ok := integer(d["numberOfRepeatsAllowed"], 0); ok {
			dr["numberOfRepeatsAllowed"] = n
		}
		set(dr, "quantity", simpleQuantity(d["quantity"]))
		set(dr, "expectedSupplyDuration", simpleQuantity(d["expectedSupplyDuration"]))
		set(dr, "performer", m.ref(d["performer"], "Organization"))
	}
	sub := obj{"allowedBoolean": false} // UK Core requires it; GP systems dispense as written
	if s := child(r, "substitution"); s != nil {
		if b, ok := boolean(s["allowed"]); ok {
			sub["allowedBoolean"] = b
		}
		set(sub, "reason", conceptOf(s["reason"]))
	}
	q["substitution"] = sub
	var exts []obj
	for _, e := range list(r["extension"]) {
		eo, _ := e.(obj)
		u := str(eo["url"])
		switch {
		case strings.Contains(u, "PrescriptionType"):
			c := conceptOf(eo["valueCodeableConcept"])
			if c == nil {
				continue
			}
			exts = append(exts, obj{"url": extPrescriptionType, "valueCodeableConcept": c})
			for _, cd := range c.Coding {
				if ct, ok := courseOfTherapy[cd.Code]; ok && cd.System == systemPrescriptionType {
					q["courseOfTherapyType"] = concept{Coding: []coding{ct}}
				}
			}
		case strings.Contains(u, "MedicationRepeatInformation"):
			var sub []obj
			for _, s := range list(eo["extension"]) {
				so, _ := s.(obj)
				switch str(so["url"]) {
				case "numberOfRepeatPrescriptionsAllowed":
					if n, ok := integer(so["valueUnsignedInt"], 0); ok && dr["numberOfRepeatsAllowed"] == nil {
						dr["numberOfRepeatsAllowed"] = n
					}
				case "numberOfRepeatPrescriptionsIssued":
					if n, ok := integer(so["valueUnsignedInt"], 0); ok {
						sub = append(sub, obj{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": n})
					}
				case "authorisationExpiryDate":
					if d := dateTime(so["valueDateTime"]); d != "" {
						sub = append(sub, obj{"url": "authorisationExpiryDate", "valueDateTime": d})
					}
				}
			}
			if len(sub) > 0 {
				exts = append(exts, obj{"url": extRepeatInformation, "extension": sub})
			}
		case strings.Contains(u, "MedicationStatusReason"):
			for _, s := range list(eo["extension"]) {
				so, _ := s.(obj)
				if str(so["url"]) == "statusReason" {
					set(q, "statusReason", conceptOf(so["valueCodeableConcept"]))
				}
			}
		}
	}
	set(q, "extension", exts)
	set(q, "dispenseRequest", dr)
	return q
}
