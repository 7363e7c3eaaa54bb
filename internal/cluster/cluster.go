// Package cluster runs a multi-node gpgate on one machine, on loopback, for
// `make cluster` and `make cluster-test`: a local PostgreSQL (Debian's
// postgresql package, via pglocal, with its durable defaults), N `gpgate
// serve --database` nodes, each with its own copy of the data directory's
// records, and HAProxy (Debian's haproxy package) balancing them.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gpgate/gpgate/postgres/pglocal"
)

// ErrNoHAProxy is returned when haproxy is not installed.
var ErrNoHAProxy = errors.New("cluster: haproxy not found: apt-get install haproxy")

// StartPostgres starts a durable local PostgreSQL in dir and creates the
// database name; it returns the server and the database's URL.
func StartPostgres(ctx context.Context, dir, name string) (*pglocal.Server, string, error) {
	srv, err := pglocal.New(pglocal.Options{Dir: dir, Settings: map[string]string{"max_connections": "300"}})
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, "", err
	}
	c, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		srv.Stop()
		return nil, "", err
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		srv.Stop()
		return nil, "", err
	}
	if !exists {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			srv.Stop()
			return nil, "", err
		}
	}
	return srv, srv.URL(name), nil
}

// Options configure the gpgate nodes and the balancer.
type Options struct {
	Bin      string // the gpgate binary
	Dir      string // work directory: node-N/, haproxy.cfg, logs
	Data     string // a data directory with records.db (copied to each node)
	Database string // the PostgreSQL URL (migrated)
	Nodes    int    // default 3
	// Listen is the balancer's address (host:port); the nodes' base URL
	// is http://Listen. Empty: a free port.
	Listen string
	// AuditKey is the audit key file every node shares (default
	// Dir/audit.key: outside every node's data directory).
	AuditKey string
	// Args are further `gpgate serve` flags every node gets (rate limits,
	// for instance).
	Args []string
	Log  io.Writer // progress; nil: discarded
}

// sharedFiles are further files of the data directory every node needs
// the same copy of, when present.
var sharedFiles = []string{"patient-id.key"}

// Node is one gpgate process.
type Node struct {
	Name, Addr, Dir string
	cmd             *exec.Cmd
	done            chan struct{}
}

// Cluster is the running nodes and balancer.
type Cluster struct {
	opt     Options
	Base    string // http://Listen
	Nodes   []*Node
	haproxy *exec.Cmd
	hdone   chan struct{}
	mu      sync.Mutex
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Start starts the nodes (the first alone, so it makes the signing key
// and the audit key; the others at once) and the balancer, and waits until
// the balancer answers.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		return nil, ErrNoHAProxy
	}
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.AuditKey == "" {
		o.AuditKey = filepath.Join(o.Dir, "audit.key")
	}
	if o.Listen == "" {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		o.Listen = a
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cluster{opt: o, Base: "http://" + o.Listen}
	for i := 0; i < o.Nodes; i++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		n := &Node{Name: fmt.Sprintf("node-%d", i+1), Addr: addr, Dir: filepath.Join(o.Dir, fmt.Sprintf("node-%d", i+1))}
		if err := os.RemoveAll(n.Dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(n.Dir, "data"), 0o700); err != nil {
			return nil, err
		}
		if err := copyFile(filepath.Join(o.Data, "records.db"), filepath.Join(n.Dir, "data", "records.db")); err != nil {
			return nil, err
		}
		// every node must derive the same Patient ids: one deployment key
		// (when the data directory has one)
		for _, f := range sharedFiles {
			if _, err := os.Stat(filepath.Join(o.Data, f)); err == nil {
				if err := copyFile(filepath.Join(o.Data, f), filepath.Join(n.Dir, "data", f)); err != nil {
					return nil, err
				}
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.StartNode(ctx, 0); err != nil {
		c.Stop()
		return nil, err
	}
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i := 1; i < len(c.Nodes); i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); errs[i] = c.StartNode(ctx, i) }(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.startHAProxy(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	fmt.Fprintf(o.Log, "cluster: %d gpgate nodes behind HAProxy at %s (PostgreSQL %s)\n", len(c.Nodes), c.Base, redactURL(o.Database))
	return c, nil
}

func redactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if s := strings.Index(u, "://"); s >= 0 && s < at {
			return u[:s+3] + "…" + u[at:]
		}
	}
	return u
}

// StartNode starts node i (again, after StopNode or KillNode) and waits
// until it serves.
func (c *Cluster) StartNode(ctx context.Context, i int) error {
	n := c.Nodes[i]
	logf, err := os.OpenFile(filepath.Join(n.Dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.opt.Bin, "serve", "--data", filepath.Join(n.Dir, "data"), "--database", c.opt.Database,
		"--listen", n.Addr, "--base-url", c.Base, "--node", n.Name, "--audit-key", c.opt.AuditKey,
		"--audit-head", filepath.Join(n.Dir, "audit-head"), "--log-format", "json", "--log-level", "warn",
		// the balancer is on this host: the caller's address is the one it
		// forwards (rate limits and the audit see callers, not HAProxy)
		"--trusted-proxies", "127.0.0.1/32,::1/128")
	cmd.Args = append(cmd.Args, c.opt.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GPGATE_DATABASE=") // the flag, not the environment, names the database
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	c.mu.Lock()
	n.cmd, n.done = cmd, done
	c.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if ok(ctx, "http://"+n.Addr+"/metadata") {
			return nil
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(n.Dir, "serve.log"))
			return fmt.Errorf("cluster: %s exited at start: %s", n.Name, tail(b, 800))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s did not start", n.Name)
		}
	}
}

func ok(ctx context.Context, url string) bool {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck
	res.Body.Close()
	return res.StatusCode == 200
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Dir is the cluster's work directory (audit.key, node-N/, haproxy.cfg).
func (c *Cluster) Dir() string { return c.opt.Dir }

// KillNode kills node i with SIGKILL: no drain, requests in flight are cut.
func (c *Cluster) KillNode(i int) { c.signal(i, syscall.SIGKILL) }

// StopNode stops node i with SIGTERM (drains) and waits.
func (c *Cluster) StopNode(i int) { c.signal(i, syscall.SIGTERM) }

func (c *Cluster) signal(i int, sig syscall.Signal) {
	c.mu.Lock()
	n := c.Nodes[i]
	cmd, done := n.cmd, n.done
	n.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// haproxyConfig balances the nodes round robin, with active health checks
// on /readyz (a dead or draining node is out within a second; probes are
// outside gpgate's rate limits), the caller's address forwarded
// (X-Forwarded-For, believed by the nodes' --trusted-proxies), retries of connections refused
// (redispatched to another node: a request is only lost if it was in
// flight on a node that died), and a cookie that keeps a Shared Record
// Viewer session on the node that holds it (sessions are per node).
func (c *Cluster) haproxyConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096

defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    retries 3
    option redispatch
    option http-server-close
    option forwardfor

frontend gpgate
    bind %s
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
    cookie GPGATENODE insert indirect nocache httponly
`, c.opt.Listen)
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "    server %s %s check cookie %s\n", n.Name, n.Addr, n.Name)
	}
	return b.String()
}

func (c *Cluster) startHAProxy(ctx context.Context) error {
	cfg := filepath.Join(c.opt.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(c.haproxyConfig()), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(c.opt.Dir, "haproxy.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command("haproxy", "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	c.haproxy, c.hdone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(c.hdone) }()
	deadline := time.Now().Add(20 * time.Second)
	for !ok(ctx, c.Base+"/metadata") {
		select {
		case <-c.hdone:
			b, _ := os.ReadFile(filepath.Join(c.opt.Dir, "haproxy.log"))
			return fmt.Errorf("cluster: haproxy exited: %s", tail(b, 800))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("cluster: the balancer does not answer")
		}
	}
	return nil
}

// Stop stops the balancer and the nodes (SIGTERM, drained).
func (c *Cluster) Stop() {
	if c.haproxy != nil {
		_ = c.haproxy.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.hdone:
		case <-time.After(10 * time.Second):
			_ = c.haproxy.Process.Kill()
			<-c.hdone
		}
		c.haproxy = nil
	}
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func(i int) { defer wg.Done(); c.StopNode(i) }(i)
	}
	wg.Wait()
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
