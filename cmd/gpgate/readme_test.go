package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gpgateBinary is the real binary, built once per test run (buildBinary).
func gpgateBinary(t *testing.T) string { return buildBinary(t) }

// curlStep is one curl of a README block and what its comment says it
// answers ("# 403 NO_PATIENT_CONSENT"; nothing: a 2xx).
type curlStep struct {
	line   int
	status int
	code   string
}

var (
	curlComment = regexp.MustCompile(`#\s*(\d{3})\s+([A-Z_]+)`)
	curlCall    = regexp.MustCompile(`(^|[\s;(|&])curl\s`)
)

// splitComment splits a shell line at its comment (a # at the start or
// after a blank, outside quotes).
func splitComment(line string) (code, comment string) {
	var q byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

// curlSteps lists the curl invocations of a shell block in order (lines
// inside a quoted multi-line argument are not commands).
func curlSteps(block string, first int) []curlStep {
	var out []curlStep
	inQuote := false
	sc := bufio.NewScanner(strings.NewReader(block))
	n := first
	for sc.Scan() {
		n++
		line := sc.Text()
		if inQuote {
			if strings.Count(line, "'")%2 == 1 {
				inQuote = false
			}
			continue
		}
		code, comment := splitComment(line)
		if strings.Count(code, "'")%2 == 1 {
			inQuote = true
		}
		if !curlCall.MatchString(code) {
			continue
		}
		st := curlStep{line: n}
		if m := curlComment.FindStringSubmatch(comment); m != nil {
			st.status, _ = strconv.Atoi(m[1])
			st.code = m[2]
		}
		out = append(out, st)
	}
	return out
}

// The README's shell examples, run as a user runs them: `make run` makes
// the region (bin/gpgate demo, here --fast) and serves it (bin/gpgate
// serve); each block then runs in bash from the directory holding bin/ and
// gpgate-data/, and every curl must answer what its comment says.
func TestREADMEExamples(t *testing.T) {
	for _, tool := range []string{"curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the README's examples use it", tool)
		}
	}
	readme := repoFile(t, "README.md")
	checkErrorTable(t, "README.md", readme)
	bin := gpgateBinary(t)
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(work, "bin", "gpgate")); err != nil {
		t.Fatal(err)
	}
	gpc := "none"
	if p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata", "gpconnect-stu3")); err == nil {
		if _, err := os.Stat(p); err == nil {
			gpc = p
		}
	}
	demo := exec.Command(filepath.Join("bin", "gpgate"), "demo", "--data", "gpgate-data", "--fast", "--gpconnect", gpc)
	demo.Dir = work
	if out, err := demo.CombinedOutput(); err != nil {
		t.Fatalf("gpgate demo: %v\n%s", err, truncateBody(out))
	}
	base := serveBinary(t, work)
	ran := 0
	for _, f := range fences(readme) {
		if f.info != "sh" && f.info != "bash" {
			continue
		}
		if f.skip != "" {
			t.Logf("README.md:%d: not run: %s", f.line, f.skip)
			continue
		}
		if f.needs != "" {
			if _, err := os.Stat(filepath.Join("..", "..", f.needs)); err != nil {
				t.Logf("README.md:%d: not run: it needs %s, which is absent", f.line, f.needs)
				continue
			}
		}
		if strings.Contains(f.text, "jq ") {
			if _, err := exec.LookPath("jq"); err != nil {
				t.Logf("README.md:%d: not run: it uses jq, which is not installed", f.line)
				continue
			}
		}
		ran++
		t.Run("README.md:"+strconv.Itoa(f.line), func(t *testing.T) {
			steps := curlSteps(f.text, f.line)
			log := filepath.Join(work, "curl.log")
			_ = os.Remove(log)
			// curl keeps its arguments; the wrapper only records the
			// status and the body of each call, in order.
			script := `set -euo pipefail
curl() {
  local out code
  out=$(mktemp "$CURL_DIR/body.XXXXXX")
  code=$(command curl -sS -o "$out" -w '%{http_code}' "$@") || { echo "curl failed: $*" >&2; return 1; }
  printf '%s %s\n' "$code" "$out" >> "$CURL_LOG"
  cat "$out"
}
` + strings.ReplaceAll(f.text, "http://127.0.0.1:8080", base) + "\n"
			cmd := exec.Command("bash", "-c", script)
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "CURL_LOG="+log, "CURL_DIR="+work)
			out, err := cmd.CombinedOutput()
			if err != nil {
				if len(out) > 1500 {
					out = append([]byte("…"), out[len(out)-1500:]...) // the failing end
				}
				t.Fatalf("the block fails: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(log)
			calls := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(steps) == 0 || len(calls) != len(steps) {
				t.Fatalf("%d curl calls ran, the block has %d", len(calls), len(steps))
			}
			for i, st := range steps {
				status, bodyFile, _ := strings.Cut(calls[i], " ")
				got, _ := strconv.Atoi(status)
				body, _ := os.ReadFile(bodyFile)
				want := st.status
				if want == 0 {
					if got < 200 || got > 299 {
						t.Errorf("README.md:%d: HTTP %d, want 2xx: %s", st.line, got, truncateBody(body))
					}
					continue
				}
				if got != want || !strings.Contains(string(body), `"`+st.code+`"`) {
					t.Errorf("README.md:%d: HTTP %d, the comment says %d %s: %s", st.line, got, want, st.code, truncateBody(body))
				}
			}
		})
	}
	if ran == 0 {
		t.Fatal("no runnable shell block in README.md")
	}
}

// serveBinary runs bin/gpgate serve in dir on a free port until the test
// ends, and returns the URL it prints.
func serveBinary(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join("bin", "gpgate"), "serve", "--data", "gpgate-data", "--listen", "127.0.0.1:0", "--log-format", "text")
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &lockedWriter{w: &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "gpgate serving FHIR R4 at "); ok {
				urls <- strings.TrimSpace(u)
			}
		}
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatalf("gpgate serve exited: %s", logs.String())
		}
		return u
	case <-time.After(2 * time.Minute):
		t.Fatalf("gpgate serve printed no URL: %s", logs.String())
	}
	return ""
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestCurlSteps(t *testing.T) {
	block := `B=x
curl -s "$B/a"   # 403 NO_PATIENT_CONSENT
curl -s -X POST $B/b -d '{
  "curl -s": "not a command"
}'
T=$(bin/gpgate token)   # curl's not here
# curl -s $B/commented
curl -s -H "x" \
   $B/c`
	got := curlSteps(block, 10)
	want := []curlStep{{12, 403, "NO_PATIENT_CONSENT"}, {13, 0, ""}, {18, 0, ""}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
