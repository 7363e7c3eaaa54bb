package viewer

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

type shareLevel int

const (
	shareNone shareLevel = iota
	shareSummary
	shareFull
)

// viewDef is one of the MIG's record views.
type viewDef struct {
	Key   string
	Title string
	Areas fhir.Areas // the areas the view shows
}

// viewDefs are the record views, in the order of the navigation.
var viewDefs = []viewDef{
	{"summary", "Summary", fhir.AreaSummary},
	{"problems", "Problems", fhir.AreaProblems},
	{"diagnoses", "Diagnoses", fhir.AreaDiagnoses},
	{"medication", "Medication", fhir.AreaMedication},
	{"allergies", "Allergies", fhir.AreaAllergies},
	{"risks", "Risks and warnings", fhir.AreaRisks},
	{"procedures", "Procedures", fhir.AreaProcedures},
	{"investigations", "Investigations", fhir.AreaInvestigations},
	{"examination", "Examination", fhir.AreaExamination},
	{"immunisations", "Immunisations", fhir.AreaImmunisations},
	{"events", "Events", fhir.AreaEvents},
}

func viewByKey(k string) (viewDef, bool) {
	for _, d := range viewDefs {
		if d.Key == k {
			return d, true
		}
	}
	return viewDef{}, false
}

// viewShared: how much of a view the permitted areas cover. The summary
// view is there when the summary, or any area it draws from, is shared.
func viewShared(d viewDef, a fhir.Areas) shareLevel {
	if d.Areas == fhir.AreaSummary {
		if a&fhir.AreaSummary != 0 || a.Any(fhir.SummaryAreas) {
			return shareFull
		}
		return shareNone
	}
	if a.Has(d.Areas) {
		return shareFull
	}
	if a&fhir.AreaSummary != 0 && fhir.SummaryAreas.Has(d.Areas) {
		return shareSummary
	}
	return shareNone
}

// inSummary is the summary filter (fhir.InSummary), with the Medication
// resources the current statements name (the core sends only those when the
// agreement shares the summary alone).
func inSummary(r *fhir.Resource, now time.Time) bool {
	return r.Type == "Medication" || fhir.InSummary(r, now)
}

func recent(r *fhir.Resource, now time.Time) bool {
	return !r.Ix.Start.IsZero() && !r.Ix.Start.Before(now.AddDate(0, -fhir.SummaryMonths, 0))
}

func currentMed(status string) bool { return fhir.CurrentMedication(status) }

// recCtx is one record answer being turned into a view.
type recCtx struct {
	res   *Result
	now   time.Time
	loc   *time.Location
	q     url.Values
	size  int
	byRef map[string]*fhir.Resource
	drugs map[string]Term // Medication terms by reference, decoded once a page
}

func newRecCtx(res *Result, now time.Time, loc *time.Location, q url.Values, size int) *recCtx {
	rc := &recCtx{res: res, now: now, loc: loc, q: q, size: size, byRef: map[string]*fhir.Resource{}, drugs: map[string]Term{}}
	for _, r := range res.Resources {
		if rc.allowed(r) {
			rc.byRef[r.Type+"/"+r.ID] = r
		}
	}
	return rc
}

// allowed: a resource is shown only inside the areas the decision permits,
// and never when it is labelled confidential (the core has already
// withheld both; the viewer does not rely on it).
func (rc *recCtx) allowed(r *fhir.Resource) bool {
	if r.Ix.Confidential {
		return false
	}
	a := rc.res.Areas
	if a.Has(r.Ix.Area) {
		return true
	}
	return a&fhir.AreaSummary != 0 && fhir.SummaryAreas.Has(r.Ix.Area) && inSummary(r, rc.now)
}

// of returns the allowed resources of the area and types, newest first.
func (rc *recCtx) of(area fhir.Area, types ...string) []*fhir.Resource {
	var out []*fhir.Resource
	for _, r := range rc.res.Resources {
		if r.Ix.Area != area || !rc.allowed(r) {
			continue
		}
		for _, t := range types {
			if r.Type == t {
				out = append(out, r)
				break
			}
		}
	}
	fhir.SortByDateDesc(out)
	return out
}

func (rc *recCtx) ref(ref string) *fhir.Resource { return rc.byRef[ref] }

// pager pages one long list; each list has its own query parameter.
type pager struct {
	Label      string
	Page       int
	Pages      int
	From, To   int
	Total      int
	Prev, Next string
}

func (rc *recCtx) page(param, label string, total int) (lo, hi int, p *pager) {
	size := rc.size
	pages := (total + size - 1) / size
	n, _ := strconv.Atoi(rc.q.Get(param))
	if n < 1 {
		n = 1
	}
	if n > pages {
		n = max(pages, 1)
	}
	lo = (n - 1) * size
	hi = min(lo+size, total)
	if pages <= 1 {
		return lo, hi, nil
	}
	link := func(k int) string {
		q := url.Values{}
		for key, vs := range rc.q {
			q[key] = vs
		}
		q.Set(param, strconv.Itoa(k))
		return "?" + q.Encode()
	}
	p = &pager{Label: label, Page: n, Pages: pages, From: lo + 1, To: hi, Total: total}
	if n > 1 {
		p.Prev = link(n - 1)
	}
	if n < pages {
		p.Next = link(n + 1)
	}
	return lo, hi, p
}

// ---- the record page

type navItem struct {
	Key, Title, Href string
	Current          bool
	Level            shareLevel
}

type recordPage struct {
	Demo        *demographics
	Nav         []navItem
	View        string
	ViewTitle   string
	Level       shareLevel
	NotShared   bool
	SummaryOnly bool
	Warnings    []*message
	Access      string
	BreakGlass  bool
	ViewedBy    string
	ViewedAt    string

	Summary        *summaryView
	Problems       *problemsView
	Diagnoses      *listView[conditionRow]
	Medication     *medicationView
	Allergies      *allergiesView
	Risks          *listView[flagRow]
	Procedures     *listView[procRow]
	Investigations *investigationsView
	Examination    *examinationView
	Immunisations  *listView[immRow]
	Events         *eventsView
}

type listView[T any] struct {
	Rows  []T
	Pager *pager
}

// record serves one record view for the patient the session has consent
// to view. Every request goes through the core again: a revoked consent, a
// new dissent or an ended agreement takes effect at once.
func (v *Viewer) record(w http.ResponseWriter, r *http.Request, s *session) {
	d, ok := viewByKey(r.PathValue("view"))
	if !ok {
		v.notFound(w, r)
		return
	}
	rp, status, err := v.recordPage(r, s, d)
	if err != nil {
		v.recordFailed(w, r, s, err)
		return
	}
	if rp == nil {
		http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
		return
	}
	v.render(w, r, status, "record", &page{Title: d.Title, Session: s, Record: rp})
}

// print serves the summary marked with who viewed it and when, for
// printing or saving into the clinician's own notes.
func (v *Viewer) print(w http.ResponseWriter, r *http.Request, s *session) {
	d, _ := viewByKey("summary")
	rp, status, err := v.recordPage(r, s, d)
	if err != nil {
		v.recordFailed(w, r, s, err)
		return
	}
	if rp == nil {
		http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
		return
	}
	v.render(w, r, status, "print", &page{Title: "GP record summary", Session: s, Record: rp})
}

func (v *Viewer) recordFailed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	fe := fhir.AsError(err)
	switch fe.Code {
	case fhir.CodeNoPatientConsent, fhir.CodeNoOrganisationConsent, fhir.CodeAccessDenied,
		fhir.CodePatientNotFound, fhir.CodeNoRecordFound, fhir.CodeUnauthorized:
		s.setFound(nil)
		v.log.Info("viewer record refused", "code", string(fe.Code))
		v.render(w, r, http.StatusForbidden, "find", &page{Title: "Find a patient", Session: s, Find: &findData{}, Message: msgConsentEnded})
	default:
		v.fail(w, r, s, err)
	}
}

func (v *Viewer) recordPage(r *http.Request, s *session, d viewDef) (*recordPage, int, error) {
	_, x := s.state()
	if x == nil {
		return nil, 0, nil
	}
	pp, err := v.cfg.Core.PatientContext(r.Context(), v.principal(s), x.ConsentID)
	if err != nil {
		return nil, 0, err
	}
	if pp == nil || pp.PatientID != x.PatientID {
		return nil, 0, fhir.Errorf(fhir.CodeNoPatientConsent, "patient context does not name the patient")
	}
	res, err := v.cfg.Core.Everything(r.Context(), pp, x.PatientID)
	if err != nil {
		return nil, 0, err
	}
	if res == nil {
		return nil, 0, fhir.Internal(errors.New("core returned no result"))
	}
	now := v.now()
	rc := newRecCtx(res, now, v.loc, r.URL.Query(), v.cfg.PageSize)
	rp := &recordPage{Demo: x.Demo, View: d.Key, ViewTitle: d.Title, BreakGlass: x.BreakGlass,
		ViewedBy: viewedBy(s.Account), ViewedAt: now.In(v.loc).Format(ukDateTime)}
	if x.BreakGlass {
		rp.Access = "Emergency (break-glass) access recorded " + x.Since.In(v.loc).Format(ukDateTime) + ". This access will be reviewed."
	} else {
		rp.Access = "Viewing with the patient's consent, recorded " + x.Since.In(v.loc).Format(ukDateTime) + "."
	}
	for _, nd := range viewDefs {
		rp.Nav = append(rp.Nav, navItem{Key: nd.Key, Title: nd.Title, Href: Base + "/record/" + nd.Key,
			Current: nd.Key == d.Key, Level: viewShared(nd, res.Areas)})
	}
	rp.Warnings = warningMessages(res.Warnings)
	rp.Level = viewShared(d, res.Areas)
	rp.NotShared = rp.Level == shareNone
	rp.SummaryOnly = rp.Level == shareSummary
	if rp.Level == shareFull {
		buildView(rp, rc, d.Key)
	}
	return rp, http.StatusOK, nil
}

func viewedBy(a account) string {
	s := a.Name
	if s == "" {
		s = a.Username
	}
	return s + " (" + a.Role + ", " + a.Org + ", SDS user id " + a.SDSID + ")"
}

// warningMessages says in fixed words what the API signals as warnings:
// withheld items without saying what, areas that could not be fetched.
func warningMessages(is []fhir.Issue) []*message {
	var out []*message
	seen := map[fhir.Code]bool{}
	for _, i := range is {
		if seen[i.Code] {
			continue
		}
		seen[i.Code] = true
		switch i.Code {
		case fhir.WarnConfidentialItems, fhir.EmptyWithheld:
			if seen[fhir.WarnConfidentialItems] && seen[fhir.EmptyWithheld] {
				continue // said once
			}
			out = append(out, &message{Kind: "warning", Heading: "Some items are withheld",
				Body: "Confidential items: some entries in this record are not shared. Ask the patient or their GP practice if you need to know more."})
		case fhir.WarnAreaUnavailable, fhir.WarnDataInTransit, fhir.WarnDataAwaitingFiling, fhir.EmptyUnavailable:
			if n := countSeen(seen, fhir.WarnAreaUnavailable, fhir.WarnDataInTransit, fhir.WarnDataAwaitingFiling, fhir.EmptyUnavailable); n > 1 {
				continue // said once
			}
			out = append(out, &message{Kind: "warning", Heading: "Part of the record could not be fetched",
				Body: "The GP system did not return every part of the record in time, or some of it is awaiting filing. Lists may be incomplete."})
		}
	}
	return out
}

func countSeen(seen map[fhir.Code]bool, codes ...fhir.Code) int {
	n := 0
	for _, c := range codes {
		if seen[c] {
			n++
		}
	}
	return n
}

func buildView(rp *recordPage, rc *recCtx, key string) {
	switch key {
	case "summary":
		rp.Summary = buildSummary(rc)
	case "problems":
		rp.Problems = buildProblems(rc)
	case "diagnoses":
		rp.Diagnoses = buildConditions(rc, fhir.AreaDiagnoses, "page", "diagnoses")
	case "medication":
		rp.Medication = buildMedication(rc)
	case "allergies":
		rp.Allergies = buildAllergies(rc)
	case "risks":
		rp.Risks = buildFlags(rc)
	case "procedures":
		rp.Procedures = buildProcedures(rc)
	case "investigations":
		rp.Investigations = buildInvestigations(rc)
	case "examination":
		rp.Examination = buildExamination(rc)
	case "immunisations":
		rp.Immunisations = buildImmunisations(rc)
	case "events":
		rp.Events = buildEvents(rc)
	}
}

// ---- summary

type summarySection[T any] struct {
	Shared bool
	Rows   []T
	More   int // rows left out of the summary (see the full view)
}

type summaryView struct {
	Problems   summarySection[conditionRow]
	Medication summarySection[medRow]
	Allergies  summarySection[allergyRow]
	Tests      summarySection[resultRow]
}

const summaryMax = 25

func (rc *recCtx) sharedArea(a fhir.Area) bool {
	return rc.res.Areas.Has(a) || (rc.res.Areas&fhir.AreaSummary != 0 && fhir.SummaryAreas.Has(a))
}

func buildSummary(rc *recCtx) *summaryView {
	sv := &summaryView{}
	if sv.Problems.Shared = rc.sharedArea(fhir.AreaProblems); sv.Problems.Shared {
		for _, r := range rc.of(fhir.AreaProblems, "Condition") {
			if activeCondition(r.Ix.ClinicalStatus) {
				if c := decode[jCondition](r); c != nil {
					sv.Problems.Rows = append(sv.Problems.Rows, conditionOf(c, rc.loc))
				}
			}
		}
	}
	if sv.Medication.Shared = rc.sharedArea(fhir.AreaMedication); sv.Medication.Shared {
		for _, r := range rc.of(fhir.AreaMedication, "MedicationStatement") {
			if currentMed(r.Ix.Status) {
				sv.Medication.Rows = append(sv.Medication.Rows, rc.statementRow(r))
			}
		}
	}
	if sv.Allergies.Shared = rc.sharedArea(fhir.AreaAllergies); sv.Allergies.Shared {
		for _, r := range rc.of(fhir.AreaAllergies, "AllergyIntolerance") {
			if a := decode[jAllergy](r); a != nil {
				sv.Allergies.Rows = append(sv.Allergies.Rows, allergyOf(a, rc.loc))
			}
		}
	}
	if sv.Tests.Shared = rc.sharedArea(fhir.AreaInvestigations); sv.Tests.Shared {
		n := 0
		for _, r := range rc.of(fhir.AreaInvestigations, "Observation") {
			if !recent(r, rc.now) {
				continue
			}
			if n++; n > summaryMax {
				sv.Tests.More++
				continue
			}
			if o := decode[jObservation](r); o != nil {
				sv.Tests.Rows = append(sv.Tests.Rows, resultOf(o, rc.loc))
			}
		}
	}
	return sv
}

// ---- problems, diagnoses

type problemsView struct {
	Active   []conditionRow
	Inactive listView[conditionRow]
}

func buildProblems(rc *recCtx) *problemsView {
	pv := &problemsView{}
	var inactive []*fhir.Resource
	for _, r := range rc.of(fhir.AreaProblems, "Condition") {
		if activeCondition(r.Ix.ClinicalStatus) {
			if c := decode[jCondition](r); c != nil {
				pv.Active = append(pv.Active, conditionOf(c, rc.loc))
			}
		} else {
			inactive = append(inactive, r)
		}
	}
	lo, hi, p := rc.page("past", "past problems", len(inactive))
	pv.Inactive.Pager = p
	for _, r := range inactive[lo:hi] {
		if c := decode[jCondition](r); c != nil {
			pv.Inactive.Rows = append(pv.Inactive.Rows, conditionOf(c, rc.loc))
		}
	}
	return pv
}

func buildConditions(rc *recCtx, area fhir.Area, param, label string) *listView[conditionRow] {
	rs := rc.of(area, "Condition")
	lo, hi, p := rc.page(param, label, len(rs))
	lv := &listView[conditionRow]{Pager: p}
	for _, r := range rs[lo:hi] {
		if c := decode[jCondition](r); c != nil {
			lv.Rows = append(lv.Rows, conditionOf(c, rc.loc))
		}
	}
	return lv
}

// ---- medication

type medicationView struct {
	Current []medRow
	Past    listView[medRow]
	Issues  listView[medRow]
}

func (rc *recCtx) drug(cc *jConcept, ref *jRef) Term {
	if cc != nil {
		return term(cc)
	}
	if ref == nil {
		return Term{}
	}
	if t, ok := rc.drugs[ref.Reference]; ok {
		return t
	}
	var t Term
	if m := rc.ref(ref.Reference); m != nil {
		if x := decode[jMedication](m); x != nil {
			t = term(x.Code)
		}
	}
	rc.drugs[ref.Reference] = t
	return t
}

func (rc *recCtx) statementRow(r *fhir.Resource) medRow {
	ms := decode[jMedStatement](r)
	if ms == nil {
		return medRow{}
	}
	row := medRow{Drug: rc.drug(ms.MedicationCodeableConcept, ms.MedicationReference),
		Dosage: dosageLines(ms.Dosage), Status: titleCode(ms.Status)}
	start := ms.EffectiveDateTime
	if ms.EffectivePeriod != nil {
		start = ms.EffectivePeriod.Start
		row.Ended = fhirDate(ms.EffectivePeriod.End, rc.loc)
	}
	if start == "" {
		start = ms.DateAsserted
	}
	row.Date = fhirDate(start, rc.loc)
	for _, b := range ms.BasedOn {
		if mr := rc.ref(b.Reference); mr != nil {
			if x := decode[jMedRequest](mr); x != nil {
				rc.fillRequest(&row, x)
				break
			}
		}
	}
	return row
}

func (rc *recCtx) fillRequest(row *medRow, x *jMedRequest) {
	if dr := x.DispenseRequest; dr != nil {
		row.Quantity = qty(dr.Quantity).String()
		if dr.NumberOfRepeatsAllowed != nil {
			row.Repeats = strconv.Itoa(*dr.NumberOfRepeatsAllowed)
		}
	}
	if t := term(x.CourseOfTherapyType); t.Display != "" {
		row.Course = t.Display
	}
}

func buildMedication(rc *recCtx) *medicationView {
	mv := &medicationView{}
	var past []*fhir.Resource
	for _, r := range rc.of(fhir.AreaMedication, "MedicationStatement") {
		if currentMed(r.Ix.Status) {
			mv.Current = append(mv.Current, rc.statementRow(r))
		} else {
			past = append(past, r)
		}
	}
	lo, hi, p := rc.page("past", "past medication", len(past))
	mv.Past.Pager = p
	for _, r := range past[lo:hi] {
		mv.Past.Rows = append(mv.Past.Rows, rc.statementRow(r))
	}
	var issues []*fhir.Resource
	for _, r := range rc.of(fhir.AreaMedication, "MedicationRequest") {
		if r.Ix.Intent == "order" {
			issues = append(issues, r)
		}
	}
	lo, hi, p = rc.page("issues", "issues", len(issues))
	mv.Issues.Pager = p
	for _, r := range issues[lo:hi] {
		x := decode[jMedRequest](r)
		if x == nil {
			continue
		}
		row := medRow{Date: fhirDate(x.AuthoredOn, rc.loc), Drug: rc.drug(x.MedicationCodeableConcept, x.MedicationReference),
			Dosage: dosageLines(x.DosageInstruction), Status: titleCode(x.Status)}
		rc.fillRequest(&row, x)
		mv.Issues.Rows = append(mv.Issues.Rows, row)
	}
	return mv
}

// ---- allergies

type allergiesView struct {
	Current []allergyRow
	Past    []allergyRow
}

func buildAllergies(rc *recCtx) *allergiesView {
	av := &allergiesView{}
	for _, r := range rc.of(fhir.AreaAllergies, "AllergyIntolerance") {
		a := decode[jAllergy](r)
		if a == nil {
			continue
		}
		switch firstCode(a.ClinicalStatus) {
		case "inactive", "resolved":
			av.Past = append(av.Past, allergyOf(a, rc.loc))
		default:
			av.Current = append(av.Current, allergyOf(a, rc.loc))
		}
	}
	return av
}

// ---- risks and warnings, procedures, immunisations

func buildFlags(rc *recCtx) *listView[flagRow] {
	rs := rc.of(fhir.AreaRisks, "Flag")
	lo, hi, p := rc.page("page", "risks and warnings", len(rs))
	lv := &listView[flagRow]{Pager: p}
	for _, r := range rs[lo:hi] {
		f := decode[jFlag](r)
		if f == nil {
			continue
		}
		row := flagRow{Term: term(f.Code), Category: terms(f.Category), Status: titleCode(f.Status)}
		if f.Period != nil {
			row.Date, row.Ended = fhirDate(f.Period.Start, rc.loc), fhirDate(f.Period.End, rc.loc)
		}
		lv.Rows = append(lv.Rows, row)
	}
	return lv
}

func buildProcedures(rc *recCtx) *listView[procRow] {
	rs := rc.of(fhir.AreaProcedures, "Procedure")
	lo, hi, p := rc.page("page", "procedures", len(rs))
	lv := &listView[procRow]{Pager: p}
	for _, r := range rs[lo:hi] {
		x := decode[jProcedure](r)
		if x == nil {
			continue
		}
		d := x.PerformedDateTime
		if d == "" && x.PerformedPeriod != nil {
			d = x.PerformedPeriod.Start
		}
		lv.Rows = append(lv.Rows, procRow{Date: fhirDate(d, rc.loc), Term: term(x.Code), Sites: terms(x.BodySite), Status: titleCode(x.Status)})
	}
	return lv
}

func buildImmunisations(rc *recCtx) *listView[immRow] {
	rs := rc.of(fhir.AreaImmunisations, "Immunization")
	lo, hi, p := rc.page("page", "immunisations", len(rs))
	lv := &listView[immRow]{Pager: p}
	for _, r := range rs[lo:hi] {
		if x := decode[jImmunization](r); x != nil {
			lv.Rows = append(lv.Rows, immOf(x, rc.loc))
		}
	}
	return lv
}

// ---- investigations

type investigationsView struct {
	Reports listView[reportView]
	Loose   listView[resultRow] // results not filed in any report
}

const reportsPerPage = 15

func buildInvestigations(rc *recCtx) *investigationsView {
	iv := &investigationsView{}
	reports := rc.of(fhir.AreaInvestigations, "DiagnosticReport")
	inReport := map[string]bool{}
	decoded := make([]*jReport, len(reports))
	for i, r := range reports {
		x := decode[jReport](r)
		decoded[i] = x
		if x == nil {
			continue
		}
		for _, ref := range x.Result {
			inReport[ref.Reference] = true
		}
	}
	saved := rc.size
	rc.size = reportsPerPage
	lo, hi, p := rc.page("page", "reports", len(reports))
	rc.size = saved
	iv.Reports.Pager = p
	for i := lo; i < hi; i++ {
		x := decoded[i]
		if x == nil {
			continue
		}
		rv := reportView{Date: fhirDate(effective(x.EffectiveDateTime, x.EffectivePeriod), rc.loc),
			Term: term(x.Code), Status: titleCode(x.Status)}
		for _, sref := range x.Specimen {
			if sp := rc.ref(sref.Reference); sp != nil {
				if s := decode[jSpecimen](sp); s != nil {
					if t := term(s.Type); !t.Empty() {
						rv.Specimens = append(rv.Specimens, t)
					}
				}
			}
		}
		for _, ref := range x.Result {
			o := rc.ref(ref.Reference)
			if o == nil {
				rv.Withheld++
				continue
			}
			if ob := decode[jObservation](o); ob != nil {
				rv.Results = append(rv.Results, resultOf(ob, rc.loc))
			}
		}
		iv.Reports.Rows = append(iv.Reports.Rows, rv)
	}
	var loose []*fhir.Resource
	for _, r := range rc.of(fhir.AreaInvestigations, "Observation") {
		if !inReport["Observation/"+r.ID] {
			loose = append(loose, r)
		}
	}
	lo, hi, p = rc.page("results", "results", len(loose))
	iv.Loose.Pager = p
	for _, r := range loose[lo:hi] {
		if o := decode[jObservation](r); o != nil {
			iv.Loose.Rows = append(iv.Loose.Rows, resultOf(o, rc.loc))
		}
	}
	return iv
}

// ---- examination

type examinationView struct {
	Chart *bpChart
	Table listView[bpRow]
	Count int
}

func buildExamination(rc *recCtx) *examinationView {
	rs := rc.of(fhir.AreaExamination, "Observation")
	ev := &examinationView{Count: len(rs)}
	rows := make([]bpRow, 0, len(rs))
	for _, r := range rs {
		if o := decode[jObservation](r); o != nil {
			rows = append(rows, bpOf(o, r.Ix.Start, rc.loc))
		}
	}
	asc := append([]bpRow(nil), rows...)
	sort.SliceStable(asc, func(i, j int) bool { return asc[i].at.Before(asc[j].at) })
	ev.Chart = newBPChart(asc, rc.loc)
	lo, hi, p := rc.page("page", "readings", len(rows))
	ev.Table = listView[bpRow]{Rows: rows[lo:hi], Pager: p}
	return ev
}

// ---- events

type eventsView struct {
	Encounters listView[encRow]
	Admissions listView[encRow]
	Referrals  listView[referralRow]
}

func buildEvents(rc *recCtx) *eventsView {
	ev := &eventsView{}
	var enc, adm []*jEncounter
	for _, r := range rc.of(fhir.AreaEvents, "Encounter") {
		e := decode[jEncounter](r)
		if e == nil {
			continue
		}
		if admission(e) {
			adm = append(adm, e)
		} else {
			enc = append(enc, e)
		}
	}
	lo, hi, p := rc.page("enc", "encounters", len(enc))
	ev.Encounters.Pager = p
	for _, e := range enc[lo:hi] {
		ev.Encounters.Rows = append(ev.Encounters.Rows, encounterOf(e, rc.loc))
	}
	lo, hi, p = rc.page("adm", "admissions", len(adm))
	ev.Admissions.Pager = p
	for _, e := range adm[lo:hi] {
		ev.Admissions.Rows = append(ev.Admissions.Rows, encounterOf(e, rc.loc))
	}
	refs := rc.of(fhir.AreaEvents, "ServiceRequest")
	lo, hi, p = rc.page("ref", "referrals", len(refs))
	ev.Referrals.Pager = p
	for _, r := range refs[lo:hi] {
		x := decode[jServiceRequest](r)
		if x == nil {
			continue
		}
		ev.Referrals.Rows = append(ev.Referrals.Rows, referralRow{Date: fhirDate(x.AuthoredOn, rc.loc), Term: term(x.Code),
			Category: terms(x.Category), Performer: term(x.PerformerType), Priority: titleCode(x.Priority), Status: titleCode(x.Status)})
	}
	return ev
}

// NotSharedViews names the record views (by the key in /viewer/record/KEY)
// that permitted areas do not share in full.
func NotSharedViews(a fhir.Areas) []string {
	var out []string
	for _, d := range viewDefs {
		if viewShared(d, a) != shareFull {
			out = append(out, d.Key)
		}
	}
	return out
}
