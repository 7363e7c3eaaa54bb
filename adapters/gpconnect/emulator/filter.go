package emulator

import (
	"strings"

	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/fhir"
)

// sectionOfList says which include parameter a section List answers, by
// its code: the primary Lists of each clinical area (SNOMED CT), the
// consultation structure Lists (consultation, topic, category) and the
// secondary Lists of linked items (GPConnect-SecondaryListValues, by the
// area their code names first).
var sectionOfList = map[string]gpconnect.Sections{
	"886921000000105":  gpconnect.SectionAllergies,
	"1103671000000101": gpconnect.SectionAllergies, // ended allergies
	"933361000000108":  gpconnect.SectionMedication,
	"1149501000000101": gpconnect.SectionConsultations,
	"325851000000107":  gpconnect.SectionConsultations,
	"25851000000105":   gpconnect.SectionConsultations,
	"24781000000107":   gpconnect.SectionConsultations,
	"717711000000103":  gpconnect.SectionProblems,
	"1102181000000102": gpconnect.SectionImmunisations,
	"826501000000100":  gpconnect.SectionUncategorised,
	"887191000000108":  gpconnect.SectionInvestigations,
	"792931000000107":  gpconnect.SectionReferrals,
	"714311000000108":  gpconnect.SectionDiaryEntries,
}

const endedAllergies = "1103671000000101"

// typeSection is the section of a clinical resource no List names (a
// prescription issue, a test result reached from its report): its type's.
// Supporting resources (Patient, practitioners, organisations, locations,
// medications, specimens) are not listed and always stay.
var typeSection = map[string]gpconnect.Sections{
	"AllergyIntolerance": gpconnect.SectionAllergies,
	"MedicationRequest":  gpconnect.SectionMedication, "MedicationStatement": gpconnect.SectionMedication,
	"Condition": gpconnect.SectionProblems,
	"Encounter": gpconnect.SectionConsultations, "DocumentReference": gpconnect.SectionConsultations,
	"Immunization": gpconnect.SectionImmunisations,
	"Observation":  gpconnect.SectionInvestigations, "DiagnosticReport": gpconnect.SectionInvestigations,
	"ReferralRequest":  gpconnect.SectionReferrals,
	"ProcedureRequest": gpconnect.SectionDiaryEntries,
}

// typeKept decides an item no kept List names: a type of one section
// follows that section; an Observation (investigations or uncategorised
// data) stays only when no dropped List names it and investigations are
// asked for; supporting resources stay.
func typeKept(t string, dropped bool, req *gpconnect.Request) bool {
	s, ok := typeSection[t]
	switch {
	case !ok:
		return true
	case t == "Observation":
		return !dropped && req.Sections&s != 0
	default:
		return req.Sections&s != 0
	}
}

func listSection(l obj) (gpconnect.Sections, string) {
	code, _ := l["code"].(obj)
	cs, _ := code["coding"].([]any)
	for _, c := range cs {
		co, _ := c.(obj)
		v, _ := co["code"].(string)
		if s, ok := sectionOfList[v]; ok {
			return s, v
		}
		switch {
		case strings.HasPrefix(v, "consultations-"):
			return gpconnect.SectionConsultations, v
		case strings.HasPrefix(v, "problems-"):
			return gpconnect.SectionProblems, v
		}
	}
	return 0, ""
}

// filter answers only the sections asked for, as a provider does: the
// Lists of other sections go, and so does every item only they listed
// (items a kept List also names stay, as linked data); a clinical item no
// List names follows its type's section (typeSection). Prescription
// issues go when not asked for; ended allergies unless resolved ones are.
// The Patient's NHS number is the one served (a recorded file may carry a
// placeholder). Supporting resources (practitioners, organisations,
// locations, medications) stay.
func filter(doc obj, req *gpconnect.Request, served fhir.NHSNumber) obj {
	entries, _ := doc["entry"].([]any)
	keep, drop := map[string]bool{}, map[string]bool{}
	listKeep := make([]bool, len(entries))
	for i, e := range entries {
		r := resource(e)
		if r["resourceType"] != "List" {
			continue
		}
		s, code := listSection(r)
		ok := s != 0 && req.Sections&s != 0
		if code == endedAllergies && !req.ResolvedAllergies {
			ok = false
		}
		listKeep[i] = ok || s == 0
		target := drop
		if ok || s == 0 {
			target = keep
		}
		if enc, _ := r["encounter"].(obj); enc != nil {
			target[refKey(enc)] = true
		}
		items, _ := r["entry"].([]any)
		for _, it := range items {
			io, _ := it.(obj)
			if ref, _ := io["item"].(obj); ref != nil {
				target[refKey(ref)] = true
			}
		}
	}
	out := make([]any, 0, len(entries))
	for i, e := range entries {
		r := resource(e)
		t, _ := r["resourceType"].(string)
		id, _ := r["id"].(string)
		switch {
		case t == "List" && !listKeep[i]:
			continue
		case t != "List" && !keep[t+"/"+id] && !typeKept(t, drop[t+"/"+id], req):
			continue
		case t == "MedicationRequest" && r["intent"] == "order" && !req.PrescriptionIssues:
			continue
		case t == "Patient":
			setNHS(r, served)
		}
		out = append(out, e)
	}
	doc["entry"] = out
	return doc
}

func resource(e any) obj {
	eo, _ := e.(obj)
	r, _ := eo["resource"].(obj)
	return r
}

func refKey(ref obj) string {
	s, _ := ref["reference"].(string)
	parts := strings.Split(s, "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return s
}

// setNHS writes the served NHS number into the Patient's identifier.
func setNHS(p obj, nhs fhir.NHSNumber) {
	ids, _ := p["identifier"].([]any)
	for _, id := range ids {
		io, _ := id.(obj)
		if io["system"] == fhir.NHSNumberSystem {
			io["value"] = string(nhs)
			return
		}
	}
	p["identifier"] = append(ids, obj{"system": fhir.NHSNumberSystem, "value": string(nhs)})
}
