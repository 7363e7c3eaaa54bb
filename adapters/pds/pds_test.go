package pds

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gpgate/gpgate/fhir"
)

// sharedPDS finds ../shared/testdata/pds by walking up, or skips.
func sharedPDS(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for i := 0; i < 6; i++ {
		p := filepath.Join(dir, "..", "shared", "testdata", "pds")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		dir = filepath.Dir(dir)
	}
	t.Skip("../shared/testdata/pds is absent: the PDS sandbox patients are needed for this test")
	return ""
}

// patientJSON builds a PDS-shaped Patient written here (not copied).
func patientJSON(id, ods, start, end, security string, extra map[string]any) []byte {
	p := map[string]any{
		"resourceType": "Patient",
		"id":           id,
		"identifier":   []any{map[string]any{"system": fhir.NHSNumberSystem, "value": id}},
		"meta":         map[string]any{"versionId": "1", "security": []any{map[string]any{"system": ConfidentialitySystem, "code": security}}},
		"name":         []any{map[string]any{"family": "Testfamily", "given": []any{"Given"}}},
		"birthDate":    "1970-01-01",
	}
	if ods != "" {
		per := map[string]any{}
		if start != "" {
			per["start"] = start
		}
		if end != "" {
			per["end"] = end
		}
		p["generalPractitioner"] = []any{map[string]any{"type": "Organization", "identifier": map[string]any{
			"system": fhir.ODSSystem, "value": ods, "period": per}}}
	}
	for k, v := range extra {
		p[k] = v
	}
	b, _ := json.Marshal(p)
	return b
}

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestParsePatient(t *testing.T) {
	addr := map[string]any{
		"address":   []any{map[string]any{"line": []any{"1 Street"}, "postalCode": "LS1 1AA"}},
		"telecom":   []any{map[string]any{"system": "phone", "value": "0113"}},
		"extension": []any{map[string]any{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus"}, map[string]any{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy"}},
	}
	tests := []struct {
		name       string
		raw        []byte
		asked      fhir.NHSNumber
		ods        string
		restricted bool
		superseded bool
		wantErr    bool
	}{
		{"current registration", patientJSON("9000000009", "A12345", "2020-01-01", "", "U", nil), "9000000009", "A12345", false, false, false},
		{"registration ends later", patientJSON("9000000009", "A12345", "2020-01-01", "2025-06-01", "U", nil), "9000000009", "A12345", false, false, false},
		{"registration ended", patientJSON("9000000009", "A12345", "2020-01-01", "2021-12-31", "U", nil), "9000000009", "", false, false, false},
		{"registration not begun", patientJSON("9000000009", "A12345", "2026-01-01", "", "U", nil), "9000000009", "", false, false, false},
		{"no practice", patientJSON("9000000009", "", "", "", "U", nil), "9000000009", "", false, false, false},
		{"bad ODS code", patientJSON("9000000009", "a1 <x>", "", "", "U", nil), "9000000009", "", false, false, false},
		{"restricted: practice withheld", patientJSON("9000000009", "A12345", "", "", "R", addr), "9000000009", "", true, false, false},
		{"very restricted", patientJSON("9000000009", "A12345", "", "", "V", addr), "9000000009", "", true, false, false},
		{"superseded", patientJSON("9000000017", "A12345", "", "", "U", nil), "9000000009", "A12345", false, true, false},
		{"not a Patient", []byte(`{"resourceType":"Bundle"}`), "9000000009", "", false, false, true},
		{"no NHS number", []byte(`{"resourceType":"Patient","id":"x"}`), "9000000009", "", false, false, true},
		{"not JSON", []byte(`<Patient/>`), "9000000009", "", false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePatient(tc.raw, tc.asked, now)
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.ODS != tc.ods || p.Restricted != tc.restricted || p.Superseded != tc.superseded {
				t.Fatalf("got ods %q restricted %v superseded %v", p.ODS, p.Restricted, p.Superseded)
			}
			if tc.restricted {
				js := string(p.JSON)
				for _, k := range []string{`"address"`, `"telecom"`, `"generalPractitioner"`, "NominatedPharmacy", "LS1 1AA"} {
					if strings.Contains(js, k) {
						t.Errorf("restricted patient still carries %s", k)
					}
				}
				if !strings.Contains(js, "DeathNotificationStatus") {
					t.Error("death notification status removed")
				}
				if very := strings.Contains(tc.name, "very"); very == strings.Contains(js, `"name"`) {
					t.Errorf("very restricted %v but name present %v", very, !very)
				}
			}
		})
	}
}

func TestRecordedSharedSandbox(t *testing.T) {
	dir := sharedPDS(t)
	c, err := New(Options{Recorded: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Class rules checked over every file: a restricted patient never locates
	// and never shows an address; an unrestricted one locates exactly when it
	// names a practice whose period holds.
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	located := 0
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		p0, err := ParsePatient(raw, "", now)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := c.Patient(ctx, p0.NHS)
			if err != nil {
				t.Fatal(err)
			}
			ods, lerr := c.Lookup(ctx, p0.NHS)
			if p.Restricted {
				if strings.Contains(string(p.JSON), `"address"`) || lerr == nil {
					t.Fatalf("restricted patient: address or practice given (%q)", ods)
				}
				return
			}
			if (p.ODS == "") != (lerr != nil) || ods != p.ODS {
				t.Fatalf("Lookup = %q, %v; Patient.ODS = %q", ods, lerr, p.ODS)
			}
			if ods != "" {
				located++
			}
		})
	}
	if located == 0 {
		t.Fatal("no sandbox patient located")
	}
	t.Run("an ended registration is not current", func(t *testing.T) {
		// 9000000009's sandbox registration runs 2020-01-01..2021-12-31.
		c2, _ := New(Options{Recorded: dir, Now: func() time.Time { return time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC) }})
		if ods, err := c2.Lookup(ctx, "9000000009"); err != nil || ods != "Y12345" {
			t.Fatalf("in 2021: %q, %v", ods, err)
		}
		if _, err := c.Lookup(ctx, "9000000009"); fhir.AsError(err).Code != fhir.CodePatientNotFound {
			t.Fatalf("in 2025: %v", err)
		}
	})
	t.Run("unknown patient", func(t *testing.T) {
		if _, err := c.Lookup(ctx, "9111231130"); fhir.AsError(err).Code != fhir.CodePatientNotFound {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRecordedSupersededByFileName(t *testing.T) {
	dir := t.TempDir()
	// A file named for the old number holds the surviving patient.
	if err := os.WriteFile(filepath.Join(dir, "patient_9000000009.json"), patientJSON("9000000017", "A12345", "", "", "U", nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "any-name.json"), patientJSON("9000000025", "B12345", "", "", "U", nil), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Recorded: dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "9000000009"); fhir.AsError(err).Code != fhir.CodePatientNotFound {
		t.Fatalf("superseded number located: %v", err)
	}
	p, err := c.Patient(ctx, "9000000009")
	if err != nil || !p.Superseded || p.NHS != "9000000017" {
		t.Fatalf("Patient = %+v, %v", p, err)
	}
	if ods, err := c.Lookup(ctx, "9000000025"); err != nil || ods != "B12345" {
		t.Fatalf("file without a number in its name: %q, %v", ods, err)
	}
}

// fakePDS is a PDS FHIR R4 server for tests.
type fakePDS struct {
	hits     atomic.Int64
	mu       sync.Mutex
	patients map[string][]byte
	headers  http.Header
	status   int
}

func (f *fakePDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	f.mu.Lock()
	f.headers = r.Header.Clone()
	status := f.status
	f.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/personal-demographics/FHIR/R4/Patient/")
	if !ok || r.Method != http.MethodGet {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, err := uuid.Parse(r.Header.Get("X-Request-ID")); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"value","details":{"coding":[{"code":"INVALID_VALUE"}]}}]}`))
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	switch {
	case !fhir.ValidNHSNumber(id):
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"value","details":{"coding":[{"code":"INVALID_RESOURCE_ID"}]}}]}`))
	case id == "9000000041":
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","details":{"coding":[{"code":"INVALIDATED_RESOURCE"}]}}]}`))
	case f.patients[id] != nil:
		_, _ = w.Write(f.patients[id])
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","details":{"coding":[{"code":"RESOURCE_NOT_FOUND"}]}}]}`))
	}
}

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLive(t *testing.T) {
	f := &fakePDS{patients: map[string][]byte{
		"9000000009": patientJSON("9000000009", "A12345", "2020-01-01", "", "U", nil),
		"9000000025": patientJSON("9000000025", "", "", "", "R", nil),
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	clk := &testClock{t: now}
	c, err := New(Options{BaseURL: srv.URL + "/personal-demographics/FHIR/R4", Token: staticToken("tok"), Now: clk.Now,
		TTL: time.Minute, NegativeTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := fhir.WithRequestID(context.Background(), "req-1")
	tests := []struct {
		nhs  fhir.NHSNumber
		ods  string
		code fhir.Code
	}{
		{"9000000009", "A12345", ""},
		{"9000000025", "", fhir.CodePatientNotFound}, // restricted
		{"9000000033", "", fhir.CodePatientNotFound}, // unknown
		{"9000000041", "", fhir.CodePatientNotFound}, // invalidated
		{"9000000000", "", fhir.CodeInvalidNHSNumber},
	}
	for _, tc := range tests {
		t.Run(string(tc.nhs), func(t *testing.T) {
			ods, err := c.Lookup(ctx, tc.nhs)
			if tc.code != "" {
				if fhir.AsError(err).Code != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || ods != tc.ods {
				t.Fatalf("Lookup = %q, %v", ods, err)
			}
		})
	}
	t.Run("headers", func(t *testing.T) {
		f.mu.Lock()
		h := f.headers
		f.mu.Unlock()
		if h.Get("Authorization") != "Bearer tok" || h.Get("X-Correlation-ID") != "req-1" || h.Get("Accept") != "application/fhir+json" {
			t.Fatalf("headers = %v", h)
		}
	})
	t.Run("cache: positive TTL", func(t *testing.T) {
		before := f.hits.Load()
		clk.Add(59 * time.Second)
		_, _ = c.Lookup(ctx, "9000000009")
		if f.hits.Load() != before {
			t.Fatal("answer not cached")
		}
		clk.Add(time.Second)
		_, _ = c.Lookup(ctx, "9000000009")
		if f.hits.Load() != before+1 {
			t.Fatal("answer served past its TTL")
		}
	})
	t.Run("cache: negative TTL", func(t *testing.T) {
		_, _ = c.Lookup(ctx, "9000000033")
		before := f.hits.Load()
		clk.Add(9 * time.Second)
		if _, err := c.Lookup(ctx, "9000000033"); fhir.AsError(err).Code != fhir.CodePatientNotFound {
			t.Fatalf("cached not-found: %v", err)
		}
		if f.hits.Load() != before {
			t.Fatal("not-found not cached")
		}
		clk.Add(time.Second)
		f.patients["9000000033"] = patientJSON("9000000033", "C12345", "", "", "U", nil)
		if ods, err := c.Lookup(ctx, "9000000033"); err != nil || ods != "C12345" {
			t.Fatalf("after negative TTL: %q, %v", ods, err)
		}
	})
	t.Run("unavailable is not cached", func(t *testing.T) {
		f.mu.Lock()
		f.status = http.StatusServiceUnavailable
		f.mu.Unlock()
		before := f.hits.Load()
		for i := 0; i < 2; i++ {
			if _, err := c.Lookup(ctx, "9000000068"); fhir.AsError(err).Code != fhir.CodeTimeout {
				t.Fatalf("err = %v", err)
			}
		}
		if f.hits.Load() != before+2 {
			t.Fatalf("hits = %d", f.hits.Load()-before)
		}
		f.mu.Lock()
		f.status = http.StatusUnauthorized
		f.mu.Unlock()
		if _, err := c.Lookup(ctx, "9000000068"); fhir.AsError(err).Code != fhir.CodeInternal {
			t.Fatalf("401: %v", err)
		}
		f.mu.Lock()
		f.status = 0
		f.mu.Unlock()
	})
}

func TestCacheBounded(t *testing.T) {
	dir := t.TempDir()
	nums := []string{"9000000009", "9000000017", "9000000025", "9000000033"}
	for _, n := range nums {
		_ = os.WriteFile(filepath.Join(dir, n+".json"), patientJSON(n, "A12345", "", "", "U", nil), 0o600)
	}
	c, err := New(Options{Recorded: dir, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nums {
		if _, err := c.Lookup(context.Background(), fhir.NHSNumber(n)); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		l := c.lru.Len()
		c.mu.Unlock()
		if l > 2 {
			t.Fatalf("cache holds %d entries, bound 2", l)
		}
	}
}

func FuzzParsePatient(f *testing.F) {
	f.Add(patientJSON("9000000009", "A12345", "2020-01-01", "", "U", nil), "9000000009")
	f.Add(patientJSON("9000000025", "A12345", "", "2021", "R", map[string]any{"extension": []any{1, "x"}}), "")
	f.Add([]byte(`{"resourceType":"Patient","id":"9000000009","generalPractitioner":[{"reference":"https://x/Organization/A1"}]}`), "9000000009")
	f.Add([]byte(`{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"meta":{"security":[{"code":"V"}]},"extension":{}}`), "")
	f.Fuzz(func(t *testing.T, raw []byte, asked string) {
		if asked != "" && !fhir.ValidNHSNumber(asked) {
			asked = ""
		}
		p, err := ParsePatient(raw, fhir.NHSNumber(asked), now)
		if err != nil {
			return
		}
		if !fhir.ValidNHSNumber(string(p.NHS)) {
			t.Fatalf("invalid NHS number %q accepted", p.NHS)
		}
		if p.Restricted && (p.ODS != "" || strings.Contains(string(p.JSON), `"address"`) || strings.Contains(string(p.JSON), `"generalPractitioner"`)) {
			t.Fatal("restricted patient leaks location")
		}
		if p.ODS != "" && !validODS(p.ODS) {
			t.Fatalf("ODS %q", p.ODS)
		}
		if !json.Valid(p.JSON) {
			t.Fatal("invalid JSON out")
		}
	})
}

func BenchmarkLookupCached(b *testing.B) {
	dir := b.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "p.json"), patientJSON("9000000009", "A12345", "", "", "U", nil), 0o600)
	c, _ := New(Options{Recorded: dir})
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Lookup(ctx, "9000000009"); err != nil {
			b.Fatal(err)
		}
	}
}
