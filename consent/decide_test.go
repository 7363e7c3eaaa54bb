package consent

import (
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

func baseAgreement() Agreement {
	return Agreement{ID: "a1", Provider: practice, Consumers: []string{"RXX01"}, Areas: fhir.AllAreas,
		Purposes: []string{PurposeTreat}, Start: t0.AddDate(-1, 0, 0), Status: StatusActive, BreakGlass: true,
		DefaultSharing: DefaultImplied}
}

func liveConsent() *ViewConsent {
	return &ViewConsent{ID: "c1", PatientID: pidA, Organisation: "RXX01", ClientID: "cl", Clinician: "555", Start: t0.Add(-time.Hour),
		End: t0.Add(time.Hour), Status: "active"}
}

func TestDecide(t *testing.T) {
	clinician := func(mut ...func(*fhir.Principal)) *fhir.Principal {
		p := &fhir.Principal{ClientID: "cl", ConsumerODS: "RXX01", Practitioner: "555", PurposeOfUse: "TREAT", ConsentRef: "c1", PatientID: pidA}
		for _, m := range mut {
			m(p)
		}
		return p
	}
	system := &fhir.Principal{ClientID: "cl", ConsumerODS: "RXX01"}
	ag := func(mut func(*Agreement)) []Agreement { a := baseAgreement(); mut(&a); return []Agreement{a} }
	withSharing := func(s fhir.SharingConsent) func(*fhir.Record) { return func(r *fhir.Record) { r.Sharing = s } }
	coded := func(code string, dissent bool) func(*fhir.Record) {
		return func(r *fhir.Record) {
			r.Resources = append(r.Resources, mustRes(t, `{"code":{"coding":[{"code":"`+code+`","system":"http://snomed.info/sct"}]},"effectiveDateTime":"2025-01-01","id":"`+pidA+`-sc","resourceType":"Observation","status":"final","subject":{"reference":"Patient/`+pidA+`"}}`))
		}
	}
	ltc := func(r *fhir.Record) {
		r.Resources = append(r.Resources, mustRes(t, `{"category":[{"coding":[{"code":"problem-list-item","system":"http://terminology.hl7.org/CodeSystem/condition-category"}]}],"clinicalStatus":{"coding":[{"code":"active"}]},"code":{"coding":[{"code":"44054006","system":"http://snomed.info/sct"}]},"id":"`+pidA+`-dm","resourceType":"Condition","subject":{"reference":"Patient/`+pidA+`"}}`))
	}
	carePlan := func(r *fhir.Record) {
		r.Resources = append(r.Resources, mustRes(t, `{"id":"`+pidA+`-cp","intent":"plan","resourceType":"CarePlan","status":"active","subject":{"reference":"Patient/`+pidA+`"}}`))
	}
	dissentDefault := func(rules DefaultRules) []Agreement {
		return ag(func(a *Agreement) { a.DefaultSharing = DefaultDissent; a.DefaultRules = rules })
	}
	expiredConsent := liveConsent()
	expiredConsent.End = t0.Add(-time.Minute)
	inactiveConsent := liveConsent()
	inactiveConsent.Status = "inactive"
	otherPatient := liveConsent()
	otherPatient.PatientID = "pother"
	otherOrg := liveConsent()
	otherOrg.Organisation = "RXX09"
	bgConsent := liveConsent()
	bgConsent.BreakGlass = true
	notYet := liveConsent()
	notYet.Start = t0.Add(time.Minute)

	cases := []struct {
		name    string
		ags     []Agreement
		p       *fhir.Principal
		areas   fhir.Areas
		birth   string
		rec     []func(*fhir.Record)
		consent *ViewConsent
		permit  bool
		code    fhir.Code
		rule    string
		want    fhir.Areas
		summary fhir.Areas
	}{
		// Organisation rules.
		{name: "no principal", ags: ag(func(*Agreement) {}), p: nil, code: fhir.CodeAccessDenied, rule: RuleNoPrincipal},
		{name: "no agreement at all", p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleNoAgreement},
		{name: "agreement for another consumer", ags: ag(func(a *Agreement) { a.Consumers = []string{"RXX09"} }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleNoAgreement},
		{name: "agreement of another practice", ags: ag(func(a *Agreement) { a.Provider = "Y99002" }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleNoAgreement},
		{name: "draft", ags: ag(func(a *Agreement) { a.Status = StatusDraft }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementNotActive},
		{name: "suspended", ags: ag(func(a *Agreement) { a.Status = StatusSuspended }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementSuspended},
		{name: "ended", ags: ag(func(a *Agreement) { a.Status = StatusEnded }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementEnded},
		{name: "expired", ags: ag(func(a *Agreement) { a.End = t0.Add(-time.Second) }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementExpired},
		{name: "ends exactly now", ags: ag(func(a *Agreement) { a.End = t0 }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementExpired},
		{name: "not started", ags: ag(func(a *Agreement) { a.Start = t0.Add(time.Hour) }), p: clinician(), code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementNotStarted},
		{name: "wrong purpose", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.PurposeOfUse = "HRESCH" }), code: fhir.CodeNoOrganisationConsent, rule: RulePurposeNotAllowed},
		{name: "purpose as system|code", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.PurposeOfUse = ActReasonSystem + "|TREAT" }), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "empty purpose is direct care", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.PurposeOfUse = "" }), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "area not shared", ags: ag(func(a *Agreement) { a.Areas = fhir.AreaExamination }), p: clinician(), areas: fhir.AreaMedication, code: fhir.CodeNoOrganisationConsent, rule: RuleAreaNotShared},
		{name: "BP-only agreement narrows everything", ags: ag(func(a *Agreement) { a.Areas = fhir.AreaExamination }), p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AreaExamination | fhir.AreaDemographics},
		{name: "one suspended one active: active wins", ags: append(ag(func(a *Agreement) { a.Status = StatusSuspended }), func() Agreement { a := baseAgreement(); a.ID = "a2"; a.Areas = fhir.AreaMedication; return a }()),
			p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AreaMedication | fhir.AreaDemographics},
		{name: "areas union over agreements", ags: append(ag(func(a *Agreement) { a.Areas = fhir.AreaAllergies }), func() Agreement { a := baseAgreement(); a.ID = "a2"; a.Areas = fhir.AreaMedication; return a }()),
			p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AreaMedication | fhir.AreaAllergies | fhir.AreaDemographics},
		{name: "requested areas intersected", ags: ag(func(*Agreement) {}), p: clinician(), areas: fhir.AreaMedication, consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AreaMedication},
		// Consent to share.
		{name: "coded dissent", ags: ag(func(*Agreement) {}), p: clinician(), rec: []func(*fhir.Record){coded("416409005", true)}, consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RulePatientDissent},
		{name: "adapter says dissent", ags: ag(func(*Agreement) {}), p: clinician(), rec: []func(*fhir.Record){withSharing(fhir.SharingDissent)}, consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RulePatientDissent},
		{name: "dissent beats break-glass", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.BreakGlass = true; p.PurposeOfUse = "ETREAT" }), rec: []func(*fhir.Record){withSharing(fhir.SharingDissent)}, consent: bgConsent, code: fhir.CodeNoPatientConsent, rule: RulePatientDissent},
		{name: "dissent denies demographics to system token", ags: ag(func(*Agreement) {}), p: system, areas: fhir.AreaDemographics, rec: []func(*fhir.Record){withSharing(fhir.SharingDissent)}, code: fhir.CodeNoPatientConsent, rule: RulePatientDissent},
		{name: "coded consent", ags: ag(func(*Agreement) {}), p: clinician(), rec: []func(*fhir.Record){coded("425691002", false)}, consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "coded consent overrides dissent default", ags: dissentDefault(DefaultRules{}), p: clinician(), rec: []func(*fhir.Record){withSharing(fhir.SharingConsented)}, consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "no entry, implied default", ags: ag(func(*Agreement) {}), p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "no entry, dissent default", ags: dissentDefault(DefaultRules{}), p: clinician(), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleDefaultDissent},
		{name: "no entry, dissent default, under16 rule, child", ags: dissentDefault(DefaultRules{Under16: true}), p: clinician(), birth: "2015-06-01", consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "no entry, dissent default, under16 rule, 16 today", ags: dissentDefault(DefaultRules{Under16: true}), p: clinician(), birth: "2010-03-10", consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleDefaultDissent},
		{name: "no entry, dissent default, under16 rule, adult", ags: dissentDefault(DefaultRules{Under16: true}), p: clinician(), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleDefaultDissent},
		{name: "no entry, 75+ with care plan", ags: dissentDefault(DefaultRules{Over75WithCarePlan: true}), p: clinician(), birth: "1940-01-01", rec: []func(*fhir.Record){carePlan}, consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "no entry, 75+ without care plan", ags: dissentDefault(DefaultRules{Over75WithCarePlan: true}), p: clinician(), birth: "1940-01-01", consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleDefaultDissent},
		{name: "no entry, care plan under 75", ags: dissentDefault(DefaultRules{Over75WithCarePlan: true}), p: clinician(), rec: []func(*fhir.Record){carePlan}, consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleDefaultDissent},
		{name: "no entry, long-term condition", ags: dissentDefault(DefaultRules{LongTermConditions: true}), p: clinician(), rec: []func(*fhir.Record){ltc}, consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "no entry, no long-term condition", ags: dissentDefault(DefaultRules{LongTermConditions: true}), p: clinician(), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleDefaultDissent},
		{name: "rules never beat coded dissent", ags: dissentDefault(DefaultRules{Under16: true, LongTermConditions: true}), p: clinician(), birth: "2015-01-01", rec: []func(*fhir.Record){ltc, withSharing(fhir.SharingDissent)}, consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RulePatientDissent},
		// Consent to view.
		{name: "system token, demographics", ags: ag(func(*Agreement) {}), p: system, areas: fhir.AreaDemographics, permit: true, rule: RulePermitDemographics, want: fhir.AreaDemographics},
		{name: "system token, clinical", ags: ag(func(*Agreement) {}), p: system, areas: fhir.AreaMedication, code: fhir.CodeNoPatientConsent, rule: RuleNoConsentToView},
		{name: "system token, everything", ags: ag(func(*Agreement) {}), p: system, code: fhir.CodeNoPatientConsent, rule: RuleNoConsentToView},
		{name: "consent present", ags: ag(func(*Agreement) {}), p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.AllAreas},
		{name: "consent not found", ags: ag(func(*Agreement) {}), p: clinician(), code: fhir.CodeNoPatientConsent, rule: RuleNoConsentToView},
		{name: "consent ref mismatch", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.ConsentRef = "c2" }), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleNoConsentToView},
		{name: "consent expired", ags: ag(func(*Agreement) {}), p: clinician(), consent: expiredConsent, code: fhir.CodeNoPatientConsent, rule: RuleConsentExpired},
		{name: "consent revoked", ags: ag(func(*Agreement) {}), p: clinician(), consent: inactiveConsent, code: fhir.CodeNoPatientConsent, rule: RuleConsentRevoked},
		{name: "consent recorded by another client", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.ClientID = "other-client" }), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleConsentOtherClient},
		{name: "consent for another clinician", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.Practitioner = "999" }), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleConsentOtherClin},
		{name: "consent used with no clinician named", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.Practitioner = "" }), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleConsentOtherClin},
		// Summary.
		{name: "summary agreement", ags: ag(func(a *Agreement) { a.Areas = fhir.AreaSummary }), p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.SummaryAreas | fhir.AreaDemographics, summary: fhir.SummaryAreas},
		{name: "summary plus a whole area it covers", ags: ag(func(a *Agreement) { a.Areas = fhir.AreaSummary | fhir.AreaAllergies | fhir.AreaEvents }), p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit,
			want: fhir.SummaryAreas | fhir.AreaEvents | fhir.AreaDemographics, summary: fhir.SummaryAreas &^ fhir.AreaAllergies},
		{name: "summary and a whole-area agreement", ags: append(ag(func(a *Agreement) { a.Areas = fhir.AreaSummary }), func() Agreement { a := baseAgreement(); a.ID = "a2"; a.Areas = fhir.AreaProblems; return a }()),
			p: clinician(), consent: liveConsent(), permit: true, rule: RulePermit, want: fhir.SummaryAreas | fhir.AreaDemographics, summary: fhir.SummaryAreas &^ fhir.AreaProblems},
		{name: "summary does not reach diagnoses", ags: ag(func(a *Agreement) { a.Areas = fhir.AreaSummary }), p: clinician(), areas: fhir.AreaDiagnoses, code: fhir.CodeNoOrganisationConsent, rule: RuleAreaNotShared},
		{name: "consent not yet started", ags: ag(func(*Agreement) {}), p: clinician(), consent: notYet, code: fhir.CodeNoPatientConsent, rule: RuleConsentExpired},
		{name: "consent other patient", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.PatientID = "" }), consent: otherPatient, code: fhir.CodeNoPatientConsent, rule: RuleConsentOtherPatient},
		{name: "consent other organisation", ags: ag(func(*Agreement) {}), p: clinician(), consent: otherOrg, code: fhir.CodeNoPatientConsent, rule: RuleConsentOtherOrg},
		{name: "token bound to another patient", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.PatientID = "pother" }), consent: liveConsent(), code: fhir.CodeNoPatientConsent, rule: RuleTokenOtherPatient},
		{name: "patient token, demographics needs live consent", ags: ag(func(*Agreement) {}), p: clinician(), areas: fhir.AreaDemographics, consent: expiredConsent, code: fhir.CodeNoPatientConsent, rule: RuleConsentExpired},
		// Break-glass.
		{name: "break-glass allowed", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.BreakGlass = true; p.PurposeOfUse = "ETREAT" }), consent: bgConsent, permit: true, rule: RulePermitBreakGlass, want: fhir.AllAreas},
		{name: "break-glass via BTG purpose", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.PurposeOfUse = "BTG" }), consent: bgConsent, permit: true, rule: RulePermitBreakGlass, want: fhir.AllAreas},
		{name: "break-glass not allowed", ags: ag(func(a *Agreement) { a.BreakGlass = false }), p: clinician(func(p *fhir.Principal) { p.BreakGlass = true }), consent: bgConsent, code: fhir.CodeNoOrganisationConsent, rule: RuleBreakGlassNotAllowed},
		{name: "break-glass consent on a plain token, not allowed", ags: ag(func(a *Agreement) { a.BreakGlass = false }), p: clinician(), consent: bgConsent, code: fhir.CodeNoOrganisationConsent, rule: RuleBreakGlassNotAllowed},
		{name: "break-glass still needs a recorded consent", ags: ag(func(*Agreement) {}), p: clinician(func(p *fhir.Principal) { p.BreakGlass = true; p.ConsentRef = "" }), code: fhir.CodeNoPatientConsent, rule: RuleNoConsentToView},
		{name: "break-glass with suspended agreement", ags: ag(func(a *Agreement) { a.Status = StatusSuspended }), p: clinician(func(p *fhir.Principal) { p.BreakGlass = true }), consent: bgConsent, code: fhir.CodeNoOrganisationConsent, rule: RuleAgreementSuspended},
		{name: "break-glass on an ETREAT-only agreement", ags: ag(func(a *Agreement) { a.Purposes = []string{PurposeEmergency} }), p: clinician(func(p *fhir.Principal) { p.BreakGlass = true }), consent: bgConsent, permit: true, rule: RulePermitBreakGlass, want: fhir.AllAreas},
		{name: "plain request on an ETREAT-only agreement", ags: ag(func(a *Agreement) { a.Purposes = []string{PurposeEmergency} }), p: clinician(), consent: liveConsent(), code: fhir.CodeNoOrganisationConsent, rule: RulePurposeNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			areas := c.areas
			if areas == 0 {
				areas = fhir.AllAreas
			}
			birth := c.birth
			if birth == "" {
				birth = "1980-05-05"
			}
			rec := recordOf(t, birth)
			for _, m := range c.rec {
				m(rec)
			}
			in := Input{Principal: c.p, Request: &fhir.Request{Areas: areas, PatientID: pidA}, Practice: practice,
				Agreements: c.ags, Record: rec, Consent: c.consent, Now: t0}
			got := Decide(in)
			if got.Permit != c.permit || got.Rule != c.rule || (!c.permit && got.Code != c.code) || (c.permit && (got.Areas != c.want || got.Summary != c.summary)) {
				t.Fatalf("got %+v (areas %s), want permit=%v code=%s rule=%s areas=%s", got, got.Areas, c.permit, c.code, c.rule, c.want)
			}
			// The pre-fetch decision never depends on the patient: with the
			// record absent it gives the same answer for organisation
			// denials, and permits (permit-organisation) otherwise.
			pre := DecideOrganisation(in)
			if got.Code == fhir.CodeNoOrganisationConsent || got.Code == fhir.CodeAccessDenied {
				if pre != got {
					t.Fatalf("pre-fetch %+v differs from full %+v on an organisation rule", pre, got)
				}
			} else if !pre.Permit || pre.Rule != RulePermitOrganisation {
				t.Fatalf("pre-fetch = %+v, want permit-organisation", pre)
			}
		})
	}
}

// TestDecideOrganisationIgnoresPatient: the organisation decision is the
// same for an existing patient, another patient and none at all.
func TestDecideOrganisationIgnoresPatient(t *testing.T) {
	a := baseAgreement()
	a.Status = StatusSuspended
	p := &fhir.Principal{ConsumerODS: "RXX01", ConsentRef: "c1"}
	var first fhir.Decision
	for i, req := range []*fhir.Request{{Areas: fhir.AllAreas, PatientID: pidA}, {Areas: fhir.AllAreas, PatientID: "pnobody"}, {Areas: fhir.AllAreas}} {
		d := DecideOrganisation(Input{Principal: p, Request: req, Practice: practice, Agreements: []Agreement{a}, Consent: liveConsent(), Now: t0})
		if i == 0 {
			first = d
		} else if d != first {
			t.Fatalf("decision %d = %+v, first %+v", i, d, first)
		}
	}
	if first.Permit || first.Rule != RuleAgreementSuspended {
		t.Fatalf("got %+v", first)
	}
}

func TestDecidePatientWithoutRecordFailsClosed(t *testing.T) {
	d := DecidePatient(Input{Principal: &fhir.Principal{ConsumerODS: "RXX01"}, Request: &fhir.Request{Areas: fhir.AllAreas},
		Practice: practice, Agreements: []Agreement{baseAgreement()}, Now: t0})
	if d.Permit || d.Rule != RuleNoRecord {
		t.Fatalf("got %+v", d)
	}
}

func TestAgeAt(t *testing.T) {
	b := time.Date(2010, 3, 10, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Time
		want int
	}{{time.Date(2026, 3, 9, 23, 0, 0, 0, time.UTC), 15}, {time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), 16}, {time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 16}} {
		if got := ageAt(b, c.now); got != c.want {
			t.Errorf("ageAt(%v) = %d, want %d", c.now, got, c.want)
		}
	}
}
