package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

func (s *testServer) tokenFor(t testing.TB, client, keyFile, scope string) string {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(s.dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, client, key, []string{scope}, nil)
	if err != nil {
		t.Fatalf("token for %s: %v", client, err)
	}
	return tok
}

// TestAuditEventSearch: an auditor reads who looked at a patient; a clinical
// system's token (system/*.rs) cannot read the audit log.
func TestAuditEventSearch(t *testing.T) {
	s := startServer(t)
	p := s.notable(t, demo.NotableSmall)
	decodeBundle(t, s.get(t, "/Patient/"+p.PatientID+"/$everything"))
	expectOutcome(t, s.get(t, "/Condition/"+p.PatientID+"-nosuch"), 404, fhir.CodeNoRecordFound)

	auditor := "Bearer " + s.tokenFor(t, "demo-auditor", "demo-auditor.jwk", "system/AuditEvent.rs")
	r := s.get(t, "/AuditEvent?patient="+p.PatientID+"&_count=1", "Authorization", auditor)
	b := decodeBundle(t, r)
	if _, err := fhir.Parse(r.body); err != nil {
		t.Fatalf("AuditEvent Bundle is not valid R4: %v", err)
	}
	if *b.Total < 1 || len(b.Entry) != 1 {
		t.Fatalf("total %d entries %d", *b.Total, len(b.Entry))
	}
	var ev struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Agent        []struct {
			Who struct {
				Identifier struct {
					Value string `json:"value"`
				} `json:"identifier"`
			} `json:"who"`
		} `json:"agent"`
	}
	_ = json.Unmarshal(b.Entry[0].Resource, &ev)
	if ev.ResourceType != "AuditEvent" {
		t.Fatalf("entry is a %s", ev.ResourceType)
	}
	found := false
	for _, a := range ev.Agent {
		if a.Who.Identifier.Value == demoClientID {
			found = true
		}
	}
	if !found {
		t.Errorf("newest AuditEvent for the patient does not name client %s", demoClientID)
	}
	if rr := s.get(t, "/AuditEvent/"+ev.ID, "Authorization", auditor); rr.status != http.StatusOK {
		t.Fatalf("read AuditEvent: %d", rr.status)
	}
	denied := decodeBundle(t, s.get(t, "/AuditEvent?patient="+p.PatientID+"&outcome=4", "Authorization", auditor))
	if *denied.Total < 1 {
		t.Errorf("the refused search was not audited as a denial")
	}
	expectOutcome(t, s.get(t, "/AuditEvent?patient="+p.PatientID), 403, fhir.CodeAccessDenied)
	expectOutcome(t, s.get(t, "/AuditEvent", "Authorization", ""), 401, fhir.CodeUnauthorized)
	expectOutcome(t, s.get(t, "/AuditEvent?date=xx", "Authorization", auditor), 422, fhir.CodeInvalidParameter)
}
