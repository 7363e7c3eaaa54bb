package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// TestPracticesFileValidation: every malformed practices file is refused
// with a message naming the field and the practice.
func TestPracticesFileValidation(t *testing.T) {
	live := `"kind":"gpconnect","url":"https://gp.example/fhir","cert":"c.pem","key":"k.pem","ca":"ca.pem","from_asid":"1","to_asid":"2"`
	tests := []struct {
		name, file string
		want       []string // substrings of the error; none: valid
	}{
		{"gp2gp", `{"practices":[{"ods":"A20047","kind":"gp2gp","dir":"x"}]}`, nil},
		{"gpconnect recorded", `{"practices":[{"ods":"A20047","kind":"gpconnect","recorded":"x"}]}`, nil},
		{"gpconnect live", `{"practices":[{"ods":"A20047",` + live + `,"deadline":"5s","area_timeout":"2s","fan_out":false}]}`, nil},
		{"gpconnect emulated", `{"practices":[{"ods":"A20047","kind":"gpconnect","cert":"c","key":"k","ca":"a","from_asid":"1","to_asid":"2","emulator":{"recorded":"r","cert":"s","key":"sk","client_ca":"a"}}]}`, nil},
		{"fhirapi", `{"practices":[{"ods":"A20047","kind":"fhirapi","url":"https://x/fhir","token_url":"https://x/token","client_id":"g","key":"k.jwk","scope":"system/*.rs","page_size":50,"retries":0}]}`, nil},
		{"pds live and snapshots", `{"pds":{"url":"https://pds.example/FHIR/R4","ttl":"1m"},"snapshots":{"ttl":"10s","max_bytes":1000},"practices":[]}`, nil},
		{"unknown top-level field", `{"practises":[]}`, []string{`unknown field "practises"`}},
		{"unknown practice field", `{"practices":[{"ods":"A20047","kind":"gp2gp","dir":"x","dirs":"y"}]}`, []string{"practice 1 (A20047)", `"dirs"`}},
		{"field of another kind", `{"practices":[{"ods":"A20047","kind":"gp2gp","dir":"x","url":"https://x"}]}`, []string{"practice 1 (A20047)", `field "url" is not used by kind gp2gp`}},
		{"live field on a recorded practice", `{"practices":[{"ods":"A20047","kind":"gpconnect","recorded":"x","cert":"c"}]}`, []string{`field "cert"`, "recorded gpconnect"}},
		{"no ods", `{"practices":[{"kind":"gp2gp","dir":"x"}]}`, []string{"practice 1", `"ods" is required`}},
		{"bad ods", `{"practices":[{"ods":"a-1","kind":"gp2gp","dir":"x"}]}`, []string{`"ods" "a-1"`}},
		{"duplicate ods", `{"practices":[{"ods":"A20047","kind":"gp2gp","dir":"x"},{"ods":"A20047","kind":"gp2gp","dir":"y"}]}`, []string{"practice 2 (A20047)", "already used by practice 1"}},
		{"no kind", `{"practices":[{"ods":"A20047"}]}`, []string{`"kind" is required`}},
		{"embedded kind", `{"practices":[{"ods":"A20047","kind":"embedded"}]}`, []string{"not configurable"}},
		{"unknown kind", `{"practices":[{"ods":"A20047","kind":"emis"}]}`, []string{`unknown kind "emis"`}},
		{"gp2gp without dir", `{"practices":[{"ods":"A20047","kind":"gp2gp"}]}`, []string{`"dir" is required`}},
		{"gpconnect without a provider", `{"practices":[{"ods":"A20047","kind":"gpconnect","cert":"c"}]}`, []string{`"url"`, `"emulator"`}},
		{"gpconnect over http", `{"practices":[{"ods":"A20047","kind":"gpconnect","url":"http://x","cert":"c","key":"k","ca":"a","from_asid":"1","to_asid":"2"}]}`, []string{"https://"}},
		{"gpconnect without its certificate", `{"practices":[{"ods":"B82617","kind":"gpconnect","url":"https://x","key":"k","ca":"a","from_asid":"1","to_asid":"2"}]}`, []string{"practice 1 (B82617)", `"cert" is required`}},
		{"gpconnect url and emulator", `{"practices":[{"ods":"A20047",` + live + `,"emulator":{"recorded":"r","cert":"s","key":"k","client_ca":"a"}}]}`, []string{"exclude each other"}},
		{"emulator without its certificate", `{"practices":[{"ods":"A20047","kind":"gpconnect","cert":"c","key":"k","ca":"a","from_asid":"1","to_asid":"2","emulator":{"recorded":"r"}}]}`, []string{`"emulator.cert"`}},
		{"bad duration", `{"practices":[{"ods":"A20047",` + live + `,"deadline":"soon"}]}`, []string{"practice 1 (A20047)", `"soon"`}},
		{"number for a duration", `{"practices":[{"ods":"A20047",` + live + `,"deadline":5}]}`, []string{"duration"}},
		{"area timeout past the deadline", `{"practices":[{"ods":"A20047",` + live + `,"deadline":"2s","area_timeout":"3s"}]}`, []string{`"area_timeout"`, `"deadline"`}},
		{"string for a number", `{"practices":[{"ods":"A20047","kind":"fhirapi","url":"https://x","page_size":"50"}]}`, []string{`"page_size"`}},
		{"page size too large", `{"practices":[{"ods":"A20047","kind":"fhirapi","url":"https://x","page_size":5000}]}`, []string{`"page_size"`}},
		{"token fields apart", `{"practices":[{"ods":"A20047","kind":"fhirapi","url":"https://x","token_url":"https://x/token"}]}`, []string{`"token_url", "client_id" and "key" go together`}},
		{"fhirapi without url", `{"practices":[{"ods":"A20047","kind":"fhirapi"}]}`, []string{`"url" is required`}},
		{"pds with both", `{"pds":{"url":"https://p","recorded":"d"},"practices":[]}`, []string{"pds:", "exactly one"}},
		{"pds neither", `{"pds":{},"practices":[]}`, []string{"pds:", "exactly one"}},
		{"pds unknown field", `{"pds":{"recorded":"d","cache":"1m"},"practices":[]}`, []string{"pds:", `"cache"`}},
		{"trailing data", `{"practices":[]} {}`, []string{"trailing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePracticesConfig([]byte(tc.file))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestPracticesFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "practices.json")
	in := `{"pds":{"recorded":"pds"},"practices":[{"ods":"A20047","kind":"gpconnect","cert":"gpc/client.pem","key":"gpc/client.key","ca":"gpc/ca.pem",` +
		`"from_asid":"1","to_asid":"2","deadline":"5s","emulator":{"recorded":"/srv/rec","cert":"gpc/server.pem","key":"gpc/server.key","client_ca":"gpc/ca.pem"}}]}`
	c, err := parsePracticesConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if err := writePracticesConfig(path, c); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	back, err := readPracticesConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	p := back.Practices[0]
	if p.Cert != "gpc/client.pem" || p.Deadline != duration(5*time.Second) || p.Emulator == nil || p.Emulator.Recorded != "/srv/rec" {
		t.Fatalf("round trip lost fields: %+v", p)
	}
	back.resolve("/data")
	p = back.Practices[0]
	if p.Cert != "/data/gpc/client.pem" || p.Emulator.Cert != "/data/gpc/server.pem" || p.Emulator.Recorded != "/srv/rec" || back.PDS.Recorded != "/data/pds" {
		t.Errorf("resolve: %+v %+v", p, back.PDS)
	}
	if p.areaTimeout() >= p.deadline() {
		t.Errorf("default area timeout %s not under the deadline %s", p.areaTimeout(), p.deadline())
	}
}

func TestDemoPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	now := time.Now()
	if err := demoPKI(dir, now); err != nil {
		t.Fatal(err)
	}
	files := []string{"ca.pem", "server.pem", "server.key", "client.pem", "client.key"}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", f, err, fi.Mode().Perm())
		}
	}
	if !demoPKIValid(dir, files, now) {
		t.Fatal("fresh certificates are not valid")
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err := demoPKI(dir, now); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(again) != string(ca) {
		t.Error("valid certificates were regenerated")
	}
	if demoPKIValid(dir, files, now.AddDate(1, 0, 0)) {
		t.Error("certificates about to expire count as valid")
	}
	if err := demoPKI(dir, now.AddDate(0, 11, 15)); err != nil { // within 30 days of expiry: renewed
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(again) == string(ca) {
		t.Error("certificates near expiry were not renewed")
	}
}

// FuzzParsePracticesConfig: any input is refused or accepted without a
// panic, and an accepted file survives a write and a read.
func FuzzParsePracticesConfig(f *testing.F) {
	f.Add(`{"practices":[{"ods":"A20047","kind":"gp2gp","dir":"x"}]}`)
	f.Add(`{"pds":{"recorded":"p"},"practices":[{"ods":"A20047","kind":"gpconnect","recorded":"x"}]}`)
	f.Add(`{"practices":[{"ods":"A20047","kind":"fhirapi","url":"https://x","retries":2,"deadline":"3s","area_timeout":"1s"}]}`)
	f.Add(`{"practices":[{"ods":"A","kind":"gpconnect","emulator":{}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parsePracticesConfig([]byte(s))
		if err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "p.json")
		if err := writePracticesConfig(path, c); err != nil {
			t.Fatalf("accepted file not written: %v", err)
		}
		if _, err := readPracticesConfig(path); err != nil {
			t.Fatalf("written file not read: %v", err)
		}
	})
}

type nullSource struct{}

func (nullSource) Record(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error) {
	return nil, fhir.Errorf(fhir.CodePatientNotFound, "none")
}

// TestWarnUnshared: serve names every practice no active agreement shares.
func TestWarnUnshared(t *testing.T) {
	ctx := context.Background()
	st, err := openState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := adapters.NewRegistry()
	for _, ods := range []string{"A11111", "B22222", "C33333"} {
		if err := reg.Register(ctx, adapters.Practice{ODS: ods, Kind: "gpconnect", Source: nullSource{}}); err != nil {
			t.Fatal(err)
		}
	}
	ags := consent.DemoAgreements([]string{"A11111", "B22222"}, time.Now())
	for _, a := range ags {
		if a.Provider == "B22222" && a.Status == consent.StatusActive {
			continue // B22222: only its suspended agreement
		}
		if _, err := st.consent.Add(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	warnUnshared(ctx, st, reg, slog.New(slog.NewTextHandler(&buf, nil)))
	out := buf.String()
	for ods, want := range map[string]bool{"A11111": false, "B22222": true, "C33333": true} {
		if got := strings.Contains(out, "practice="+ods); got != want {
			t.Errorf("%s warned: %v, want %v\n%s", ods, got, want, out)
		}
	}
}
