package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/conformance"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
	"github.com/gpgate/gpgate/fhir/rest"
	"github.com/gpgate/gpgate/metrics"
	"github.com/gpgate/gpgate/viewer"
	"github.com/gpgate/gpgate/viewer/users/boltstore"
)

const (
	recordsFile = "records.db"
	idmapFile   = "idmap.db" // Patient ids placed by PDS (adapters/idmap)
)

// testHooks lets the black-box tests observe what serve wires (identity in
// production).
var testHooks = struct {
	idmap       func(adapters.IDMap) adapters.IDMap
	writeBehind func(*adapters.WriteBehind)
}{idmap: func(m adapters.IDMap) adapters.IDMap { return m }, writeBehind: func(*adapters.WriteBehind) {}}

// warnUnshared logs each registered practice that no active agreement
// shares: no consumer can read its records until one is added.
func warnUnshared(ctx context.Context, st *state, reg *adapters.Registry, log *slog.Logger) {
	ags, err := st.consent.List(ctx)
	if err != nil {
		log.Warn("agreements could not be listed", "err", err)
		return
	}
	shared := map[string]bool{}
	for _, a := range ags {
		if a.Status == consent.StatusActive {
			shared[a.Provider] = true
		}
	}
	for _, p := range reg.Practices() {
		if !shared[p.ODS] {
			log.Warn("practice has no active sharing agreement: no consumer can read its records (gpgate agreements add --provider ...)",
				"practice", p.ODS, "kind", p.Kind)
		}
	}
}

type serveOpts struct {
	data      string
	listen    string
	baseURL   string
	logLvl    string
	logFmt    string
	practices string
	cors      string
	// The audit anchor: the key that signs checkpoints and the file the
	// newest signed head is exported to, both outside the data directory.
	auditKey, auditHead string
	auditTrusted        stringList
	auditOverride       bool
	// sensitiveCodes are a region's further code sets (its export of NHS
	// Digital's GP summary exclusion refsets), added to the shipped ones.
	sensitiveCodes stringList
	// database is the PostgreSQL URL of the state every node shares ("":
	// bbolt files in data); node names this node in its audit entries.
	database, node string

	// TLS on the listener (certificate and key files), mutual TLS with a
	// client CA; plain HTTP only on loopback or with insecureHTTP.
	tlsCert, tlsKey, tlsClientCA string
	insecureHTTP                 bool
	// adminListen serves /healthz, /readyz and /metrics on a listener of
	// its own; without it they are on the main listener, /readyz and
	// /metrics to loopback callers only.
	adminListen string

	// Rate limits (requests per second and burst; 0 disables one).
	rateAddress, rateClient float64
	// trustedProxies are CIDRs of balancers whose X-Forwarded-For is believed.
	trustedProxies            string
	burstAddress, burstClient int
	clientConcurrent          int
	refusalWindow             time.Duration // aggregation window of refused authentications (default 1 min)

	// shutdownGrace is how long /readyz answers 503 before the listener
	// stops taking connections (for a load balancer to notice);
	// shutdownTimeout bounds the drain of requests in flight.
	shutdownGrace, shutdownTimeout time.Duration

	signals       bool                // handle SIGHUP (the real command; tests reload through onReload)
	hooks         func(h *serveHooks) // tests: reach the running server
	stderr        io.Writer           // where runServe prints
	pprof         string              // net/http/pprof on this loopback address ("": off)
	releaseMapped time.Duration       // how often mapped bbolt pages are given back (0: never)
}

// serveHooks let tests drive a running in-process server.
type serveHooks struct {
	Reload func() error
	Audit  auditStore
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o serveOpts
	fs := newFlags("serve [flags]", "Serves the GP records of the configured practices as UK Core FHIR R4.\nThe embedded store in --data is the default source; run `gpgate demo` first for demo data.\nSIGHUP reloads the practices file, the agreements and the TLS files; SIGTERM drains and stops.", stderr)
	fs.StringVar(&o.data, "data", "./gpgate-data", "data directory (embedded store, keys, audit log); must be private to gpgate's user (0700)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free port)")
	fs.StringVar(&o.baseURL, "base-url", "", "public base URL (default http(s)://<listen address>)")
	fs.StringVar(&o.practices, "practices", "", "JSON file of further practices and the PDS locator (default DATA/practices.json when it exists); see README")
	fs.StringVar(&o.logLvl, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFmt, "log-format", "json", "log format: json or text")
	fs.StringVar(&o.cors, "cors-origins", "", "browser origins allowed to call the API cross-origin, comma-separated (e.g. https://app.example.org), or * (default: none)")
	fs.StringVar(&o.auditKey, "audit-key", "", "file of the key that signs audit checkpoints, created 0600 on first use; never in the data directory (default DATA.audit-key beside it)")
	fs.StringVar(&o.auditHead, "audit-head", "", "file the newest signed audit head is exported to (default DATA.audit-head); ship copies off the host")
	fs.Var(&o.auditTrusted, "audit-trusted-key", "public key file (PEM) of an earlier audit key whose checkpoints still verify (repeatable)")
	fs.Var(&o.sensitiveCodes, "sensitive-codes", "CSV file of further sensitive codes, named <category>.<system>.csv in the format of consent/codesets (repeatable); added to the shipped sets")
	fs.BoolVar(&o.auditOverride, "audit-accept-unverified", false, "open an audit log that fails its start-up check (after investigating it); the override is itself audited")
	fs.StringVar(&o.database, "database", os.Getenv(databaseEnv), databaseUsage+"; run `gpgate migrate` first")
	fs.StringVar(&o.node, "node", "", "this node's name in the audit entries it records (default: the listen address with --database)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate chain (PEM); with --tls-key, the listener speaks TLS 1.2+ only")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM), mode 0600")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "CA certificates (PEM) of client certificates: mutual TLS, a client certificate is required and verified")
	fs.BoolVar(&o.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy only)")
	fs.StringVar(&o.adminListen, "admin-listen", "", "address for /healthz, /readyz and /metrics (default: on --listen, /readyz and /metrics to loopback callers only)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "networks of the balancers in front of gpgate, comma-separated CIDRs (e.g. 10.0.0.5/32); a request from one is taken to come from the address it appended to X-Forwarded-For, for rate limits and the audit (default: none: the TCP peer, always)")
	fs.Float64Var(&o.rateAddress, "rate-address", 50, "requests per second per source address (0: no limit)")
	fs.IntVar(&o.burstAddress, "burst-address", 200, "burst per source address")
	fs.Float64Var(&o.rateClient, "rate-client", 50, "requests per second per client (0: no limit)")
	fs.IntVar(&o.burstClient, "burst-client", 200, "burst per client")
	fs.IntVar(&o.clientConcurrent, "client-concurrency", 32, "concurrent requests per client (0: no limit)")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 0, "on SIGTERM, how long /readyz answers 503 before the listener closes")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	fs.DurationVar(&o.releaseMapped, "release-mapped", 10*time.Second, "how often to give back the pages of the bbolt files (audit log, records, state) read through their memory maps, keeping the resident set flat as the log grows; they stay in the page cache (0: never)")
	fs.StringVar(&o.pprof, "pprof-listen", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060); off by default")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o.signals, o.stderr = true, stderr
	log := newLogger(stderr, o.logLvl, o.logFmt)
	if o.pprof != "" {
		if err := servePprof(ctx, o.pprof, log); err != nil {
			return err
		}
	}
	return serve(ctx, o, log, func(url string) { fmt.Fprintf(stdout, "gpgate serving FHIR R4 at %s\n", url) })
}

// serve runs the server until ctx ends. ready is called with the base URL once
// the listener is open (tests use it to learn the port).
func serve(ctx context.Context, o serveOpts, log *slog.Logger, ready func(url string)) error {
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.tlsClientCA != "" && o.tlsCert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	if o.shutdownTimeout <= 0 {
		o.shutdownTimeout = 20 * time.Second
	}
	proxies, err := trustedProxies(o.trustedProxies)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return err
	}
	// Records, keys and the audit log: nobody but gpgate's user reads them.
	if err := checkDataDir(o.data); err != nil {
		return err
	}
	if m, running := runningServer(o.data); running && m.PID != os.Getpid() {
		return fmt.Errorf("a gpgate serve (pid %d, %s) is already running on %s", m.PID, m.URL, o.data)
	}
	// Patient ids are keyed with the deployment's secret, made at the first
	// start (or by `gpgate demo`), before any id is computed.
	if err := loadPatientIDKey(o.data, true); err != nil {
		return err
	}
	cfgPath := practicesPath(o.practices, o.data)
	var store *embedded.Store
	if _, err := os.Stat(filepath.Join(o.data, recordsFile)); err == nil {
		st, err := embedded.Open(filepath.Join(o.data, recordsFile))
		if err != nil {
			return lockedErr(err, o.data, recordsFile)
		}
		defer st.Close()
		store = st
	} else if cfgPath == "" {
		return fmt.Errorf("no embedded store in %s and no practices file (run `gpgate demo --data %s` first, or give --practices)", o.data, o.data)
	}
	// readConfig reads the practices file (at start and on SIGHUP).
	readConfig := func() (*practicesConfig, error) {
		if cfgPath == "" {
			return nil, nil
		}
		c, err := readPracticesConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		c.resolve(filepath.Dir(cfgPath))
		return c, nil
	}
	cfg, err := readConfig()
	if err != nil {
		return err
	}
	if cfg != nil {
		log.Info("practices file", "path", cfgPath, "practices", len(cfg.Practices))
	}
	var tf *tlsFiles
	if o.tlsCert != "" {
		tf = &tlsFiles{cert: o.tlsCert, key: o.tlsKey, clientCA: o.tlsClientCA}
		if err := tf.load(); err != nil {
			return err
		}
	}
	// No durable audit, no data: the server does not start without its log.
	if o.auditKey == "" {
		o.auditKey = auditKeyDefault(o.data)
	}
	if o.auditHead == "" {
		o.auditHead = auditHeadDefault(o.data)
	}
	var trusted []ed25519.PublicKey
	for _, f := range o.auditTrusted {
		k, err := audit.LoadPublicKey(f)
		if err != nil {
			return fmt.Errorf("--audit-trusted-key %s: %w", f, err)
		}
		trusted = append(trusted, k)
	}
	if o.node == "" && o.database != "" {
		o.node = o.listen
	}
	// The audit log and the state: in the data directory, or shared by
	// every node in PostgreSQL (backends.go). The log verifies its chain
	// from the last signed checkpoint, and against the exported head,
	// before it serves: a rewritten or truncated log refuses to open.
	back, err := openBackends(ctx, o, trusted, log)
	if err != nil {
		return lockedErr(err, o.data, auditFile)
	}
	// Closed last (deferred first): the audit log commits what is queued,
	// signs a final checkpoint and exports it.
	defer back.Close()
	auditLog, st := back.audit, back.state
	var mapped []mappedReleaser
	if r, ok := auditLog.(mappedReleaser); ok { // not the PostgreSQL log
		mapped = append(mapped, r)
	}
	if store != nil {
		mapped = append(mapped, store)
	}
	if st.db != nil {
		mapped = append(mapped, boltFile{st.db})
	}
	releaseMappedEvery(ctx, o.releaseMapped, log, mapped...)

	m := metrics.New(version)
	auditor := &timedAuditor{st: auditLog, m: m}
	refusals := access.NewRefusals(access.RefusalOptions{Auditor: auditor, Window: o.refusalWindow, Logger: log})

	// The practices: the embedded store's and the practices file's (live
	// ones through one snapshot cache, PDS finding their patients, the id
	// map written behind the request path), each source timed for metrics.
	// SIGHUP builds a new registry from the file and swaps it in.
	snapOpts := adapters.SnapshotOptions{Logger: log}
	if cfg != nil && cfg.Snapshots != nil {
		snapOpts.TTL, snapOpts.MaxBytes = time.Duration(cfg.Snapshots.TTL), cfg.Snapshots.MaxBytes
		snapOpts.PartialTTL = time.Duration(cfg.Snapshots.PartialTTL)
	}
	snaps := adapters.NewSnapshots(snapOpts)
	regs := &liveRegistry{}
	var liveMu sync.Mutex
	var folders, livePractices []string
	var env *sourceEnv
	var closeWB []func()
	wrap := func(ods string, src adapters.Source) adapters.Source {
		return timedSource{ods: ods, inner: src, obs: m}
	}
	budget := 10 * time.Second // the core's bound on a fetch: past every practice's own deadline
	loadRegistry := func(base string, cfg *practicesConfig) (int, error) {
		regOpts := adapters.RegistryOptions{Logger: log, IDMap: back.ids}
		if cfg != nil && cfg.PDS != nil {
			loc, err := pdsLocator(cfg.PDS, log)
			if err != nil {
				return 0, fmt.Errorf("pds: %w", err)
			}
			wb := adapters.NewWriteBehind(testHooks.idmap(back.ids), adapters.WriteBehindOptions{Logger: log})
			testHooks.writeBehind(wb)
			liveMu.Lock()
			closeWB = append(closeWB, func() { _ = wb.Close() })
			liveMu.Unlock()
			regOpts.Locator, regOpts.IDMap = loc, wb
		}
		reg := adapters.NewRegistryWith(regOpts)
		e := newSourceEnv(log, snaps, base)
		e.wrap = wrap
		regd, err := registerPractices(ctx, reg, store, cfg, e)
		if err != nil {
			e.close()
			return 0, err
		}
		if cfg != nil {
			for _, p := range cfg.Practices {
				if p.live() && p.deadline()+2*time.Second > budget {
					budget = p.deadline() + 2*time.Second
				}
			}
		}
		regs.set(reg)
		liveMu.Lock()
		old := env
		env, folders, livePractices = e, regd.reindex, regd.live
		liveMu.Unlock()
		if old != nil {
			// requests in flight on the old sources finish first
			time.AfterFunc(o.shutdownTimeout+10*time.Second, func() { old.close() })
		}
		return regd.count, nil
	}
	defer func() {
		liveMu.Lock()
		e, wbs := env, closeWB
		liveMu.Unlock()
		if e != nil {
			e.close()
		}
		for _, f := range wbs {
			f() // before the backends close: the last id-map entries are written
		}
	}()

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	if tf == nil && !isLoopback(ln.Addr()) && !o.insecureHTTP {
		return fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address: give --tls-cert and --tls-key, or --insecure-http behind a TLS-terminating proxy", ln.Addr())
	}
	scheme := "http"
	if tf != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tf.config(true))
	}
	base := o.baseURL
	if base == "" {
		base = scheme + "://" + ln.Addr().String()
	}
	practices, err := loadRegistry(base, cfg)
	if err != nil {
		return err
	}
	go reindexLoop(ctx, regs, func() []string { liveMu.Lock(); defer liveMu.Unlock(); return folders }, 2*time.Second, log)
	warnUnshared(ctx, st, regs.get(), log)
	exclusions, err := consent.ExclusionsWithFiles(o.sensitiveCodes...)
	if err != nil {
		return fmt.Errorf("--sensitive-codes: %w", err)
	}
	pats := patients{regs}
	policy, err := consent.NewService(consent.ServiceOptions{Agreements: st.consent, Consents: st.consent,
		PracticeOf: pats.PracticeOf, ResolveNHS: pats.Resolve, Logger: log})
	if err != nil {
		return err
	}
	clientAdmin := &lateClientAdmin{}
	// The record-access core: every face goes through it, and it cannot be
	// built without its guards.
	core, err := access.New(access.Config{
		Patients:     pats,
		Records:      records{regs},
		Scopes:       smart.Authorizer{},
		Policy:       policy,
		Redactor:     consent.NewRedactor(exclusions, 0),
		Auditor:      auditor,
		Consents:     policy,
		AuditLog:     auditLogAPI{auditLog},
		Agreements:   policy,
		ClientAdmin:  clientAdmin,
		AuditAdmin:   auditAdmin{st: auditLog, key: o.auditKey, head: o.auditHead, trusted: trusted},
		ConsentAdmin: policy,
		SourceBudget: budget,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	// The practice trail: each granted access is told to the practice
	// system, from gpgate's own durable log, off the request path.
	trail, err := auditLog.Forward(audit.ForwardOptions{Name: "practice-trail", Match: audit.PatientAccessGranted, To: practiceTrail{regs}, Logger: log,
		Linger: 50 * time.Millisecond}) // in groups: the embedded store writes them within ~0.3 s
	if err != nil {
		return err
	}
	m.WatchAudit(auditStats(auditLog, map[string]*audit.Forwarder{"practice-trail": trail}, refusals))
	m.WatchCircuits(regs.circuits)
	// The Shared Record Viewer: clinicians without an integrated EPR, on the
	// same core (local accounts in the state file).
	users, err := boltstore.New(back.usersDB)
	if err != nil {
		return err
	}
	authz, err := smart.NewServer(ctx, smart.Options{Clients: st.clients, Keys: st.clients, BaseURL: base, Logger: log, Auditor: auditor,
		Narrower: narrower{core}, Events: tokenEvents{m: m, refusals: refusals}, ReplayCache: back.replay})
	if err != nil {
		return err
	}
	defer authz.Close()
	back.watch(ctx, policy, authz, log)
	clientAdmin.set(authz.Admin())
	uris := authz.OAuthURIs()
	origins := corsOrigins(o.cors)
	capOpts := conformance.Options{BaseURL: base, Version: version, Date: time.Now(),
		OAuthURIs: map[string]string{"token": uris.Token, "introspect": uris.Introspect}, AuditEvent: true, Consent: true, CORS: len(origins) > 0}
	capability := conformance.CapabilityStatement(capOpts)
	view, err := viewer.New(viewer.Config{Core: viewerCore{core}, Users: users, Log: log,
		InsecureCookies: loopbackBase(base), SystemScopes: viewerScopes})
	if err != nil {
		return err
	}
	var draining atomic.Bool
	health := &health{draining: &draining, state: st, auditor: auditor, authz: authz, regs: regs}
	e, err := rest.New(rest.Config{
		BaseURL:    base,
		Core:       core,
		Auth:       bearerAuth{v: authz.Verifier(), realm: base, refusals: refusals, observe: m.AuthRefused},
		Capability: capability,
		Static:     conformance.OperationDefinitions(capOpts), // served at the canonicals the statement names
		Logger:     log,
		Security:   rest.Security{HSTS: tf != nil, OwnCSP: []string{viewer.Base}, TrustedProxies: proxies},
		Limits: rest.Limits{PerAddress: rate.Limit(o.rateAddress), AddressBurst: o.burstAddress, PerClient: rate.Limit(o.rateClient),
			ClientBurst: o.burstClient, ClientConcurrent: o.clientConcurrent, Refused: limitRefused(m, refusals),
			Probes: []string{pathHealthz, pathReadyz}},
		Observer:    m,
		CORSOrigins: origins,
		Mount: func(e *echo.Echo) {
			e.GET(smart.PathConfiguration, echo.WrapHandler(authz.ConfigurationHandler()))
			e.GET(smart.PathJWKS, echo.WrapHandler(authz.JWKSHandler()))
			e.POST(smart.PathToken, echo.WrapHandler(authz.TokenHandler()))
			e.Match([]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete}, smart.PathToken,
				echo.WrapHandler(http.HandlerFunc(smart.MethodNotAllowed)))
			e.POST(smart.PathIntrospect, echo.WrapHandler(authz.IntrospectHandler()))
			e.Any(viewer.Base+"/*", echo.WrapHandler(view))
			toViewer := func(c echo.Context) error { return c.Redirect(http.StatusFound, viewer.Base+"/") }
			e.GET(viewer.Base, toViewer)
			e.GET("/", toViewer)
			e.GET(pathHealthz, echo.WrapHandler(http.HandlerFunc(health.healthz)))
			if o.adminListen == "" {
				// without an admin listener, readiness and metrics are for
				// callers on this host only
				e.GET(pathReadyz, echo.WrapHandler(loopbackOnly(http.HandlerFunc(health.readyz))))
				e.GET(pathMetrics, echo.WrapHandler(loopbackOnly(m.Handler())))
			}
		},
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: countInFlight(m, e), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 120 * time.Second, ErrorLog: slogErrorLog(log)}
	var adminSrv *http.Server
	var adminURL string
	if o.adminListen != "" {
		aln, err := net.Listen("tcp", o.adminListen)
		if err != nil {
			return err
		}
		if tf == nil && !isLoopback(aln.Addr()) && !o.insecureHTTP {
			aln.Close()
			return fmt.Errorf("refusing plain HTTP for --admin-listen %s, which is not a loopback address", aln.Addr())
		}
		ascheme := "http"
		if tf != nil {
			ascheme = "https"
			aln = tls.NewListener(aln, tf.config(false))
		}
		adminURL = ascheme + "://" + aln.Addr().String()
		mux := http.NewServeMux()
		mux.HandleFunc("GET "+pathHealthz, health.healthz)
		mux.HandleFunc("GET "+pathReadyz, health.readyz)
		mux.Handle("GET "+pathMetrics, m.Handler())
		adminSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go func() { _ = adminSrv.Serve(aln) }()
		log.Info("gpgate admin listener", "url", adminURL)
	}
	reload := func() error {
		start := time.Now()
		var errs []error
		if c, err := readConfig(); err != nil {
			errs = append(errs, fmt.Errorf("practices file: %w", err))
		} else if _, err := loadRegistry(base, c); err != nil {
			errs = append(errs, fmt.Errorf("practices: %w", err))
		}
		policy.Reload()
		if err := authz.ReloadKeys(ctx); err != nil {
			errs = append(errs, fmt.Errorf("signing keys: %w", err))
		}
		if tf != nil {
			if err := tf.load(); err != nil {
				errs = append(errs, fmt.Errorf("TLS: %w", err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			log.Error("reload failed; what could not be reloaded keeps its previous configuration", "err", err)
			return err
		}
		log.Info("configuration reloaded", "practices", len(regs.get().Practices()), "took_ms", time.Since(start).Milliseconds())
		return nil
	}
	if o.hooks != nil {
		o.hooks(&serveHooks{Reload: reload, Audit: auditLog})
	}
	if err := writeServeMarker(o.data, serveMarker{PID: os.Getpid(), URL: base, Admin: adminURL}); err != nil {
		return err
	}
	defer removeServeMarker(o.data)
	log.Info("gpgate listening", "url", base, "practices", practices, "live_practices", len(livePractices), "version", version, "tls", tf != nil, "mutual_tls", o.tlsClientCA != "")
	if ready != nil {
		ready(base)
	}
	hup := make(chan os.Signal, 1)
	if o.signals {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for running := true; running; {
		select {
		case err := <-errc:
			return err
		case <-hup:
			_ = reload()
		case <-ctx.Done():
			running = false
		}
	}
	// SIGTERM: not ready (a load balancer stops sending), then no new
	// connections, the requests in flight answered, the refusal aggregates
	// and the practice trail flushed; the audit log closes last (deferred).
	log.Info("shutting down: draining requests in flight")
	draining.Store(true)
	if o.shutdownGrace > 0 {
		time.Sleep(o.shutdownGrace)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	serr := srv.Shutdown(sctx)
	if adminSrv != nil {
		_ = adminSrv.Shutdown(sctx)
	}
	if err := refusals.Close(sctx); err != nil {
		log.Error("refused authentications could not be audited at shutdown", "err", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if err := trail.Drain(dctx); err != nil {
		log.Warn("practice trail not drained at shutdown; it resumes from its cursor on the next start", "err", err)
	}
	if serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	log.Info("stopped cleanly")
	return nil
}

// records is the registry as the core's Records, with the demographics
// fast path of the sources that offer one (the embedded store).
type records struct{ *liveRegistry }

func (r records) Demographics(ctx context.Context, nhs fhir.NHSNumber) (*fhir.Record, bool, error) {
	p, err := r.Locate(ctx, nhs)
	if err != nil {
		return nil, false, err
	}
	if d, ok := p.Source.(access.DemographicRecords); ok {
		return d.Demographics(ctx, nhs)
	}
	return nil, false, nil
}

// patients adapts the registry's patient index to access.Patients and the
// consent service.
type patients struct{ reg *liveRegistry }

func (p patients) Resolve(ctx context.Context, id string) (fhir.NHSNumber, error) {
	return p.reg.Resolve(ctx, id)
}

func (p patients) PracticeOf(ctx context.Context, nhs fhir.NHSNumber) (string, error) {
	pr, err := p.reg.Locate(ctx, nhs)
	if err != nil {
		return "", err
	}
	return pr.ODS, nil
}

// lateClientAdmin is the client admin of the token server, which is built
// after the core (its narrower needs the core).
type lateClientAdmin struct{ a atomic.Pointer[smart.Admin] }

func (l *lateClientAdmin) set(a smart.Admin) { l.a.Store(&a) }

func (l *lateClientAdmin) admin() (*smart.Admin, error) {
	a := l.a.Load()
	if a == nil {
		return nil, fhir.Errorf(fhir.CodeTimeout, "the server is starting")
	}
	return a, nil
}

func (l *lateClientAdmin) ListClients(ctx context.Context) ([]byte, error) {
	a, err := l.admin()
	if err != nil {
		return nil, err
	}
	return a.ListClients(ctx)
}

func (l *lateClientAdmin) GetClient(ctx context.Context, id string) ([]byte, error) {
	a, err := l.admin()
	if err != nil {
		return nil, err
	}
	return a.GetClient(ctx, id)
}

func (l *lateClientAdmin) AddClient(ctx context.Context, body []byte) ([]byte, error) {
	a, err := l.admin()
	if err != nil {
		return nil, err
	}
	return a.AddClient(ctx, body)
}

func (l *lateClientAdmin) SetClient(ctx context.Context, id, action string, body []byte) ([]byte, error) {
	a, err := l.admin()
	if err != nil {
		return nil, err
	}
	return a.SetClient(ctx, id, action, body)
}

func (l *lateClientAdmin) RotateSigningKey(ctx context.Context, body []byte) ([]byte, error) {
	a, err := l.admin()
	if err != nil {
		return nil, err
	}
	return a.RotateSigningKey(ctx, body)
}

// auditAdmin is the audit log's verify and export for the admin API, run
// while the server writes the log.
type auditAdmin struct {
	st        auditStore
	key, head string
	trusted   []ed25519.PublicKey
}

func (a auditAdmin) VerifyAudit(ctx context.Context) ([]byte, error) {
	vo := audit.VerifyOptions{}
	if h, err := audit.ReadHeadFile(a.head); err == nil {
		vo.Head = &h
	}
	rep, err := a.st.VerifyWith(ctx, vo)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	out := map[string]any{"ok": rep.OK(), "entries": rep.Entries, "checkpoints": rep.Checkpoints, "anchor": rep.Anchor,
		"head": rep.Head, "headChecked": rep.HeadChecked, "unanchored": rep.Unanchored, "warnings": rep.Warnings}
	if rep.Warnings == nil {
		out["warnings"] = []string{}
	}
	if !rep.OK() {
		out["firstBroken"] = rep.FirstBroken
		out["error"] = rep.Err.Error()
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return b, nil
}

func (a auditAdmin) ExportAudit(ctx context.Context, w io.Writer, since time.Time) (int, error) {
	return a.st.Export(ctx, w, since)
}

// countInFlight tracks requests being answered, for metrics and the drain.
func countInFlight(m *metrics.Metrics, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := m.InFlight()
		defer done()
		h.ServeHTTP(w, r)
	})
}

// slogErrorLog routes net/http's own messages (TLS handshake failures...)
// to the structured log at debug level.
func slogErrorLog(log *slog.Logger) *stdLogger {
	return newStdLogger(log)
}

// corsOrigins splits the --cors-origins list.
// trustedProxies parses --trusted-proxies: CIDRs, or single addresses
// (taken as /32 or /128).
func trustedProxies(s string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			ip := net.ParseIP(f)
			if ip == nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is neither an address nor a CIDR", f)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither an address nor a CIDR", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func corsOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimSuffix(o, "/"))
		}
	}
	return out
}
