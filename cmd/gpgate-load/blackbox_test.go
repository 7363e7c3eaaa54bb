package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The load tool against a real `gpgate serve` on a small demo region, as
// `make load` runs it: every scenario is set up (patients found by NHS
// number, consents recorded, tokens issued) and driven without an error.
func TestAgainstARealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves gpgate: not in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gpgate")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../gpgate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v %s", err, out)
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.CommandContext(ctx, bin, "demo", "--data", data, "--patients", "40", "--fast").CombinedOutput(); err != nil {
		t.Fatalf("gpgate demo: %v %s", err, out)
	}
	srv := exec.CommandContext(ctx, bin, "serve", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "warn",
		"--rate-address", "0", "--rate-client", "0", "--client-concurrency", "0")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	sc := bufio.NewScanner(stdout)
	base := ""
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), "serving FHIR R4 at "); ok {
			base = strings.TrimSpace(after)
			break
		}
	}
	if base == "" {
		t.Fatal("gpgate serve did not say where it serves")
	}
	var out, log strings.Builder
	err = run(ctx, []string{"-url", base, "-data", data, "-c", "2", "-warmup", "0s", "-duration", "300ms", "-rounds", "1",
		"-no-peer", "-search-pool", "10", "-mix-pool", "6", "-record-size", "150"}, &out, &log)
	if err != nil {
		t.Fatalf("gpgate-load: %v\n%s", err, log.String())
	}
	for _, s := range []string{"patient-search", "everything-mix", "structured", "area-search"} {
		// the report's row of the scenario: c=2, some ops, no errors
		re := regexp.MustCompile(`(?m)^## ` + s + ` [^\n]*\n(?:[^\n]*\n)*?\s+2\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)\s`)
		m := re.FindStringSubmatch(out.String())
		if m == nil {
			t.Errorf("no report row for %s:\n%s\n%s", s, out.String(), log.String())
			continue
		}
		if m[1] == "0" || m[2] != "0" {
			t.Errorf("%s: %s ops/s with %s errors", s, m[1], m[2])
		}
	}
}
