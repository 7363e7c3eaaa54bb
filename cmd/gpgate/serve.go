package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/conformance"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
	"github.com/gpgate/gpgate/fhir/rest"
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
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o serveOpts
	fs := newFlags("serve [flags]", "Serves the GP records of the configured practices as UK Core FHIR R4.\nThe embedded store in --data is the default source; run `gpgate demo` first for demo data.", stderr)
	fs.StringVar(&o.data, "data", "./gpgate-data", "data directory (embedded store, keys, audit log)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free port)")
	fs.StringVar(&o.baseURL, "base-url", "", "public base URL (default http://<listen address>)")
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr, o.logLvl, o.logFmt)
	return serve(ctx, o, log, func(url string) { fmt.Fprintf(stdout, "gpgate serving FHIR R4 at %s\n", url) })
}

// serve runs the server until ctx ends. ready is called with the base URL once
// the listener is open (tests use it to learn the port).
func serve(ctx context.Context, o serveOpts, log *slog.Logger, ready func(url string)) error {
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
	var cfg *practicesConfig
	if cfgPath != "" {
		c, err := readPracticesConfig(cfgPath)
		if err != nil {
			return err
		}
		c.resolve(filepath.Dir(cfgPath))
		cfg = c
		log.Info("practices file", "path", cfgPath, "practices", len(c.Practices))
	}
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return err
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
	// every node in PostgreSQL (backends.go).
	back, err := openBackends(ctx, o, trusted, log)
	if err != nil {
		return lockedErr(err, o.data, auditFile)
	}
	defer back.Close()
	auditLog, st := back.audit, back.state

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	base := o.baseURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}

	// Live practices: one snapshot cache for all; PDS finds their patients;
	// the id map remembers the patient ids PDS placed, written behind the
	// request path.
	snapOpts := adapters.SnapshotOptions{Logger: log}
	regOpts := adapters.RegistryOptions{Logger: log}
	if cfg != nil && cfg.Snapshots != nil {
		snapOpts.TTL, snapOpts.MaxBytes = time.Duration(cfg.Snapshots.TTL), cfg.Snapshots.MaxBytes
		snapOpts.PartialTTL = time.Duration(cfg.Snapshots.PartialTTL)
	}
	if cfg != nil && cfg.PDS != nil {
		loc, err := pdsLocator(cfg.PDS, log)
		if err != nil {
			return fmt.Errorf("pds: %w", err)
		}
		// The durable id map is the state's (bbolt in the data directory,
		// or PostgreSQL shared by every node).
		wb := adapters.NewWriteBehind(testHooks.idmap(back.ids), adapters.WriteBehindOptions{Logger: log})
		testHooks.writeBehind(wb)
		defer wb.Close() // runs before the backends close: the last entries are written
		regOpts.Locator, regOpts.IDMap = loc, wb
	} else {
		regOpts.IDMap = back.ids
	}
	reg := adapters.NewRegistryWith(regOpts)
	env := newSourceEnv(log, adapters.NewSnapshots(snapOpts), base)
	defer env.close()
	regd, err := registerPractices(ctx, reg, store, cfg, env)
	if err != nil {
		return err
	}
	go reindexLoop(ctx, reg, regd.reindex, 2*time.Second, log)
	practices := regd.count
	budget := 10 * time.Second // the core's bound on a fetch: past every practice's own deadline
	if cfg != nil {
		for _, p := range cfg.Practices {
			if p.live() && p.deadline()+2*time.Second > budget {
				budget = p.deadline() + 2*time.Second
			}
		}
	}

	warnUnshared(ctx, st, reg, log)
	exclusions, err := consent.ExclusionsWithFiles(o.sensitiveCodes...)
	if err != nil {
		return fmt.Errorf("--sensitive-codes: %w", err)
	}
	pats := patients{reg}
	policy, err := consent.NewService(consent.ServiceOptions{Agreements: st.consent, Consents: st.consent,
		PracticeOf: pats.PracticeOf, ResolveNHS: pats.Resolve, Logger: log})
	if err != nil {
		return err
	}
	// The record-access core: every face goes through it, and it cannot be
	// built without its guards.
	core, err := access.New(access.Config{
		Patients:     pats,
		Records:      reg,
		Scopes:       smart.Authorizer{},
		Policy:       policy,
		Redactor:     consent.NewRedactor(exclusions, 0),
		Auditor:      auditLog,
		Consents:     policy,
		AuditLog:     auditLogAPI{auditLog},
		Agreements:   policy,
		SourceBudget: budget,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	// The practice trail: each granted access is told to the practice
	// system, from gpgate's own durable log, off the request path.
	trail, err := auditLog.Forward(audit.ForwardOptions{Name: "practice-trail", Match: audit.PatientAccessGranted, To: practiceTrail{reg}, Logger: log})
	if err != nil {
		return err
	}
	// Deferred calls run last-in first-out: the trail catches up before the
	// audit log and the stores close.
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := trail.Drain(dctx); err != nil {
			log.Warn("practice trail not drained at shutdown; it resumes from its cursor on the next start", "err", err)
		}
	}()
	// The Shared Record Viewer: clinicians without an integrated EPR, on the
	// same core (local accounts in the state file).
	users, err := boltstore.New(back.usersDB)
	if err != nil {
		return err
	}
	authz, err := smart.NewServer(ctx, smart.Options{Clients: st.clients, Keys: st.clients, BaseURL: base, Logger: log, Auditor: auditLog,
		Narrower: narrower{core}, ReplayCache: back.replay})
	if err != nil {
		return err
	}
	defer authz.Close()
	back.watch(ctx, policy, authz, log)
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
	e, err := rest.New(rest.Config{
		BaseURL:     base,
		Core:        core,
		Auth:        bearerAuth{v: authz.Verifier(), realm: base},
		Capability:  capability,
		Static:      conformance.OperationDefinitions(capOpts), // served at the canonicals the statement names
		Logger:      log,
		CORSOrigins: origins,
		Mount: func(e *echo.Echo) {
			e.GET(smart.PathConfiguration, echo.WrapHandler(authz.ConfigurationHandler()))
			e.GET(smart.PathJWKS, echo.WrapHandler(authz.JWKSHandler()))
			e.POST(smart.PathToken, echo.WrapHandler(authz.TokenHandler()))
			e.POST(smart.PathIntrospect, echo.WrapHandler(authz.IntrospectHandler()))
			e.Any(viewer.Base+"/*", echo.WrapHandler(view))
			toViewer := func(c echo.Context) error { return c.Redirect(http.StatusFound, viewer.Base+"/") }
			e.GET(viewer.Base, toViewer)
			e.GET("/", toViewer)
		},
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	log.Info("gpgate listening", "url", base, "practices", practices, "live_practices", len(regd.live), "version", version)
	if ready != nil {
		ready(base)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// patients adapts the registry's patient index to access.Patients and the
// consent service.
type patients struct{ reg *adapters.Registry }

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

// corsOrigins splits the --cors-origins list.
func corsOrigins(s string) []string {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, strings.TrimSuffix(o, "/"))
		}
	}
	return out
}
