// Command gpgate-load drives a running gpgate as consumer systems do and
// prints what it measured beside two references taken in the same run: a
// bare-bytes baseline (a plain net/http server on loopback answering the
// exact bytes gpgate answered) and, where its npm packages are installed,
// a peer FHIR server (Medplum's FHIR router over its in-memory repository,
// peer/server.mjs) loaded with the same records.
//
// As a consumer it obtains tokens with private_key_jwt (the demo client's
// key in the data directory), records a consent to view for each patient
// it reads (POST /Consent with a system token, the clinician's SDS user id
// in hl7-b2b subject_id), and keeps each patient-context token renewed
// before it expires. The scenarios: Patient search by NHS number over
// patients spread across the region, $everything of a record of about 500
// resources and of a mix of records spread across the region (every page,
// following next links), $getstructuredrecord with every section, and
// per-area searches. Each runs closed-loop at each concurrency, for
// alternating rounds (gpgate, baseline, peer, then the reverse order);
// the report gives the median of each figure over the rounds.
//
//	gpgate-load -url http://127.0.0.1:8080 -data ./gpgate-data
//
// `make load` builds gpgate, generates a fresh demo region, serves it on a
// free port, runs this against it and stops it (see docs/performance.md).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	url, data, client, key, clinician string
	concs                             []int
	warm, dur                         time.Duration
	rounds                            int
	scenarios                         map[string]bool
	regionPatients                    int
	searchPool, mixPool, target       int
	everythingCount                   int
	peerDir                           string
	noPeer                            bool
	serverPID                         int
	jsonOut                           string
	seed                              uint64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gpgate-load:", err)
		os.Exit(1)
	}
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("gpgate-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of the running gpgate")
	fs.StringVar(&o.data, "data", "./gpgate-data", "gpgate's data directory (demo client key, demo-summary.json)")
	fs.StringVar(&o.client, "client", "demo-ehr", "SMART client id")
	fs.StringVar(&o.key, "key", "", "client private key (default <data>/demo-client.jwk)")
	fs.StringVar(&o.clinician, "clinician", "555123456789", "clinician SDS user id (hl7-b2b subject_id and Consent performer)")
	concs := fs.String("c", "1,16,64", "concurrency levels (closed-loop workers)")
	fs.DurationVar(&o.warm, "warmup", time.Second, "unmeasured warm-up before each run")
	fs.DurationVar(&o.dur, "duration", 5*time.Second, "measured time of each run")
	fs.IntVar(&o.rounds, "rounds", 3, "alternating rounds; figures are medians over them")
	scen := fs.String("scenarios", "", "comma-separated scenarios to run (default all: patient-search, everything-500, everything-mix, structured, area-search)")
	fs.IntVar(&o.regionPatients, "patients", 0, "patients in the region (default: demo-summary.json in -data)")
	fs.IntVar(&o.searchPool, "search-pool", 1000, "patients searched by NHS number, spread over the region")
	fs.IntVar(&o.mixPool, "mix-pool", 40, "patients of the record-size mix, spread over the region")
	fs.IntVar(&o.target, "record-size", 500, "resources of the fixed-size $everything record")
	fs.IntVar(&o.everythingCount, "everything-count", 1000, "_count of $everything pages (0: the server's default page size); every page is read")
	fs.StringVar(&o.peerDir, "peer-dir", "cmd/gpgate-load/peer", "the peer server's directory (server.mjs, node_modules)")
	fs.BoolVar(&o.noPeer, "no-peer", false, "do not run the peer FHIR server")
	fs.IntVar(&o.serverPID, "server-pid", 0, "gpgate's process id, to report its resident memory after the run")
	fs.StringVar(&o.jsonOut, "json", "", "also write every round's figures to this file")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the patient samples and the workers' choices")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, f := range strings.Split(*concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return o, fmt.Errorf("-c: %q is not a concurrency", f)
		}
		o.concs = append(o.concs, n)
	}
	if *scen != "" {
		o.scenarios = map[string]bool{}
		for _, s := range strings.Split(*scen, ",") {
			o.scenarios[strings.TrimSpace(s)] = true
		}
	}
	if o.rounds < 1 {
		return o, fmt.Errorf("-rounds must be at least 1")
	}
	if o.regionPatients == 0 {
		b, err := os.ReadFile(filepath.Join(o.data, "demo-summary.json"))
		if err != nil {
			return o, fmt.Errorf("-patients not given and no demo-summary.json: %w", err)
		}
		var s struct{ Patients int }
		if err := json.Unmarshal(b, &s); err != nil || s.Patients == 0 {
			return o, fmt.Errorf("demo-summary.json: no patient count")
		}
		o.regionPatients = s.Patients
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	maxc := 1
	for _, c := range o.concs {
		maxc = max(maxc, c)
	}
	setupClient := newClient(4)
	c, err := newConsumer(ctx, o.url, o.data, o.client, o.key, o.clinician, setupClient)
	if err != nil {
		return err
	}
	bl := newBaseline()
	if err := bl.start(); err != nil {
		return err
	}
	defer bl.close()
	peerWhy := "-no-peer"
	if !o.noPeer {
		peerWhy = peerAvailable(o.peerDir)
	}
	var pd *peerData
	if peerWhy == "" {
		pd = newPeerData()
	}
	t0 := time.Now()
	fmt.Fprintf(stderr, "setup: recording operations against %s (load average %s)\n", o.url, loadavg())
	all, err := setup(ctx, c, bl, pd, setupOptions{regionPatients: o.regionPatients, searchPool: o.searchPool, mixPool: o.mixPool, target: o.target, everythingCount: o.everythingCount, seed: o.seed, log: stderr})
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var scenarios []*scenario
	for _, s := range all {
		if o.scenarios == nil || o.scenarios[s.name] || (strings.HasPrefix(s.name, "everything-") && o.scenarios["everything-500"] && s.name != "everything-mix") {
			scenarios = append(scenarios, s)
		}
	}
	fmt.Fprintf(stderr, "setup: done in %s\n", time.Since(t0).Round(time.Millisecond))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.keepFresh(rctx, func(err error) { fmt.Fprintln(stderr, "warning:", err) })

	targets := []target{
		{name: "gpgate", base: c.base, hc: newClient(maxc), auth: true, ops: func(s *scenario) []*op { return s.ops }},
		{name: "baseline", base: bl.url, hc: newClient(maxc), auth: true, ops: func(s *scenario) []*op { return s.ops }},
	}
	if pd != nil {
		p, err := startPeer(ctx, o.peerDir, pd, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "setup: the peer is left out: %v\n", err)
			peerWhy = err.Error()
		} else {
			defer p.stop()
			targets = append(targets, target{name: "peer", base: p.url, hc: newClient(maxc), ops: func(s *scenario) []*op { return s.peer }})
		}
	}
	havePeer := len(targets) == 3
	load0 := loadavg()
	var rs []result
	for r := 0; r < o.rounds; r++ {
		for _, s := range scenarios {
			for _, conc := range o.concs {
				order := targets
				if r%2 == 1 {
					order = reversed(targets)
				}
				for _, t := range order {
					if len(t.ops(s)) == 0 {
						continue
					}
					res := drive(ctx, t, s, conc, o.warm, o.dur, o.seed+uint64(r))
					if ctx.Err() != nil {
						return ctx.Err()
					}
					rs = append(rs, res)
					fmt.Fprintf(stderr, "round %d %-15s c=%-3d %-8s %8.0f ops/s  p50 %7.2f  p99 %7.2f ms  errors %d\n", r+1, s.name, conc, t.name, res.Throughput, res.P50, res.P99, res.Errors)
				}
			}
		}
	}
	fmt.Fprintf(stdout, "# gpgate-load\n\n")
	fmt.Fprintf(stdout, "Machine: %s. Load average before the runs %s, after %s.\n", machine(), load0, loadavg())
	fmt.Fprintf(stdout, "Region: %d patients. Closed loop, %s warm-up + %s measured per run, %d alternating rounds, medians; latency is per operation (every page).\n", o.regionPatients, o.warm, o.dur, o.rounds)
	if !havePeer {
		fmt.Fprintf(stdout, "Peer: not run (%s).\n", peerWhy)
	} else {
		fmt.Fprintf(stdout, "Peer: Medplum FHIR router %s over its in-memory repository (cmd/gpgate-load/peer), the same resources; its $everything reads a member list made at load (the form most favourable to it; see peer/server.mjs).\n", peerVersion(o.peerDir))
	}
	printReport(stdout, scenarios, o.concs, rs, havePeer)
	if o.serverPID > 0 {
		fmt.Fprintf(stdout, "\ngpgate resident memory after the runs: %s\n", rss(o.serverPID))
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"machine": machine(), "loadBefore": load0, "loadAfter": loadavg(), "rounds": rs}, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func reversed(ts []target) []target {
	out := make([]target, len(ts))
	for i, t := range ts {
		out[len(ts)-1-i] = t
	}
	return out
}

func peerVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@medplum", "fhir-router", "package.json"))
	if err != nil {
		return "?"
	}
	var p struct{ Version string }
	_ = json.Unmarshal(b, &p)
	return p.Version
}
