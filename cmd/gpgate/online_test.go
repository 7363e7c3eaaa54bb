package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestOnlineAdministration: every admin verb against a running server
// through the admin API, each change applying to the next request; and on
// the data directory, a clear message instead of a lock timeout.
func TestOnlineAdministration(t *testing.T) {
	data := smallRegion(t, 3)
	s := startSmall(t, data, nil)
	sum, _ := readSummary(data)
	p := largest(t, sum)
	api := func(verb ...string) []string {
		return append(verb, "--base", s.base, "--client", "demo-admin", "--key", filepath.Join(data, "demo-admin.jwk"))
	}
	auditor := func(verb ...string) []string {
		return append(verb, "--base", s.base, "--client", "demo-auditor", "--key", filepath.Join(data, "demo-auditor.jwk"))
	}
	must := func(args []string, want string) string {
		t.Helper()
		code, out, errs := runCLI(args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("gpgate %s: exit %d, out %q, err %q; want %q", strings.Join(args[:2], " "), code, out, errs, want)
		}
		return out
	}

	t.Run("GET /auth/token is 405", func(t *testing.T) {
		r := s.get(t, smart.PathToken, "Authorization", "")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Fatalf("GET /auth/token: %d Allow %q", r.status, r.header.Get("Allow"))
		}
	})

	t.Run("on the data directory while serving: a clear message, at once", func(t *testing.T) {
		for _, args := range [][]string{{"clients", "list", "--data", data}, {"agreements", "list", "--data", data},
			{"audit", "verify", "--data", data}, {"audit", "export", "--data", data}} {
			start := time.Now()
			code, _, errs := runCLI(args...)
			if code == 0 || !strings.Contains(errs, "in use by a running `gpgate serve`") || !strings.Contains(errs, "--base "+s.base) {
				t.Errorf("gpgate %s: exit %d, %q", strings.Join(args[:2], " "), code, errs)
			}
			if d := time.Since(start); d > 1500*time.Millisecond {
				t.Errorf("gpgate %s took %s to say so", strings.Join(args[:2], " "), d)
			}
		}
	})

	t.Run("clients", func(t *testing.T) {
		must(api("clients", "list"), "demo-ehr")
		// a system token of demo-ehr works, then the client is disabled:
		// the same token is refused on the next request
		tok := "Bearer " + s.tokenFor(t, demoClientID, demoKeyFile, "system/Patient.rs")
		if r := s.get(t, patientSearch(p.NHS), "Authorization", tok); r.status != 200 {
			t.Fatalf("before: %d", r.status)
		}
		must(api("clients", "disable", "--id", demoClientID), "disabled")
		if r := s.get(t, patientSearch(p.NHS), "Authorization", tok); r.status != 401 {
			t.Fatalf("a disabled client's live token: %d", r.status)
		}
		key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
		if _, _, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, demoClientID, key, []string{"system/Patient.rs"}, nil); err == nil {
			t.Fatal("a disabled client got a token")
		}
		must(api("clients", "enable", "--id", demoClientID), "enabled")
		if r := s.get(t, patientSearch(p.NHS), "Authorization", tok); r.status != 200 {
			t.Fatalf("re-enabled: %d", r.status)
		}
		// rotate its key: tokens got with the old key stop at once
		newKey := filepath.Join(t.TempDir(), "new.jwk")
		code, pub, _ := runCLI("clients", "keygen", "--out", newKey)
		if code != 0 {
			t.Fatal("keygen")
		}
		pubFile := filepath.Join(t.TempDir(), "new.jwks")
		_ = os.WriteFile(pubFile, []byte(pub), 0o600)
		must(api("clients", "rotate-key", "--id", demoClientID, "--jwks", pubFile), "keys replaced")
		if r := s.get(t, patientSearch(p.NHS), "Authorization", tok); r.status != 401 {
			t.Fatalf("a token of a rotated-out key: %d", r.status)
		}
		nk, _ := os.ReadFile(newKey)
		if _, _, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, demoClientID, nk, []string{"system/Patient.rs"}, nil); err != nil {
			t.Fatalf("the new key: %v", err)
		}
		// the tests' own helpers go on with the new key
		if err := os.WriteFile(filepath.Join(data, demoKeyFile), nk, 0o600); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		s.tok, s.ptok = "", nil
		s.mu.Unlock()
		// add a client
		_, pub2, _ := runCLI("clients", "keygen", "--out", filepath.Join(t.TempDir(), "c2.jwk"))
		pub2File := filepath.Join(t.TempDir(), "c2.jwks")
		_ = os.WriteFile(pub2File, []byte(pub2), 0o600)
		must(api("clients", "add", "--id", "new-epr", "--ods", "RXX01", "--name", "New EPR", "--jwks", pub2File, "--scopes", "system/Patient.rs"), "registered")
		must(api("clients", "list"), "new-epr")
		// the signing key: old tokens keep working, new ones use the new key
		old := "Bearer " + s.tokenFor(t, "demo-auditor", "demo-auditor.jwk", "system/AuditEvent.rs")
		must(api("clients", "rotate-signing-key"), "is now active")
		if r := s.get(t, "/AuditEvent?_count=1", "Authorization", old); r.status != 200 {
			t.Fatalf("a token of the retired signing key: %d", r.status)
		}
		// a client without Client scopes is refused
		code, _, errs := runCLI(auditor("clients", "list")...)
		if code == 0 || !strings.Contains(errs, "invalid_scope") {
			t.Fatalf("auditor listing clients: %d %s", code, errs)
		}
	})

	t.Run("agreements and consents", func(t *testing.T) {
		must(api("agreements", "list"), "demo-")
		id := ""
		for _, line := range strings.Split(must(api("agreements", "list"), "RXX01"), "\n") {
			if strings.Contains(line, "RXX01") {
				id = strings.Fields(line)[0]
			}
		}
		ptok := "Bearer " + s.patientToken(t, p.PatientID)
		if r := s.get(t, "/Condition?patient="+p.PatientID, "Authorization", ptok); r.status != 200 {
			t.Fatalf("before: %d", r.status)
		}
		must(api("agreements", "suspend", "--id", id), "suspended")
		if r := s.get(t, "/Condition?patient="+p.PatientID, "Authorization", ptok); r.status != 403 {
			t.Fatalf("agreement suspended: %d", r.status)
		}
		must(api("agreements", "activate", "--id", id), "active")
		must(api("agreements", "show", "--id", id), `"provider"`)
		must(api("agreements", "add", "--provider", sum.Practices[0].ODS, "--consumers", "RXX09", "--areas", "problems"), "added")
		// an administrator revokes the clinician's consent: its token stops
		cid := s.recordConsent(t, p.PatientID)
		key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
		_ = key
		ctok := consentToken(t, s, cid)
		if r := s.get(t, "/Condition?patient="+p.PatientID, "Authorization", ctok); r.status != 200 {
			t.Fatalf("consent token: %d", r.status)
		}
		must(api("consent", "revoke", "--id", cid), "revoked")
		if r := s.get(t, "/Condition?patient="+p.PatientID, "Authorization", ctok); r.status != 403 {
			t.Fatalf("after an admin revoke: %d", r.status)
		}
	})

	t.Run("audit verify and export", func(t *testing.T) {
		must(auditor("audit", "verify"), "audit chain OK")
		out := must(auditor("audit", "export"), `"resourceType":"AuditEvent"`)
		if n := strings.Count(out, "\n"); n < 10 {
			t.Fatalf("export has %d events", n)
		}
		if !strings.Contains(out, `"admin"`) && !strings.Contains(out, "action=disable") {
			t.Log("note: admin calls are audited with their target in the query entity")
		}
		// every admin call above is in the log
		if !strings.Contains(out, base64Of("action=disable&id="+demoClientID)) {
			t.Fatalf("the client disable is not in the audit log")
		}
		code, _, errs := runCLI(api("audit", "verify")...)
		if code == 0 || !strings.Contains(errs, "invalid_scope") {
			t.Fatalf("admin without AuditEvent scope verifying: %d %s", code, errs)
		}
	})

	t.Run("reload while serving", func(t *testing.T) {
		stop := make(chan struct{})
		var fails, oks atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := s.get(t, patientSearch(p.NHS))
					if r.status == 200 {
						oks.Add(1)
					} else {
						fails.Add(1)
					}
				}
			}()
		}
		for i := 0; i < 5; i++ {
			if err := s.hooks.Reload(); err != nil {
				t.Errorf("reload: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if fails.Load() > 0 || oks.Load() == 0 {
			t.Fatalf("during reloads: %d answered, %d failed", oks.Load(), fails.Load())
		}
	})
}

func consentToken(t *testing.T, s *smallServer, consentID string) string {
	t.Helper()
	key, _ := os.ReadFile(filepath.Join(s.dir, demoKeyFile))
	tok, _, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, demoClientID, key, []string{"patient/*.rs"},
		&smart.B2B{SubjectID: demoClinician, ConsentReference: smart.StringList{consentID}})
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

// ---- the real binary: keyed ids, SIGTERM under load, SIGHUP ----

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// buildBinary builds the real binary once per test run (removed by TestMain).
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "gpgate-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gpgate")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestPatientIDsKeyedPerDeployment: two deployments of the same region
// (same seed) give a patient different ids, neither the unkeyed hash, and
// each serves its own.
func TestPatientIDsKeyedPerDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	ids := map[string]string{}
	for _, d := range []string{"one", "two"} {
		data := filepath.Join(t.TempDir(), d)
		if out, err := exec.Command(bin, "demo", "--data", data, "--patients", "5", "--practices", "1", "--fast").CombinedOutput(); err != nil {
			t.Fatalf("demo: %v\n%s", err, out)
		}
		sum, err := readSummary(data)
		if err != nil {
			t.Fatal(err)
		}
		n := largest(t, sum)
		if prev, ok := ids[n.NHS]; ok && prev == n.PatientID {
			t.Fatalf("two deployments gave NHS number %s the same id %s", n.NHS, n.PatientID)
		}
		ids[n.NHS] = n.PatientID
		if n.PatientID == fhir.PatientID(fhir.NHSNumber(n.NHS)) {
			t.Fatalf("a deployment used the public test key")
		}
		fi, err := os.Stat(filepath.Join(data, patientKeyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("patient-id key: %v %v", err, fi)
		}
		// the served id is the generated one: read by id resolves
		base, cmd := startBinary(t, bin, data)
		key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
		tok, _, err := smart.RequestToken(context.Background(), base+smart.PathToken, demoClientID, key, []string{"system/*.rs"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", base+"/Patient/"+n.PatientID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("read of the generated id %s: %d", n.PatientID, res.StatusCode)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

// TestSIGTERMUnderLoad: SIGTERM while 16 clients read: the server stops
// taking connections, answers what it took, flushes the audit log and
// exits 0; every request answered was audited and the chain verifies.
// SIGHUP during the load reloads without failing a request.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and signals the real binary")
	}
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(bin, "demo", "--data", data, "--patients", "30", "--practices", "1", "--fast").CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	patients, err := listPatients(data)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "info", "--log-format", "text",
		"--rate-address", "0", "--rate-client", "0", "--client-concurrency", "0")
	stdout, _ := cmd.StdoutPipe()
	var logs bytes.Buffer
	var logMu sync.Mutex
	cmd.Stderr = writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(b) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "gpgate serving FHIR R4 at "); ok {
				lines <- u
			}
		}
	}()
	var base string
	select {
	case base = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
	tok, _, err := smart.RequestToken(context.Background(), base+smart.PathToken, demoClientID, key, []string{"system/Patient.rs"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	answered := map[string]int{} // correlation id -> status
	var refused atomic.Int64
	var wg sync.WaitGroup
	stopAt := make(chan struct{})
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 100000; i++ {
				select {
				case <-stopAt:
					return
				default:
				}
				id := fmt.Sprintf("term-%d-%d", w, i)
				nhs := patients[(w*7+i)%len(patients)]
				req, _ := http.NewRequest("GET", base+"/Patient?identifier="+fhir.NHSNumberSystem+"%7C"+string(nhs), nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("X-Request-ID", id)
				res, err := client.Do(req)
				if err != nil {
					refused.Add(1) // the listener is closed: refused, never half-answered
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_, rerr := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if rerr != nil {
					t.Errorf("a response cut short: %v", rerr)
				}
				mu.Lock()
				answered[id] = res.StatusCode
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(700 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(700 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	select {
	case err := <-werr:
		if err != nil {
			t.Fatalf("gpgate serve exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("gpgate serve did not stop after SIGTERM")
	}
	close(stopAt)
	wg.Wait()
	logMu.Lock()
	log := logs.String()
	logMu.Unlock()
	if !strings.Contains(log, "configuration reloaded") || !strings.Contains(log, "stopped cleanly") {
		t.Fatalf("no reload or clean stop in the log:\n%s", log)
	}
	ok := 0
	for id, st := range answered {
		if st >= 500 {
			t.Errorf("request %s answered %d", id, st)
		}
		ok++
	}
	if ok < 50 {
		t.Fatalf("only %d requests answered", ok)
	}
	if _, err := os.Stat(filepath.Join(data, serveFile)); err == nil {
		t.Error("serve.json left behind after a clean stop")
	}
	out, err := exec.Command(bin, "audit", "verify", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "audit chain OK") || !strings.Contains(string(out), "0 entries after the newest anchor") {
		t.Fatalf("audit verify after SIGTERM: %v\n%s", err, out)
	}
	exp, err := exec.Command(bin, "audit", "export", "--data", data).Output()
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for id := range answered {
		if !bytes.Contains(exp, []byte(`"value":"`+id+`"`)) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d answered requests have no AuditEvent", missing, len(answered))
	}
	t.Logf("%d answered (all audited), %d refused after the listener closed", ok, refused.Load())
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func base64Of(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}
