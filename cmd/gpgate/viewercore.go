package main

import (
	"context"
	"math"
	"strings"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
	"github.com/gpgate/gpgate/viewer"
)

// viewerCore adapts the record-access core to the viewer's interface: the
// viewer is one more face of the same core, with no privilege the FHIR API
// does not grant; every call below is decided and audited by the core.
type viewerCore struct{ core *access.Core }

// viewerScopes are what a viewer session holds before consent: what a
// system token of a consumer EPR holds to find a patient (demographics:
// patient, practice, usual GP), record a consent to view and revoke it
// (the clinician's "end access"; the core lets only the recording client
// revoke).
var viewerScopes = []string{"system/Patient.rs", "system/Organization.rs", "system/Practitioner.rs", "system/Consent.c", "system/Consent.d"}

func (v viewerCore) FindPatient(ctx context.Context, p *fhir.Principal, nhs fhir.NHSNumber) (*viewer.Demographics, error) {
	pg, err := v.core.FindPatient(ctx, p, &fhir.Query{Type: "Patient", NHS: nhs, Count: 1})
	if err != nil {
		return nil, err
	}
	if len(pg.Resources) == 0 {
		return nil, fhir.Errorf(fhir.CodeNoOrganisationConsent, "no active sharing agreement covers this request")
	}
	d := &viewer.Demographics{Patient: pg.Resources[0]}
	// The registered practice and usual GP: demographics, read the same way.
	e := &fhir.EverythingRequest{PatientID: pg.Resources[0].ID, Types: map[string]bool{"Organization": true, "Practitioner": true},
		Query: &fhir.Query{Type: "Patient", Patient: pg.Resources[0].ID, Count: 10}}
	if more, err := v.core.Everything(ctx, p, e); err == nil {
		for _, r := range more.Resources {
			switch {
			case r.Type == "Organization" && d.Practice == nil:
				d.Practice = r
			case r.Type == "Practitioner" && d.GP == nil:
				d.GP = r
			}
		}
	}
	return d, nil
}

func (v viewerCore) SharingOptions(ctx context.Context, p *fhir.Principal, patientID string) (*viewer.Sharing, error) {
	d, bg, err := v.core.Sharing(ctx, p, patientID)
	if err != nil {
		return nil, err
	}
	return &viewer.Sharing{Areas: viewerAreas(d.Areas, d.Summary), BreakGlass: bg}, nil
}

// viewerAreas speaks the viewer's dialect: areas shared whole, and
// fhir.AreaSummary for those shared as the summary view only.
func viewerAreas(areas, summary fhir.Areas) fhir.Areas {
	out := areas &^ summary
	if summary != 0 {
		out |= fhir.AreaSummary
	}
	return out
}

func (v viewerCore) RecordConsent(ctx context.Context, p *fhir.Principal, req viewer.ConsentRequest) (string, error) {
	r, err := v.core.RecordConsent(ctx, p, fhir.ConsentRequest{PatientID: req.PatientID, NHS: req.NHS, Clinician: req.Clinician,
		BreakGlass: req.BreakGlass, Reason: req.Reason})
	if err != nil {
		return "", err
	}
	return r.ID, nil
}

func (v viewerCore) PatientContext(ctx context.Context, p *fhir.Principal, consentID string) (*fhir.Principal, error) {
	g, err := v.core.PatientContext(ctx, p, consentID)
	if err != nil {
		return nil, err
	}
	pp := *p
	pp.PatientID, pp.ConsentRef, pp.BreakGlass = g.PatientID, consentID, g.BreakGlass
	pp.Scopes = fhir.AreaScopes(viewerAreas(g.Areas, g.Summary))
	if g.BreakGlass {
		pp.PurposeOfUse = fhir.PurposeEmergency
	}
	return &pp, nil
}

// RevokeConsent revokes a consent to view the viewer recorded (only the
// recording client of the organisation may: the viewer's own).
func (v viewerCore) RevokeConsent(ctx context.Context, p *fhir.Principal, consentID string) error {
	_, err := v.core.RevokeConsent(ctx, p, consentID)
	return err
}

func (v viewerCore) Everything(ctx context.Context, p *fhir.Principal, patientID string) (*viewer.Result, error) {
	// The whole record in one audited access: a view is one look.
	e := &fhir.EverythingRequest{PatientID: patientID, Query: &fhir.Query{Type: "Patient", Patient: patientID, Count: math.MaxInt32}}
	pg, err := v.core.Everything(ctx, p, e)
	if err != nil {
		return nil, err
	}
	return &viewer.Result{Resources: pg.Resources, Warnings: pg.Warnings, Areas: viewerAreas(pg.Areas, pg.Summary)}, nil
}

// loopbackBase reports a plain-http base URL on a loopback address, where
// the viewer's cookies may drop the Secure attribute.
func loopbackBase(base string) bool {
	for _, p := range []string{"http://127.", "http://localhost", "http://[::1]"} {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}
