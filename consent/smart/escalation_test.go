package smart

import (
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// TestWildcardNeverReachesAdministration: a client registered with
// wildcard scopes cannot be issued a scope on the audit log or the
// agreements register, and a token carrying only wildcards is refused
// them; only a registration naming the type literally grants one.
func TestWildcardNeverReachesAdministration(t *testing.T) {
	mustScopes := func(s string) []Scope {
		ss, err := ParseScopes(s)
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	for _, tc := range []struct {
		registered, requested string
		ok                    bool
	}{
		{"system/*.rs", "system/AuditEvent.rs", false},
		{"system/*.cruds", "system/Agreement.rs", false},
		{"system/*.cruds", "system/Agreement.u", false},
		{"patient/*.rs", "patient/AuditEvent.rs", false},
		{"system/*.read", "system/AuditEvent.read", false},
		{"system/AuditEvent.rs", "system/AuditEvent.rs", true},
		{"system/AuditEvent.rs", "system/AuditEvent.s", true},
		{"system/Agreement.crus", "system/Agreement.u", true},
		{"system/*.rs", "system/Condition.rs", true},
		{"system/*.rs", "system/*.rs", true},
		{"system/*.cruds", "system/Consent.c", true},
	} {
		t.Run(tc.registered+" -> "+tc.requested, func(t *testing.T) {
			_, err := Narrow(mustScopes(tc.requested), mustScopes(tc.registered))
			if (err == nil) != tc.ok {
				t.Fatalf("Narrow = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// Verification: a token with wildcards only is refused the audit log
	// and the agreements register, whatever the interaction.
	a := Authorizer{}
	p := &fhir.Principal{ClientID: "c", ConsumerODS: "RXX01", Scopes: []string{"system/*.cruds", "patient/*.cruds", "user/*.cruds"}}
	for _, req := range []*fhir.Request{
		{Interaction: "search-type", Type: "AuditEvent"},
		{Interaction: "read", Type: "AuditEvent", ID: "audit-000000000001"},
		{Interaction: "search-type", Type: "Agreement"},
		{Interaction: "update", Type: "Agreement", ID: "a1"},
		{Interaction: "create", Type: "Agreement"},
	} {
		if d := a.Authorize(p, req); d.Permit || d.Code != fhir.CodeAccessDenied {
			t.Errorf("%s %s with wildcards: %+v", req.Interaction, req.Type, d)
		}
	}
	p.Scopes = []string{"system/AuditEvent.rs"}
	if d := a.Authorize(p, &fhir.Request{Interaction: "search-type", Type: "AuditEvent"}); !d.Permit {
		t.Errorf("literal AuditEvent scope refused: %+v", d)
	}
	if d := a.Authorize(p, &fhir.Request{Interaction: "read", Type: "Condition", Areas: fhir.AreasOfType("Condition")}); d.Permit {
		t.Errorf("an auditor's scope reached clinical data: %+v", d)
	}
}

func TestConsentID(t *testing.T) {
	for in, want := range map[string]string{
		"c1":                                 "c1",
		"Consent/c1":                         "c1",
		"https://gp.example/fhir/Consent/c1": "c1",
		"Consent/c1/_history/2":              "c1",
		"https://x/NotConsent/c1":            "",
		"Consent/bad id":                     "",
		"":                                   "",
	} {
		got, ok := ConsentID(in)
		if (want != "") != ok || (ok && got != want) {
			t.Errorf("ConsentID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
