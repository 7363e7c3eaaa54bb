package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// TestCrashKeepsAudit is the audit crash test over the real binary: a load
// of concurrent reads runs, the server is killed with SIGKILL, restarted, and
// `gpgate audit verify` passes and every request the client saw answered
// with data has its AuditEvent. Run alone with `make crash-test`.
func TestCrashKeepsAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the real binary; skipped with -short")
	}
	dir := t.TempDir()
	bin := buildBinary(t)
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(bin, "demo", "--data", data, "--patients", "30", "--practices", "1", "--fast").CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	patients, err := listPatients(data)
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		base, cmd := startBinary(t, bin, data)
		key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
		tok, _, err := smart.RequestToken(context.Background(), base+smart.PathToken, demoClientID, key, []string{"system/Patient.rs"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		answered := map[string]bool{} // request ids answered with data
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				client := &http.Client{Timeout: 5 * time.Second}
				for i := 0; ctx.Err() == nil && i < 100000; i++ {
					id := fmt.Sprintf("crash-%d-%d-%d", round, w, i)
					nhs := patients[(w*7+i)%len(patients)]
					// Demographics with a system token: no consent to view needed.
					req, _ := http.NewRequest("GET", base+"/Patient?identifier="+fhir.NHSNumberSystem+"%7C"+string(nhs), nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("X-Request-ID", id)
					res, err := client.Do(req)
					if err != nil {
						return // the server is gone
					}
					body, rerr := io.ReadAll(res.Body)
					res.Body.Close()
					if rerr == nil && res.StatusCode == 200 && bytes.Contains(body, []byte(`"resourceType":"Bundle"`)) {
						mu.Lock()
						answered[id] = true
						mu.Unlock()
					}
				}
			}(w)
		}
		time.Sleep(1500 * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		stop()
		wg.Wait()
		if len(answered) < 20 {
			t.Fatalf("round %d: only %d requests answered before the kill", round, len(answered))
		}

		out, err := exec.Command(bin, "audit", "verify", "--data", data).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "audit chain OK") {
			t.Fatalf("round %d: audit verify after SIGKILL: %v\n%s", round, err, out)
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
			t.Fatalf("round %d: %d of %d answered requests have no AuditEvent", round, missing, len(answered))
		}
		t.Logf("round %d: %d answered requests, all audited; %s", round, len(answered), strings.TrimSpace(string(out)))
	}
}

// startBinary runs `gpgate serve` on a free port and returns its base URL.
func startBinary(t *testing.T, bin, data string) (string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data", data, "--listen", "127.0.0.1:0", "--log-level", "error")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
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
	select {
	case u := <-lines:
		return u, cmd
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return "", nil
}
