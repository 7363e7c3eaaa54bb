package gp2gp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

type obj = map[string]any

// Well-known codes the mapping keys on.
const (
	snomedActiveProblem   = "394774009"
	snomedInactiveProblem = "394775005"
	snomedSignificant     = "386134007"
	snomedLabReporting    = "16488004"
	snomedBPPanel         = "75367002"
	snomedSystolic        = "271649006"
	snomedDiastolic       = "271650006"
	snomedReferral        = "3457005"

	systemConditionClinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	systemAllergyClinical   = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	systemAllergyVerif      = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	systemActCode           = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	systemParticipation     = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	systemInterpretation    = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	systemCourseOfTherapy   = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
	systemV20074            = "http://terminology.hl7.org/CodeSystem/v2-0074"
	systemFlagCategory      = "http://terminology.hl7.org/CodeSystem/flag-category"
	systemUCUM              = "http://unitsofmeasure.org"

	extProblemSignificance    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ProblemSignificance"
	extActualProblem          = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-ActualProblem"
	extRelatedClinicalContent = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-RelatedClinicalContent"
)

// Allergy category headers: drug allergy (14L..00) and non-drug allergy
// (SN53.00), in Read v2 and the SNOMED concepts EMIS maps them to.
var (
	drugAllergyHeader    = map[string]bool{fhir.ReadV2 + "|14L..00": true, fhir.SNOMED + "|416098002": true, fhir.SNOMED + "|196461000000101": true}
	nonDrugAllergyHeader = map[string]bool{fhir.ReadV2 + "|SN53.00": true, fhir.SNOMED + "|419199007": true, fhir.SNOMED + "|196471000000108": true}
)

// Blood-pressure triples: the battery header and its systolic and diastolic
// members, identified by SNOMED CT (original or translation) as GP Connect's
// guidance on representing BP readings from GP systems lists them, plus the
// Read v2 codes EMIS uses when no SNOMED translation is carried.
var (
	bpHeaderCodes = codeSet(
		fhir.SNOMED, "163020007", "75367002", "386534000", "386536003", "413606001", "314462001", "413605002", "716579001",
		"1162737008", "163035008", "251076008", "135840009", "135841008",
		fhir.ReadV2, "246..00", "246..11", "246..12", "2469.00", "662L.00",
	)
	systolicCodes = codeSet(
		fhir.SNOMED, "72313002", "271649006", "163030003", "407554009", "400974009", "407556006", "198081000000101",
		"314438006", "314439003", "314440001", "314464000", "716579001", "399304008", "1091791000000100",
		fhir.ReadV2, "2469.00", "246c.00", "246N.00", "246Q.00", "246W.00", "246g.00", "246Y.00",
	)
	diastolicCodes = codeSet(
		fhir.SNOMED, "1091811000000102", "271650006", "163031004", "400975005", "407555005", "407557002", "198091000000104",
		"314451001", "314452008", "314453003", "314465004", "716632005", "174255007",
		fhir.ReadV2, "246A.00", "246d.00", "246P.00", "246R.00", "246X.00", "246f.00", "246Z.00",
	)
	// Compositions that are containers for data entered outside a consultation
	// and so are not Encounters (as the GP2GP translator treats them).
	nonConsultationCodes = codeSet(fhir.SNOMED, "196401000000100", "196391000000103")
	homeVisitCodes       = codeSet(fhir.SNOMED, "25651000000106", "24631000000103", "25761000000104", "25751000000102")
	inpatientCodes       = codeSet(fhir.SNOMED, "24661000000108")
)

// codeSet builds system|code keys; an argument starting with "http" switches
// the system.
func codeSet(args ...string) map[string]bool {
	m := map[string]bool{}
	sys := ""
	for _, a := range args {
		if strings.HasPrefix(a, "http") {
			sys = a
			continue
		}
		m[sys+"|"+a] = true
	}
	return m
}

func inSet(cs []coding, set map[string]bool) bool {
	for _, c := range cs {
		if set[c.System+"|"+c.Code] {
			return true
		}
	}
	return false
}

// MapOptions is what the mapping needs besides the extract.
type MapOptions struct {
	NHS      fhir.NHSNumber
	Practice string          // ODS code of the practice holding the record
	Patient  []byte          // PDS-style R4 Patient JSON, or nil (identifier-only Patient)
	Flags    map[string]bool // system|code of codes that are risks or warnings (-> Flag)
}

// Mapped is the result of mapping one extract: canonical resources (Patient
// first) and warnings.
type Mapped struct {
	Resources []*fhir.Resource
	Warnings  []fhir.Issue
	Withheld  int // confidential items withheld at source
}

// stmt is one indexed statement of the extract.
type stmt struct {
	n        *node
	comp     *node // enclosing ehrComposition
	withheld bool  // itself or an ancestor is NOPAT
}

type mapper struct {
	opt       MapOptions
	pid       string
	extract   *node
	extractTS ts
	orgID     string
	pract     map[string]string // agent id -> Practitioner local id
	stmts     map[string]*stmt  // statement id -> statement
	named     map[string]bool   // statement ids named by a LinkSet
	encounter map[*node]string  // composition -> Encounter local id
	refs      map[string]string // source statement id -> "Type/fullID" of the resource it became
	res       []obj
	emitted   map[string]bool // "Type/fullID"
	withheld  int
	meds      map[string]string // medication key -> Medication local id
	seenIDs   map[string]bool

	auths    []*medAuth
	authByID map[string]*medAuth
	prescs   []*medIssue
	stopped  map[string]*node // authorise id -> ehrSupplyDiscontinue
	linksets []*stmt
	deferred []func()
}

type medAuth struct {
	st      *stmt
	ms      *node // HL7 MedicationStatement
	a       *node // ehrSupplyAuthorise
	med     string
	issues  []*medIssue
	planRef string
}

type medIssue struct {
	st  *stmt
	ms  *node
	p   *node // ehrSupplyPrescribe
	med string
}

// mapExtract maps the EhrExtract element to UK Core R4 resources for the
// patient opt.NHS. Every resource is validated and canonicalised with
// fhir.Canonicalize.
func mapExtract(extract *node, opt MapOptions) (*Mapped, error) {
	m := &mapper{
		opt:       opt,
		pid:       fhir.PatientID(opt.NHS),
		extract:   extract,
		extractTS: tsOf(extract.child("availabilityTime")),
		pract:     map[string]string{},
		stmts:     map[string]*stmt{},
		named:     map[string]bool{},
		encounter: map[*node]string{},
		refs:      map[string]string{},
		emitted:   map[string]bool{},
		meds:      map[string]string{},
		seenIDs:   map[string]bool{},
		authByID:  map[string]*medAuth{},
		stopped:   map[string]*node{},
	}
	if err := m.patient(); err != nil {
		return nil, err
	}
	m.organization()
	m.practitioners()
	folder := extract.path("component", "ehrFolder")
	if folder == nil {
		folder = extract.child("ehrFolder")
	}
	comps := m.compositions(folder)
	for _, c := range comps {
		m.index(c, c, false)
	}
	for _, c := range comps {
		m.composition(c)
	}
	m.medications()
	for _, ls := range m.linksets {
		m.condition(ls)
	}
	out := &Mapped{Withheld: m.withheld}
	for _, r := range m.res {
		delete(r, "_member")
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("gp2gp: encode %v: %w", r["resourceType"], err)
		}
		cr, err := fhir.Canonicalize(raw)
		if err != nil {
			return nil, fmt.Errorf("gp2gp: %v/%v: %w", r["resourceType"], r["id"], err)
		}
		out.Resources = append(out.Resources, cr)
	}
	fhir.LinkMedicationCodes(out.Resources)
	if m.withheld > 0 {
		out.Warnings = append(out.Warnings, fhir.Issue{
			Severity:    "warning",
			Code:        fhir.WarnConfidentialItems,
			Diagnostics: "Items have been excluded from this record because the practice marked them confidential.",
		})
	}
	return out, nil
}

// compositions lists the ehrCompositions of the folder (component/ehrComposition).
func (m *mapper) compositions(folder *node) []*node {
	var out []*node
	for _, c := range folder.children("component") {
		if ec := c.child("ehrComposition"); ec != nil {
			out = append(out, ec)
		}
	}
	return out
}

func nopat(n *node) bool {
	for _, c := range n.children("confidentialityCode") {
		if c.attr("code") == "NOPAT" {
			return true
		}
	}
	return false
}

// statement kinds the index knows.
var statementNames = map[string]bool{
	"ObservationStatement": true, "CompoundStatement": true, "LinkSet": true, "MedicationStatement": true,
	"RequestStatement": true, "PlanStatement": true, "NarrativeStatement": true, "RegistrationStatement": true,
	"ehrSupplyAuthorise": true, "ehrSupplyPrescribe": true, "ehrSupplyDiscontinue": true,
}

// index records every statement by id with its composition and whether it
// is withheld (NOPAT on itself or an ancestor).
func (m *mapper) index(n, comp *node, withheld bool) {
	withheld = withheld || nopat(n)
	if statementNames[n.Name] {
		if id := n.id(); id != "" {
			if _, dup := m.stmts[id]; !dup {
				m.stmts[id] = &stmt{n: n, comp: comp, withheld: withheld}
			}
		}
		if n.Name == "LinkSet" && !withheld {
			if ref := n.path("conditionNamed", "namedStatementRef", "id").attr("root"); ref != "" {
				m.named[ref] = true
			}
		}
	}
	for _, k := range n.Kids {
		m.index(k, comp, withheld)
	}
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

func (m *mapper) fullID(local string) string { return fhir.ResourceID(m.pid, local) }

func (m *mapper) ref(t, local string) obj {
	return obj{"reference": t + "/" + m.fullID(local)}
}

// emit adds a resource with its id, profile and subject; it refuses a
// duplicate id (the first statement with an id wins).
func (m *mapper) emit(t, local string, r obj, profile string) bool {
	full := m.fullID(local)
	key := t + "/" + full
	if m.emitted[key] {
		return false
	}
	m.emitted[key] = true
	r["resourceType"] = t
	r["id"] = full
	if profile == "" {
		profile = fhir.ProfileFor(t)
	}
	r["meta"] = obj{"profile": []string{profile}}
	m.res = append(m.res, r)
	return true
}

func (m *mapper) subject() obj { return obj{"reference": "Patient/" + m.pid} }

// practitionerRef returns a reference to the Practitioner for agent id, or nil.
func (m *mapper) practitionerRef(agentID string) obj {
	if l, ok := m.pract[agentID]; ok {
		return m.ref("Practitioner", l)
	}
	return nil
}

// --- Patient, Organization, Practitioners -----------------------------------

func (m *mapper) patient() error {
	p := obj{}
	if len(m.opt.Patient) > 0 {
		var src map[string]json.RawMessage
		if err := json.Unmarshal(m.opt.Patient, &src); err != nil {
			return fmt.Errorf("gp2gp: PDS patient: %w", err)
		}
		for _, k := range []string{"extension", "active", "name", "telecom", "gender", "birthDate", "deceasedBoolean",
			"deceasedDateTime", "address", "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger", "communication"} {
			if v, ok := src[k]; ok {
				var x any
				if err := json.Unmarshal(v, &x); err != nil {
					return fmt.Errorf("gp2gp: PDS patient: %w", err)
				}
				p[k] = dropText(x)
			}
		}
		var meta struct {
			Security json.RawMessage `json:"security"`
		}
		if raw, ok := src["meta"]; ok {
			_ = json.Unmarshal(raw, &meta)
		}
		if len(meta.Security) > 0 && string(meta.Security) != "null" {
			defer func() {
				if mm, ok := p["meta"].(obj); ok {
					mm["security"] = meta.Security
				}
			}()
		}
	}
	// Demographics traced on PDS carry a verified NHS number; without a PDS
	// entry the number is only what the extract or the manifest says.
	verif, display := "02", "Number present but not traced"
	if len(m.opt.Patient) > 0 {
		verif, display = "01", "Number present and verified"
	}
	p["identifier"] = []obj{{
		"extension": []obj{{
			"url": fhir.ExtNHSNumberVerificationStatus,
			"valueCodeableConcept": obj{"coding": []obj{{
				"system": fhir.NHSNumberVerificationSystem, "code": verif, "display": display,
			}}},
		}},
		"system": fhir.NHSNumberSystem,
		"value":  string(m.opt.NHS),
	}}
	p["generalPractitioner"] = []obj{{"reference": "Organization/" + m.fullID(m.orgLocal())}}
	m.emitted["Patient/"+m.pid] = true
	p["resourceType"] = "Patient"
	p["id"] = m.pid
	p["meta"] = obj{"profile": []string{fhir.ProfilePatient}}
	m.res = append(m.res, p)
	return nil
}

func (m *mapper) orgLocal() string {
	if m.orgID == "" {
		m.orgID = "org." + localID(m.opt.Practice)
		if len(m.orgID) > 46 {
			m.orgID = m.orgID[:46]
		}
	}
	return m.orgID
}

func (m *mapper) organization() {
	o := obj{"identifier": []obj{{"system": fhir.ODSSystem, "value": m.opt.Practice}}}
	// The practice's name, when the extract's agent directory names it.
	for _, a := range m.agents() {
		org := a.child("agentOrganization")
		if org == nil {
			continue
		}
		for _, id := range org.children("id") {
			if strings.EqualFold(id.attr("extension"), m.opt.Practice) && org.child("name") != nil && org.child("name").Text != "" {
				o["name"] = cleanDisplay(org.child("name").Text)
			}
		}
	}
	m.emit("Organization", m.orgLocal(), o, "")
}

func (m *mapper) agents() []*node {
	dir := m.extract.path("component", "ehrFolder", "responsibleParty", "agentDirectory")
	if dir == nil {
		dir = m.extract.path("ehrFolder", "responsibleParty", "agentDirectory")
	}
	var out []*node
	for _, p := range dir.children("part") {
		if a := p.child("Agent"); a != nil {
			out = append(out, a)
		}
	}
	return out
}

func (m *mapper) practitioners() {
	for _, a := range m.agents() {
		person := a.child("agentPerson")
		id := a.id()
		if person == nil || id == "" {
			continue
		}
		local := localID(id)
		r := obj{}
		var ids []obj
		for _, x := range a.children("id") {
			if x.attr("root") == OIDGMPNumber && x.attr("extension") != "" {
				ids = append(ids, obj{"system": SystemGMPNumber, "value": cleanDisplay(x.attr("extension"))})
			}
		}
		if len(ids) > 0 {
			r["identifier"] = ids
		}
		if nm := person.child("name"); nm != nil {
			hn := obj{}
			if f := nm.child("family"); f != nil && f.Text != "" {
				hn["family"] = cleanDisplay(f.Text)
			}
			for _, k := range []string{"given", "prefix"} {
				var vs []string
				for _, g := range nm.children(k) {
					if g.Text != "" {
						vs = append(vs, cleanDisplay(g.Text))
					}
				}
				if len(vs) > 0 {
					hn[k] = vs
				}
			}
			if len(hn) > 0 {
				hn["use"] = "official"
				r["name"] = []obj{hn}
			}
		}
		if m.emit("Practitioner", local, r, "") {
			m.pract[id] = local
		}
	}
}

// --- compositions and statements -------------------------------------------

func (m *mapper) composition(c *node) {
	if nopat(c) {
		m.withheld++
		return
	}
	hasContent := false
	for _, k := range c.children("component") {
		for _, s := range k.Kids {
			if s.Name != "EhrEmpty" {
				hasContent = true
			}
		}
	}
	code := codings(c.child("code"))
	if hasContent && !inSet(code, nonConsultationCodes) {
		m.encounterOf(c, code)
	}
	for _, k := range c.children("component") {
		for _, s := range k.Kids {
			m.statement(s, c)
		}
	}
}

func (m *mapper) encounterOf(c *node, code []coding) {
	id := c.id()
	if id == "" {
		return
	}
	local := localID(id)
	class := coding{System: systemActCode, Code: "AMB", Display: "ambulatory"}
	switch {
	case inSet(code, homeVisitCodes):
		class = coding{System: systemActCode, Code: "HH", Display: "home health"}
	case inSet(code, inpatientCodes):
		class = coding{System: systemActCode, Code: "IMP", Display: "inpatient encounter"}
	}
	r := obj{"status": "finished", "class": class, "subject": m.subject(),
		"serviceProvider": m.ref("Organization", m.orgLocal())}
	if len(code) > 0 {
		r["type"] = []concept{{Coding: code}}
	}
	var parts []obj
	if pr := m.practitionerRef(c.path("author", "agentRef").id()); pr != nil {
		parts = append(parts, obj{"type": []concept{{Coding: []coding{{System: systemParticipation, Code: "AUT", Display: "author (originator)"}}}}, "individual": pr})
	}
	if pr := m.practitionerRef(c.path("Participant2", "agentRef").id()); pr != nil {
		parts = append(parts, obj{"type": []concept{{Coding: []coding{{System: systemParticipation, Code: "PPRF", Display: "primary performer"}}}}, "individual": pr})
	}
	if len(parts) > 0 {
		r["participant"] = parts
	}
	eff := ivlOf(c.child("effectiveTime"))
	start := eff.start()
	if !start.ok() {
		start = tsOf(c.child("availabilityTime"))
	}
	if per := period(start, eff.High); per != nil {
		r["period"] = per
	}
	if m.emit("Encounter", local, r, "") {
		m.encounter[c] = local
		m.refs[id] = "Encounter/" + m.fullID(local)
	}
}

// period builds a FHIR Period; an end before the start is dropped.
func period(start, end ts) obj {
	p := obj{}
	if start.ok() {
		p["start"] = start.Date
	}
	if end.ok() && (!start.ok() || !end.Time.Before(start.Time)) {
		p["end"] = end.Date
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// ctx is what a statement inherits from its composition.
func (m *mapper) encounterRef(comp *node) obj {
	if l, ok := m.encounter[comp]; ok {
		return m.ref("Encounter", l)
	}
	return nil
}

// recorded is the composition's author time, else the extract's availability time.
func (m *mapper) recorded(comp *node) ts {
	if t := tsOf(comp.path("author", "time")); t.ok() {
		return t
	}
	if t := tsOf(comp.child("availabilityTime")); t.ok() {
		return t
	}
	return m.extractTS
}

func (m *mapper) issued(comp *node) string {
	if t := tsOf(comp.path("author", "time")); t.Full {
		return t.instant()
	}
	return m.extractTS.instant()
}

// performer: the statement's PPRF/PRF participant, else the composition's
// responsible party (Participant2), else its author.
func (m *mapper) performer(s, comp *node) obj {
	for _, p := range s.children("Participant") {
		if tc := p.attr("typeCode"); tc == "PPRF" || tc == "PRF" {
			if r := m.practitionerRef(p.path("agentRef").id()); r != nil {
				return r
			}
		}
	}
	if r := m.practitionerRef(comp.path("Participant2", "agentRef").id()); r != nil {
		return r
	}
	return m.practitionerRef(comp.path("author", "agentRef").id())
}

func (m *mapper) recorder(comp *node) obj {
	if r := m.practitionerRef(comp.path("author", "agentRef").id()); r != nil {
		return r
	}
	return m.practitionerRef(comp.path("Participant2", "agentRef").id())
}

// statement maps one statement of a composition (recursively for compound
// statements).
func (m *mapper) statement(s, comp *node) {
	if nopat(s) {
		if s.Name != "NarrativeStatement" {
			m.withheld++
		}
		return
	}
	switch s.Name {
	case "CompoundStatement":
		m.compound(s, comp, false)
	case "ObservationStatement":
		if !m.named[s.id()] {
			m.observation(s, comp, false)
		}
	case "LinkSet":
		if st := m.stmts[s.id()]; st != nil && st.n == s {
			m.linksets = append(m.linksets, st)
		}
	case "MedicationStatement":
		m.medicationStatement(s, comp)
	case "RequestStatement":
		m.request(s, comp)
	case "PlanStatement":
		m.plan(s, comp)
	}
	// NarrativeStatement (free text), RegistrationStatement, EhrEmpty: not shared.
}

func (m *mapper) compound(s, comp *node, lab bool) {
	code := codings(s.child("code"))
	switch {
	case inSet(code, drugAllergyHeader) || inSet(code, nonDrugAllergyHeader):
		drug := inSet(code, drugAllergyHeader)
		for _, k := range s.children("component") {
			for _, c := range k.Kids {
				if c.Name == "ObservationStatement" {
					if nopat(c) {
						m.withheld++
						continue
					}
					m.allergy(c, comp, drug, code)
				} else {
					m.statement(c, comp)
				}
			}
		}
		return
	case m.bloodPressure(s, comp):
		return
	case !lab && hasCodeAny(code, snomedLabReporting) && s.attr("classCode") == "CLUSTER":
		m.report(s, comp)
		return
	}
	if lab && s.attr("classCode") == "BATTERY" {
		m.testGroup(s, comp)
		return
	}
	for _, k := range s.children("component") {
		for _, c := range k.Kids {
			if lab && c.Name == "ObservationStatement" {
				if nopat(c) {
					m.withheld++
				} else {
					m.observation(c, comp, true)
				}
				continue
			}
			if lab && c.Name == "CompoundStatement" {
				if nopat(c) {
					m.withheld++
				} else {
					m.compound(c, comp, true)
				}
				continue
			}
			m.statement(c, comp)
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

var interpretations = map[string][2]string{
	"H": {"H", "High"}, "HI": {"H", "High"}, "HH": {"HH", "Critical high"},
	"L": {"L", "Low"}, "LO": {"L", "Low"}, "LL": {"LL", "Critical low"},
	"A": {"A", "Abnormal"}, "PA": {"A", "Abnormal"}, "AA": {"AA", "Critical abnormal"},
	"N": {"N", "Normal"},
}

// observationBody fills the parts an Observation and a BP component share:
// value, interpretation, reference ranges. It reports whether a value was set.
func observationBody(s *node, r obj) bool {
	hasValue := false
	if v := s.child("value"); v != nil {
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
	if ic := s.child("interpretationCode"); ic != nil {
		if iv, ok := interpretations[strings.ToUpper(ic.attr("code"))]; ok {
			r["interpretation"] = []concept{{Coding: []coding{{System: systemInterpretation, Code: iv[0], Display: iv[1]}}}}
		}
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

// observation maps an ObservationStatement; lab marks it a laboratory result.
// An uncoded statement is free text and is dropped.
func (m *mapper) observation(s, comp *node, lab bool) string {
	code := conceptOf(s.child("code"))
	id := s.id()
	if code == nil || id == "" {
		return ""
	}
	local := localID(id)
	r := obj{"status": "final", "code": code, "subject": m.subject()}
	if lab {
		r["category"] = []concept{{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "laboratory", Display: "Laboratory"}}}}
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if is := m.issued(comp); is != "" {
		r["issued"] = is
	}
	if p := m.performer(s, comp); p != nil {
		r["performer"] = []obj{p}
	}
	observationBody(s, r)
	if !m.emit("Observation", local, r, "") {
		return ""
	}
	m.refs[id] = "Observation/" + m.fullID(local)
	return local
}

// bloodPressure maps a BP triple: a compound statement whose header code is
// a blood-pressure reading and which holds exactly one systolic and one
// diastolic ObservationStatement, both with values. It reports whether s was
// one (and so is consumed).
func (m *mapper) bloodPressure(s, comp *node) bool {
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
	if sys == nil || dia == nil || len(others) > 0 {
		return false
	}
	if nopat(sys) || nopat(dia) {
		m.withheld++
		return true
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
	if id == "" {
		return false
	}
	local := localID(id)
	r := obj{
		"status":   "final",
		"category": []concept{{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "vital-signs", Display: "Vital Signs"}}}},
		"code": concept{Coding: append([]coding{
			{System: fhir.LOINC, Code: fhir.LOINCBloodPressurePanel, Display: "Blood pressure panel with all children optional"},
			{System: fhir.SNOMED, Code: snomedBPPanel, Display: "Blood pressure"},
		}, without(head, fhir.SNOMED, snomedBPPanel)...)},
		"subject":   m.subject(),
		"component": []obj{comp1, comp2},
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if _, ok := r["effectiveDateTime"]; !ok && r["effectivePeriod"] == nil {
		if t := m.recorded(comp); t.ok() {
			r["effectiveDateTime"] = t.Date
		}
	}
	if r["effectiveDateTime"] == nil && r["effectivePeriod"] == nil {
		return false // the BP profile requires an effective time
	}
	if is := m.issued(comp); is != "" {
		r["issued"] = is
	}
	if p := m.performer(s, comp); p != nil {
		r["performer"] = []obj{p}
	}
	if m.emit("Observation", local, r, fhir.ProfileBloodPressure) {
		ref := "Observation/" + m.fullID(local)
		m.refs[id], m.refs[sys.id()], m.refs[dia.id()] = ref, ref, ref
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
// DiagnosticReport whose results are the Observations mapped from its test
// group headers and results.
func (m *mapper) report(s, comp *node) {
	id := s.id()
	code := conceptOf(s.child("code"))
	before := len(m.res)
	m.compoundChildren(s, comp)
	if id == "" || code == nil {
		return
	}
	var results []obj
	for _, r := range m.res[before:] {
		if r["resourceType"] == "Observation" && !isMember(r) {
			results = append(results, obj{"reference": "Observation/" + r["id"].(string)})
		}
	}
	local := localID(id)
	r := obj{
		"status":   "final",
		"category": []concept{{Coding: []coding{{System: systemV20074, Code: "LAB", Display: "Laboratory"}}}},
		"code":     code,
		"subject":  m.subject(),
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if is := m.issued(comp); is != "" {
		r["issued"] = is
	}
	if p := m.performer(s, comp); p != nil {
		r["performer"] = []obj{p}
	}
	if len(results) > 0 {
		r["result"] = results
	}
	if m.emit("DiagnosticReport", local, r, "") {
		m.refs[id] = "DiagnosticReport/" + m.fullID(local)
	}
}

// isMember marks Observations already referenced by a test group header.
func isMember(r obj) bool { _, ok := r["_member"]; return ok }

func (m *mapper) compoundChildren(s, comp *node) {
	for _, k := range s.children("component") {
		for _, c := range k.Kids {
			if nopat(c) {
				if c.Name != "NarrativeStatement" {
					m.withheld++
				}
				continue
			}
			switch c.Name {
			case "ObservationStatement":
				m.observation(c, comp, true)
			case "CompoundStatement":
				m.compound(c, comp, true)
			}
		}
	}
}

// testGroup maps a BATTERY inside a report: a header Observation with
// hasMember references to its results.
func (m *mapper) testGroup(s, comp *node) {
	before := len(m.res)
	m.compoundChildren(s, comp)
	var members []obj
	for _, r := range m.res[before:] {
		if r["resourceType"] == "Observation" && !isMember(r) {
			members = append(members, obj{"reference": "Observation/" + r["id"].(string)})
			r["_member"] = true
		}
	}
	code := conceptOf(s.child("code"))
	id := s.id()
	if code == nil || id == "" {
		return
	}
	local := localID(id)
	r := obj{"status": "final", "code": code, "subject": m.subject(),
		"category": []concept{{Coding: []coding{{System: fhir.ObservationCategorySystem, Code: "laboratory", Display: "Laboratory"}}}}}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	m.effective(s, r)
	if is := m.issued(comp); is != "" {
		r["issued"] = is
	}
	if len(members) > 0 {
		r["hasMember"] = members
	}
	if m.emit("Observation", local, r, "") {
		m.refs[id] = "Observation/" + m.fullID(local)
	}
}

// --- Allergies -------------------------------------------------------------------

func (m *mapper) allergy(s, comp *node, drug bool, header []coding) {
	id := s.id()
	code := codings(s.child("code"))
	// A degraded entry carries only the category header as its code: the
	// coded substance, when present, is the value.
	if len(code) == 0 || inSet(code, drugAllergyHeader) || inSet(code, nonDrugAllergyHeader) {
		if v := codings(s.child("value")); len(v) > 0 {
			code = append(v, code...)
		}
	}
	if len(code) == 0 {
		// Degraded: no coded substance at all; the category header says
		// what kind of allergy it is.
		code = header
	}
	if id == "" || len(code) == 0 {
		return
	}
	local := localID(id)
	cat := "environment"
	if drug {
		cat = "medication"
	}
	r := obj{
		"clinicalStatus":     concept{Coding: []coding{{System: systemAllergyClinical, Code: "active", Display: "Active"}}},
		"verificationStatus": concept{Coding: []coding{{System: systemAllergyVerif, Code: "unconfirmed", Display: "Unconfirmed"}}},
		"category":           []string{cat},
		"code":               concept{Coding: code},
		"patient":            m.subject(),
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	eff := ivlOf(s.child("effectiveTime"))
	if st := eff.start(); st.ok() {
		r["onsetDateTime"] = st.Date
	}
	if rec := m.recorded(comp); rec.ok() {
		r["recordedDate"] = rec.Date
	}
	if p := m.recorder(comp); p != nil {
		r["recorder"] = p
	}
	if p := m.performer(s, comp); p != nil {
		r["asserter"] = p
	}
	if m.emit("AllergyIntolerance", local, r, "") {
		m.refs[id] = "AllergyIntolerance/" + m.fullID(local)
	}
}

// --- Problems (LinkSet) ----------------------------------------------------------

func (m *mapper) condition(ls *stmt) {
	s, comp := ls.n, ls.comp
	id := s.id()
	if id == "" {
		return
	}
	namedID := s.path("conditionNamed", "namedStatementRef", "id").attr("root")
	var code *concept
	var named *stmt
	if namedID != "" {
		named = m.stmts[namedID]
		if named != nil && named.withheld {
			m.withheld++ // the problem would reveal a confidential entry
			return
		}
		if named != nil {
			code = conceptOf(named.n.child("code"))
		}
	}
	local := localID(id)
	lsCode := codings(s.child("code"))
	status := "active"
	if hasCode(lsCode, fhir.SNOMED, snomedInactiveProblem) {
		status = "inactive"
	}
	significance := "minor"
	for _, q := range s.child("code").children("qualifier") {
		if q.child("name").attr("code") == snomedSignificant {
			significance = "major"
		}
	}
	r := obj{
		"extension": []obj{{"url": extProblemSignificance, "valueCode": significance}},
		"clinicalStatus": concept{Coding: []coding{{System: systemConditionClinical, Code: status,
			Display: map[string]string{"active": "Active", "inactive": "Inactive"}[status]}}},
		"category": []concept{{Coding: []coding{{System: fhir.ConditionCategorySystem, Code: "problem-list-item", Display: "Problem List Item"}}}},
		"subject":  m.subject(),
	}
	if code != nil {
		r["code"] = code
	}
	exts := r["extension"].([]obj)
	// The named statement is consumed into the Condition when it was an
	// ObservationStatement; anything else (an allergy, a medication) is its
	// own resource and is referenced as the actual problem.
	if named != nil {
		if ref, ok := m.refs[namedID]; ok {
			exts = append(exts, obj{"url": extActualProblem, "valueReference": obj{"reference": ref}})
		}
	}
	for _, c := range s.children("component") {
		rid := c.path("statementRef", "id").attr("root")
		if ref, ok := m.refs[rid]; ok && rid != namedID {
			exts = append(exts, obj{"url": extRelatedClinicalContent, "valueReference": obj{"reference": ref}})
		} else if tgt := m.stmts[rid]; tgt != nil && tgt.n.Name == "LinkSet" && !tgt.withheld && !nopat(tgt.n) {
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
	if m.emit("Condition", local, r, "") {
		m.refs[id] = "Condition/" + m.fullID(local)
	}
}

// --- Referrals and plans -----------------------------------------------------------

var priorities = map[string]string{
	"394848005": "routine", // Normal
	"394849002": "urgent",  // High
	"88694003":  "stat",    // Immediate
}

func (m *mapper) request(s, comp *node) {
	id := s.id()
	if id == "" {
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
	}
	r := obj{
		"status":   status,
		"intent":   "order",
		"category": []concept{{Coding: []coding{{System: fhir.SNOMED, Code: snomedReferral, Display: "Patient referral"}}}},
		"subject":  m.subject(),
	}
	if c := conceptOf(s.child("code")); c != nil {
		r["code"] = c
	}
	if p, ok := priorities[s.child("priorityCode").attr("code")]; ok {
		r["priority"] = p
	}
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	if t := tsOf(s.child("availabilityTime")); t.ok() {
		r["authoredOn"] = t.Date
	} else if t := m.recorded(comp); t.ok() {
		r["authoredOn"] = t.Date
	}
	if p := m.performer(s, comp); p != nil {
		r["requester"] = p
	}
	if m.emit("ServiceRequest", local, r, "") {
		m.refs[id] = "ServiceRequest/" + m.fullID(local)
	}
}

// plan maps a PlanStatement to a Flag when its code is one of the configured
// risks or warnings; recalls and follow-ups are not in the dataset.
func (m *mapper) plan(s, comp *node) {
	code := codings(s.child("code"))
	if len(code) == 0 || !inSet(code, m.opt.Flags) {
		return
	}
	m.flag(s, comp, code)
}

func (m *mapper) flag(s, comp *node, code []coding) {
	id := s.id()
	if id == "" {
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
	if e := m.encounterRef(comp); e != nil {
		r["encounter"] = e
	}
	if p := m.recorder(comp); p != nil {
		r["author"] = p
	}
	if m.emit("Flag", local, r, "") {
		m.refs[id] = "Flag/" + m.fullID(local)
	}
}

// sortedKeys is used for deterministic output in tests and logs.
func sortedKeys(mm map[string]bool) []string {
	out := make([]string, 0, len(mm))
	for k := range mm {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// dropText removes "text" elements (address and name text, narrative) from
// demographics copied from PDS: the structured parts say the same.
func dropText(v any) any {
	switch x := v.(type) {
	case map[string]any:
		delete(x, "text")
		for k, c := range x {
			x[k] = dropText(c)
		}
	case []any:
		for i, c := range x {
			x[i] = dropText(c)
		}
	}
	return v
}
