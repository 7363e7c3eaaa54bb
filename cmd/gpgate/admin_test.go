package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// TestAgreementsAdminAPI: the admin API lists, adds, suspends and
// re-activates agreements on a running server, and a suspension takes effect
// on the very next clinical request.
func TestAgreementsAdminAPI(t *testing.T) {
	dir := t.TempDir()
	sum, err := demoRegion(context.Background(), demoOpts{data: dir, seed: 11, practices: 1, patients: 8, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoAgreements(context.Background(), dir, sum); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := startOn(t, ctx, serveOpts{data: dir})
	admin := "Bearer " + s.tokenFor(t, "demo-admin", "demo-admin.jwk", "system/Agreement.crus")
	practice := sum.Practices[0].ODS
	agreementID := "demo-" + strings.ToLower(practice) + "-" + strings.ToLower(consent.DemoConsumerActive)
	var pid string
	for _, n := range sum.Notable {
		if n.Kind == "typical" {
			pid = n.PatientID
		}
	}

	r := s.get(t, "/admin/agreements", "Authorization", admin)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), agreementID) {
		t.Fatalf("list: %d %s", r.status, truncateBody(r.body))
	}
	expectOutcome(t, s.get(t, "/admin/agreements"), 403, fhir.CodeAccessDenied) // a clinical system's token

	read := "/Condition?patient=" + pid
	if r := s.get(t, read); r.status != http.StatusOK {
		t.Fatalf("before suspension: %d", r.status)
	}
	if r := s.do(t, http.MethodPost, "/admin/agreements/"+agreementID+"/suspend", []byte("{}"), "Authorization", admin); r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"suspended"`) {
		t.Fatalf("suspend: %d %s", r.status, truncateBody(r.body))
	}
	expectOutcome(t, s.get(t, read), 403, fhir.CodeNoOrganisationConsent)
	if r := s.do(t, http.MethodPost, "/admin/agreements/"+agreementID+"/activate", []byte("{}"), "Authorization", admin); r.status != http.StatusOK {
		t.Fatalf("activate: %d %s", r.status, truncateBody(r.body))
	}
	if r := s.get(t, read); r.status != http.StatusOK {
		t.Fatalf("after re-activation: %d", r.status)
	}

	body, _ := json.Marshal(map[string]any{"provider": practice, "consumers": []string{"RYY99"}, "areas": []string{"examination"}, "purposes": []string{"TREAT"}, "status": "active"})
	r = s.do(t, http.MethodPost, "/admin/agreements", body, "Authorization", admin)
	if r.status != http.StatusCreated || !strings.Contains(string(r.body), `"RYY99"`) {
		t.Fatalf("add: %d %s", r.status, truncateBody(r.body))
	}
	expectOutcome(t, s.do(t, http.MethodPost, "/admin/agreements", []byte(`{"provider":"x"}`), "Authorization", admin), 422, fhir.CodeInvalidParameter)
	expectOutcome(t, s.do(t, http.MethodPost, "/admin/agreements/"+agreementID+"/delete", []byte("{}"), "Authorization", admin), 422, fhir.CodeInvalidParameter)
}
