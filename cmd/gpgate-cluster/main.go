// Command gpgate-cluster runs a three-node gpgate on this machine for
// `make cluster`: a local PostgreSQL, `gpgate migrate`, a demo region
// whose clients and agreements live in the database, three `gpgate serve
// --database` nodes and HAProxy in front, all on loopback, until Ctrl-C.
// See docs/scale.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gpgate/gpgate/internal/cluster"
)

func main() {
	bin := flag.String("bin", "bin/gpgate", "the gpgate binary")
	dir := flag.String("dir", "./gpgate-cluster", "work directory (PostgreSQL cluster, demo region, node directories, logs); kept between runs")
	listen := flag.String("listen", "127.0.0.1:8090", "the balancer's address")
	nodes := flag.Int("nodes", 3, "gpgate nodes")
	patients := flag.Int("patients", 200, "demo region size")
	loadBase := flag.String("load", "", "instead: measure the common scenarios against this base URL (a running node or balancer), with the demo keys of --seed")
	seed := flag.String("seed", "", "with --load: the demo data directory holding demo-client.jwk and demo-summary.json (default DIR/seed)")
	conc := flag.Int("concurrency", 8, "with --load: concurrent clients")
	dur := flag.Duration("duration", 10*time.Second, "with --load: time per scenario")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *loadBase != "" {
		if *seed == "" {
			*seed = filepath.Join(*dir, "seed")
		}
		err = load(ctx, *bin, *loadBase, *seed, *conc, *dur)
	} else {
		err = run(ctx, *bin, *dir, *listen, *nodes, *patients)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpgate-cluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, dir, listen string, nodes, patients int) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	pg, url, err := cluster.StartPostgres(ctx, filepath.Join(dir, "postgres"), "gpgate")
	if err != nil {
		return err
	}
	defer pg.Stop()
	fmt.Printf("PostgreSQL: %s (log %s)\n", url, pg.LogFile())
	seed := filepath.Join(dir, "seed")
	for _, args := range [][]string{
		{"migrate", "--database", url},
		{"demo", "--data", seed, "--database", url, "--patients", fmt.Sprint(patients), "--practices", "3", "--fast"},
	} {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("gpgate %s: %w", args[0], err)
		}
	}
	c, err := cluster.Start(ctx, cluster.Options{Bin: bin, Dir: filepath.Join(dir, "run"), Data: seed, Database: url, Nodes: nodes, Listen: listen, Log: os.Stdout})
	if err != nil {
		return err
	}
	defer c.Stop()
	for _, n := range c.Nodes {
		fmt.Printf("  %s at http://%s (log %s)\n", n.Name, n.Addr, filepath.Join(n.Dir, "serve.log"))
	}
	fmt.Printf(`
Try it (as in the README, against the balancer):
  B=%s K=%s/demo-client.jwk
  S=$(%s token --base $B --client demo-ehr --key $K --scope 'system/*.rs')
  curl -s -H "Authorization: Bearer $S" "$B/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990002517"
  %s conformance --base $B --client demo-ehr --key $K
  %s audit verify --database '%s'
Ctrl-C stops the nodes, HAProxy and PostgreSQL (the data stays in %s).
`, c.Base, seed, bin, bin, bin, url, dir)
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}
