// Package consenttest is the contract of consent.AgreementStore and
// consent.ConsentStore: one set of table tests that every implementation
// passes (bbolt in package consent, PostgreSQL in consent/pgstore).
package consenttest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// NewStores returns a fresh, empty store under test whose created/updated
// stamps come from now.
type NewStores func(t *testing.T, now func() time.Time) (consent.AgreementStore, consent.ConsentStore)

// T0 is the contract's clock.
var T0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const practice = "Y99001"

func codeOf(err error) fhir.Code {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

// Run runs the contract against the stores newStores makes.
func Run(t *testing.T, newStores NewStores) {
	t.Run("AgreementLifecycle", func(t *testing.T) { agreementLifecycle(t, newStores) })
	t.Run("Groups", func(t *testing.T) { groups(t, newStores) })
	t.Run("ListOrder", func(t *testing.T) { listOrder(t, newStores) })
	t.Run("Consents", func(t *testing.T) { consents(t, newStores) })
}

func agreementLifecycle(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	now := T0.Add(500 * time.Millisecond) // stamps are truncated to the second
	s, _ := newStores(t, func() time.Time { return now })
	a, err := s.Add(ctx, consent.Agreement{Provider: practice, Consumers: []string{"RXX01", "RXX01"}, Areas: fhir.AreaMedication, Status: consent.StatusDraft})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || !a.Created.Equal(T0) || !a.Updated.Equal(T0) || len(a.Consumers) != 1 || a.Purposes[0] != consent.PurposeTreat || a.DefaultSharing != consent.DefaultImplied {
		t.Fatalf("add filled %+v", a)
	}
	if _, err := s.Add(ctx, a); codeOf(err) != fhir.CodeInvalidParameter {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := s.Add(ctx, consent.Agreement{Provider: "bad code", Consumers: []string{"RXX01"}, Areas: fhir.AreaMedication}); codeOf(err) != fhir.CodeInvalidParameter {
		t.Fatalf("invalid: %v", err)
	}
	got, err := s.Get(ctx, a.ID)
	if err != nil || string(consent.AgreementJSON(got)) != string(consent.AgreementJSON(a)) {
		t.Fatalf("get %s / %v", consent.AgreementJSON(got), err)
	}
	if !got.Created.Equal(T0) || !got.Updated.Equal(T0) {
		t.Fatalf("stamps %v %v", got.Created, got.Updated)
	}
	if _, err := s.Get(ctx, "nope"); codeOf(err) != fhir.CodeReferenceNotFound {
		t.Fatalf("get unknown: %v", err)
	}
	later := T0.Add(time.Hour)
	steps := []struct {
		name string
		op   func(context.Context, string) (consent.Agreement, error)
		id   string
		want consent.Status
		code fhir.Code
	}{
		{"draft cannot be suspended", s.Suspend, a.ID, "", fhir.CodeInvalidParameter},
		{"activate draft", s.Activate, a.ID, consent.StatusActive, ""},
		{"suspend", s.Suspend, a.ID, consent.StatusSuspended, ""},
		{"activate suspended", s.Activate, a.ID, consent.StatusActive, ""},
		{"unknown id", s.Suspend, "nope", "", fhir.CodeReferenceNotFound},
		{"end", s.End, a.ID, consent.StatusEnded, ""},
		{"ended is terminal", s.Activate, a.ID, "", fhir.CodeInvalidParameter},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			now = later
			got, err := st.op(ctx, st.id)
			if st.code != "" {
				if codeOf(err) != st.code {
					t.Fatalf("err %v, want %s", err, st.code)
				}
				return
			}
			if err != nil || got.Status != st.want || !got.Updated.Equal(later) || !got.Created.Equal(T0) {
				t.Fatalf("%+v %v", got, err)
			}
			again, err := s.Get(ctx, st.id)
			if err != nil || again.Status != st.want {
				t.Fatalf("stored %v %v", again.Status, err)
			}
		})
	}
}

func groups(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	s, _ := newStores(t, func() time.Time { return T0 })
	for _, tc := range []struct {
		name    string
		group   string
		members []string
		code    fhir.Code
	}{
		{"ok", "trusts", []string{"RXX06", "RXX05", "RXX05"}, ""},
		{"bad name", "bad name!", nil, fhir.CodeInvalidParameter},
		{"bad member", "g2", []string{"rxx05"}, fhir.CodeInvalidParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutGroup(ctx, tc.group, tc.members)
			if codeOf(err) != tc.code || (tc.code == "" && err != nil) {
				t.Fatalf("err %v, want %q", err, tc.code)
			}
		})
	}
	if m, err := s.Group(ctx, "trusts"); err != nil || !slices.Equal(m, []string{"RXX05", "RXX06"}) {
		t.Fatalf("group %v %v", m, err)
	}
	if _, err := s.Group(ctx, "nope"); codeOf(err) != fhir.CodeReferenceNotFound {
		t.Fatalf("unknown group: %v", err)
	}
	g, err := s.Add(ctx, consent.Agreement{ID: "grp", Provider: practice, ConsumerGroup: "trusts", Areas: fhir.AllAreas, Status: consent.StatusActive})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, consent.Agreement{ID: "direct", Provider: practice, Consumers: []string{"RXX01"}, Areas: fhir.AllAreas, Status: consent.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, consent.Agreement{ID: "other", Provider: "Y99002", Consumers: []string{"RXX05"}, Areas: fhir.AllAreas, Status: consent.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, consent.Agreement{ID: "dangling", Provider: "Y99003", ConsumerGroup: "never-made", Areas: fhir.AllAreas, Status: consent.StatusActive}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		practice string
		want     map[string][]string // id -> consumers after expansion
	}{
		{practice, map[string][]string{"grp": {"RXX05", "RXX06"}, "direct": {"RXX01"}}},
		{"Y99002", map[string][]string{"other": {"RXX05"}}},
		{"Y99003", map[string][]string{"dangling": nil}},
		{"Y99009", map[string][]string{}},
		{"", map[string][]string{}},
	} {
		t.Run("ForProvider/"+tc.practice, func(t *testing.T) {
			ags, err := s.ForProvider(ctx, tc.practice)
			if err != nil || len(ags) != len(tc.want) {
				t.Fatalf("%d agreements %v, want %d", len(ags), err, len(tc.want))
			}
			for _, a := range ags {
				want, ok := tc.want[a.ID]
				c := slices.Clone(a.Consumers)
				slices.Sort(c)
				if !ok || !slices.Equal(c, want) {
					t.Fatalf("%s consumers %v, want %v", a.ID, c, want)
				}
			}
		})
	}
	stored, _ := s.Get(ctx, g.ID)
	if len(stored.Consumers) != 0 {
		t.Fatalf("Get expanded the group: %+v", stored.Consumers)
	}
	// replacing a group changes what the next decision sees
	if err := s.PutGroup(ctx, "trusts", []string{"RXX07"}); err != nil {
		t.Fatal(err)
	}
	ags, _ := s.ForProvider(ctx, practice)
	for _, a := range ags {
		if a.ID == "grp" && !slices.Equal(a.Consumers, []string{"RXX07"}) {
			t.Fatalf("after PutGroup: %v", a.Consumers)
		}
	}
	d := consent.DecideOrganisation(consent.Input{Principal: &fhir.Principal{ConsumerODS: "RXX07"}, Request: &fhir.Request{Areas: fhir.AllAreas}, Practice: practice, Agreements: ags, Now: T0})
	if !d.Permit {
		t.Fatalf("group member denied: %+v", d)
	}
}

func listOrder(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	s, _ := newStores(t, func() time.Time { return T0 })
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty list %v %v", l, err)
	}
	for _, id := range []string{"c", "a", "b"} {
		if _, err := s.Add(ctx, consent.Agreement{ID: id, Provider: practice, Consumers: []string{"RXX01"}, Areas: fhir.AreaProblems}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.List(ctx)
	if err != nil || len(l) != 3 || l[0].ID != "a" || l[1].ID != "b" || l[2].ID != "c" {
		t.Fatalf("list %v %v", l, err)
	}
}

func consents(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	_, s := newStores(t, func() time.Time { return T0 })
	c := &fhir.ViewConsent{ID: "c1", PatientID: "p1", NHS: "9990000050", Clinician: "555123", Organisation: "RXX01", ClientID: "demo-ehr",
		Start: T0, End: T0.Add(time.Hour), Status: "active", Recorded: T0, Resource: []byte(`{"resourceType":"Consent","id":"c1"}`)}
	if _, err := s.GetConsent(ctx, "c1"); codeOf(err) != fhir.CodeReferenceNotFound {
		t.Fatalf("before put: %v", err)
	}
	if err := s.PutConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetConsent(ctx, "c1")
	if err != nil || got.ID != c.ID || got.PatientID != c.PatientID || got.NHS != c.NHS || got.Clinician != c.Clinician ||
		got.Organisation != c.Organisation || got.ClientID != c.ClientID || !got.Start.Equal(c.Start) || !got.End.Equal(c.End) ||
		got.Status != c.Status || string(got.Resource) != string(c.Resource) || !got.Live(T0) {
		t.Fatalf("got %+v %v", got, err)
	}
	// revocation replaces the stored consent: the next read sees it
	rev := *got
	rev.Status = "inactive"
	if err := s.PutConsent(ctx, &rev); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetConsent(ctx, "c1"); err != nil || got.Status != "inactive" || got.Live(T0) {
		t.Fatalf("after revoke %+v %v", got, err)
	}
	bg := &fhir.ViewConsent{ID: "c2", PatientID: "p2", Clinician: "555123", Organisation: "RXX01", BreakGlass: true,
		Start: T0, End: T0.Add(2 * time.Hour), Status: "active", Recorded: T0, Resource: []byte(`{}`)}
	if err := s.PutConsent(ctx, bg); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetConsent(ctx, "c2"); err != nil || !got.BreakGlass {
		t.Fatalf("break-glass %+v %v", got, err)
	}
}
