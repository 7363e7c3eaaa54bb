package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// load measures the common scenarios against a running gpgate (one node
// or the balancer): requests per second and latency percentiles at a
// given concurrency, each scenario for a fixed time. Tokens come from the
// gpgate CLI (gpgate consent, gpgate token) with the demo clients' keys in
// seed. It sends traffic only to base (loopback in docs/scale.md).
func load(ctx context.Context, bin, base, seed string, conc int, dur time.Duration) error {
	var sum struct {
		Notable []struct{ Kind, NHS, PatientID string }
	}
	b, err := os.ReadFile(filepath.Join(seed, "demo-summary.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return err
	}
	var nhs, pid string
	for _, n := range sum.Notable {
		if n.Kind == "typical" {
			nhs, pid = n.NHS, n.PatientID
		}
	}
	if nhs == "" {
		return fmt.Errorf("no typical patient in %s", seed)
	}
	key := filepath.Join(seed, "demo-client.jwk")
	cli := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, bin, args...).Output()
		return strings.TrimSpace(string(out)), err
	}
	sys, err := cli("token", "--base", base, "--client", "demo-ehr", "--key", key, "--scope", "system/*.rs system/Consent.c")
	if err != nil {
		return fmt.Errorf("system token: %w", err)
	}
	consentID, err := cli("consent", "--base", base, "--client", "demo-ehr", "--key", key, "--nhs", nhs, "--clinician", "555000111222")
	if err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	pat, err := cli("token", "--base", base, "--client", "demo-ehr", "--key", key, "--scope", "patient/*.rs", "--consent", consentID, "--subject-id", "555000111222")
	if err != nil {
		return fmt.Errorf("patient token: %w", err)
	}
	consentBody := fmt.Sprintf(`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/%s"},
"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"555000111222"}}]}`, pid)
	scenarios := []struct {
		name, method, path, bearer, body string
	}{
		{"find patient by NHS number (system token)", "GET", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + nhs, sys, ""},
		{"active problems (patient token)", "GET", "/Condition?patient=" + pid + "&category=problem-list-item&clinical-status=active", pat, ""},
		{"$everything first page of 50, typical record", "GET", "/Patient/" + pid + "/$everything?_count=50", pat, ""},
		{"record a consent to view (POST /Consent)", "POST", "/Consent", sys, consentBody},
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
	fmt.Printf("%-48s %8s %9s %9s %9s %6s\n", "scenario", "req/s", "p50", "p99", "max", "errors")
	for _, sc := range scenarios {
		var mu sync.Mutex
		var lat []time.Duration
		errs := 0
		end := time.Now().Add(dur)
		var wg sync.WaitGroup
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) && ctx.Err() == nil {
					var body io.Reader
					if sc.body != "" {
						body = strings.NewReader(sc.body)
					}
					req, _ := http.NewRequestWithContext(ctx, sc.method, base+sc.path, body)
					req.Header.Set("Authorization", "Bearer "+sc.bearer)
					req.Header.Set("Accept", "application/fhir+json")
					if sc.body != "" {
						req.Header.Set("Content-Type", "application/fhir+json")
					}
					t0 := time.Now()
					res, err := client.Do(req)
					d := time.Since(t0)
					bad := err != nil
					if err == nil {
						io.Copy(io.Discard, res.Body) //nolint:errcheck
						res.Body.Close()
						bad = res.StatusCode >= 300
					}
					mu.Lock()
					lat = append(lat, d)
					if bad {
						errs++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		slices.Sort(lat)
		pct := func(p float64) time.Duration {
			if len(lat) == 0 {
				return 0
			}
			return lat[min(len(lat)-1, int(p*float64(len(lat))))]
		}
		fmt.Printf("%-48s %8.0f %9s %9s %9s %6d\n", sc.name, float64(len(lat))/dur.Seconds(),
			pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(100*time.Microsecond), errs)
	}
	return nil
}
