package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/fhir"
)

// TestAccessesAreAudited: every data request, granted or refused, leaves an
// AuditEvent in the hash-chained log, which `gpgate audit verify` accepts and
// `gpgate audit export` writes as NDJSON.
func TestAccessesAreAudited(t *testing.T) {
	dir := t.TempDir()
	sum, err := demoRegion(context.Background(), demoOpts{data: dir, seed: 7, practices: 1, patients: 12, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoAgreements(context.Background(), dir, sum); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, errc := startOn(t, ctx, serveOpts{data: dir})
	n := sum.Notable[0]
	decodeBundle(t, s.get(t, patientSearch(n.NHS)))                   // granted query
	decodeBundle(t, s.get(t, "/Patient/"+n.PatientID+"/$everything")) // granted query
	// An unknown patient is refused like a patient without an agreement.
	expectOutcome(t, s.get(t, "/Patient/pnosuchpatient"), 403, fhir.CodeNoOrganisationConsent)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}

	// The practice system was told too (the embedded source keeps its own trail).
	store, err := embedded.Open(filepath.Join(dir, recordsFile))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := store.Source(n.Practice).Accesses(context.Background(), fhir.NHSNumber(n.NHS))
	store.Close()
	if err != nil || len(acc) != 2 {
		t.Fatalf("practice access trail: %d entries (%v), want the 2 granted accesses", len(acc), err)
	}
	for _, a := range acc {
		if a.ClientID != demoClientID || a.ConsumerODS != demoClientODS {
			t.Fatalf("practice access trail names %s/%s", a.ClientID, a.ConsumerODS)
		}
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"audit", "verify", "--data", dir}, &out, &errb); code != 0 {
		t.Fatalf("audit verify exit %d: %s %s", code, out.String(), errb.String())
	}
	// 3 data requests, the consent to view recorded for the $everything, and
	// the two tokens (system, then patient-context) issued for them.
	if !strings.Contains(out.String(), "audit chain OK: 6 entries") {
		t.Fatalf("verify said %q, want 6 entries", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"audit", "export", "--data", dir, "--since", "2000-01-01"}, &out, &errb); code != 0 {
		t.Fatalf("audit export exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("export wrote %d lines, want 6", len(lines))
	}
	outcomes := map[string]int{}
	for _, l := range lines {
		if _, err := fhir.Parse([]byte(l)); err != nil {
			t.Fatalf("exported AuditEvent is not valid R4: %v", err)
		}
		var ev struct {
			ResourceType string `json:"resourceType"`
			Outcome      string `json:"outcome"`
		}
		_ = json.Unmarshal([]byte(l), &ev)
		if ev.ResourceType != "AuditEvent" {
			t.Fatalf("exported %s", ev.ResourceType)
		}
		outcomes[ev.Outcome]++
	}
	if outcomes["0"] != 5 || len(lines)-outcomes["0"] != 1 {
		t.Fatalf("outcomes %v, want five successes and one refusal", outcomes)
	}
}
