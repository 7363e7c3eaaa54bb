package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
	"github.com/gpgate/gpgate/viewer"
)

// memAuditor keeps the core's audit entries for the test to read.
type memAuditor struct {
	mu sync.Mutex
	es []fhir.AuditEntry
}

func (m *memAuditor) Record(_ context.Context, e *fhir.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.es = append(m.es, *e)
	return nil
}

func (m *memAuditor) entries() []fhir.AuditEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.es)
}

// viewerFixture is the viewer adapter over a record-access core wired as
// serve wires it (registry over a small demo region, the consent service
// over the state file, the SMART scope authorizer, the redactor), with the
// audit kept in memory.
type viewerFixture struct {
	vc    viewerCore
	sum   *demo.Summary
	audit *memAuditor
}

func newViewerFixture(t *testing.T) *viewerFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	sum, err := demoRegion(ctx, demoOpts{data: dir, seed: 1, practices: 4, patients: 8, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoAgreements(ctx, dir, sum); err != nil {
		t.Fatal(err)
	}
	store, err := embedded.Open(filepath.Join(dir, recordsFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := adapters.NewRegistry()
	if _, err := registerPractices(ctx, reg, store, nil, nil); err != nil {
		t.Fatal(err)
	}
	st, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &viewerFixture{sum: sum, audit: &memAuditor{}}
	// A summary-only organisation for the full patient's practice.
	full := f.notable(t, demo.NotableLargest)
	sa, err := consent.ParseAgreement([]byte(`{"provider":"` + full.Practice + `","consumers":["RXX05"],"areas":["summary"],"purposes":["TREAT"],"status":"active"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.consent.Add(ctx, sa); err != nil {
		t.Fatal(err)
	}
	pats := patients{reg}
	policy, err := consent.NewService(consent.ServiceOptions{Agreements: st.consent, Consents: st.consent,
		PracticeOf: pats.PracticeOf, ResolveNHS: pats.Resolve, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	core, err := access.New(access.Config{Patients: pats, Records: reg, Scopes: smart.Authorizer{}, Policy: policy,
		Redactor: consent.NewRedactor(consent.DefaultExclusions(), 0), Auditor: f.audit, Consents: policy, Agreements: policy, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.vc = viewerCore{core}
	return f
}

func (f *viewerFixture) notable(t *testing.T, k demo.NotableKind) demo.Notable {
	t.Helper()
	for _, n := range f.sum.Notable {
		if n.Kind == k {
			return n
		}
	}
	t.Fatalf("no %s patient", k)
	return demo.Notable{}
}

// clinician is the principal the viewer builds for a signed-in clinician.
func clinician(org, sds string) *fhir.Principal {
	return &fhir.Principal{ClientID: viewer.ClientID, ConsumerODS: org, Practitioner: sds, Role: "Doctor",
		PurposeOfUse: "TREAT", Scopes: slices.Clone(viewerScopes)}
}

func code(err error) fhir.Code {
	if err == nil {
		return ""
	}
	return fhir.AsError(err).Code
}

// TestViewerCore drives the viewer's adapter over the real core: what the
// agreements offer each organisation, consent bound to the clinician who
// recorded it in the viewer, revocation taking effect at once, areas and
// the summary view as the viewer reads them, refusals that do not say
// whether a patient exists, and every call audited under the viewer.
func TestViewerCore(t *testing.T) {
	f := newViewerFixture(t)
	ctx := context.Background()
	full := f.notable(t, demo.NotableLargest)
	dissent := f.notable(t, demo.NotableDissent)
	fullID := full.PatientID
	alice := clinician(consent.DemoConsumerActive, "555000000001")

	t.Run("sharing options by organisation", func(t *testing.T) {
		for _, tc := range []struct {
			org        string
			areas      fhir.Areas
			breakGlass bool
		}{
			{consent.DemoConsumerActive, fhir.AllAreas, true},
			{consent.DemoConsumerBPOnly, fhir.AreaDemographics | fhir.AreaExamination, true},
			{consent.DemoConsumerNoBreakGls, fhir.AllAreas, false},
			{"RXX05", fhir.AreaDemographics | fhir.AreaSummary, false},
		} {
			t.Run(tc.org, func(t *testing.T) {
				sh, err := f.vc.SharingOptions(ctx, clinician(tc.org, "555000000009"), fullID)
				if err != nil {
					t.Fatal(err)
				}
				if sh.Areas != tc.areas || sh.BreakGlass != tc.breakGlass {
					t.Fatalf("sharing %s break-glass %v, want %s break-glass %v", sh.Areas, sh.BreakGlass, tc.areas, tc.breakGlass)
				}
			})
		}
	})

	t.Run("find: refusals do not say whether the patient exists", func(t *testing.T) {
		d, err := f.vc.FindPatient(ctx, alice, fhir.NHSNumber(full.NHS))
		if err != nil || d.Patient == nil || d.Patient.ID != fullID || d.Practice == nil {
			t.Fatalf("find: %v %+v", err, d)
		}
		// a practice without an agreement in force, and a number no one has
		var other string
		for _, n := range f.sum.Notable {
			if n.Practice != full.Practice && n.Practice != dissent.Practice && fhir.ValidNHSNumber(n.NHS) {
				other = n.NHS
			}
		}
		ended := clinician("RXX07", "555000000007") // no agreement with any practice
		_, e1 := f.vc.FindPatient(ctx, ended, fhir.NHSNumber(other))
		_, e2 := f.vc.FindPatient(ctx, alice, "9990010242")
		if code(e1) != fhir.CodeNoOrganisationConsent || code(e2) != fhir.CodeNoOrganisationConsent || fhir.AsError(e1).Diagnostics != fhir.AsError(e2).Diagnostics {
			t.Fatalf("other organisation %v, unknown %v: want the same NO_ORGANISATION_CONSENT", e1, e2)
		}
		if _, err := f.vc.FindPatient(ctx, alice, fhir.NHSNumber(dissent.NHS)); code(err) != fhir.CodeNoPatientConsent {
			t.Fatalf("dissent: %v", err)
		}
	})

	id, err := f.vc.RecordConsent(ctx, alice, viewer.ConsentRequest{PatientID: fullID, NHS: fhir.NHSNumber(full.NHS), Clinician: alice.Practitioner})
	if err != nil {
		t.Fatal(err)
	}
	pp, err := f.vc.PatientContext(ctx, alice, id)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.vc.Everything(ctx, pp, fullID)
	if err != nil || len(res.Resources) < 100 || res.Areas != fhir.AllAreas {
		t.Fatalf("everything: %v, %d resources, areas %s", err, len(res.Resources), res.Areas)
	}

	t.Run("a consent recorded in the viewer serves only its clinician in the viewer", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			p    *fhir.Principal
		}{
			{"another clinician of the organisation", clinician(consent.DemoConsumerActive, "555000000002")},
			{"the organisation's EPR for the same clinician", &fhir.Principal{ClientID: demoClientID, ConsumerODS: consent.DemoConsumerActive,
				Practitioner: alice.Practitioner, PurposeOfUse: "TREAT", Scopes: slices.Clone(viewerScopes)}},
			{"another organisation", clinician(consent.DemoConsumerNoBreakGls, alice.Practitioner)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := f.vc.PatientContext(ctx, tc.p, id); err == nil {
					t.Fatal("patient context granted")
				}
				// a principal that claims the consent outright is refused by the core too
				forged := *tc.p
				forged.PatientID, forged.ConsentRef, forged.Scopes = fullID, id, pp.Scopes
				if _, err := f.vc.Everything(ctx, &forged, fullID); code(err) != fhir.CodeNoPatientConsent && code(err) != fhir.CodeNoOrganisationConsent {
					t.Fatalf("everything with another's consent: %v", err)
				}
			})
		}
	})

	t.Run("areas as the viewer reads them", func(t *testing.T) {
		for _, tc := range []struct {
			org   string
			areas fhir.Areas
		}{
			{consent.DemoConsumerBPOnly, fhir.AreaDemographics | fhir.AreaExamination},
			{"RXX05", fhir.AreaDemographics | fhir.AreaSummary},
		} {
			t.Run(tc.org, func(t *testing.T) {
				p := clinician(tc.org, "555000000003")
				cid, err := f.vc.RecordConsent(ctx, p, viewer.ConsentRequest{PatientID: fullID, NHS: fhir.NHSNumber(full.NHS), Clinician: p.Practitioner})
				if err != nil {
					t.Fatal(err)
				}
				pc, err := f.vc.PatientContext(ctx, p, cid)
				if err != nil {
					t.Fatal(err)
				}
				r, err := f.vc.Everything(ctx, pc, fullID)
				if err != nil {
					t.Fatal(err)
				}
				if r.Areas != tc.areas {
					t.Fatalf("areas %s, want %s", r.Areas, tc.areas)
				}
				for _, x := range r.Resources {
					a := x.Ix.Area
					ok := a == fhir.AreaDemographics || tc.areas.Has(a) || (tc.areas.Has(fhir.AreaSummary) && fhir.SummaryAreas.Has(a))
					if !ok {
						t.Fatalf("%s/%s of area %s returned under %s", x.Type, x.ID, a, tc.areas)
					}
				}
				if tc.org == "RXX05" && len(r.Resources) >= len(res.Resources)/2 {
					t.Fatalf("summary only: %d of %d resources", len(r.Resources), len(res.Resources))
				}
			})
		}
	})

	t.Run("break-glass only where the agreement allows it", func(t *testing.T) {
		req := viewer.ConsentRequest{PatientID: fullID, NHS: fhir.NHSNumber(full.NHS), BreakGlass: true, Reason: "The patient is unconscious or cannot communicate"}
		p := clinician(consent.DemoConsumerNoBreakGls, "555000000004")
		req.Clinician = p.Practitioner
		if _, err := f.vc.RecordConsent(ctx, p, req); err == nil {
			t.Fatal("break-glass recorded without an agreement allowing it")
		}
		req.Clinician = alice.Practitioner
		bg, err := f.vc.RecordConsent(ctx, alice, req)
		if err != nil {
			t.Fatal(err)
		}
		bp, err := f.vc.PatientContext(ctx, alice, bg)
		if err != nil || !bp.BreakGlass || bp.PurposeOfUse != fhir.PurposeEmergency {
			t.Fatalf("break-glass context: %v %+v", err, bp)
		}
	})

	t.Run("revoking stops access at once", func(t *testing.T) {
		if err := f.vc.RevokeConsent(ctx, clinician(consent.DemoConsumerNoBreakGls, alice.Practitioner), id); err == nil {
			t.Fatal("another organisation revoked the consent")
		}
		if err := f.vc.RevokeConsent(ctx, alice, id); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if _, err := f.vc.Everything(ctx, pp, fullID); code(err) != fhir.CodeNoPatientConsent {
			t.Fatalf("everything with the revoked consent's context: %v", err)
		}
		if _, err := f.vc.PatientContext(ctx, alice, id); code(err) != fhir.CodeNoPatientConsent {
			t.Fatalf("patient context of a revoked consent: %v", err)
		}
	})

	t.Run("every call audited under the viewer and the clinician", func(t *testing.T) {
		var revoked, granted bool
		for _, e := range f.audit.entries() {
			if e.ClientID == demoClientID { // the forged EPR principal above: refused, and audited as itself
				if e.Outcome != fhir.OutcomeDenied || e.Rule != "consent-other-client" {
					t.Fatalf("the EPR's use of the viewer's consent: %+v", e)
				}
				continue
			}
			if e.ClientID != viewer.ClientID || e.Practitioner == "" || e.ConsumerODS == "" {
				t.Fatalf("entry not attributed to a viewer clinician: %+v", e)
			}
			if e.Practitioner == alice.Practitioner && e.Action == "consent-revoke" && e.Outcome == fhir.OutcomeGranted {
				revoked = true
			}
			if e.Practitioner == alice.Practitioner && e.Outcome == fhir.OutcomeGranted && e.Count > 100 {
				granted = true
			}
			if strings.Contains(e.Rule, full.NHS) {
				t.Fatalf("an NHS number in a rule: %+v", e)
			}
		}
		if !revoked || !granted {
			t.Fatalf("revocation audited %v, record read audited %v", revoked, granted)
		}
	})
}
