package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/fhir"
)

// TestTokensAreRequired: every clinical route answers 401 with a Bearer
// challenge and no data without a valid token; metadata and SMART discovery
// stay open.
func TestTokensAreRequired(t *testing.T) {
	s := startServer(t)
	p := s.notable(t, demo.NotableTypical)
	for _, path := range []string{
		patientSearch(p.NHS),
		"/Patient/" + p.PatientID,
		"/Condition?patient=" + p.PatientID,
		"/Patient/" + p.PatientID + "/$everything",
	} {
		t.Run("no token "+path, func(t *testing.T) {
			r := s.get(t, path, "Authorization", "")
			expectOutcome(t, r, http.StatusUnauthorized, fhir.CodeUnauthorized)
			if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || strings.Contains(ch, "error=") {
				t.Fatalf("WWW-Authenticate %q", ch)
			}
			if strings.Contains(string(r.body), p.NHS) || strings.Contains(string(r.body), p.PatientID) {
				t.Fatal("the refusal leaks the patient")
			}
		})
		t.Run("bad token "+path, func(t *testing.T) {
			r := s.get(t, path, "Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
			expectOutcome(t, r, http.StatusUnauthorized, fhir.CodeUnauthorized)
			if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q", ch)
			}
		})
	}
	if r := s.get(t, "/metadata", "Authorization", ""); r.status != http.StatusOK || !strings.Contains(string(r.body), "oauth-uris") {
		t.Fatalf("metadata without a token: %d, or no oauth-uris", r.status)
	}
	r := s.get(t, "/.well-known/smart-configuration", "Authorization", "")
	if r.status != http.StatusOK {
		t.Fatalf("smart-configuration: %d", r.status)
	}
	var cfg map[string]any
	if err := json.Unmarshal(r.body, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"token_endpoint", "jwks_uri", "introspection_endpoint", "grant_types_supported", "token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported", "scopes_supported", "capabilities"} {
		if _, ok := cfg[k]; !ok {
			t.Errorf("smart-configuration lacks %s", k)
		}
	}
	if cfg["token_endpoint"] != s.base+"/auth/token" {
		t.Errorf("token_endpoint %v", cfg["token_endpoint"])
	}
}
