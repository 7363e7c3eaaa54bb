package gpconnect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Options says whose record a Bundle is served as and where it comes from.
type Options struct {
	NHS      fhir.NHSNumber // the patient the record is served as
	Practice string         // ODS code of the practice holding the record
}

// Result is a converted record: canonical UK Core R4 resources (Patient
// first) and the warnings the provider's Lists carried.
type Result struct {
	Resources []*fhir.Resource
	Warnings  []fhir.Issue
	// Dropped counts source resources of mapped types that were left out:
	// uncoded entries, or entries whose required reference (a Medication)
	// could not be mapped.
	Dropped int
	// Restricted counts resources the provider labelled restricted or
	// withheld-from-patient (kept, with their labels, for the redactor).
	Restricted int
}

// Convert parses a structured record body and converts it (Parse, then
// Bundle.Convert).
func Convert(body []byte, opt Options) (*Result, error) {
	b, err := Parse(body)
	if err != nil {
		return nil, err
	}
	return b.Convert(opt)
}

// sourceTypes maps the STU3 resource types gpgate shares to their R4 type.
// Everything else (List, Location, PractitionerRole, DocumentReference,
// Device, ...) is structure or out of the dataset and is not emitted.
var sourceTypes = map[string]string{
	"Patient": "Patient", "Organization": "Organization", "Practitioner": "Practitioner",
	"AllergyIntolerance": "AllergyIntolerance", "Condition": "Condition",
	"MedicationStatement": "MedicationStatement", "MedicationRequest": "MedicationRequest", "Medication": "Medication",
	"Observation": "Observation", "Encounter": "Encounter", "Immunization": "Immunization",
	"DiagnosticReport": "DiagnosticReport", "Specimen": "Specimen",
	"ReferralRequest": "ServiceRequest", "ProcedureRequest": "ServiceRequest",
}

type target struct{ typ, id string }

type mapper struct {
	b         *Bundle
	opt       Options
	pid       string
	cand      map[string]target // source "Type/id" -> what it becomes
	labs      map[string]bool   // Observations reached from a laboratory DiagnosticReport
	requested map[string]bool   // ProcedureRequests a DiagnosticReport is based on (true: an imaging one)
	ended     map[string]bool   // entries of the ended-allergies List
	bodyNHS   string
	profiles  map[string]string // source key -> claimed profile (BP)
}

// Convert maps the record to UK Core R4 for the patient opt.NHS. Every
// emitted resource is validated and rendered by fhir.Canonicalize; every
// reference points at an emitted resource (a reference that cannot is
// dropped, and an entry that cannot do without it is left out).
func (b *Bundle) Convert(opt Options) (*Result, error) {
	if !fhir.ValidNHSNumber(string(opt.NHS)) {
		return nil, fmt.Errorf("gpconnect: convert: invalid NHS number")
	}
	m := &mapper{b: b, opt: opt, pid: fhir.PatientID(opt.NHS), cand: map[string]target{}, bodyNHS: b.PatientNHS()}
	used := map[string]bool{}
	for _, r := range b.entries {
		t := sourceTypes[str(r["resourceType"])]
		if t == "" || (str(r["id"]) == "" && t != "Patient") { // the Patient is always emitted, id or not
			continue
		}
		k := key(r)
		if _, dup := m.cand[k]; dup {
			continue
		}
		var id string
		if t == "Patient" {
			id = m.pid
		} else {
			local := localID(str(r["id"]))
			if used[t+"/"+local] { // two source types become one R4 type with the same id
				local = localID("x." + k)
			}
			used[t+"/"+local] = true
			id = fhir.ResourceID(m.pid, local)
		}
		m.cand[k] = target{typ: t, id: id}
	}
	m.labs = m.labLinked()
	m.requested = m.requestedBy()
	m.ended = m.listed(snomedEndedAllergies)
	res := &Result{}
	// Build until no entry is dropped: a drop can only remove references
	// from others, so this ends; in practice in two passes.
	var built []obj
	for {
		built = built[:0]
		var dropped []string
		for _, r := range b.entries {
			k := key(r)
			tg, ok := m.cand[k]
			if !ok {
				continue
			}
			out := m.build(tg, r)
			if out == nil {
				dropped = append(dropped, k)
				continue
			}
			built = append(built, out)
		}
		if len(dropped) == 0 {
			out, err := m.render(built)
			if err != nil {
				if bad, ok := err.(renderError); ok {
					delete(m.cand, bad.key)
					res.Dropped++
					continue
				}
				return nil, err
			}
			res.Resources = out
			break
		}
		for _, k := range dropped {
			if m.cand[k].typ == "Patient" {
				return nil, fmt.Errorf("%w: the Patient could not be mapped", ErrMalformed)
			}
			delete(m.cand, k)
			res.Dropped++
		}
	}
	for _, r := range res.Resources {
		if r.Ix.Confidential {
			res.Restricted++
		}
	}
	fhir.LinkMedicationCodes(res.Resources)
	res.Warnings = m.warnings()
	return res, nil
}

type renderError struct {
	key string
	err error
}

func (e renderError) Error() string { return e.err.Error() }

// render validates and canonicalises the built resources, Patient first.
func (m *mapper) render(built []obj) ([]*fhir.Resource, error) {
	out := make([]*fhir.Resource, 0, len(built))
	for _, r := range built {
		src, _ := r["_src"].(string)
		delete(r, "_src")
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, renderError{src, err}
		}
		cr, err := fhir.Canonicalize(raw)
		if err != nil {
			return nil, renderError{src, fmt.Errorf("gpconnect: %s: %w", r["resourceType"], err)}
		}
		r["_src"] = src // a later pass may rebuild this slice
		if cr.Type == "Patient" {
			out = append([]*fhir.Resource{cr}, out...)
		} else {
			out = append(out, cr)
		}
	}
	return out, nil
}

// build maps one source resource to its R4 target, or nil to drop it.
func (m *mapper) build(tg target, r obj) obj {
	var out obj
	profile := fhir.ProfileFor(tg.typ)
	switch str(r["resourceType"]) {
	case "Patient":
		out = m.patient(r)
	case "Organization":
		out = m.organization(r)
	case "Practitioner":
		out = m.practitioner(r)
	case "AllergyIntolerance":
		out = m.allergy(r)
	case "Condition":
		out = m.condition(r)
	case "MedicationStatement":
		out = m.medicationStatement(r)
	case "MedicationRequest":
		out = m.medicationRequest(r)
	case "Medication":
		out = m.medication(r)
	case "Observation":
		out, profile = m.observation(r)
	case "Encounter":
		out = m.encounter(r)
	case "Immunization":
		out = m.immunization(r)
	case "DiagnosticReport":
		out = m.diagnosticReport(r)
	case "Specimen":
		out = m.specimen(r)
	case "ReferralRequest":
		out = m.referral(r)
	case "ProcedureRequest":
		out = m.procedureRequest(r)
	}
	if out == nil {
		return nil
	}
	out["resourceType"] = tg.typ
	out["id"] = tg.id
	meta := obj{"profile": []string{profile}}
	if sec := security(r); len(sec) > 0 {
		meta["security"] = sec
	}
	out["meta"] = meta
	out["_src"] = key(r)
	return out
}

// ref maps a STU3 Reference to an R4 one when it points at an emitted
// resource of one of the given R4 types; nil otherwise.
func (m *mapper) ref(v any, types ...string) obj {
	if v == nil {
		return nil
	}
	tgt, k := m.b.resolve(v)
	if str(tgt["resourceType"]) == "PractitionerRole" {
		// PractitionerRole is not emitted: a reference to one (GP Connect
		// examples attribute recorders so) means its practitioner, else
		// its organisation, where the element allows them.
		for _, via := range []string{"practitioner", "organization"} {
			if to, _ := m.b.resolve(tgt[via]); to != nil && str(to["resourceType"]) != "PractitionerRole" {
				if r := m.ref(tgt[via], types...); r != nil {
					return r
				}
			}
		}
		return nil
	}
	tg, ok := m.cand[k]
	if !ok {
		return nil
	}
	for _, t := range types {
		if t == tg.typ {
			return obj{"reference": tg.typ + "/" + tg.id}
		}
	}
	return nil
}

// refs maps a list of References, keeping those that resolve.
func (m *mapper) refs(v any, types ...string) []obj {
	var out []obj
	seen := map[string]bool{}
	for _, x := range list(v) {
		if r := m.ref(x, types...); r != nil && !seen[r["reference"].(string)] {
			seen[r["reference"].(string)] = true
			out = append(out, r)
		}
	}
	return out
}

func (m *mapper) subject() obj { return obj{"reference": "Patient/" + m.pid} }

// set stores v under k unless v is empty.
func set(o obj, k string, v any) {
	switch x := v.(type) {
	case nil:
		return
	case string:
		if x == "" {
			return
		}
	case obj:
		if len(x) == 0 {
			return
		}
	case []obj:
		if len(x) == 0 {
			return
		}
	case []*concept:
		if len(x) == 0 {
			return
		}
	case []coding:
		if len(x) == 0 {
			return
		}
	case []string:
		if len(x) == 0 {
			return
		}
	case *concept:
		if x == nil {
			return
		}
	}
	o[k] = v
}

// localID makes a record-local id from a source id: [A-Za-z0-9.-], at most
// 46 characters; anything else is replaced by a hash so ids stay stable.
func localID(src string) string {
	ok := len(src) > 0 && len(src) <= 46
	for i := 0; ok && i < len(src); i++ {
		c := src[i]
		ok = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-'
	}
	if ok {
		return src
	}
	sum := sha256.Sum256([]byte(src))
	return "h" + hex.EncodeToString(sum[:12])
}

// --- Patient, Organization, Practitioner -----------------------------------

const stu3VerificationExt = "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1"

var verificationDisplay = map[string]string{
	"01": "Number present and verified", "02": "Number present but not traced",
	"03": "Trace required", "04": "Trace attempted - No match or multiple match found",
	"05": "Trace needs to be resolved - (NHS Number or patient detail conflict)",
	"06": "Trace in progress", "07": "Number not present and trace not required",
	"08": "Trace postponed (baby under six weeks old)",
}

func (m *mapper) patient(r obj) obj {
	p := obj{}
	// The verification status the provider gives applies to the number it
	// gives; a record served under another number (a recorded file whose
	// body carries a placeholder) is "present but not traced".
	verif := "02"
	if m.bodyNHS == string(m.opt.NHS) {
		verif = ""
		for _, id := range list(r["identifier"]) {
			io, _ := id.(obj)
			for _, e := range list(io["extension"]) {
				eo, _ := e.(obj)
				if str(eo["url"]) == stu3VerificationExt || strings.HasSuffix(str(eo["url"]), "NHSNumberVerificationStatus-1") {
					for _, c := range codings(eo["valueCodeableConcept"]) {
						if _, ok := verificationDisplay[c.Code]; ok {
							verif = c.Code
						}
					}
				}
			}
		}
		if verif == "" {
			verif = "01" // the provider answers only for traced, verified numbers
		}
	}
	p["identifier"] = []obj{{
		"extension": []obj{{
			"url": fhir.ExtNHSNumberVerificationStatus,
			"valueCodeableConcept": concept{Coding: []coding{{
				System: fhir.NHSNumberVerificationSystem, Code: verif, Display: verificationDisplay[verif]}}},
		}},
		"system": fhir.NHSNumberSystem,
		"value":  string(m.opt.NHS),
	}}
	set(p, "name", names(r["name"]))
	set(p, "telecom", telecoms(r["telecom"]))
	set(p, "gender", code(r["gender"], "male", "female", "other", "unknown"))
	set(p, "birthDate", date(r["birthDate"]))
	if b, ok := boolean(r["deceasedBoolean"]); ok {
		p["deceasedBoolean"] = b
	}
	set(p, "deceasedDateTime", dateTime(r["deceasedDateTime"]))
	set(p, "address", addresses(r["address"]))
	if b, ok := boolean(r["multipleBirthBoolean"]); ok {
		p["multipleBirthBoolean"] = b
	}
	if n, ok := integer(r["multipleBirthInteger"], 0); ok {
		p["multipleBirthInteger"] = n
	}
	set(p, "generalPractitioner", m.refs(r["generalPractitioner"], "Organization", "Practitioner"))
	set(p, "managingOrganization", m.ref(r["managingOrganization"], "Organization"))
	return p
}

func names(v any) []obj {
	var out []obj
	for _, n := range list(v) {
		no, _ := n.(obj)
		hn := obj{}
		set(hn, "use", code(no["use"], "usual", "official", "temp", "nickname", "anonymous", "old", "maiden"))
		switch f := no["family"].(type) {
		case string:
			set(hn, "family", cleanDisplay(f))
		case []any:
			var parts []string
			for _, x := range f {
				if s := cleanDisplay(str(x)); s != "" {
					parts = append(parts, s)
				}
			}
			set(hn, "family", strings.Join(parts, " "))
		}
		for _, k := range []string{"given", "prefix", "suffix"} {
			var vs []string
			for _, g := range list(no[k]) {
				if s := cleanDisplay(str(g)); s != "" {
					vs = append(vs, s)
				}
			}
			set(hn, k, vs)
		}
		set(hn, "period", period(no["period"]))
		if hn["family"] != nil || hn["given"] != nil {
			out = append(out, hn)
		}
	}
	return out
}

func addresses(v any) []obj {
	var out []obj
	for _, a := range list(v) {
		ao, _ := a.(obj)
		ad := obj{}
		set(ad, "use", code(ao["use"], "home", "work", "temp", "old", "billing"))
		set(ad, "type", code(ao["type"], "postal", "physical", "both"))
		var lines []string
		for _, l := range list(ao["line"]) {
			if s := cleanDisplay(str(l)); s != "" {
				lines = append(lines, s)
			}
		}
		set(ad, "line", lines)
		for _, k := range []string{"city", "district", "state", "postalCode", "country"} {
			set(ad, k, cleanDisplay(str(ao[k])))
		}
		set(ad, "period", period(ao["period"]))
		if ad["line"] != nil || ad["postalCode"] != nil || ad["city"] != nil {
			out = append(out, ad)
		}
	}
	return out
}

func telecoms(v any) []obj {
	var out []obj
	for _, t := range list(v) {
		to, _ := t.(obj)
		val := cleanDisplay(str(to["value"]))
		sys := code(to["system"], "phone", "fax", "email", "pager", "url", "sms", "other")
		if val == "" || sys == "" {
			continue
		}
		cp := obj{"system": sys, "value": val}
		set(cp, "use", code(to["use"], "home", "work", "temp", "old", "mobile"))
		out = append(out, cp)
	}
	return out
}

func (m *mapper) organization(r obj) obj {
	o := obj{}
	for _, id := range list(r["identifier"]) {
		io, _ := id.(obj)
		sys := str(io["system"])
		if (sys == fhir.ODSSystem || sys == "http://fhir.nhs.net/Id/ods-organization-code") && fhir.ValidODS(strings.TrimSpace(str(io["value"]))) {
			o["identifier"] = []obj{{"system": fhir.ODSSystem, "value": strings.TrimSpace(str(io["value"]))}}
			break
		}
	}
	set(o, "name", cleanDisplay(str(r["name"])))
	set(o, "telecom", telecoms(r["telecom"]))
	set(o, "address", addresses(r["address"]))
	if len(o) == 0 {
		return nil // nothing identifies it
	}
	return o
}

// practitionerSystems are the identifier systems a Practitioner keeps.
var practitionerSystems = map[string]bool{
	"https://fhir.nhs.uk/Id/sds-user-id":         true,
	"https://fhir.nhs.uk/Id/sds-role-profile-id": true,
	"https://fhir.hl7.org.uk/Id/gmc-number":      true,
	"https://fhir.hl7.org.uk/Id/gmp-number":      true,
	"https://fhir.hl7.org.uk/Id/nmc-number":      true,
}

func (m *mapper) practitioner(r obj) obj {
	p := obj{}
	var ids []obj
	for _, id := range list(r["identifier"]) {
		io, _ := id.(obj)
		sys, val := str(io["system"]), strings.TrimSpace(str(io["value"]))
		if practitionerSystems[sys] && alnum(val) {
			ids = append(ids, obj{"system": sys, "value": val})
		}
	}
	set(p, "identifier", ids)
	set(p, "name", names(r["name"]))
	set(p, "gender", code(r["gender"], "male", "female", "other", "unknown"))
	return p
}

func alnum(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// --- List warnings -----------------------------------------------------------

const snomedEndedAllergies = "1103671000000101"

// listed returns the entries of the section Lists with the given code.
func (m *mapper) listed(code string) map[string]bool {
	out := map[string]bool{}
	is := func(r obj) bool {
		return str(r["resourceType"]) == "List" && hasCoding(codings(r["code"]), map[string]bool{fhir.SNOMED + "|" + code: true})
	}
	for k, r := range m.b.owner {
		if is(r) {
			out[k] = true // contained in the List
		}
	}
	for _, r := range m.b.entries {
		if !is(r) {
			continue
		}
		for _, e := range list(r["entry"]) {
			eo, _ := e.(obj)
			if _, k := m.b.resolve(eo["item"]); k != "" {
				out[k] = true
			}
		}
	}
	return out
}

// listWarning maps the GP Connect List warning codes to gpgate's warnings.
var listWarning = map[string]fhir.Code{
	"confidential-items":   fhir.WarnConfidentialItems,
	"data-in-transit":      fhir.WarnDataInTransit,
	"data-awaiting-filing": fhir.WarnDataAwaitingFiling,
}

var warningText = map[fhir.Code]string{
	fhir.WarnConfidentialItems:  "Items have been excluded by the practice because of confidentiality or patient preferences.",
	fhir.WarnDataInTransit:      "The transfer of the patient's record from their previous practice is not complete; older information may be missing.",
	fhir.WarnDataAwaitingFiling: "The record may be incomplete: data supplied by a third party is awaiting review at the practice.",
}

// listArea names the dataset area of a GP Connect section List by its code
// (SNOMED CT), for the warning text; List titles are never copied.
var listArea = map[string]fhir.Area{
	"933361000000108": fhir.AreaMedication, "886921000000105": fhir.AreaAllergies, "1103671000000101": fhir.AreaAllergies,
	"717711000000103": fhir.AreaProblems, "1149501000000101": fhir.AreaEvents, "325851000000107": fhir.AreaEvents,
	"887191000000108": fhir.AreaInvestigations, "1102181000000102": fhir.AreaImmunisations,
	"792931000000107": fhir.AreaEvents, "714311000000108": fhir.AreaEvents, "826501000000100": fhir.AreaInvestigations,
}

// areaOfList is the dataset area a GP Connect List's SNOMED code names.
func areaOfList(r map[string]any) fhir.Area {
	var area fhir.Area
	for _, c := range codings(r["code"]) {
		if c.System == fhir.SNOMED {
			area |= listArea[c.Code]
		}
	}
	return area
}

// warnings collects the List warning codes into one warning per code,
// naming the areas whose sections carried it.
func (m *mapper) warnings() []fhir.Issue {
	areas := map[fhir.Code]fhir.Areas{}
	var order []fhir.Code
	for _, r := range m.b.entries {
		if str(r["resourceType"]) != "List" {
			continue
		}
		area := areaOfList(r)
		for _, e := range list(r["extension"]) {
			eo, _ := e.(obj)
			if !strings.Contains(str(eo["url"]), "ListWarningCode") {
				continue
			}
			for _, c := range warningCodes(eo) {
				w, ok := listWarning[c]
				if !ok {
					continue
				}
				if _, seen := areas[w]; !seen {
					order = append(order, w)
				}
				areas[w] |= area
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i] < order[j] })
	var out []fhir.Issue
	for _, w := range order {
		d := warningText[w]
		if a := areas[w]; a != 0 {
			d += " Sections: " + a.String() + "."
		}
		out = append(out, fhir.Issue{Severity: "warning", Code: w, Diagnostics: d})
	}
	return append(out, m.emptyReasons()...)
}

// emptyReasonCodes maps a coded List.emptyReason to gpgate's section empty
// reasons, by code system: GP Connect's and UK Core's list empty reason
// code systems, and the base list-empty-reason system (STU3 and R4 URLs).
// Text alone (List.note, emptyReason.text) is never read.
var emptyReasonCodes = map[string]fhir.Code{
	"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1|no-content-recorded":     fhir.EmptyNoContentRecorded,
	"https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1|no-content-recorded": fhir.EmptyNoContentRecorded,
	fhir.UKCoreListEmptyReasonSystem + "|no-content-recorded":                                       fhir.EmptyNoContentRecorded,
}

func init() {
	for _, sys := range []string{"http://hl7.org/fhir/list-empty-reason", fhir.ListEmptyReasonSystem} {
		for _, c := range []fhir.Code{fhir.EmptyNilKnown, fhir.EmptyNotAsked, fhir.EmptyNotStarted, fhir.EmptyClosed, fhir.EmptyWithheld, fhir.EmptyUnavailable} {
			emptyReasonCodes[sys+"|"+string(c)] = c
		}
	}
}

// emptyReasonText says in fixed words what an empty reason means.
var emptyReasonText = map[fhir.Code]string{
	fhir.EmptyNoContentRecorded: "The practice system holds no entries for this section.",
	fhir.EmptyNilKnown:          "The practice records that there are none known for this section.",
	fhir.EmptyNotAsked:          "The practice did not ask about this section.",
	fhir.EmptyNotStarted:        "The practice has not started this section.",
	fhir.EmptyClosed:            "The practice has closed this section.",
	fhir.EmptyWithheld:          "Entries for this section may exist but the practice withheld them.",
	fhir.EmptyUnavailable:       "Entries for this section may exist but the practice could not supply them.",
}

// gone reports whether an empty reason says entries may exist but are
// missing from the answer (rather than that none are recorded).
func gone(c fhir.Code) bool { return c == fhir.EmptyWithheld || c == fhir.EmptyUnavailable }

// emptyReasons reads the coded emptyReason of the section Lists that have
// no entries, one Issue per area and reason, its Expression naming the
// area (the section Lists gpgate builds read it from there). A reason that
// nothing is recorded is left out for an area another of its Lists has
// entries in; withheld and unavailable always stand (part of the area is
// missing). Empty Lists of no known area count only when withheld or
// unavailable, scoped to no area.
func (m *mapper) emptyReasons() []fhir.Issue {
	type ak struct {
		area fhir.Area
		code fhir.Code
	}
	var order []ak
	seen := map[ak]bool{}
	var filled fhir.Area
	for _, r := range m.b.entries {
		if str(r["resourceType"]) != "List" {
			continue
		}
		area := areaOfList(r)
		if len(list(r["entry"])) > 0 {
			filled |= area
			continue
		}
		for _, c := range codings(r["emptyReason"]) {
			code, ok := emptyReasonCodes[c.System+"|"+c.Code]
			if !ok || (area == 0 && !gone(code)) {
				continue
			}
			areas := area.List()
			if area == 0 {
				areas = []fhir.Area{0}
			}
			for _, a := range areas {
				k := ak{a, code}
				if !seen[k] {
					seen[k] = true
					order = append(order, k)
				}
			}
		}
	}
	var out []fhir.Issue
	for _, k := range order {
		if k.area&filled != 0 && !gone(k.code) {
			continue
		}
		is := fhir.Issue{Severity: "information", Code: k.code, Diagnostics: emptyReasonText[k.code]}
		if gone(k.code) {
			is.Severity = "warning"
		}
		if k.area != 0 {
			is.Expression = k.area.Name()
			is.Diagnostics += " Section: " + k.area.Name() + "."
		}
		out = append(out, is)
	}
	return out
}

// warningCodes reads a warning extension's code, whichever type carries it.
func warningCodes(ext obj) []string {
	if c := strings.TrimSpace(str(ext["valueCode"])); c != "" {
		return []string{c}
	}
	if vc := child(ext, "valueCoding"); vc != nil {
		return []string{strings.TrimSpace(str(vc["code"]))}
	}
	var out []string
	for _, c := range codings(ext["valueCodeableConcept"]) {
		out = append(out, c.Code)
	}
	return out
}
