package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

// runPractices manages the practices file (DATA/practices.json unless
// --practices names another) and probes its practices.
func runPractices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage:
  gpgate practices list [--data DIR] [--practices FILE]
        the configured practices with their kind, source and health (a quick probe)
  gpgate practices add --ods ODS --kind gp2gp|gpconnect|fhirapi [--name NAME] [kind flags] [--replace]
        gp2gp:            --dir DIR [--pds DIR] [--manifest FILE]
        gpconnect:        --recorded DIR   (recorded structured records)
                      or  --url https://... --cert FILE --key FILE --ca FILE --from-asid ASID --to-asid ASID
                          [--diary-entries] [--fan-out=false]
        fhirapi:          --url URL [--token-url URL --client-id ID --key FILE --scope S] [--page-size N] [--retries N]
        live kinds:       [--deadline 10s] [--area-timeout 8s] [--max-concurrent 8] [--failures 5] [--open-for 30s]
  gpgate practices remove --ods ODS
  gpgate practices pds --recorded DIR | --url URL [--token-url URL --client-id ID --key FILE] | --none
        the PDS locator that finds the practice of patients no folder lists
  gpgate practices test ODS [--nhs N] [--org ODS]
        probe one practice: configuration, reachability, TLS certificates (expiry, chain),
        a test patient through the source, PDS, agreements; one line per check, exit 1 on failure

The practices file is DIR/practices.json (serve reads it when --practices is not given).
Relative paths in it are relative to its folder; paths given to add are stored absolute.
Restart gpgate serve to apply changes.
`)
	}
	if done, err := helpRequested(args, usage, stdout); done {
		return err
	}
	sub := args[0]
	rest := args[1:]
	var target string
	if sub == "test" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintln(stderr, "gpgate practices test: the practice's ODS code comes first: gpgate practices test ODS [--nhs N]")
			return errUsage
		}
		target, rest = rest[0], rest[1:]
	}
	fs := newFlags("practices "+sub+" [flags]", "Manage and probe the practices file.", stderr)
	data := fs.String("data", "./gpgate-data", "data directory")
	file := fs.String("practices", "", "practices file (default DATA/practices.json)")
	var f *addFlags
	var nhs, org *string
	var pf *pdsFlags
	switch sub {
	case "list":
	case "add":
		f = newAddFlags(fs)
	case "remove":
		f = &addFlags{}
		fs.StringVar(&f.ods, "ods", "", "ODS code of the practice to remove (required)")
	case "pds":
		pf = newPDSFlags(fs)
	case "test":
		nhs = fs.String("nhs", "", "NHS number of a test patient to fetch through the source")
		org = fs.String("org", "Y99000", "requesting organisation the probe names to a GP Connect provider")
	default:
		fmt.Fprintf(stderr, "gpgate practices: unknown subcommand %q\n", sub)
		usage(stderr)
		return errUsage
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	path := *file
	if path == "" {
		path = filepath.Join(*data, practicesFile)
	}
	switch sub {
	case "list":
		return practicesList(ctx, path, stdout)
	case "add":
		return practicesAdd(path, fs, f, stdout)
	case "remove":
		return practicesRemove(path, f.ods, stdout)
	case "pds":
		return practicesPDS(path, fs, pf, stdout)
	default:
		ok, err := practicesTest(ctx, path, *data, target, fhir.NHSNumber(strings.ReplaceAll(*nhs, " ", "")), *org, stdout)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("practice %s failed a check", target)
		}
		return nil
	}
}

// loadForEdit reads the practices file as written (an absent file is an
// empty one).
func loadForEdit(path string) (*practicesConfig, error) {
	c, err := readPracticesConfig(path)
	if errors.Is(err, os.ErrNotExist) {
		return &practicesConfig{}, nil
	}
	return c, err
}

// addFlags are the practice fields as flags; only those given go in.
type addFlags struct {
	ods, name, kind string
	replace         bool
	strs            map[string]*string
	ints            map[string]*int
	bools           map[string]*bool
}

// The practice fields settable by flag: flag name -> JSON field.
var (
	addStringFields = []struct{ flag, field, help string }{
		{"dir", "dir", "gp2gp: folder of extracts"},
		{"pds", "pds", "gp2gp: folder of PDS-style Patients (demographics)"},
		{"manifest", "manifest", "gp2gp: manifest binding files to NHS numbers"},
		{"recorded", "recorded", "gpconnect: folder of recorded structured records"},
		{"url", "url", "gpconnect: the provider's FHIR service root (https); fhirapi: the upstream's base URL"},
		{"cert", "cert", "gpconnect: gpgate's client certificate (PEM)"},
		{"key", "key", "gpconnect: its private key (PEM); fhirapi: the client assertion signing key"},
		{"ca", "ca", "gpconnect: CA bundle the provider's certificate must chain to"},
		{"from-asid", "from_asid", "gpconnect: gpgate's ASID (Ssp-From)"},
		{"to-asid", "to_asid", "gpconnect: the provider's ASID (Ssp-To)"},
		{"token-url", "token_url", "fhirapi: the upstream's token endpoint (SMART Backend Services)"},
		{"client-id", "client_id", "fhirapi: gpgate's client id at the upstream"},
		{"scope", "scope", "fhirapi: scopes asked of the upstream"},
		{"deadline", "deadline", "live kinds: most a fetch may take (default 10s)"},
		{"area-timeout", "area_timeout", "live kinds: most one area (group) may take (default 8s)"},
		{"open-for", "open_for", "live kinds: how long the circuit stays open (default 30s)"},
	}
	addIntFields = []struct{ flag, field, help string }{
		{"page-size", "page_size", "fhirapi: _count per page (default 100)"},
		{"retries", "retries", "fhirapi: extra tries of an idempotent read (default 2)"},
		{"max-concurrent", "max_concurrent", "live kinds: fetches in flight to the practice (default 8)"},
		{"failures", "failures", "live kinds: consecutive failures that open the circuit (default 5)"},
	}
	addBoolFields = []struct{ flag, field, help string }{
		{"diary-entries", "diary_entries", "gpconnect: ask for diary entries (Access Record Structured 1.5+)"},
		{"fan-out", "fan_out", "gpconnect: one call per section group, each within area-timeout (default true)"},
	}
	pathFields = map[string]bool{"dir": true, "pds": true, "manifest": true, "recorded": true, "cert": true, "key": true, "ca": true}
)

func newAddFlags(fs *flag.FlagSet) *addFlags {
	f := &addFlags{strs: map[string]*string{}, ints: map[string]*int{}, bools: map[string]*bool{}}
	fs.StringVar(&f.ods, "ods", "", "the practice's ODS code (required)")
	fs.StringVar(&f.name, "name", "", "the practice's name")
	fs.StringVar(&f.kind, "kind", "", "gp2gp, gpconnect or fhirapi (required)")
	fs.BoolVar(&f.replace, "replace", false, "replace an entry with the same ODS code")
	for _, x := range addStringFields {
		f.strs[x.flag] = fs.String(x.flag, "", x.help)
	}
	for _, x := range addIntFields {
		f.ints[x.flag] = fs.Int(x.flag, 0, x.help)
	}
	for _, x := range addBoolFields {
		f.bools[x.flag] = fs.Bool(x.flag, false, x.help)
	}
	return f
}

// entry builds the practice's JSON from the flags given (so the file's own
// validation names any problem by its field).
func (f *addFlags) entry(fs *flag.FlagSet) (json.RawMessage, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	m := map[string]any{"ods": f.ods, "kind": f.kind}
	if f.name != "" {
		m["name"] = f.name
	}
	for _, x := range addStringFields {
		if !set[x.flag] {
			continue
		}
		v := *f.strs[x.flag]
		if pathFields[x.field] && v != "" {
			abs, err := filepath.Abs(v)
			if err != nil {
				return nil, err
			}
			v = abs
		}
		m[x.field] = v
	}
	for _, x := range addIntFields {
		if set[x.flag] {
			m[x.field] = *f.ints[x.flag]
		}
	}
	for _, x := range addBoolFields {
		if set[x.flag] {
			m[x.field] = *f.bools[x.flag]
		}
	}
	return json.Marshal(m)
}

func practicesAdd(path string, fs *flag.FlagSet, f *addFlags, stdout io.Writer) error {
	raw, err := f.entry(fs)
	if err != nil {
		return err
	}
	c, err := loadForEdit(path)
	if err != nil {
		return err
	}
	// Validate the entry in a file of its own first: the message then
	// names the field of this entry.
	one, err := parsePracticesConfig([]byte(`{"practices":[` + string(raw) + `]}`))
	if err != nil {
		return err
	}
	p := one.Practices[0]
	i := indexOf(c, p.ODS)
	switch {
	case i >= 0 && !f.replace:
		return fmt.Errorf("practice %s is already in %s (use --replace, or remove it first)", p.ODS, path)
	case i >= 0:
		c.Practices[i] = p
	default:
		c.Practices = append(c.Practices, p)
	}
	if err := writePracticesConfig(path, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "practice %s (%s) written to %s; restart gpgate serve to serve it\n", p.ODS, p.Kind, path)
	return nil
}

func indexOf(c *practicesConfig, ods string) int {
	for i, p := range c.Practices {
		if p.ODS == ods {
			return i
		}
	}
	return -1
}

func practicesRemove(path, ods string, stdout io.Writer) error {
	if ods == "" {
		return fmt.Errorf("--ods is required")
	}
	c, err := readPracticesConfig(path)
	if err != nil {
		return err
	}
	i := indexOf(c, ods)
	if i < 0 {
		return fmt.Errorf("practice %s is not in %s", ods, path)
	}
	c.Practices = append(c.Practices[:i], c.Practices[i+1:]...)
	if err := writePracticesConfig(path, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "practice %s removed from %s; restart gpgate serve to apply\n", ods, path)
	return nil
}

type pdsFlags struct {
	recorded, url, tokenURL, clientID, key string
	none                                   bool
}

func newPDSFlags(fs *flag.FlagSet) *pdsFlags {
	f := &pdsFlags{}
	fs.StringVar(&f.recorded, "recorded", "", "folder of recorded PDS Patients")
	fs.StringVar(&f.url, "url", "", "PDS FHIR R4 base URL")
	fs.StringVar(&f.tokenURL, "token-url", "", "token endpoint for application-restricted access")
	fs.StringVar(&f.clientID, "client-id", "", "gpgate's client id (API key) there")
	fs.StringVar(&f.key, "key", "", "the client assertion signing key")
	fs.BoolVar(&f.none, "none", false, "remove the PDS locator")
	return f
}

func practicesPDS(path string, _ *flag.FlagSet, f *pdsFlags, stdout io.Writer) error {
	c, err := loadForEdit(path)
	if err != nil {
		return err
	}
	if f.none {
		c.PDS = nil
	} else {
		abs := func(s string) string {
			if s == "" {
				return s
			}
			a, _ := filepath.Abs(s)
			return a
		}
		p := &pdsConfig{URL: f.url, Recorded: abs(f.recorded), TokenURL: f.tokenURL, ClientID: f.clientID, Key: abs(f.key)}
		if err := p.validate(); err != nil {
			return fmt.Errorf("pds: %w", err)
		}
		c.PDS = p
	}
	if err := writePracticesConfig(path, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "PDS locator written to %s; restart gpgate serve to apply\n", path)
	return nil
}

// practicesList prints every practice with a quick health probe.
func practicesList(ctx context.Context, path string, stdout io.Writer) error {
	c, err := readPracticesConfig(path)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "no practices file at %s (gpgate practices add, or gpgate demo)\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	c.resolve(filepath.Dir(path))
	health := make([]string, len(c.Practices))
	var wg sync.WaitGroup
	for i, p := range c.Practices {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			health[i] = quickHealth(pctx, p)
		})
	}
	wg.Wait()
	fmt.Fprintf(stdout, "%s\n", path)
	if c.PDS != nil {
		if c.PDS.URL != "" {
			fmt.Fprintf(stdout, "PDS locator: live, %s\n", c.PDS.URL)
		} else {
			fmt.Fprintf(stdout, "PDS locator: recorded, %s\n", c.PDS.Recorded)
		}
	} else {
		fmt.Fprintln(stdout, "PDS locator: none (only patients listed by folders and the embedded store are found)")
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ODS\tKIND\tNAME\tSOURCE\tHEALTH")
	for i, p := range c.Practices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ODS, kindLabel(p), p.Name, sourceLabel(p), health[i])
	}
	return tw.Flush()
}

func kindLabel(p practiceConfig) string {
	switch {
	case p.Kind == "gpconnect" && p.Recorded != "":
		return "gpconnect (recorded)"
	case p.Kind == "gpconnect" && p.Emulator != nil:
		return "gpconnect (live, emulated)"
	case p.live():
		return p.Kind + " (live)"
	}
	return p.Kind
}

func sourceLabel(p practiceConfig) string {
	switch {
	case p.Dir != "":
		return p.Dir
	case p.Recorded != "":
		return p.Recorded
	case p.Emulator != nil:
		return "emulator over " + p.Emulator.Recorded
	}
	return p.URL
}

// quickHealth is list's one-word-and-reason probe.
func quickHealth(ctx context.Context, p practiceConfig) string {
	switch {
	case p.Dir != "" || p.Recorded != "":
		dir, pattern := p.Dir, "*.xml"
		if p.Recorded != "" {
			dir, pattern = p.Recorded, "*.json"
		}
		files, err := filepath.Glob(filepath.Join(dir, pattern))
		if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() || err != nil {
			return "FAIL: folder not readable"
		}
		return fmt.Sprintf("ok: %d files", len(files))
	case p.Emulator != nil:
		files, _ := filepath.Glob(filepath.Join(p.Emulator.Recorded, "*.json"))
		if len(files) == 0 {
			return "FAIL: the emulator's folder holds no records"
		}
		return fmt.Sprintf("ok: emulated by serve (%d records)", len(files))
	case p.Kind == "gpconnect":
		tc, err := gpconnect.TLSConfig(p.Cert, p.Key, p.CA)
		if err != nil {
			return "FAIL: " + err.Error()
		}
		res := probeTLS(ctx, p.URL, tc)
		if res.err != nil {
			return "FAIL: " + res.err.Error()
		}
		return "ok: TLS, certificate valid until " + res.notAfter.Format("2006-01-02")
	case p.Kind == "fhirapi":
		status, err := getStatus(ctx, strings.TrimRight(p.URL, "/")+"/metadata")
		if err != nil {
			return "FAIL: " + err.Error()
		}
		return fmt.Sprintf("ok: /metadata answered %d", status)
	}
	return "unknown"
}

func getStatus(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// tlsResult is what a TLS probe learned.
type tlsResult struct {
	addr     string
	subject  string
	notAfter time.Time
	chain    int // certificates in the verified chain
	err      error
}

// probeTLS connects to the URL's host, completes a handshake with tc and
// waits briefly for the server's verdict on the client certificate (TLS
// 1.3 servers send it after the handshake).
func probeTLS(ctx context.Context, rawURL string, tc *tls.Config) tlsResult {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return tlsResult{err: fmt.Errorf("not a URL")}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	res := tlsResult{addr: host}
	tc = tc.Clone()
	tc.ServerName = u.Hostname()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: tc}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		res.err = err
		return res
	}
	defer conn.Close()
	tconn := conn.(*tls.Conn)
	st := tconn.ConnectionState()
	if len(st.PeerCertificates) > 0 {
		res.subject, res.notAfter = st.PeerCertificates[0].Subject.String(), st.PeerCertificates[0].NotAfter
	}
	if len(st.VerifiedChains) > 0 {
		res.chain = len(st.VerifiedChains[0])
	}
	if len(tc.Certificates) > 0 {
		_ = tconn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [1]byte
		_, rerr := tconn.Read(b[:])
		var ne net.Error
		if rerr != nil && !(errors.As(rerr, &ne) && ne.Timeout()) {
			res.err = fmt.Errorf("the server refused gpgate's client certificate: %w", rerr)
		}
	}
	return res
}

// checker prints one line per check and remembers failures.
type checker struct {
	w      io.Writer
	failed bool
}

func (c *checker) line(status, name, format string, args ...any) {
	if status == "FAIL" {
		c.failed = true
	}
	fmt.Fprintf(c.w, "%-5s %-14s %s\n", status, name, fmt.Sprintf(format, args...))
}

// practicesTest probes one practice; it returns false when a check failed.
func practicesTest(ctx context.Context, path, data, ods string, nhs fhir.NHSNumber, org string, stdout io.Writer) (bool, error) {
	ck := &checker{w: stdout}
	c, err := readPracticesConfig(path)
	if err != nil {
		ck.line("FAIL", "config", "%v", err)
		return false, nil
	}
	c.resolve(filepath.Dir(path))
	i := indexOf(c, ods)
	if i < 0 {
		ck.line("FAIL", "config", "practice %s is not in %s", ods, path)
		return false, nil
	}
	p := c.Practices[i]
	ck.line("ok", "config", "%s, %s, %s", p.ODS, kindLabel(p), sourceLabel(p))
	if nhs != "" && !fhir.ValidNHSNumber(string(nhs)) {
		ck.line("FAIL", "patient", "--nhs is not a valid NHS number (Modulus 11)")
		return false, nil
	}
	checkFiles(ck, p)
	log := slog.New(slog.DiscardHandler)
	env := newSourceEnv(log, adapters.NewSnapshots(adapters.SnapshotOptions{}), "")
	defer env.close()
	switch {
	case p.Kind == "gpconnect" && p.Recorded == "":
		if p.Emulator != nil {
			u, err := env.startEmulator(p)
			if err != nil {
				ck.line("FAIL", "emulator", "%v", err)
				return false, nil
			}
			ck.line("ok", "emulator", "started in process at %s (serve does the same)", u)
			p.URL, p.Emulator = u, nil
		}
		checkReach(ctx, ck, p.URL)
		tc, err := gpconnect.TLSConfig(p.Cert, p.Key, p.CA)
		if err != nil {
			ck.line("FAIL", "tls", "%v", err)
			break
		}
		checkTLS(ctx, ck, p.URL, tc)
	case p.Kind == "fhirapi":
		checkReach(ctx, ck, p.URL)
		if strings.HasPrefix(p.URL, "https://") {
			checkTLS(ctx, ck, p.URL, &tls.Config{MinVersion: tls.VersionTLS12})
		}
		if status, err := getStatus(ctx, strings.TrimRight(p.URL, "/")+"/metadata"); err != nil || status != http.StatusOK {
			ck.line("warn", "metadata", "GET /metadata: status %d %v", status, errOrNil(err))
		} else {
			ck.line("ok", "metadata", "GET /metadata answered 200")
		}
		if p.TokenURL != "" {
			tok, err := tokenClient(p.TokenURL, p.ClientID, p.Key, p.Scope, http.DefaultTransport, log)
			if err == nil {
				_, err = tok.Token(ctx)
			}
			if err != nil {
				ck.line("FAIL", "token", "%v", err)
			} else {
				ck.line("ok", "token", "access token obtained from %s", p.TokenURL)
			}
		}
	}
	if ck.failed {
		ck.line("skip", "patient", "not fetched: an earlier check failed")
		return false, nil
	}
	checkPatient(ctx, ck, env, p, nhs, org)
	if c.PDS != nil && nhs != "" {
		checkPDS(ctx, ck, c.PDS, p.ODS, nhs)
	}
	checkAgreements(ctx, ck, data, p.ODS)
	return !ck.failed, nil
}

func errOrNil(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkFiles checks the files the entry names are readable, and the
// validity of the certificates among them.
func checkFiles(ck *checker, p practiceConfig) {
	files := map[string]string{"cert": p.Cert, "key": p.Key, "ca": p.CA, "dir": p.Dir, "pds": p.PDS, "recorded": p.Recorded}
	if p.Emulator != nil {
		files["emulator.recorded"] = p.Emulator.Recorded
		files["emulator.cert"] = p.Emulator.Cert
	}
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		f := files[k]
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			ck.line("FAIL", "files", "%s: %v", k, err)
			continue
		}
		if k == "cert" || k == "emulator.cert" || k == "ca" {
			certExpiry(ck, k, f)
		}
	}
}

// certExpiry reports the expiry of the first certificate in a PEM file.
func certExpiry(ck *checker, label, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		ck.line("FAIL", "certificate", "%s: %v", label, err)
		return
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		ck.line("FAIL", "certificate", "%s: no PEM certificate in %s", label, file)
		return
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		ck.line("FAIL", "certificate", "%s: %v", label, err)
		return
	}
	expiry(ck, "certificate", label+" "+cert.Subject.CommonName, cert.NotAfter)
}

func expiry(ck *checker, name, what string, notAfter time.Time) {
	left := time.Until(notAfter)
	switch {
	case left <= 0:
		ck.line("FAIL", name, "%s expired on %s", what, notAfter.Format("2006-01-02"))
	case left < 30*24*time.Hour:
		ck.line("warn", name, "%s expires on %s (%d days left)", what, notAfter.Format("2006-01-02"), int(left.Hours()/24))
	default:
		ck.line("ok", name, "%s valid until %s (%d days left)", what, notAfter.Format("2006-01-02"), int(left.Hours()/24))
	}
}

func checkReach(ctx context.Context, ck *checker, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		ck.line("FAIL", "reachability", "%q is not a URL", rawURL)
		return
	}
	host := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	start := time.Now()
	conn, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		ck.line("FAIL", "reachability", "%s: %v", host, err)
		return
	}
	conn.Close()
	ck.line("ok", "reachability", "%s accepts connections (%s)", host, time.Since(start).Round(time.Millisecond))
}

func checkTLS(ctx context.Context, ck *checker, rawURL string, tc *tls.Config) {
	res := probeTLS(ctx, rawURL, tc)
	if res.err != nil {
		ck.line("FAIL", "tls", "%s: %v", res.addr, res.err)
		return
	}
	ck.line("ok", "tls", "%s: handshake done, server certificate %q chains to the trusted CA (%d certificates)", res.addr, res.subject, res.chain)
	expiry(ck, "tls", "server certificate", res.notAfter)
}

// checkPatient fetches a test patient through the source, as serve wires
// it (guard and snapshot cache included).
func checkPatient(ctx context.Context, ck *checker, env *sourceEnv, p practiceConfig, nhs fhir.NHSNumber, org string) {
	src, err := env.source(ctx, p)
	if err != nil {
		ck.line("FAIL", "source", "%v", err)
		return
	}
	if en, ok := src.(adapters.Enumerator); ok {
		ns, err := en.Patients(ctx)
		if err != nil {
			ck.line("FAIL", "patients", "%v", err)
			return
		}
		ck.line("ok", "patients", "the folder serves %d patients", len(ns))
		if nhs == "" && len(ns) > 0 {
			nhs = ns[0]
		}
	}
	if nhs == "" {
		ck.line("skip", "patient", "give --nhs N to fetch a test patient through the source")
		return
	}
	rctx := gpconnect.WithRequester(ctx, &gpconnect.Requester{UserID: "gpgate-practices-test", OrgODS: org, OrgName: org})
	start := time.Now()
	rec, err := src.Record(rctx, nhs, fhir.AllAreas)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		fe := fhir.AsError(err)
		ck.line("FAIL", "patient", "%s: %s (%s) after %s", redactNHS(nhs), fe.Code, fe.Diagnostics, took)
		return
	}
	types := map[string]int{}
	for _, r := range rec.Resources {
		types[r.Type]++
	}
	var parts []string
	for t, n := range types {
		parts = append(parts, fmt.Sprintf("%s %d", t, n))
	}
	sort.Strings(parts)
	ck.line("ok", "patient", "%s: %d resources in %s (%s)", redactNHS(nhs), len(rec.Resources), took, strings.Join(parts, ", "))
	for _, w := range rec.Warnings {
		ck.line("warn", "patient", "%s: %s", w.Code, w.Diagnostics)
	}
}

// redactNHS shows the last three digits of a test patient's number.
func redactNHS(n fhir.NHSNumber) string {
	if len(n) < 3 {
		return "patient"
	}
	return "patient *******" + string(n[len(n)-3:])
}

func checkPDS(ctx context.Context, ck *checker, c *pdsConfig, ods string, nhs fhir.NHSNumber) {
	loc, err := pdsLocator(c, slog.New(slog.DiscardHandler))
	if err != nil {
		ck.line("FAIL", "pds", "%v", err)
		return
	}
	got, err := loc.Lookup(ctx, nhs)
	switch {
	case err != nil:
		ck.line("warn", "pds", "%s: %s (gpgate will not find the patient through PDS)", redactNHS(nhs), fhir.AsError(err).Code)
	case got != ods:
		ck.line("warn", "pds", "%s is registered at %s, not %s", redactNHS(nhs), got, ods)
	default:
		ck.line("ok", "pds", "%s is registered at %s", redactNHS(nhs), got)
	}
}

// checkAgreements reports whether an active agreement shares the practice.
func checkAgreements(ctx context.Context, ck *checker, data, ods string) {
	if _, err := os.Stat(filepath.Join(data, stateFile)); err != nil {
		ck.line("warn", "agreements", "no %s in %s: no agreements", stateFile, data)
		return
	}
	st, err := openStateWithin(data, 300*time.Millisecond)
	if err != nil {
		ck.line("skip", "agreements", "not checked: %s is in use (a running server holds it)", stateFile)
		return
	}
	defer st.Close()
	ags, err := st.consent.ForProvider(ctx, ods)
	if err != nil {
		ck.line("FAIL", "agreements", "%v", err)
		return
	}
	var consumers []string
	for _, a := range ags {
		if a.Status == consent.StatusActive {
			consumers = append(consumers, a.Consumers...)
		}
	}
	if len(consumers) == 0 {
		ck.line("warn", "agreements", "no active agreement shares %s: no consumer can read it (gpgate agreements add --provider %s ...)", ods, ods)
		return
	}
	sort.Strings(consumers)
	ck.line("ok", "agreements", "shared with %s", strings.Join(consumers, ", "))
}
