package smart

import (
	"strings"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

func TestParseScope(t *testing.T) {
	valid := []struct{ in, canon string }{
		{"patient/*.read", "patient/*.read"},
		{"system/Observation.read", "system/Observation.read"},
		{"user/Condition.write", "user/Condition.write"},
		{"patient/*.*", "patient/*.*"},
		{"patient/Observation.rs", "patient/Observation.rs"},
		{"system/*.cruds", "system/*.cruds"},
		{"system/Consent.c", "system/Consent.c"},
		{"user/Patient.d", "user/Patient.d"},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
			"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"},
		{"patient/Observation.rs?code=http://loinc.org|85354-9&category=vital-signs",
			"patient/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9"},
		{"patient/Condition.rs?category=problem-list-item,encounter-diagnosis", "patient/Condition.rs?category=problem-list-item,encounter-diagnosis"},
		{"patient/Observation.rs?category=a%2Cb", "patient/Observation.rs?category=a%2Cb"},
	}
	for _, c := range valid {
		t.Run(c.in, func(t *testing.T) {
			s, err := ParseScope(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.String(); got != c.canon {
				t.Fatalf("String() = %q, want %q", got, c.canon)
			}
			again, err := ParseScope(s.String())
			if err != nil || again.String() != s.String() {
				t.Fatalf("round trip: %v %q", err, again.String())
			}
		})
	}
	invalid := []string{
		"", "openid", "launch/patient", "fhirUser", "offline_access", "patient/Observation", "patient/.rs",
		"patient/observation.rs", "group/Observation.rs", "patient/Observation.sr", "patient/Observation.rr",
		"patient/Observation.x", "patient/Observation.", "patient/Observation.read?category=x",
		"patient/Observation.rs?", "patient/Observation.rs?category", "patient/Observation.rs?category=",
		"patient/Observation.rs?date=2020", "patient/Observation.rs?category=|x", "patient/Observation.rs?category=a,",
		"patient/Obs-ervation.rs", "patient/Observation.rs?category=%zz", "Patient/Observation.rs",
		"patient/" + strings.Repeat("A", 600) + ".rs",
	}
	for _, in := range invalid {
		t.Run("invalid "+in, func(t *testing.T) {
			if s, err := ParseScope(in); err == nil {
				t.Fatalf("ParseScope(%q) = %v, want error", in, s)
			}
		})
	}
}

func TestParseScopes(t *testing.T) {
	ss, err := ParseScopes("  system/Patient.rs   system/Patient.rs system/Consent.c ")
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatScopes(ss); got != "system/Patient.rs system/Consent.c" {
		t.Fatalf("got %q", got)
	}
	if _, err := ParseScopes("system/Patient.rs openid"); err == nil {
		t.Fatal("want error for openid")
	}
	if _, err := ParseScopes(strings.Repeat("system/Patient.rs ", 65)); err == nil {
		t.Fatal("want error for too many scopes")
	}
}

func mustScopes(t testing.TB, s string) []Scope {
	t.Helper()
	ss, err := ParseScopes(s)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

var (
	vitalSigns = fhir.Coding{System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs"}
	laboratory = fhir.Coding{System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "laboratory"}
	bpCode     = fhir.Coding{System: "http://loinc.org", Code: "85354-9"}
)

func TestPermits(t *testing.T) {
	cases := []struct {
		name   string
		scopes string
		ctx    Context
		want   bool
	}{
		{"v1 read allows read", "system/Observation.read", Context{Type: "Observation", Interaction: "read"}, true},
		{"v1 read allows search", "system/Observation.read", Context{Type: "Observation", Interaction: "search"}, true},
		{"v2 r does not allow search", "system/Observation.r", Context{Type: "Observation", Interaction: "search"}, false},
		{"v2 s does not allow read", "system/Observation.s", Context{Type: "Observation", Interaction: "read"}, false},
		{"wrong type", "system/Observation.rs", Context{Type: "Condition", Interaction: "read"}, false},
		{"star type", "system/*.rs", Context{Type: "Condition", Interaction: "search-type"}, true},
		{"write needs c", "system/*.rs", Context{Type: "Consent", Interaction: "create"}, false},
		{"v1 write allows create", "user/Consent.write", Context{Type: "Consent", Interaction: "create"}, true},
		{"unknown interaction", "system/*.cruds", Context{Type: "Patient", Interaction: "operation"}, false},
		{"patient scope, same patient", "patient/*.rs", Context{Type: "Observation", Interaction: "read", PatientContext: "p1", RequestPatient: "p1"}, true},
		{"patient scope, another patient", "patient/*.rs", Context{Type: "Observation", Interaction: "read", PatientContext: "p1", RequestPatient: "p2"}, false},
		{"patient scope, no patient context", "patient/*.rs", Context{Type: "Observation", Interaction: "read", RequestPatient: "p2"}, false},
		{"patient scope, request names no patient", "patient/*.rs", Context{Type: "Observation", Interaction: "search", PatientContext: "p1"}, false},
		{"system scope, any patient", "system/*.rs", Context{Type: "Observation", Interaction: "read", RequestPatient: "p2"}, true},
		{"granular, matching category", "patient/Observation.rs?category=vital-signs", Context{Type: "Observation", Interaction: "read",
			PatientContext: "p1", RequestPatient: "p1", Categories: []fhir.Coding{vitalSigns}}, true},
		{"granular, other category", "patient/Observation.rs?category=vital-signs", Context{Type: "Observation", Interaction: "read",
			PatientContext: "p1", RequestPatient: "p1", Categories: []fhir.Coding{laboratory}}, false},
		{"granular, no codings", "patient/Observation.rs?category=vital-signs", Context{Type: "Observation", Interaction: "read",
			PatientContext: "p1", RequestPatient: "p1"}, false},
		{"granular with system, other system", "system/Observation.rs?category=http://x|vital-signs", Context{Type: "Observation", Interaction: "read",
			Categories: []fhir.Coding{vitalSigns}}, false},
		{"granular category and code, both match", "system/Observation.rs?category=vital-signs&code=http://loinc.org|85354-9",
			Context{Type: "Observation", Interaction: "read", Categories: []fhir.Coding{vitalSigns}, Codes: []fhir.Coding{bpCode}}, true},
		{"granular category and code, code misses", "system/Observation.rs?category=vital-signs&code=http://loinc.org|1-1",
			Context{Type: "Observation", Interaction: "read", Categories: []fhir.Coding{vitalSigns}, Codes: []fhir.Coding{bpCode}}, false},
		{"granular OR list", "system/Observation.rs?category=laboratory,vital-signs",
			Context{Type: "Observation", Interaction: "search", Categories: []fhir.Coding{vitalSigns}}, true},
		{"second scope permits", "system/Condition.rs system/Observation.rs", Context{Type: "Observation", Interaction: "read"}, true},
		{"no scopes", "", Context{Type: "Observation", Interaction: "read"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Permits(mustScopes(t, c.scopes), c.ctx); got != c.want {
				t.Fatalf("Permits = %v, want %v", got, c.want)
			}
		})
	}
}

func TestPermitsType(t *testing.T) {
	cases := []struct {
		scopes       string
		ctx          Context
		ok, filtered bool
	}{
		{"system/Observation.rs", Context{Type: "Observation", Interaction: "search"}, true, false},
		{"system/Observation.rs?category=vital-signs", Context{Type: "Observation", Interaction: "search"}, true, true},
		{"system/Observation.rs?category=vital-signs system/*.s", Context{Type: "Observation", Interaction: "search"}, true, false},
		{"system/Condition.rs", Context{Type: "Observation", Interaction: "search"}, false, false},
		{"patient/Observation.rs", Context{Type: "Observation", Interaction: "search", PatientContext: "a", RequestPatient: "b"}, false, false},
	}
	for _, c := range cases {
		t.Run(c.scopes, func(t *testing.T) {
			ok, filtered := PermitsType(mustScopes(t, c.scopes), c.ctx)
			if ok != c.ok || filtered != c.filtered {
				t.Fatalf("PermitsType = %v, %v; want %v, %v", ok, filtered, c.ok, c.filtered)
			}
		})
	}
}

func TestNarrow(t *testing.T) {
	cases := []struct {
		requested, allowed string
		ok                 bool
	}{
		{"system/Patient.rs", "system/*.rs", true},
		{"system/Patient.r", "system/Patient.rs", true},
		{"system/Patient.read", "system/Patient.rs", true},
		{"system/Patient.rs", "system/Patient.read", true},
		{"system/Patient.cruds", "system/Patient.rs", false},
		{"system/Patient.write", "system/Patient.rs", false},
		{"system/*.rs", "system/Patient.rs", false},
		{"patient/Patient.rs", "system/*.cruds", false},
		{"system/Patient.rs", "patient/*.cruds", false},
		{"patient/Observation.rs?category=vital-signs", "patient/Observation.rs", true},
		{"patient/Observation.rs", "patient/Observation.rs?category=vital-signs", false},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", false},
		{"patient/Observation.rs?category=vital-signs,laboratory", "patient/Observation.rs?category=vital-signs", false},
		{"patient/Observation.rs?category=vital-signs", "patient/Observation.rs?category=vital-signs,laboratory", true},
		{"patient/Observation.rs?category=http://x|vital-signs", "patient/Observation.rs?category=vital-signs", true},
		{"patient/Observation.rs?category=vital-signs", "patient/Observation.rs?category=http://x|vital-signs", false},
		{"patient/Observation.rs?category=vital-signs&code=x", "patient/Observation.rs?category=vital-signs", true},
		{"patient/Observation.rs?code=x", "patient/Observation.rs?category=vital-signs", false},
		{"patient/Observation.s?category=vital-signs", "patient/*.rs?category=vital-signs", true},
		{"system/Patient.rs system/Consent.c", "system/Patient.rs system/Consent.c", true},
		{"system/Patient.rs system/Consent.cu", "system/Patient.rs system/Consent.c", false},
	}
	for _, c := range cases {
		t.Run(c.requested+" <= "+c.allowed, func(t *testing.T) {
			got, err := Narrow(mustScopes(t, c.requested), mustScopes(t, c.allowed))
			if (err == nil) != c.ok {
				t.Fatalf("Narrow err = %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				oe, isOAuth := err.(*OAuthError)
				if !isOAuth || oe.Code != ErrInvalidScope || oe.Status != 400 {
					t.Fatalf("error %#v, want invalid_scope 400", err)
				}
				return
			}
			if FormatScopes(got) != FormatScopes(mustScopes(t, c.requested)) {
				t.Fatalf("granted %q, want exactly the requested %q", FormatScopes(got), c.requested)
			}
		})
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"patient/*.read", "system/Observation.rs?category=a|b&code=c", "user/Condition.write system/*.cruds",
		"patient/Observation.rs?category=a%2Cb,c", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ss, err := ParseScopes(in)
		if err != nil {
			return
		}
		for _, s := range ss {
			canon := s.String()
			again, err := ParseScope(canon)
			if err != nil {
				t.Fatalf("canonical %q of %q does not parse: %v", canon, in, err)
			}
			if again.String() != canon {
				t.Fatalf("round trip %q -> %q", canon, again.String())
			}
			if !s.Covers(again) || !again.Covers(s) {
				t.Fatalf("%q and its canonical form do not cover each other", canon)
			}
			if strings.ContainsAny(canon, " \t\n") {
				t.Fatalf("canonical %q has whitespace", canon)
			}
		}
	})
}
