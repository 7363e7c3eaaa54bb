package access

import (
	"bytes"
	"context"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// demoRecords is fakeRecords with the demographics fast path.
type demoRecords struct {
	fakeRecords
	vouch bool
}

func (d demoRecords) Demographics(_ context.Context, nhs fhir.NHSNumber) (*fhir.Record, bool, error) {
	d.add("demographics")
	if !d.vouch {
		return nil, false, nil
	}
	r, ok := d.recs[nhs]
	if !ok {
		return nil, false, fhir.Errorf(fhir.CodePatientNotFound, "gone")
	}
	out := *r
	out.Resources = r.Select("", fhir.AreaDemographics)
	out.Version += "/demographics"
	return &out, true, nil
}

// TestDemographicsFastPath: a demographics-only request decides on the
// vouched demographics part when the decision permits; a refusal is
// decided again on the whole record; other requests never take the path.
func TestDemographicsFastPath(t *testing.T) {
	withDemo := func(vouch bool) opt {
		return func(c *Config, w *world) {
			c.Records = demoRecords{fakeRecords: c.Records.(fakeRecords), vouch: vouch}
		}
	}
	refuseUnlessWhole := func(c *Config, w *world) {
		c.Policy = fakePolicy{calls: w.calls, patient: func(rec *fhir.Record) fhir.Decision {
			if len(rec.Resources) < 3 {
				return fhir.Decision{Code: fhir.CodeNoPatientConsent, Rule: "default-dissent"}
			}
			return fhir.Decision{Permit: true, Areas: fhir.AllAreas, Rule: "permit"}
		}}
	}
	refuse := func(c *Config, w *world) {
		c.Policy = fakePolicy{calls: w.calls, patient: func(*fhir.Record) fhir.Decision {
			return fhir.Decision{Code: fhir.CodeNoPatientConsent, Rule: "patient-dissent"}
		}}
	}
	search := func(w *world) error {
		pg, err := w.core.FindPatient(context.Background(), clinician, &fhir.Query{Type: "Patient", NHS: nhsKnown, Count: 10})
		if err == nil && (len(pg.Resources) != 1 || pg.Resources[0].Type != "Patient") {
			t.Fatalf("page %+v", pg)
		}
		return err
	}
	everything := func(w *world) error {
		_, err := w.core.Everything(context.Background(), clinician, &fhir.EverythingRequest{PatientID: pidKnown, Query: &fhir.Query{Type: "Patient", Patient: pidKnown, Count: 100}})
		return err
	}
	for _, tc := range []struct {
		name  string
		opts  []opt
		do    func(*world) error
		code  fhir.Code
		calls string
	}{
		{"vouched, permitted", []opt{withDemo(true)}, search, "", "scopes scopes locate org demographics patient redact audit:granted"},
		{"not vouched", []opt{withDemo(false)}, search, "", "scopes scopes locate org demographics fetch patient redact audit:granted"},
		{"refused on the part, permitted on the whole", []opt{withDemo(true), refuseUnlessWhole}, search, "", "scopes scopes locate org demographics patient patient fetch patient redact audit:granted"},
		{"refused on both", []opt{withDemo(true), refuse}, search, fhir.CodeNoPatientConsent, "scopes scopes locate org demographics patient patient fetch patient patient audit:denied"},
		{"not demographics only", []opt{withDemo(true)}, everything, "", "scopes scopes resolve locate org fetch patient redact audit:granted"},
		{"no fast path", nil, search, "", "scopes scopes locate org fetch patient redact audit:granted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts...)
			if err := tc.do(w); codeOf(err) != tc.code {
				t.Fatalf("err %v, want code %q", err, tc.code)
			}
			if got := w.calls.String(); got != tc.calls {
				t.Errorf("calls\n %q\nwant %q", got, tc.calls)
			}
		})
	}
}

// TestObservationsReported: the ids named "Observation/<id>" in the
// DiagnosticReports, as a search for each `"Observation/<id>"` would find.
func TestObservationsReported(t *testing.T) {
	rep := res(t, `{"resourceType":"DiagnosticReport","id":"r1","result":[{"reference":"Observation/o1"},{"reference":"Observation/o-2"}],"code":{"text":"x"}}`)
	other := res(t, `{"resourceType":"Condition","id":"c1","evidence":[{"detail":[{"reference":"Observation/o3"}]}]}`)
	obs := []*fhir.Resource{
		res(t, `{"resourceType":"Observation","id":"o1"}`), res(t, `{"resourceType":"Observation","id":"o-2"}`),
		res(t, `{"resourceType":"Observation","id":"o3"}`), res(t, `{"resourceType":"Observation","id":"o"}`),
	}
	members := append([]*fhir.Resource{rep, other}, obs...)
	got := observationsReported(members)
	for _, o := range obs {
		want := bytes.Contains(rep.JSON, []byte(`"Observation/`+o.ID+`"`))
		if got[o.ID] != want {
			t.Errorf("%s: reported %v, want %v", o.ID, got[o.ID], want)
		}
	}
	if len(observationsReported(obs)) != 0 {
		t.Error("no report, yet reported observations")
	}
}
