package gp2gp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
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
	snomedSpecimen        = "123038009"

	// oidLabReportID is the root of a laboratory report's own identifier
	// (CompoundStatement/id[@root]/@extension of a pathology report).
	oidLabReportID = "2.16.840.1.113883.2.1.4.5.5"

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
	// Confidential counts the resources labelled NOPAT (meta.security):
	// served to the record so that redaction withholds them and signals
	// confidential items to the consumer.
	Confidential int
	Uncoded      int // entries without a clinical code (free text), withheld
	Attachments  int // attachments (external documents), withheld
}

// stmt is one indexed statement of the extract.
type stmt struct {
	n    *node
	comp *node // enclosing ehrComposition
	conf bool  // itself or an ancestor is NOPAT
}

// scope is what a statement inherits from where it sits.
type scope struct {
	comp     *node  // enclosing ehrComposition
	conf     bool   // NOPAT on the statement or an ancestor
	lab      bool   // inside a laboratory report
	specimen string // "Specimen/<id>" the results here were taken from
}

type mapper struct {
	opt       MapOptions
	pid       string
	extract   *node
	extractTS ts
	orgID     string
	pract     map[string]string // agent id -> Practitioner local id
	stmts     map[string]*stmt  // statement id -> statement
	encounter map[*node]string  // composition -> Encounter local id
	refs      map[string]string // source statement id -> "Type/fullID" of the resource it became
	res       []obj
	emitted   map[string]bool   // "Type/fullID"
	meds      map[string]string // medication key -> Medication local id

	confidential int
	uncoded      int
	attachments  int
	defaulted    []string // ids of Conditions whose status was defaulted

	auths    []*medAuth
	authByID map[string]*medAuth
	prescs   []*medIssue
	stopped  map[string]*node // authorise id -> ehrSupplyDiscontinue
	linksets []*stmt
}

type medAuth struct {
	comp *node
	conf bool
	ms   *node // HL7 MedicationStatement
	a    *node // ehrSupplyAuthorise
	med  string
	// issues are the prescriptions issued under this authorisation.
	issues []*medIssue
}

type medIssue struct {
	comp *node
	conf bool
	ms   *node
	p    *node // ehrSupplyPrescribe
	med  string
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
		encounter: map[*node]string{},
		refs:      map[string]string{},
		emitted:   map[string]bool{},
		meds:      map[string]string{},
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
	out := &Mapped{Confidential: m.confidential, Uncoded: m.uncoded, Attachments: m.attachments}
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
	out.Warnings = m.warnings()
	return out, nil
}

// warnings are the signals of what the record holds and does not share.
// Confidential (NOPAT) entries are not among them: they are served labelled,
// and redaction withholds them and says so to the consumer it withholds
// them from.
func (m *mapper) warnings() []fhir.Issue {
	var out []fhir.Issue
	if m.uncoded > 0 {
		out = append(out, fhir.Issue{Severity: "warning", Code: fhir.WarnUncodedItems,
			Diagnostics: "The GP record holds entries without a clinical code (free text, uncoded entries); they are not shared."})
	}
	if m.attachments > 0 {
		out = append(out, fhir.Issue{Severity: "warning", Code: fhir.WarnAttachmentsWithheld,
			Diagnostics: "The GP record holds attachments (documents, images); they are not shared."})
	}
	for _, id := range m.defaulted {
		out = append(out, fhir.Issue{Severity: "information", Code: fhir.WarnStatusDefaulted,
			Diagnostics: "The practice system did not record whether this problem is active; it is shown as active.",
			Expression:  "Condition.where(id='" + id + "').clinicalStatus"})
	}
	return out
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

// index records every statement by id with its composition and whether it
// is confidential (NOPAT on itself or an ancestor).
func (m *mapper) index(n, comp *node, conf bool) {
	conf = conf || nopat(n)
	if statementNames[n.Name] {
		if id := n.id(); id != "" {
			if _, dup := m.stmts[id]; !dup {
				m.stmts[id] = &stmt{n: n, comp: comp, conf: conf}
			}
		}
	}
	for _, k := range n.Kids {
		m.index(k, comp, conf)
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

// nopatLabel is the security label of an entry the practice marked
// confidential (HL7 v3 ActCode NOPAT, as GP2GP carries it); fhir.Index
// reads it as Confidential and redaction withholds the resource.
var nopatLabel = []coding{{System: systemActCode, Code: "NOPAT",
	Display: "no disclosure to patient, family or caregivers without attending provider's authorization"}}

// emit adds a resource with its id, profile and subject; it refuses a
// duplicate id (the first statement with an id wins). A confidential
// resource carries the NOPAT security label.
func (m *mapper) emit(t, local string, r obj, profile string, conf bool) bool {
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
	meta := obj{"profile": []string{profile}}
	if conf {
		meta["security"] = nopatLabel
		if t != "Medication" {
			m.confidential++
		}
	}
	r["meta"] = meta
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
	m.emit("Organization", m.orgLocal(), o, "", false)
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
		if m.emit("Practitioner", local, r, "", false) {
			m.pract[id] = local
		}
	}
}

// --- compositions ------------------------------------------------------------

// composition maps an ehrComposition: an Encounter when it is a consultation
// with content, then each of its statements. NOPAT on the composition makes
// the Encounter and everything in it confidential.
func (m *mapper) composition(c *node) {
	sc := scope{comp: c, conf: nopat(c)}
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
		m.encounterOf(c, code, sc.conf)
	}
	for _, k := range c.children("component") {
		for _, s := range k.Kids {
			m.statement(s, sc)
		}
	}
}

func (m *mapper) encounterOf(c *node, code []coding, conf bool) {
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
	if m.emit("Encounter", local, r, "", conf) {
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

// encounterRef is the Encounter of the statement's composition, or nil.
func (m *mapper) encounterRef(comp *node) obj {
	if l, ok := m.encounter[comp]; ok {
		return m.ref("Encounter", l)
	}
	return nil
}

// recorded is the composition's author time, else its availability time,
// else the extract's.
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
