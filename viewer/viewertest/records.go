package viewertest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Canaries: text no page may ever show. FreeText is put in every free-text
// element a resource can carry; NotShared replaces the display terms of
// resources outside what an agreement shares.
const (
	FreeTextCanary  = "FREE-TEXT-CANARY"
	NotSharedCanary = "NOT-SHARED-CANARY"
)

type m = map[string]any

func coding(system, code, display string) m {
	return m{"system": system, "code": code, "display": display}
}
func cc(cs ...m) m   { return m{"coding": cs} }
func ref(r string) m { return m{"reference": r} }
func ucum(v float64, u string) m {
	return m{"value": v, "unit": u, "system": "http://unitsofmeasure.org", "code": u}
}

// Record builds a small record with an entry in every area and view, dated
// relative to now, for the viewer's tests.
func Record(nhs fhir.NHSNumber, practice string, now time.Time) *fhir.Record {
	pid := fhir.PatientID(nhs)
	id := func(local string) string { return fhir.ResourceID(pid, local) }
	day := func(daysAgo int) string { return now.AddDate(0, 0, -daysAgo).UTC().Format("2006-01-02") }
	at := func(daysAgo int) string { return now.AddDate(0, 0, -daysAgo).UTC().Format("2006-01-02T15:04:05Z") }
	subj := ref("Patient/" + pid)
	cond := func(local, cat, code, read, display, status string, onset int) m {
		return m{"resourceType": "Condition", "id": id(local), "subject": subj,
			"category":           []m{cc(coding(fhir.ConditionCategorySystem, cat, ""))},
			"clinicalStatus":     cc(coding("http://terminology.hl7.org/CodeSystem/condition-clinical", status, "")),
			"verificationStatus": cc(coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed")),
			"code":               cc(coding(fhir.SNOMED, code, display+" (SNOMED)"), coding(fhir.ReadV2, read, display)),
			"onsetDateTime":      day(onset), "recordedDate": at(onset)}
	}
	lab := func(local, code, display string, v, lo, hi float64, u string, daysAgo int) m {
		return m{"resourceType": "Observation", "id": id(local), "subject": subj, "status": "final",
			"category":          []m{cc(coding(fhir.ObservationCategorySystem, "laboratory", "Laboratory"))},
			"code":              cc(coding(fhir.SNOMED, code, display)),
			"effectiveDateTime": at(daysAgo), "valueQuantity": ucum(v, u),
			"referenceRange": []m{{"low": ucum(lo, u), "high": ucum(hi, u)}}}
	}
	bp := func(local string, sys, dia float64, daysAgo int) m {
		return m{"resourceType": "Observation", "id": id(local), "subject": subj, "status": "final",
			"category": []m{cc(coding(fhir.ObservationCategorySystem, "vital-signs", "Vital Signs"))},
			"code":     cc(coding(fhir.LOINC, fhir.LOINCBloodPressurePanel, "Blood pressure panel"), coding(fhir.SNOMED, "75367002", "Blood pressure")),
			"component": []m{
				{"code": cc(coding(fhir.LOINC, fhir.LOINCSystolic, "Systolic blood pressure")), "valueQuantity": ucum(sys, "mm[Hg]")},
				{"code": cc(coding(fhir.LOINC, fhir.LOINCDiastolic, "Diastolic blood pressure")), "valueQuantity": ucum(dia, "mm[Hg]")}},
			"effectiveDateTime": at(daysAgo)}
	}
	dosage := []m{{"text": "One tablet each morning", "route": cc(coding(fhir.SNOMED, "26643006", "Oral route")),
		"timing":      m{"repeat": m{"frequency": 1, "period": 1, "periodUnit": "d"}},
		"doseAndRate": []m{{"doseQuantity": m{"value": 1, "unit": "tablet", "system": fhir.SNOMED, "code": "428673006"}}}}}
	rs := []m{
		{"resourceType": "Patient", "id": pid,
			"identifier": []m{{"system": fhir.NHSNumberSystem, "value": string(nhs)}},
			"name":       []m{{"use": "official", "family": "Testpatient", "given": []string{"Ada", "May"}, "prefix": []string{"Mrs"}}},
			"gender":     "female", "birthDate": "1950-03-07",
			"address":              []m{{"use": "home", "line": []string{"1 Test Street"}, "city": "Leeds", "postalCode": "LS1 1AA"}},
			"telecom":              []m{{"system": "phone", "use": "home", "value": "01632 960000"}},
			"managingOrganization": ref("Organization/" + id("org")),
			"generalPractitioner":  []m{ref("Practitioner/" + id("gp"))}},
		{"resourceType": "Organization", "id": id("org"), "name": "Test Surgery",
			"identifier": []m{{"system": fhir.ODSSystem, "value": practice}}},
		{"resourceType": "Practitioner", "id": id("gp"), "name": []m{{"family": "Jones", "given": []string{"Grace"}, "prefix": []string{"Dr"}}}},
		cond("cond-1", "problem-list-item", "38341003", "G20..00", "Essential hypertension", "active", 2000),
		cond("cond-2", "problem-list-item", "195967001", "H33..00", "Asthma", "resolved", 5000),
		cond("cond-3", "encounter-diagnosis", "279039007", "N145.00", "Backache", "resolved", 400),
		{"resourceType": "AllergyIntolerance", "id": id("alg-1"), "patient": subj, "type": "allergy", "category": []string{"medication"},
			"criticality":    "high",
			"clinicalStatus": cc(coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active")),
			"code":           cc(coding(fhir.SNOMED, "294505008", "Allergy to penicillin")),
			"recordedDate":   at(3000),
			"reaction":       []m{{"manifestation": []m{cc(coding(fhir.SNOMED, "271807003", "Skin rash"))}, "severity": "moderate"}}},
		{"resourceType": "Medication", "id": id("med-1"), "code": cc(coding(fhir.DMD, "319283006", "Amlodipine 5mg tablets"))},
		{"resourceType": "MedicationRequest", "id": id("mr-1"), "subject": subj, "status": "active", "intent": "plan",
			"medicationReference": ref("Medication/" + id("med-1")), "authoredOn": at(200), "dosageInstruction": dosage,
			"dispenseRequest": m{"quantity": m{"value": 28, "unit": "tablet"}, "numberOfRepeatsAllowed": 6}},
		{"resourceType": "MedicationStatement", "id": id("ms-1"), "subject": subj, "status": "active",
			"medicationReference": ref("Medication/" + id("med-1")), "effectivePeriod": m{"start": day(200)},
			"basedOn": []m{ref("MedicationRequest/" + id("mr-1"))}, "dosage": dosage},
		{"resourceType": "MedicationStatement", "id": id("ms-2"), "subject": subj, "status": "completed",
			"medicationCodeableConcept": cc(coding(fhir.DMD, "39732311000001104", "Amoxicillin 500mg capsules")),
			"effectivePeriod":           m{"start": day(900), "end": day(893)}},
		{"resourceType": "MedicationRequest", "id": id("mr-2"), "subject": subj, "status": "completed", "intent": "order",
			"medicationReference": ref("Medication/" + id("med-1")), "authoredOn": at(30), "dosageInstruction": dosage,
			"basedOn":         []m{ref("MedicationRequest/" + id("mr-1"))},
			"dispenseRequest": m{"quantity": m{"value": 28, "unit": "tablet"}}},
		{"resourceType": "Flag", "id": id("flag-1"), "subject": subj, "status": "active",
			"category": []m{cc(coding("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety"))},
			"code":     cc(coding(fhir.SNOMED, "129839007", "At risk for falls")), "period": m{"start": at(100)}},
		{"resourceType": "Procedure", "id": id("proc-1"), "subject": subj, "status": "completed",
			"code": cc(coding(fhir.SNOMED, "80146002", "Appendicectomy")), "performedDateTime": at(9000)},
		{"resourceType": "Specimen", "id": id("spec-1"), "subject": subj, "type": cc(coding(fhir.SNOMED, "119364003", "Serum specimen")),
			"collection": m{"collectedDateTime": at(20)}},
		lab("obs-1", "1000661000000107", "Serum sodium level", 135, 133, 146, "mmol/L", 20),
		lab("obs-2", "1000651000000109", "Serum potassium level", 5.9, 3.5, 5.3, "mmol/L", 20),
		{"resourceType": "DiagnosticReport", "id": id("dr-1"), "subject": subj, "status": "final",
			"code":              cc(coding(fhir.SNOMED, "1000971000000107", "Urea and electrolytes level")),
			"effectiveDateTime": at(20), "result": []m{ref("Observation/" + id("obs-1")), ref("Observation/" + id("obs-2"))},
			"specimen": []m{ref("Specimen/" + id("spec-1"))}},
		lab("obs-3", "1022441000000101", "Haemoglobin concentration", 131, 115, 165, "g/L", 800),
		{"resourceType": "DiagnosticReport", "id": id("dr-2"), "subject": subj, "status": "final",
			"code":              cc(coding(fhir.SNOMED, "26604007", "Full blood count")),
			"effectiveDateTime": at(800), "result": []m{ref("Observation/" + id("obs-3"))}},
		bp("bp-1", 152, 91, 10),
		bp("bp-2", 141, 88, 400),
		bp("bp-3", 138, 84, 800),
		{"resourceType": "Immunization", "id": id("imm-1"), "patient": subj, "status": "completed",
			"vaccineCode":        cc(coding(fhir.SNOMED, "1324681000000101", "Influenza vaccine")),
			"occurrenceDateTime": at(50), "protocolApplied": []m{{"doseNumberPositiveInt": 1}}},
		{"resourceType": "Encounter", "id": id("enc-1"), "subject": subj, "status": "finished",
			"class":  coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
			"type":   []m{cc(coding(fhir.SNOMED, "185349003", "Encounter for check up"))},
			"period": m{"start": at(10), "end": at(10)}},
		{"resourceType": "Encounter", "id": id("enc-2"), "subject": subj, "status": "finished",
			"class":  coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP", "inpatient encounter"),
			"type":   []m{cc(coding(fhir.SNOMED, "32485007", "Hospital admission"))},
			"period": m{"start": at(700), "end": at(695)}},
		{"resourceType": "ServiceRequest", "id": id("sr-1"), "subject": subj, "status": "completed", "intent": "order", "priority": "routine",
			"category":   []m{cc(coding(fhir.SNOMED, "3457005", "Patient referral"))},
			"code":       cc(coding(fhir.SNOMED, "183519002", "Referral to cardiology service")),
			"authoredOn": at(300)},
	}
	rec := &fhir.Record{NHS: nhs, PatientID: pid, Practice: practice, Version: "1", Sharing: fhir.SharingUnknown}
	for _, r := range rs {
		rec.Resources = append(rec.Resources, mustResource(r))
	}
	fhir.LinkMedicationCodes(rec.Resources)
	return rec
}

func mustResource(v any) *fhir.Resource {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	r, err := fhir.NewResource(b)
	if err != nil {
		panic(fmt.Sprintf("viewertest: %v", err))
	}
	return r
}

// AddFreeText puts FreeTextCanary into every free-text element a resource
// may carry: the narrative, notes, comments, descriptions, valueString,
// the text of every CodeableConcept and the display of every Reference.
// A viewer that renders only coded fields shows none of it.
func AddFreeText(rec *fhir.Record) {
	rewrite(rec, func(r *fhir.Resource, doc m) {
		doc["text"] = m{"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">" + FreeTextCanary + "</div>"}
		doc["note"] = []m{{"text": FreeTextCanary}}
		switch r.Type {
		case "Observation":
			doc["comment"] = FreeTextCanary
			if _, ok := doc["valueQuantity"]; !ok {
				if _, ok := doc["component"]; !ok {
					doc["valueString"] = FreeTextCanary
				}
			}
		case "DiagnosticReport":
			doc["conclusion"] = FreeTextCanary
		case "MedicationStatement", "MedicationRequest":
			doc["reasonCode"] = []m{{"text": FreeTextCanary}}
		case "Flag", "Procedure", "Encounter", "ServiceRequest":
			doc["description"] = FreeTextCanary
		}
		walk(doc, func(o m) {
			if _, ok := o["coding"]; ok {
				o["text"] = FreeTextCanary
			}
			if _, ok := o["reference"]; ok {
				o["display"] = FreeTextCanary
			}
			if rr, ok := o["referenceRange"].([]any); ok {
				for _, x := range rr {
					if xm, ok := x.(m); ok {
						xm["text"] = FreeTextCanary
					}
				}
			}
			if _, ok := o["doseAndRate"]; ok { // a Dosage: its patientInstruction is free text (Dosage.text is kept by design)
				o["patientInstruction"] = FreeTextCanary
			}
		})
	})
}

// MarkNotShared replaces every display term of the resources a decision
// for areas would withhold with NotSharedCanary: with a leaking core, a
// viewer that filters by the permitted areas shows none of them.
func MarkNotShared(rec *fhir.Record, areas fhir.Areas, now time.Time) {
	rewrite(rec, func(r *fhir.Resource, doc m) {
		if r.Ix.Area == fhir.AreaDemographics || areas.Has(r.Ix.Area) ||
			(areas&fhir.AreaSummary != 0 && fhir.SummaryAreas.Has(r.Ix.Area) && summary(r, now)) {
			return
		}
		walk(doc, func(o m) {
			if _, ok := o["code"]; ok {
				if _, ok := o["system"]; ok {
					o["display"] = NotSharedCanary
				}
			}
		})
	})
}

// MarkConfidential labels every nth clinical resource restricted
// (meta.security R) and replaces its display terms with NotSharedCanary: a
// leaking core returns them, a viewer must still show none.
func MarkConfidential(rec *fhir.Record, nth int) {
	i := 0
	rewrite(rec, func(r *fhir.Resource, doc m) {
		if r.Ix.Area == fhir.AreaDemographics {
			return
		}
		if i++; i%nth != 0 {
			return
		}
		meta, _ := doc["meta"].(m)
		if meta == nil {
			meta = m{}
			doc["meta"] = meta
		}
		meta["security"] = []m{coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R", "restricted")}
		walk(doc, func(o m) {
			if _, ok := o["code"]; ok {
				if _, ok := o["system"]; ok && o["system"] != "http://terminology.hl7.org/CodeSystem/v3-Confidentiality" {
					o["display"] = NotSharedCanary
				}
			}
		})
	})
}

func rewrite(rec *fhir.Record, f func(*fhir.Resource, m)) {
	for i, r := range rec.Resources {
		var doc m
		if err := json.Unmarshal(r.JSON, &doc); err != nil {
			panic(err)
		}
		f(r, doc)
		nr := mustResource(doc)
		nr.Ix.Code = r.Ix.Code // keep codes linked by LinkMedicationCodes
		rec.Resources[i] = nr
	}
}

func walk(v any, f func(m)) {
	switch x := v.(type) {
	case m:
		f(x)
		for _, c := range x {
			walk(c, f)
		}
	case []any:
		for _, c := range x {
			walk(c, f)
		}
	}
}

// Large builds a record of about n resources: Record's clinical entries
// repeated with fresh ids and dates spread over thirty years, for
// benchmarks and paging tests (a heavy GP record has 3,000 to 4,000).
func Large(nhs fhir.NHSNumber, practice string, now time.Time, n int) *fhir.Record {
	base := Record(nhs, practice, now)
	rec := &fhir.Record{NHS: nhs, PatientID: base.PatientID, Practice: practice, Version: "1"}
	var clinical []*fhir.Resource
	for _, r := range base.Resources {
		if r.Ix.Area == fhir.AreaDemographics {
			rec.Resources = append(rec.Resources, r)
		} else {
			clinical = append(clinical, r)
		}
	}
	for copyN := 0; len(rec.Resources) < n; copyN++ {
		shift := copyN * 7 % (30 * 365)
		for _, r := range clinical {
			if len(rec.Resources) >= n {
				break
			}
			var doc m
			if err := json.Unmarshal(r.JSON, &doc); err != nil {
				panic(err)
			}
			suffix := fmt.Sprintf("-c%d", copyN)
			doc["id"] = r.ID + suffix
			walk(doc, func(o m) {
				if s, ok := o["reference"].(string); ok && s != "Patient/"+base.PatientID {
					o["reference"] = s + suffix
				}
				for k, v := range o {
					if s, ok := v.(string); ok && len(s) >= 10 && s[4] == '-' && s[7] == '-' && k != "id" && k != "reference" {
						if t, err := time.Parse("2006-01-02", s[:10]); err == nil {
							o[k] = t.AddDate(0, 0, -shift).Format("2006-01-02") + s[10:]
						}
					}
				}
			})
			rec.Resources = append(rec.Resources, mustResource(doc))
		}
	}
	fhir.LinkMedicationCodes(rec.Resources)
	return rec
}
