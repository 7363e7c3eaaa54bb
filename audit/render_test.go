package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

var (
	t0        = time.Date(2025, 3, 14, 9, 26, 53, 589_000_000, time.UTC)
	testNHS   = fhir.NHSNumber("9000000009")
	testPatID = fhir.PatientID(testNHS)
)

// renderCases are the golden AuditEvents: one per BALP shape gpgate emits.
func renderCases() []struct {
	name string
	e    Entry
} {
	base := fhir.AuditEntry{
		Time: t0.Add(-40 * time.Millisecond), RequestID: "req-7f3a",
		ClientID: "ed-system-01", ConsumerODS: "RRK", Practitioner: "555123456789",
		Role: "R8000", PurposeOfUse: "TREAT", TokenID: "jti-41",
		PatientID: testPatID, NHS: testNHS, Practice: "A20047",
	}
	read := base
	read.Action, read.Interaction, read.Outcome, read.Rule = "PatientRead", "read", fhir.OutcomeGranted, "agreement:A20047-RRK"
	read.Types, read.Areas, read.Count = []string{"Patient"}, fhir.AreaDemographics, 1

	query := base
	query.Action, query.Interaction, query.Outcome = "PatientQuery", "search-type", fhir.OutcomeDenied
	query.Code, query.Rule = fhir.CodeNoOrganisationConsent, "no-agreement"
	query.Types = []string{"Condition"}
	query.Query = "patient=" + testPatID + "&category=problem-list-item&_count=50"

	bg := base
	bg.Action, bg.Interaction, bg.Outcome, bg.Rule = "PatientRead", "operation", fhir.OutcomeGranted, "break-glass"
	bg.BreakGlass, bg.Reason = true, "Unconscious patient in ED & no consent possible <urgent>"
	bg.Types, bg.Areas, bg.Count = []string{"Bundle"}, fhir.AreaSummary, 42
	bg.Query = "_format=json"

	tok := fhir.AuditEntry{
		Time: t0, RequestID: "req-tok-1", Action: "token-issue", Interaction: "token",
		Outcome: fhir.OutcomeGranted, Rule: "client-credentials",
		ClientID: "ed-system-01", ConsumerODS: "RRK", PurposeOfUse: "TREAT", TokenID: "jti-40",
	}

	cons := base
	cons.Action, cons.Interaction, cons.Outcome, cons.Rule = "consent-record", "create", fhir.OutcomeGranted, "consent-to-view"
	cons.Types, cons.TokenID = []string{"Consent"}, "jti-39"

	errEntry := base
	errEntry.Action, errEntry.Interaction, errEntry.Outcome = "PatientQuery", "search-type", fhir.OutcomeError
	errEntry.Code, errEntry.Rule, errEntry.Practitioner, errEntry.Role = fhir.CodeTimeout, "source-timeout", "", ""
	errEntry.Types = []string{"MedicationStatement"}
	errEntry.Query = "patient=" + testPatID

	mk := func(seq uint64, a fhir.AuditEntry) Entry {
		return Entry{Seq: seq, Recorded: t0, Node: "gpgate-1", AuditEntry: a}
	}
	return []struct {
		name string
		e    Entry
	}{
		{"patient-read-granted", mk(123, read)},
		{"patient-query-denied", mk(124, query)},
		{"break-glass-read", mk(125, bg)},
		{"token-issue", mk(126, tok)},
		{"consent-record", mk(127, cons)},
		{"system-query-error", mk(128, errEntry)},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.e)
			path := filepath.Join("testdata", "golden", tc.name+".json")
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, got, "", "  "); err != nil {
				t.Fatalf("Render produced invalid JSON: %v\n%s", err, got)
			}
			pretty.WriteByte('\n')
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("AuditEvent differs from %s (run go test ./audit -run TestRenderGolden -update after checking):\ngot:\n%s", path, pretty.Bytes())
			}
		})
	}
}

// TestRenderValidR4 checks each rendering with google/fhir's R4 parser and
// that Render's bytes already are the canonical form.
func TestRenderValidR4(t *testing.T) {
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := Render(tc.e)
			if _, err := fhir.Parse(got); err != nil {
				t.Fatalf("fhir.Parse: %v\n%s", err, got)
			}
			r, err := fhir.Canonicalize(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.JSON, got) {
				t.Errorf("Render is not canonical:\n got %s\nwant %s", got, r.JSON)
			}
			if r.Type != "AuditEvent" || r.ID != EventID(tc.e.Seq) {
				t.Errorf("type/id = %s/%s", r.Type, r.ID)
			}
		})
	}
}

// TestRenderSemantics checks the coded content each shape must carry.
func TestRenderSemantics(t *testing.T) {
	type ae struct {
		ID      string `json:"id"`
		Meta    struct{ Profile []string }
		Type    coding
		Subtype []coding
		Action  string
		Outcome string
		Desc    string `json:"outcomeDesc"`
		Ext     []struct {
			URL string
			VCC codeable `json:"valueCodeableConcept"`
		} `json:"extension"`
		Purpose []codeable `json:"purposeOfEvent"`
		Agent   []aeAgent
		Entity  []aeEntity
	}
	want := map[string]struct {
		typ, sub, action, outcome, purpose, code string
	}{
		"patient-read-granted": {"rest", "read", "R", "0", "TREAT", ""},
		"patient-query-denied": {"rest", "search-type", "E", "4", "TREAT", "NO_ORGANISATION_CONSENT"},
		"break-glass-read":     {"rest", "operation", "E", "0", "ETREAT", ""},
		"token-issue":          {"110114", "ITI-71", "E", "0", "TREAT", ""},
		"consent-record":       {"rest", "create", "C", "0", "TREAT", ""},
		"system-query-error":   {"rest", "search-type", "E", "8", "TREAT", "SERVICE_UNAVAILABLE"},
	}
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			var got ae
			if err := json.Unmarshal(Render(tc.e), &got); err != nil {
				t.Fatal(err)
			}
			w := want[tc.name]
			if got.Meta.Profile[0] != fhir.ProfileAuditEvent {
				t.Errorf("profile %v", got.Meta.Profile)
			}
			if got.Type.Code != w.typ || len(got.Subtype) != 1 || got.Subtype[0].Code != w.sub || got.Action != w.action {
				t.Errorf("type %s subtype %v action %s, want %s %s %s", got.Type.Code, got.Subtype, got.Action, w.typ, w.sub, w.action)
			}
			if got.Outcome != w.outcome || got.Desc != tc.e.Rule {
				t.Errorf("outcome %s %q", got.Outcome, got.Desc)
			}
			if len(got.Purpose) != 1 || got.Purpose[0].Coding[0].Code != w.purpose || got.Purpose[0].Coding[0].System != ActReasonSystem {
				t.Errorf("purposeOfEvent %v, want %s", got.Purpose, w.purpose)
			}
			if w.code == "" && len(got.Ext) != 0 || w.code != "" && (len(got.Ext) != 1 || got.Ext[0].URL != ExtOutcomeDetail ||
				got.Ext[0].VCC.Coding[0].Code != w.code || got.Ext[0].VCC.Coding[0].System != fhir.SpineErrorSystem) {
				t.Errorf("outcome detail extension %+v, want %q", got.Ext, w.code)
			}
			requestors := 0
			for _, a := range got.Agent {
				if a.Requestor {
					requestors++
					if tc.e.TokenID != "" && (len(a.Policy) != 1 || a.Policy[0] != tc.e.TokenID) {
						t.Errorf("requestor policy %v, want token id", a.Policy)
					}
				}
			}
			if requestors != 1 {
				t.Errorf("%d requestor agents, want 1", requestors)
			}
			var patient *aeEntity
			reason := ""
			for i, en := range got.Entity {
				if en.Role != nil && en.Role.Code == "1" {
					patient = &got.Entity[i]
				}
				if en.Role != nil && en.Role.Code == "24" {
					q, err := base64.StdEncoding.DecodeString(en.Query)
					if err != nil || string(q) != tc.e.Query {
						t.Errorf("query entity %q, want base64 of %q", en.Query, tc.e.Query)
					}
				}
				for _, d := range en.Detail {
					if d.Type == DetailBreakGlassReason {
						reason = d.ValueString
					}
				}
			}
			if tc.e.PatientID != "" && (patient == nil || patient.What.Reference != "Patient/"+tc.e.PatientID ||
				patient.What.Identifier.Value != string(tc.e.NHS) || patient.What.Identifier.System != fhir.NHSNumberSystem) {
				t.Errorf("patient entity %+v", patient)
			}
			if reason != tc.e.Reason {
				t.Errorf("break-glass reason %q, want %q", reason, tc.e.Reason)
			}
			if tc.e.Reason == "" && strings.Contains(string(Render(tc.e)), DetailBreakGlassReason) {
				t.Error("break-glass-reason detail without a reason")
			}
		})
	}
}
