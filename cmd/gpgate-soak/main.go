// Command gpgate-soak is gpgate's soak test: it runs a real `gpgate serve`
// on loopback over a demo region and drives a bounded mixed load at it —
// N consumer systems (SMART clients registered through the admin API)
// finding patients, recording consents to view, reading records with
// patient-context tokens, refreshing their tokens — while an operator
// disables and re-enables clients and changes agreements through the admin
// API. At the end it stops the server with SIGTERM and checks: no 5xx
// answer, memory and goroutines flat (read from /metrics), the audit log
// holds exactly one entry per audited request answered (refused
// authentications counted through their aggregate entries), and the chain
// verifies. It exits non-zero when any check fails.
//
//	go run ./cmd/gpgate-soak --bin bin/gpgate --duration 10m --clients 32
//
// Every request goes to 127.0.0.1; every loop is bounded by the duration.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/consent/smart"
)

type config struct {
	bin, data        string
	duration, warmup time.Duration
	clients          int
	patients         int
	keep             bool
	out              io.Writer
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/gpgate", "the gpgate binary")
	flag.StringVar(&c.data, "data", "", "data directory (default: a new temporary one, removed afterwards)")
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long the load runs")
	flag.DurationVar(&c.warmup, "warmup", 0, "when the baseline of memory and goroutines is read (default a tenth of the duration)")
	flag.IntVar(&c.clients, "clients", 32, "concurrent consumer systems")
	flag.IntVar(&c.patients, "patients", 300, "patients in the demo region")
	flag.BoolVar(&c.keep, "keep", false, "keep the data directory")
	flag.Parse()
	c.out = os.Stdout
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "soak FAILED:", err)
		os.Exit(1)
	}
	fmt.Println("soak PASSED")
}

// tally counts answers by status and the audit entries they must have made.
type tally struct {
	mu       sync.Mutex
	byStatus map[int]int
	byRoute  map[string]int
	audited  int // answers the core or the token endpoint audits one by one
	fiveXX   []string
	netErrs  int
}

func (t *tally) add(route string, status int, audited bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byStatus[status]++
	t.byRoute[route]++
	if audited {
		t.audited++
	}
	if status >= 500 && len(t.fiveXX) < 20 {
		t.fiveXX = append(t.fiveXX, fmt.Sprintf("%s -> %d", route, status))
	}
}

func run(ctx context.Context, c config) error {
	if c.warmup <= 0 {
		c.warmup = c.duration / 10
	}
	if c.data == "" {
		d, err := os.MkdirTemp("", "gpgate-soak-")
		if err != nil {
			return err
		}
		c.data = filepath.Join(d, "data")
		if !c.keep {
			defer os.RemoveAll(d)
		}
	}
	say := func(f string, a ...any) { fmt.Fprintf(c.out, "soak: "+f+"\n", a...) }
	say("demo region of %d patients in %s", c.patients, c.data)
	if out, err := exec.Command(c.bin, "demo", "--data", c.data, "--patients", fmt.Sprint(c.patients), "--practices", "2", "--fast").CombinedOutput(); err != nil {
		return fmt.Errorf("demo: %v\n%s", err, out)
	}
	var sum struct {
		Practices []struct{ ODS string }
		Notable   []struct {
			Kind, NHS, PatientID string
		}
	}
	if b, err := os.ReadFile(filepath.Join(c.data, "demo-summary.json")); err != nil || json.Unmarshal(b, &sum) != nil {
		return fmt.Errorf("demo summary: %v", err)
	}
	nhs, err := listNHS(c)
	if err != nil {
		return err
	}
	srv, err := startServer(c)
	if err != nil {
		return err
	}
	defer srv.kill()
	say("serving at %s (pid %d)", srv.base, srv.cmd.Process.Pid)
	t := &tally{byStatus: map[int]int{}, byRoute: map[string]int{}}
	h := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	admin := &actor{base: srv.base, id: "demo-admin", key: mustRead(filepath.Join(c.data, "demo-admin.jwk")), h: h, t: t}
	// the consumer systems, registered through the admin API
	clients := make([]*actor, c.clients)
	for i := range clients {
		priv, pub, _, err := smart.GenerateClientKey("ES256")
		if err != nil {
			return err
		}
		id := fmt.Sprintf("soak-%02d", i)
		body, _ := json.Marshal(map[string]any{"id": id, "ods": "RXX01", "name": "Soak EPR " + id, "jwks": json.RawMessage(pub),
			"scopes": []string{"system/Patient.rs", "system/Consent.c", "patient/*.rs"}})
		if st, _, err := admin.call(ctx, "POST", "/admin/clients", "system/Client.c", body); err != nil || st != 201 {
			return fmt.Errorf("register %s: %d %v", id, st, err)
		}
		clients[i] = &actor{base: srv.base, id: id, key: priv, h: h, t: t}
	}
	lctx, stop := context.WithTimeout(ctx, c.duration)
	defer stop()
	var wg sync.WaitGroup
	var disabled sync.Map // client id -> true while disabled
	for i, a := range clients {
		wg.Add(1)
		go func(i int, a *actor) {
			defer wg.Done()
			a.work(lctx, rand.New(rand.NewPCG(uint64(i), 7)), nhs, &disabled)
		}(i, a)
	}
	// the operator: disables and re-enables clients, changes agreements
	wg.Add(1)
	go func() {
		defer wg.Done()
		operate(lctx, admin, clients, sum.Practices[0].ODS, &disabled, say)
	}()
	// baseline after warm-up
	var base metricsSnap
	select {
	case <-time.After(c.warmup):
		base, err = scrape(h, srv.base)
		if err != nil {
			stop()
			wg.Wait()
			return err
		}
		say("baseline at %s: %s", c.warmup, base)
	case <-lctx.Done():
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for lctx.Err() == nil {
		select {
		case <-tick.C:
			if m, err := scrape(h, srv.base); err == nil {
				t.mu.Lock()
				say("%s; answers so far %v", m, t.byStatus)
				t.mu.Unlock()
			}
		case <-lctx.Done():
		}
	}
	wg.Wait()
	// let the server settle (tokens, idle connections, cache TTLs), then the end reading
	h.CloseIdleConnections()
	time.Sleep(3 * time.Second)
	end, err := scrape(h, srv.base)
	if err != nil {
		return err
	}
	say("end: %s", end)
	if err := srv.stop(); err != nil {
		return err
	}
	var fails []string
	t.mu.Lock()
	say("answers by status: %v", t.byStatus)
	routes := make([]string, 0, len(t.byRoute))
	for r := range t.byRoute {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	for _, r := range routes {
		say("  %-34s %d", r, t.byRoute[r])
	}
	if len(t.fiveXX) > 0 {
		fails = append(fails, fmt.Sprintf("%d 5xx answers, e.g. %v", count5xx(t.byStatus), t.fiveXX))
	}
	if t.netErrs > 0 {
		fails = append(fails, fmt.Sprintf("%d requests failed at the network level", t.netErrs))
	}
	audited := t.audited
	t.mu.Unlock()
	if base.goroutines > 0 {
		if end.goroutines > base.goroutines*3/2+20 {
			fails = append(fails, fmt.Sprintf("goroutines grew from %.0f to %.0f", base.goroutines, end.goroutines))
		}
		if end.heapInuse > 2*base.heapInuse+64<<20 {
			fails = append(fails, fmt.Sprintf("heap in use grew from %.0f MiB to %.0f MiB", base.heapInuse/(1<<20), end.heapInuse/(1<<20)))
		}
	}
	// the audit log: verify, then count
	out, err := exec.Command(c.bin, "audit", "verify", "--data", c.data).CombinedOutput()
	say("%s", strings.TrimSpace(string(out)))
	if err != nil || !strings.Contains(string(out), "audit chain OK") {
		fails = append(fails, "the audit chain does not verify")
	}
	entries, aggregated, refusals, err := countAudit(c)
	if err != nil {
		return err
	}
	say("audit: %d entries for single requests, %d aggregate entries covering %d refused authentications or limits", entries, aggregated, refusals)
	t.mu.Lock()
	refusedAnswers := t.byRoute["refused (aggregated)"]
	t.mu.Unlock()
	if entries != audited || refusals != refusedAnswers {
		fails = append(fails, fmt.Sprintf("audit count does not match: %d single entries for %d audited answers; aggregates count %d refusals for %d refused answers",
			entries, audited, refusals, refusedAnswers))
	}
	if len(fails) > 0 {
		return errors.New(strings.Join(fails, "; "))
	}
	say("requests answered %d: every one audited; chain verifies; goroutines %.0f -> %.0f, heap in use %.0f -> %.0f MiB, RSS %.0f -> %.0f MiB",
		audited+refusedAnswers, base.goroutines, end.goroutines, base.heapInuse/(1<<20), end.heapInuse/(1<<20), base.rss/(1<<20), end.rss/(1<<20))
	if fi, err := os.Stat(filepath.Join(c.data, "audit.db")); err == nil {
		// RSS counts the pages of the memory-mapped bbolt files the server
		// touched (file-backed, reclaimable): it grows with the audit log,
		// the Go heap does not
		say("audit.db is %.0f MiB after the run", float64(fi.Size())/(1<<20))
	}
	return nil
}

func count5xx(m map[int]int) int {
	n := 0
	for s, c := range m {
		if s >= 500 {
			n += c
		}
	}
	return n
}

func mustRead(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		panic(err)
	}
	return b
}

// listNHS lists the region's patients from the embedded store (before
// the server opens it).
func listNHS(c config) ([]string, error) {
	st, err := embedded.Open(filepath.Join(c.data, "records.db"), embedded.WithReadOnly())
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ps, err := st.Practices()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		ns, err := st.Source(p.ODS).Patients(context.Background())
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			out = append(out, string(n))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the region has no patients")
	}
	return out, nil
}

// ---- the server ----

type server struct {
	cmd  *exec.Cmd
	base string
	done chan error
	logs *bytes.Buffer
	mu   sync.Mutex
}

func startServer(c config) (*server, error) {
	s := &server{logs: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(c.bin, "serve", "--data", c.data, "--listen", "127.0.0.1:0", "--log-level", "warn", "--log-format", "text",
		"--rate-address", "0", "--rate-client", "500", "--burst-client", "1000", "--client-concurrency", "16")
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.logs.Len() < 1<<20 {
			s.logs.Write(b)
		}
		return len(b), nil
	})
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "gpgate serving FHIR R4 at "); ok {
				urls <- u
			}
		}
	}()
	select {
	case s.base = <-urls:
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("serve exited: %v\n%s", err, s.logs.String())
	case <-time.After(60 * time.Second):
		s.kill()
		return nil, errors.New("serve did not start")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("serve exited with %v after SIGTERM\n%s", err, s.logs.String())
		}
		return nil
	case <-time.After(60 * time.Second):
		s.kill()
		return errors.New("serve did not stop within 60 s of SIGTERM")
	}
}

func (s *server) kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// ---- metrics ----

type metricsSnap struct{ goroutines, heapInuse, rss, inflight float64 }

func (m metricsSnap) String() string {
	return fmt.Sprintf("goroutines %.0f, heap in use %.1f MiB, RSS %.1f MiB", m.goroutines, m.heapInuse/(1<<20), m.rss/(1<<20))
}

func scrape(h *http.Client, base string) (metricsSnap, error) {
	res, err := h.Get(base + "/metrics")
	if err != nil {
		return metricsSnap{}, err
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		return metricsSnap{}, fmt.Errorf("/metrics does not parse: %w", err)
	}
	val := func(name string) float64 {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	return metricsSnap{goroutines: val("go_goroutines"), heapInuse: val("go_memstats_heap_inuse_bytes"),
		rss: val("process_resident_memory_bytes")}, nil
}

// ---- the audit log ----

// countAudit exports the log and counts entries of single requests and the
// refusals the aggregate entries stand for.
func countAudit(c config) (single, aggregates, refusals int, err error) {
	out, err := exec.Command(c.bin, "audit", "export", "--data", c.data).Output()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("audit export: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			OutcomeDesc string `json:"outcomeDesc"`
			Entity      []struct {
				Detail []struct {
					Type        string `json:"type"`
					ValueString string `json:"valueString"`
				} `json:"detail"`
			} `json:"entity"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return 0, 0, 0, err
		}
		agg := false
		for _, k := range []string{"auth-refused ", "token-refused ", "rate-limited "} {
			agg = agg || strings.HasPrefix(ev.OutcomeDesc, k)
		}
		if !agg {
			single++
			continue
		}
		aggregates++
		for _, e := range ev.Entity {
			for _, d := range e.Detail {
				if d.Type == "result-count" {
					var n int
					fmt.Sscan(d.ValueString, &n)
					refusals += n
				}
			}
		}
	}
	return single, aggregates, refusals, sc.Err()
}
