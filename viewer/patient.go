package viewer

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

type findData struct {
	Value string // what was typed, echoed only when it was digits and spaces
	Error string
}

type patientData struct {
	Demo        *demographics
	Shared      []sharedArea
	SummaryOnly bool
	BreakGlass  bool // offered
	Reasons     []string
	Form        consentForm
}

type sharedArea struct {
	Title  string
	Shared bool
	Note   string
}

type consentForm struct {
	Basis  string
	Reason string
	Detail string
	Errors []string
}

// break-glass reasons as a clinician states them.
var breakGlassReasons = []string{
	"The patient is unconscious or cannot communicate",
	"The patient lacks capacity to consent and it is in their best interests",
	"A medical emergency: seeking consent would delay urgent care",
	"Other (give details)",
}

// refusals: what a clinician is told. No-agreement and not-found read the
// same, so the page never says whether a patient exists.
var (
	msgNoRecord = &message{Kind: "error", Heading: "No record available",
		Body: "No GP record is available to you for this NHS number. Either the patient is not registered with a GP practice that shares records with your organisation, or the number is not in use. Check the number with the patient."}
	msgDissent = &message{Kind: "error", Heading: "The patient has asked not to share their GP record",
		Body: "This patient has recorded that their GP record must not be shared outside their practice, so it cannot be shown here. Ask the patient, or contact their GP practice."}
	msgNoBreakGlass = &message{Kind: "error", Heading: "Emergency access is not available",
		Body: "Your organisation's sharing agreement with this patient's GP practice does not allow emergency (break-glass) access. The record can be viewed only with the patient's consent."}
	msgAccessEnded = &message{Kind: "info", Heading: "Access ended",
		Body: "You no longer have access to that patient's GP record: the consent to view has been withdrawn. Find the patient again and record consent if you need to view it."}
	msgAccessLeft = &message{Kind: "warning", Heading: "You have left the record",
		Body: "The record is closed in this viewer, but the consent to view could not be withdrawn just now. It can be used by no one but you, in this viewer, and it ends within 24 hours."}
	msgConsentEnded = &message{Kind: "warning", Heading: "This record can no longer be shown",
		Body: "The consent to view has ended, the patient's sharing preference has changed, or your organisation's agreement no longer covers this record. Find the patient again to continue."}
)

func (v *Viewer) findPage(w http.ResponseWriter, r *http.Request, s *session) {
	p := &page{Title: "Find a patient", Session: s, Find: &findData{}}
	switch r.URL.Query().Get("m") {
	case "ended":
		p.Message = msgAccessEnded
	case "left":
		p.Message = msgAccessLeft
	}
	v.render(w, r, http.StatusOK, "find", p)
}

// endAccess ends the session's access to the record it is viewing: the
// consent to view is revoked in the core, so it stops working at once
// wherever it is held, and the session forgets the patient.
func (v *Viewer) endAccess(w http.ResponseWriter, r *http.Request, s *session) {
	if err := v.dropConsent(r, s); err != nil {
		http.Redirect(w, r, Base+"/find?m=left", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Base+"/find?m=ended", http.StatusSeeOther)
}

// dropConsent forgets the session's patient and revokes the consent to view
// the session holds, if any: a consent recorded in the viewer lives no
// longer than the clinician's use of it (ended, another patient found,
// signed out). A revocation that fails leaves the consent to end at the
// end of its period; no one but this clinician in this viewer can use it.
func (v *Viewer) dropConsent(r *http.Request, s *session) error {
	_, x := s.state()
	s.setFound(nil)
	if x == nil {
		return nil
	}
	if err := v.cfg.Core.RevokeConsent(r.Context(), v.principal(s), x.ConsentID); err != nil {
		v.log.Warn("viewer consent not revoked", "code", string(fhir.AsError(err).Code), "org", s.Account.Org)
		return err
	}
	v.log.Info("viewer consent revoked", "org", s.Account.Org)
	return nil
}

// find looks a patient up by NHS number with the system-equivalent
// principal, then sends the browser to the patient page (post/redirect/get).
func (v *Viewer) find(w http.ResponseWriter, r *http.Request, s *session) {
	raw := trimField(r.PostFormValue("nhs"), 64)
	fd := &findData{}
	if onlyDigitsSpaces(raw) {
		fd.Value = raw
	}
	nhs, problem := parseNHSInput(raw)
	if problem != "" {
		fd.Error = problem
		v.render(w, r, http.StatusBadRequest, "find", &page{Title: "Find a patient", Session: s, Find: fd})
		return
	}
	d, err := v.cfg.Core.FindPatient(r.Context(), v.principal(s), nhs)
	if err != nil {
		v.refuseFind(w, r, s, fd, err)
		return
	}
	if d == nil || d.Patient == nil || d.Patient.Type != "Patient" {
		v.fail(w, r, s, fhir.Internal(errors.New("core returned no Patient")))
		return
	}
	_ = v.dropConsent(r, s) // a new patient ends the access to the previous one (logged)
	s.setFound(&found{PatientID: d.Patient.ID, NHS: nhs, Demo: buildDemographics(d, v.now(), v.loc)})
	http.Redirect(w, r, Base+"/patient", http.StatusSeeOther)
}

func (v *Viewer) refuseFind(w http.ResponseWriter, r *http.Request, s *session, fd *findData, err error) {
	fe := fhir.AsError(err)
	p := &page{Title: "Find a patient", Session: s, Find: fd}
	switch fe.Code {
	case fhir.CodeNoOrganisationConsent, fhir.CodePatientNotFound, fhir.CodeNoRecordFound, fhir.CodeAccessDenied:
		p.Message = msgNoRecord
		v.log.Info("viewer find refused", "code", "no-record")
		v.render(w, r, http.StatusForbidden, "find", p) // one status for every kind of "no"
	case fhir.CodeNoPatientConsent:
		p.Message = msgDissent
		v.log.Info("viewer find refused", "code", string(fe.Code))
		v.render(w, r, http.StatusForbidden, "find", p)
	case fhir.CodeInvalidNHSNumber:
		fd.Error = "This is not a valid NHS number. Check the number and try again."
		v.render(w, r, http.StatusBadRequest, "find", p)
	default:
		v.fail(w, r, s, err)
	}
}

func onlyDigitsSpaces(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

// patientPage shows the found patient's demographics, what the agreement
// shares, and the consent form (break-glass only where allowed).
func (v *Viewer) patientPage(w http.ResponseWriter, r *http.Request, s *session) {
	f, _ := s.state()
	if f == nil {
		http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
		return
	}
	v.showPatient(w, r, s, f, http.StatusOK, consentForm{Basis: "patient"}, nil)
}

func (v *Viewer) showPatient(w http.ResponseWriter, r *http.Request, s *session, f *found, status int, form consentForm, msg *message) {
	sh, err := v.cfg.Core.SharingOptions(r.Context(), v.principal(s), f.PatientID)
	if err != nil {
		v.refuseFind(w, r, s, &findData{}, err)
		return
	}
	pd := &patientData{Demo: f.Demo, BreakGlass: sh.BreakGlass, Reasons: breakGlassReasons, Form: form}
	pd.Shared, pd.SummaryOnly = sharedAreas(sh.Areas)
	v.render(w, r, status, "patient", &page{Title: "Patient: consent to view", Session: s, Patient: pd, Message: msg})
}

// sharedAreas lists every record view with whether the agreement shares it.
func sharedAreas(a fhir.Areas) ([]sharedArea, bool) {
	summaryOnly := a&fhir.AreaSummary != 0
	var out []sharedArea
	for _, d := range viewDefs {
		sa := sharedArea{Title: d.Title}
		switch viewShared(d, a) {
		case shareFull:
			sa.Shared = true
		case shareSummary:
			sa.Note = "summary only"
		}
		out = append(out, sa)
	}
	return out, summaryOnly
}

// consent records consent to view (or a break-glass) and opens the record.
func (v *Viewer) consent(w http.ResponseWriter, r *http.Request, s *session) {
	f, _ := s.state()
	if f == nil {
		http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
		return
	}
	form := consentForm{Basis: r.PostFormValue("basis"), Reason: trimField(r.PostFormValue("reason"), 200),
		Detail: trimField(r.PostFormValue("detail"), 1000)}
	req := ConsentRequest{PatientID: f.PatientID, NHS: f.NHS, Clinician: s.Account.SDSID}
	switch form.Basis {
	case "patient":
		if r.PostFormValue("confirm") != "yes" {
			form.Errors = append(form.Errors, "Confirm that the patient has agreed to you viewing their record now.")
		}
	case "breakglass":
		req.BreakGlass = true
		known := false
		for _, x := range breakGlassReasons {
			known = known || x == form.Reason
		}
		if !known {
			form.Errors = append(form.Errors, "Choose the reason for emergency access.")
			form.Reason = ""
		}
		if strings.HasPrefix(form.Reason, "Other") && len(form.Detail) < 10 {
			form.Errors = append(form.Errors, "Give the details of the reason for emergency access (at least 10 characters).")
		}
		req.Reason = form.Reason
		if form.Detail != "" {
			req.Reason += ": " + form.Detail
		}
	default:
		form.Errors = append(form.Errors, "Choose how the patient's consent was given.")
	}
	if len(form.Errors) > 0 {
		v.showPatient(w, r, s, f, http.StatusBadRequest, form, nil)
		return
	}
	p := v.principal(s)
	if req.BreakGlass {
		sh, err := v.cfg.Core.SharingOptions(r.Context(), p, f.PatientID)
		if err != nil {
			v.refuseFind(w, r, s, &findData{}, err)
			return
		}
		if !sh.BreakGlass {
			form.Detail = ""
			v.showPatient(w, r, s, f, http.StatusForbidden, form, msgNoBreakGlass)
			return
		}
	}
	id, err := v.cfg.Core.RecordConsent(r.Context(), p, req)
	form.Detail = "" // the reason lives in the audit only; never echoed back
	if err != nil {
		fe := fhir.AsError(err)
		switch {
		case fe.Code == fhir.CodeNoPatientConsent:
			s.setFound(nil)
			v.render(w, r, http.StatusForbidden, "find", &page{Title: "Find a patient", Session: s, Find: &findData{}, Message: msgDissent})
		case req.BreakGlass && (fe.Code == fhir.CodeAccessDenied || fe.Code == fhir.CodeInvalidParameter):
			v.showPatient(w, r, s, f, http.StatusForbidden, form, msgNoBreakGlass)
		default:
			v.refuseFind(w, r, s, &findData{}, err)
		}
		return
	}
	pp, err := v.cfg.Core.PatientContext(r.Context(), p, id)
	if err != nil || pp == nil || pp.PatientID != f.PatientID {
		if err == nil {
			err = fhir.Internal(errors.New("patient context does not name the patient"))
		}
		v.fail(w, r, s, err)
		return
	}
	s.setViewing(&viewing{PatientID: f.PatientID, NHS: f.NHS, ConsentID: id, BreakGlass: req.BreakGlass, Since: v.now(), Demo: f.Demo})
	v.log.Info("viewer consent recorded", "break_glass", req.BreakGlass, "org", s.Account.Org)
	http.Redirect(w, r, Base+"/record/summary", http.StatusSeeOther)
}
