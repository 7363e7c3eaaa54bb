package main

// The three-node cluster test (`make cluster-test`): PostgreSQL, three
// `gpgate serve --database` processes and HAProxy on loopback
// (internal/cluster). Through the balancer it runs the same consent
// black-box checks as TestConsentOverHTTP and the same `gpgate
// conformance` suite as CI runs against one bbolt node, then puts the
// cluster under load and kills a node, then restarts PostgreSQL: no
// acknowledged request may lack its audit entry, no 5xx may come from
// anything but the requests in flight on the killed node (and, while the
// database is down, the requests it refused, closed), and the chain must
// verify. It is skipped unless GPGATE_CLUSTER_TEST=1 (make cluster-test).

import (
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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpgate/gpgate/conformance"
	"github.com/gpgate/gpgate/internal/cluster"
	"github.com/gpgate/gpgate/postgres/pglocal"
)

func TestCluster(t *testing.T) {
	if os.Getenv("GPGATE_CLUSTER_TEST") == "" {
		t.Skip("the three-node PostgreSQL + HAProxy test runs with `make cluster-test` (GPGATE_CLUSTER_TEST=1)")
	}
	if _, err := pglocal.BinDir(); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatal(cluster.ErrNoHAProxy)
	}
	ctx := context.Background()
	work := t.TempDir()
	pg, url, err := cluster.StartPostgres(ctx, filepath.Join(work, "postgres"), "gpgate")
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	t.Setenv(databaseEnv, url) // every CLI verb the consent checks run uses the cluster's database
	if code, out, stderr := sbRun(t, "migrate"); code != 0 {
		t.Fatalf("migrate: %s %s", out, stderr)
	}
	bin := filepath.Join(work, "gpgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v %s", err, out)
	}
	var cl *cluster.Cluster
	savedAddr, savedServe := cbAddr, cbServe
	defer func() { cbAddr, cbServe = savedAddr, savedServe }()
	lb := sbFreeAddr(t)
	cbAddr = func(testing.TB) string { return lb }
	cbServe = func(t testing.TB, dir, addr string) func() {
		c, err := cluster.Start(ctx, cluster.Options{Bin: bin, Dir: filepath.Join(work, "run"), Data: dir, Database: url, Listen: addr, Log: io.Discard,
			// every request of this test comes from one address and two
			// clients: limits high enough that the load below is served
			// (the limits have tests of their own)
			Args: []string{"--rate-address", "5000", "--rate-client", "5000", "--client-concurrency", "0"}})
		if err != nil {
			t.Fatal(err)
		}
		cl = c
		return c.Stop
	}
	env := startConsentEnv(t)
	t.Run("consent checks through the balancer", func(t *testing.T) { runConsentChecks(t, env) })
	t.Run("conformance suite through the balancer", func(t *testing.T) {
		var out strings.Builder
		rep, err := conformance.Run(ctx, conformance.RunOptions{Base: env.base, ClientID: demoClientID, KeyFile: filepath.Join(env.dir, demoKeyFile),
			AuditClientID: "demo-auditor", AuditKeyFile: filepath.Join(env.dir, "demo-auditor.jwk"), Clinician: demoClinician, Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			t.Fatalf("%d of %d checks failed: %s\n%s", rep.Failed, len(rep.Checks), strings.Join(rep.Failures(), ", "), out.String())
		}
	})
	t.Run("a node killed and PostgreSQL restarted under load", func(t *testing.T) {
		clusterFailures(t, env, cl, pg, url)
	})
}

// loadResult is one request of the load.
type loadResult struct {
	status int
	reqID  string
	phase  int
	leak   bool // a 5xx whose body is not an OperationOutcome
	err    bool // no answer at all (connection cut)
	reason string
}

const (
	phaseSteady = iota
	phaseNodeKilled
	phaseDBDown
	phaseRecovered
)

func clusterFailures(t *testing.T, env *cbEnv, cl *cluster.Cluster, pg *pglocal.Server, url string) {
	ctx := context.Background()
	p := env.noEntry
	consentID, _ := env.recordConsent(t, demoClientID, p.PatientID, nil)
	sys := env.systemToken(t, demoClientID, nil)
	var phase atomic.Int32
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var mu sync.Mutex
	var results []loadResult
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const workers = 8
	// the load lasts well under a token's 5 minutes
	tok := env.mustPatientToken(t, demoClientID, consentID, "patient/*.rs", p.PatientID)
	var inFlight atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path, bearer := "/Condition?patient="+p.PatientID+"&_count=5", tok
				if i%3 == 0 {
					path, bearer = patientSearch(p.NHS), sys
				}
				ph := int(phase.Load())
				req, _ := http.NewRequest(http.MethodGet, env.base+path, nil)
				req.Header.Set("Authorization", "Bearer "+bearer)
				req.Header.Set("Accept", "application/fhir+json")
				inFlight.Add(1)
				res, err := client.Do(req)
				inFlight.Add(-1)
				// a request that spans a change of phase belongs to the later
				// one (it was in flight when the failure began)
				r := loadResult{phase: max(ph, int(phase.Load()))}
				if err != nil {
					r.err = true
				} else {
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					r.status, r.reqID = res.StatusCode, res.Header.Get("X-Request-ID")
					// gpgate's own errors are OperationOutcomes; the balancer's
					// (502 for a connection cut by a dying node) carry no resource
					if res.StatusCode >= 500 && strings.Contains(string(body), `"resourceType"`) && !strings.Contains(string(body), `"OperationOutcome"`) {
						r.leak = true
					}
					if res.StatusCode == 500 {
						r.reason = string(body)
					}
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(4 * time.Second)
	phase.Store(phaseNodeKilled)
	killedInFlight := inFlight.Load()
	cl.KillNode(1)
	time.Sleep(5 * time.Second)
	phase.Store(phaseDBDown)
	if err := pg.Kill(); err != nil { // immediate shutdown: crash recovery at start
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // pools reconnect
	phase.Store(phaseRecovered)
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	count := map[int]map[string]int{}
	for _, r := range results {
		if count[r.phase] == nil {
			count[r.phase] = map[string]int{}
		}
		switch {
		case r.err:
			count[r.phase]["no answer"]++
		case r.status >= 500:
			count[r.phase]["5xx"]++
			count[r.phase][fmt.Sprint(r.status)]++
		case r.status == 200:
			count[r.phase]["200"]++
		default:
			count[r.phase][fmt.Sprint(r.status)]++
		}
		if r.leak {
			t.Errorf("a %d answer carried something other than an OperationOutcome", r.status)
		}
	}
	t.Logf("requests by phase (steady, node killed, database restarted, recovered): %v", count)
	if count[phaseSteady]["500"]+count[phaseNodeKilled]["500"]+count[phaseRecovered]["500"] > 0 {
		for _, n := range cl.Nodes {
			b, _ := os.ReadFile(filepath.Join(n.Dir, "serve.log"))
			var errs []string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) && len(errs) < 5 {
					errs = append(errs, line)
				}
			}
			t.Logf("%s: first errors logged: %s", n.Name, strings.Join(errs, "\n"))
		}
	}
	if count[phaseSteady]["200"] == 0 || count[phaseRecovered]["200"] == 0 {
		t.Fatalf("no successful requests before the failures or after recovery: %v", count)
	}
	for _, ph := range []int{phaseSteady, phaseRecovered} {
		if n := count[ph]["5xx"] + count[ph]["no answer"]; n > 0 {
			t.Errorf("phase %d: %d requests failed with the cluster whole", ph, n)
		}
	}
	if n := count[phaseNodeKilled]["5xx"] + count[phaseNodeKilled]["no answer"]; int64(n) > max(killedInFlight, workers) {
		t.Errorf("%d requests failed while a node was down: more than the %d in flight when it was killed", n, max(killedInFlight, workers))
	}
	if count[phaseDBDown]["200"] > 0 {
		t.Logf("%d requests answered while the database was down or restarting (each recorded before its answer: checked below)", count[phaseDBDown]["200"])
	}

	// every acknowledged request has its audit entry, and the chain verifies
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT record FROM audit_log")
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]bool{}
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&rec); err != nil {
			t.Fatal(err)
		}
		var w struct {
			Entry struct {
				Req string `json:"req"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(rec, &w); err != nil {
			t.Fatal(err)
		}
		audited[w.Entry.Req] = true
	}
	rows.Close()
	acked, missing := 0, 0
	for _, r := range results {
		if r.status == 200 {
			acked++
			if r.reqID == "" || !audited[r.reqID] {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged requests have no audit entry", missing, acked)
	}
	// with the nodes' shared audit key and the head node-1 exported
	code, out, stderr := sbRun(t, "audit", "verify", "--database", url, "--key", filepath.Join(cl.Dir(), "audit.key"),
		"--head", filepath.Join(cl.Nodes[0].Dir, "audit-head"), "--strict")
	if code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify: %s %s", out, stderr)
	}
	t.Logf("%d acknowledged requests, each with its audit entry; %s", acked, strings.TrimSpace(out))
}
