package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/rest"
	"github.com/gpgate/gpgate/metrics"
)

// smallServer is an in-process server over a small region of its own.
type smallServer struct {
	*testServer
	hooks *serveHooks
	stop  func() error // ends serve and returns what it returned
}

func smallRegion(t testing.TB, patients int) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	sum, err := demoRegion(context.Background(), demoOpts{data: data, seed: 7, practices: 1, patients: patients, fast: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demoAgreements(context.Background(), data, sum); err != nil {
		t.Fatal(err)
	}
	if err := demoClient(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	return data
}

func startSmall(t testing.TB, data string, mod func(o *serveOpts)) *smallServer {
	t.Helper()
	o := serveOpts{data: data, listen: "127.0.0.1:0"}
	var hooks *serveHooks
	o.hooks = func(h *serveHooks) { hooks = h }
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), func(u string) { ready <- u })
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start")
	}
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-errc:
			case <-time.After(30 * time.Second):
				serr = io.ErrNoProgress
			}
		})
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return &smallServer{testServer: &testServer{base: base, dir: data}, hooks: hooks, stop: stop}
}

// ---- TLS ----

type pki struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	caFile string
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{ca: ca, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caFile: filepath.Join(dir, name+"-ca.pem")}
	if err := os.WriteFile(p.caFile, p.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes a leaf certificate; it writes cert and key files and
// returns them with the tls.Certificate.
func (p *pki) issue(t *testing.T, dir, name string, server bool, notAfter time.Time) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// TestTLSHandshakes: TLS 1.2+ with the server's certificate, mutual TLS
// with a client CA: a good client certificate gets in; an expired one, one
// from another CA, none at all, or a TLS 1.1 client do not.
func TestTLSHandshakes(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, dir, "region")
	other := newPKI(t, dir, "elsewhere")
	srvCert, srvKey, _ := ca.issue(t, dir, "server", true, time.Now().Add(24*time.Hour))
	_, _, good := ca.issue(t, dir, "good-client", false, time.Now().Add(24*time.Hour))
	_, _, expired := ca.issue(t, dir, "expired-client", false, time.Now().Add(-time.Hour))
	_, _, foreign := other.issue(t, dir, "foreign-client", false, time.Now().Add(24*time.Hour))

	data := smallRegion(t, 3)
	s := startSmall(t, data, func(o *serveOpts) { o.tlsCert, o.tlsKey, o.tlsClientCA = srvCert, srvKey, ca.caFile })
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("base %s is not https", s.base)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.ca)
	get := func(cfg *tls.Config) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		return (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(s.base + "/metadata")
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"good client certificate", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}}, true},
		{"no client certificate", &tls.Config{RootCAs: roots}, false},
		{"expired client certificate", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{expired}}, false},
		{"client certificate of another CA", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{foreign}}, false},
		{"TLS 1.1", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.2 only", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{good}, MaxVersion: tls.VersionTLS12}, true},
		{"server not trusted (wrong CA for the server)", func() *tls.Config {
			p := x509.NewCertPool()
			p.AddCert(other.ca)
			return &tls.Config{RootCAs: p, Certificates: []tls.Certificate{good}}
		}(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := get(tc.cfg)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer res.Body.Close()
				if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Strict-Transport-Security"), "max-age=") {
					t.Fatalf("status %d, HSTS %q", res.StatusCode, res.Header.Get("Strict-Transport-Security"))
				}
				return
			}
			if err == nil {
				res.Body.Close()
				t.Fatalf("a handshake that should fail got HTTP %d", res.StatusCode)
			}
		})
	}
}

func TestServeRefusesUnsafeSetups(t *testing.T) {
	data := smallRegion(t, 2)
	run := func(mod func(o *serveOpts)) error {
		o := serveOpts{data: data, listen: "127.0.0.1:0"}
		mod(&o)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			errc <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string) { cancel() })
		}()
		return <-errc
	}
	for _, tc := range []struct {
		name  string
		setup func(o *serveOpts) func()
		want  string
	}{
		{"plain HTTP off loopback", func(o *serveOpts) func() { o.listen = "0.0.0.0:0"; return nil }, "not a loopback address"},
		{"data directory open to others", func(o *serveOpts) func() {
			_ = os.Chmod(data, 0o755)
			return func() { _ = os.Chmod(data, 0o700) }
		}, "chmod 700 " + data},
		{"key file readable by others", func(o *serveOpts) func() {
			f := filepath.Join(data, demoKeyFile)
			_ = os.Chmod(f, 0o644)
			return func() { _ = os.Chmod(f, 0o600) }
		}, "chmod 600 " + filepath.Join(data, demoKeyFile)},
		{"patient-id key readable by group", func(o *serveOpts) func() {
			f := filepath.Join(data, patientKeyFile)
			_ = os.Chmod(f, 0o640)
			return func() { _ = os.Chmod(f, 0o600) }
		}, "chmod 600 " + filepath.Join(data, patientKeyFile)},
		{"TLS key readable by others", func(o *serveOpts) func() {
			dir := t.TempDir()
			ca := newPKI(t, dir, "x")
			o.tlsCert, o.tlsKey, _ = ca.issue(t, dir, "server", true, time.Now().Add(time.Hour))
			_ = os.Chmod(o.tlsKey, 0o644)
			return nil
		}, "chmod 600"},
		{"client CA without a certificate", func(o *serveOpts) func() { o.tlsClientCA = "/nonexistent"; return nil }, "--tls-client-ca needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var undo func()
			err := run(func(o *serveOpts) { undo = tc.setup(o) })
			if undo != nil {
				undo()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	// and with the setup fixed it starts; plain HTTP off loopback with the flag
	if err := run(func(o *serveOpts) { o.listen, o.insecureHTTP = "0.0.0.0:0", true }); err != nil {
		t.Fatalf("--insecure-http: %v", err)
	}
}

// ---- rate limits and refused authentications ----

func TestRateLimit429ThenRecovery(t *testing.T) {
	data := smallRegion(t, 2)
	s := startSmall(t, data, func(o *serveOpts) { o.rateClient, o.burstClient, o.refusalWindow = 1, 2, 200*time.Millisecond })
	tok := s.tokenFor(t, demoClientID, demoKeyFile, "system/Patient.rs")
	h := "Bearer " + tok
	for i := 0; i < 2; i++ {
		if r := s.get(t, "/metadata", "Authorization", h); r.status != 200 {
			t.Fatalf("metadata: %d", r.status)
		}
	}
	got429 := false
	var r response
	for i := 0; i < 4 && !got429; i++ {
		r = s.get(t, "/Patient?identifier="+fhir.NHSNumberSystem+"|9990000018", "Authorization", h)
		got429 = r.status == http.StatusTooManyRequests
	}
	if !got429 {
		t.Fatalf("no 429 after the burst: last %d", r.status)
	}
	expectOutcome(t, r, 429, fhir.CodeTooManyRequests)
	ra := r.header.Get("Retry-After")
	if ra != "1" && ra != "2" {
		t.Fatalf("Retry-After %q", ra)
	}
	time.Sleep(2100 * time.Millisecond)
	r = s.get(t, "/Patient?identifier="+fhir.NHSNumberSystem+"|9990000018", "Authorization", h)
	if r.status == http.StatusTooManyRequests || r.status >= 500 {
		t.Fatalf("after Retry-After: %d", r.status)
	}
	// the refusal is in the audit log, aggregated
	waitAudit(t, s, func(ev []map[string]any) bool { return countAction(ev, "rate-limited") > 0 })
}

// waitAudit polls the audit log (through the admin export) until ok.
func waitAudit(t *testing.T, s *smallServer, ok func(ev []map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var buf bytes.Buffer
		if _, err := s.hooks.Audit.Export(context.Background(), &buf, time.Time{}); err != nil {
			t.Fatal(err)
		}
		var ev []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil {
				ev = append(ev, m)
			}
		}
		if ok(ev) {
			return ev
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log never showed what was expected (%d events)", len(ev))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// subtypeOf is an AuditEvent's action as gpgate records it (type or
// subtype code).
func countAction(ev []map[string]any, action string) int {
	n := 0
	for _, e := range ev {
		b, _ := json.Marshal(e)
		if bytes.Contains(b, []byte(`"outcomeDesc":"`+action+` `)) {
			n++
		}
	}
	return n
}

// Refused authentications (no token, forged tokens, unknown clients) are
// audited in aggregate: a flood of them is a handful of entries.
func TestRefusedAuthenticationsAuditedInAggregate(t *testing.T) {
	data := smallRegion(t, 2)
	s := startSmall(t, data, func(o *serveOpts) { o.refusalWindow = 300 * time.Millisecond })
	before := s.hooks.Audit.Stats().Head
	const n = 60
	forged := "Bearer eyJhbGciOiJFUzM4NCIsImtpZCI6ImZvcmdlZCIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJkZW1vLWVociJ9.c2lnbmF0dXJl"
	for i := 0; i < n; i++ {
		s.get(t, "/Patient?identifier="+fhir.NHSNumberSystem+"|9990000018", "Authorization", "")
		s.get(t, "/Patient?identifier="+fhir.NHSNumberSystem+"|9990000018", "Authorization", forged)
	}
	// an unknown client at the token endpoint
	key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
	for i := 0; i < 5; i++ {
		if _, _, err := smart.RequestToken(context.Background(), s.base+smart.PathToken, "no-such-client", key, []string{"system/Patient.rs"}, nil); err == nil {
			t.Fatal("an unknown client got a token")
		}
	}
	ev := waitAudit(t, s, func(ev []map[string]any) bool {
		return countAction(ev, "auth-refused") >= 2 && countAction(ev, "token-refused") >= 1
	})
	added := s.hooks.Audit.Stats().Head - before
	if added > 6 {
		t.Fatalf("%d refused requests made %d audit entries: not aggregated", 2*n+5, added)
	}
	total := 0
	for _, e := range ev {
		b, _ := json.Marshal(e)
		if !bytes.Contains(b, []byte(`auth-refused`)) && !bytes.Contains(b, []byte(`token-refused`)) {
			continue
		}
		for _, en := range e["entity"].([]any) {
			for _, d := range asList(en.(map[string]any)["detail"]) {
				dm := d.(map[string]any)
				if dm["type"] == "result-count" {
					var c int
					_ = json.Unmarshal([]byte(dm["valueString"].(string)), &c)
					total += c
				}
			}
		}
		if !bytes.Contains(b, []byte(`"address":"127.0.0.1"`)) {
			t.Errorf("a refusal entry without the caller's address: %s", b)
		}
	}
	if total != 2*n+5 {
		t.Fatalf("the aggregated entries count %d refusals, want %d", total, 2*n+5)
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// ---- fail closed ----

// TestAuditFailureFailsClosed: with the audit log unable to write, every
// data route answers 500 and no data — and so does the token endpoint.
func TestAuditFailureFailsClosed(t *testing.T) {
	data := smallRegion(t, 3)
	s := startSmall(t, data, nil)
	sum, err := readSummary(data)
	if err != nil {
		t.Fatal(err)
	}
	p := largest(t, sum)
	consentID := s.recordConsent(t, p.PatientID)
	tokens := map[string]string{
		kSystem:  "Bearer " + s.tokenFor(t, demoClientID, demoKeyFile, "system/*.rs system/Consent.cd"),
		kPatient: "Bearer " + s.patientToken(t, p.PatientID),
		kAuditor: "Bearer " + s.tokenFor(t, "demo-auditor", "demo-auditor.jwk", "system/AuditEvent.rs"),
		kAdmin:   "Bearer " + s.tokenFor(t, "demo-admin", "demo-admin.jwk", demoAdminScopes),
	}
	m := &matrixEnv{patient: p.PatientID, nhs: p.NHS, ids: map[string]string{"Patient": p.PatientID}, consentID: consentID}
	// the audit store stops writing
	if err := s.hooks.Audit.Close(); err != nil {
		t.Fatal(err)
	}
	routes := 0
	for _, row := range matrix {
		routes++
		for _, pr := range row.probes(m) {
			for kind, want := range pr.want {
				if want/100 != 2 || tokens[kind] == "" {
					continue
				}
				var body []byte
				if pr.body != "" {
					body = []byte(pr.body)
				}
				hdr := []string{"Authorization", tokens[kind]}
				if pr.ctype != "" {
					hdr = append(hdr, "Content-Type", pr.ctype)
				}
				r := s.do(t, row.method, pr.path, body, hdr...)
				if r.status != 500 {
					t.Errorf("%s %s as %s with the audit log failing: %d, want 500", row.method, pr.name, kind, r.status)
					continue
				}
				if bytes.Contains(r.body, []byte(p.PatientID)) || bytes.Contains(r.body, []byte(p.NHS)) || !bytes.Contains(r.body, []byte("INTERNAL_SERVER_ERROR")) {
					t.Errorf("%s %s: a failure answer carries data: %s", row.method, pr.name, truncateBody(r.body))
				}
			}
		}
	}
	if routes != len(rest.Routes) {
		t.Fatalf("%d routes probed, rest.Routes has %d", routes, len(rest.Routes))
	}
	key, _ := os.ReadFile(filepath.Join(data, demoKeyFile))
	_, _, err = smart.RequestToken(context.Background(), s.base+smart.PathToken, demoClientID, key, []string{"system/Patient.rs"}, nil)
	var te *smart.TokenError
	if err == nil || !asTokenError(err, &te) || te.Status != 500 {
		t.Fatalf("token with the audit log failing: %v", err)
	}
}

func asTokenError(err error, te **smart.TokenError) bool {
	e, ok := err.(*smart.TokenError)
	*te = e
	return ok
}

// ---- tampering ----

// TestTamperedLogRefusesToStart: an audit log edited while the server was
// down does not serve.
func TestTamperedLogRefusesToStart(t *testing.T) {
	data := smallRegion(t, 2)
	s := startSmall(t, data, nil)
	for i := 0; i < 5; i++ {
		s.get(t, "/Patient?identifier="+fhir.NHSNumberSystem+"|9990000018")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// Copies of the stopped server's files, for each kind of tampering.
	orig, err := os.ReadFile(filepath.Join(data, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(b *bolt.Bucket) error
	}{
		{"newest entry edited", func(b *bolt.Bucket) error {
			k, v := b.Cursor().Last()
			v = append([]byte(nil), v...)
			v[len(v)-3] ^= 0x01 // a byte of the record, the stored hash kept
			return b.Put(k, v)
		}},
		{"tail truncated", func(b *bolt.Bucket) error {
			k, _ := b.Cursor().Last()
			return b.Delete(k)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(data, auditFile), orig, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := bolt.Open(filepath.Join(data, auditFile), 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { return tc.tamper(tx.Bucket([]byte("audit_log"))) })
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = serve(ctx, serveOpts{data: data, listen: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string) { cancel() })
			if err == nil || !strings.Contains(err.Error(), "audit") {
				t.Fatalf("serve over a tampered log: %v, want a refusal naming the audit log", err)
			}
		})
	}
}

// ---- metrics and readiness ----

var (
	nhsLike = regexp.MustCompile(`\b\d{10}\b`)
	pidLike = regexp.MustCompile(`\bp[a-z2-7]{16}\b`)
)

// TestMetricsParseAndCarryNoIdentifier reads /metrics with Prometheus's own
// text parser after real traffic, and checks no label value is a patient
// identifier.
func TestMetricsParseAndCarryNoIdentifier(t *testing.T) {
	data := smallRegion(t, 3)
	s := startSmall(t, data, nil)
	sum, _ := readSummary(data)
	for _, n := range sum.Notable {
		s.get(t, patientSearch(n.NHS))
		s.get(t, "/Patient/"+n.PatientID+"/$everything?_count=5")
		s.get(t, "/Condition/"+n.PatientID+"-nosuch")
	}
	s.get(t, "/metadata", "Authorization", "Bearer forged")
	res, err := http.Get(s.base + pathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"gpgate_http_requests_total", "gpgate_http_request_duration_seconds", "gpgate_audit_queue_depth",
		"gpgate_audit_record_duration_seconds", "gpgate_audit_commits_total", "gpgate_audit_last_batch_size", "gpgate_tokens_total",
		"gpgate_source_fetch_duration_seconds", "gpgate_source_circuit_state", "go_goroutines", "go_memstats_heap_inuse_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	ids := map[string]bool{}
	for _, n := range sum.Notable {
		ids[n.PatientID], ids[n.NHS] = true, true
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				v := l.GetValue()
				if ids[v] || nhsLike.MatchString(v) || pidLike.MatchString(v) {
					t.Errorf("%s label %s=%q looks like a patient identifier", name, l.GetName(), v)
				}
			}
		}
	}
	routes := map[string]bool{}
	for _, m := range fams["gpgate_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" {
				routes[l.GetValue()] = true
			}
		}
	}
	if !routes["/Patient/:id/$everything"] || !routes["/:type"] {
		t.Errorf("requests are not labelled by route pattern: %v", routes)
	}
	// readiness
	r, err := http.Get(s.base + pathReadyz)
	if err != nil {
		t.Fatal(err)
	}
	var rz struct {
		Status  string            `json:"status"`
		Checks  map[string]string `json:"checks"`
		Sources map[string]string `json:"sources"`
	}
	_ = json.NewDecoder(r.Body).Decode(&rz)
	r.Body.Close()
	if r.StatusCode != 200 || rz.Status != "ready" || rz.Checks["audit"] != "ok" || rz.Checks["signing-key"] != "ok" || len(rz.Sources) == 0 {
		t.Fatalf("/readyz %d %+v", r.StatusCode, rz)
	}
	s.hooks.Audit.Close() // the audit log fails: the next write fails, and readiness says so
	s.get(t, patientSearch(largest(t, sum).NHS))
	r, _ = http.Get(s.base + pathReadyz)
	r.Body.Close()
	if r.StatusCode != 503 {
		t.Fatalf("/readyz with a failing audit log: %d", r.StatusCode)
	}
}

func TestMetricsAndReadyzOnlyForLoopback(t *testing.T) {
	h := loopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for addr, want := range map[string]int{"127.0.0.1:5000": 204, "[::1]:5000": 204, "10.1.2.3:5000": 404, "192.0.2.8:1": 404, "garbage": 404} {
		req, _ := http.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = addr
		w := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != want {
			t.Errorf("from %s: %d, want %d", addr, w.code, want)
		}
	}
}

type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(c int)           { r.code = c }

func readSummary(data string) (*demoSummary, error) {
	b, err := os.ReadFile(filepath.Join(data, summaryFile))
	if err != nil {
		return nil, err
	}
	var s demoSummary
	return &s, json.Unmarshal(b, &s)
}

type demoSummary = demo.Summary

// largest is the region's largest record (always a valid, consenting patient).
func largest(t testing.TB, sum *demo.Summary) demo.Notable {
	t.Helper()
	for _, n := range sum.Notable {
		if n.Kind == demo.NotableLargest {
			return n
		}
	}
	t.Fatal("no largest patient in the region")
	return demo.Notable{}
}

// The breaker state of a live source reaches /readyz and /metrics through
// the snapshot cache and the timing wrapper.
func TestCircuitStateReachesReadiness(t *testing.T) {
	failing := sourceFunc(func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error) {
		return nil, fhir.Errorf(fhir.CodeTimeout, "down")
	})
	live := adapters.Live("B00001", failing, adapters.NewSnapshots(adapters.SnapshotOptions{}), adapters.GuardOptions{Failures: 2, OpenFor: time.Hour})
	reg := adapters.NewRegistry()
	if err := reg.Register(context.Background(), adapters.Practice{ODS: "B00001", Source: timedSource{ods: "B00001", inner: live, obs: nopObserver{}}}); err != nil {
		t.Fatal(err)
	}
	lr := &liveRegistry{}
	lr.set(reg)
	if got := lr.circuits()["B00001"]; got != "closed" {
		t.Fatalf("before failures: %q", got)
	}
	for i := 0; i < 3; i++ {
		_, _ = live.Record(context.Background(), "9000000009", fhir.AllAreas)
	}
	if got := lr.circuits()["B00001"]; got != "open" {
		t.Fatalf("after failures: %q", got)
	}
}

type sourceFunc func(context.Context, fhir.NHSNumber, fhir.Areas) (*fhir.Record, error)

func (f sourceFunc) Record(ctx context.Context, n fhir.NHSNumber, a fhir.Areas) (*fhir.Record, error) {
	return f(ctx, n, a)
}

type nopObserver struct{}

func (nopObserver) SourceFetched(string, time.Duration, string) {}

// A failed durable write makes the node "failing" until a write succeeds.
func TestAuditorFailingClearsOnSuccess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []bool // true: the write succeeds
		want   bool
	}{
		{"no writes", nil, false},
		{"one success", []bool{true}, false},
		{"one failure", []bool{false}, true},
		{"a failure, then a success", []bool{false, true}, false},
		{"a success, then a failure", []bool{true, false}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &flakyAudit{}
			a := &timedAuditor{st: st, m: metrics.New("test")}
			for _, ok := range tc.writes {
				st.fail = !ok
				_ = a.Record(context.Background(), &fhir.AuditEntry{})
				time.Sleep(time.Millisecond) // distinct stamps on coarse clocks
			}
			if got, _ := a.failing(); got != tc.want {
				t.Fatalf("failing %v, want %v", got, tc.want)
			}
		})
	}
}

type flakyAudit struct {
	auditStore
	fail bool
}

func (f *flakyAudit) Record(context.Context, *fhir.AuditEntry) error {
	if f.fail {
		return errors.New("disk full")
	}
	return nil
}
