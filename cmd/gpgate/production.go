package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/gpgate/gpgate/fhir"
)

// ---- file permissions ----

// checkPrivate refuses a file or directory that group or others may read,
// write or enter, naming it and the chmod that fixes it.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	want := "600"
	if fi.IsDir() {
		want = "700"
	}
	return fmt.Errorf("%s is open to group or others (mode %04o): gpgate refuses to run with it; run `chmod %s %s`", path, perm, want, path)
}

// checkDataDir refuses a data directory, or a file directly in it, that
// group or others may read: it holds records, keys and the audit log.
func checkDataDir(data string) error {
	if err := checkPrivate(data); err != nil {
		return err
	}
	ents, err := os.ReadDir(data)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		if err := checkPrivate(filepath.Join(data, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// ---- the patient-id key ----

const patientKeyFile = "patient-id.key"

// newPatientIDKey makes a fresh patient-id key (tests replace it).
var newPatientIDKey = func() ([]byte, error) {
	k := make([]byte, fhir.PatientIDKeySize)
	_, err := rand.Read(k)
	return k, err
}

// loadPatientIDKey reads the deployment's patient-id key from the data
// directory, making it (0600) when create is true and there is none, and
// makes it the process-wide key. A region generated before keyed ids
// (records.db without a key) is refused: its stored ids would not match.
func loadPatientIDKey(data string, create bool) error {
	path := filepath.Join(data, patientKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := checkPrivate(path); err != nil {
			return err
		}
		k, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(k) < 16 {
			return fmt.Errorf("%s is not a patient-id key (hex, at least 16 bytes)", path)
		}
		return fhir.SetPatientIDKey(k)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if _, err := os.Stat(filepath.Join(data, recordsFile)); err == nil {
		return fmt.Errorf("%s has an embedded region but no %s: it was generated before patient ids were keyed; regenerate it with `gpgate demo --data %s --force`", data, patientKeyFile, data)
	}
	if !create {
		return fmt.Errorf("%s has no %s", data, patientKeyFile)
	}
	k, err := newPatientIDKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fhir.SetPatientIDKey(k)
}

// ---- TLS ----

// tlsFiles holds the listener's certificate and client CA, reloadable
// (SIGHUP) without dropping connections: new handshakes use the new files.
type tlsFiles struct {
	cert, key, clientCA string
	pair                atomic.Pointer[tls.Certificate]
	pool                atomic.Pointer[x509.CertPool]
}

func (t *tlsFiles) load() error {
	if err := checkPrivate(t.key); err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return fmt.Errorf("TLS certificate %s / key %s: %w", t.cert, t.key, err)
	}
	if t.clientCA != "" {
		pem, err := os.ReadFile(t.clientCA)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-client-ca %s holds no PEM certificate", t.clientCA)
		}
		t.pool.Store(pool)
	}
	t.pair.Store(&pair)
	return nil
}

// modernSuites are the TLS 1.2 suites offered: ECDHE with AEAD only
// (TLS 1.3's suites are fixed by crypto/tls and all modern).
var modernSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// config is the listener's TLS configuration: TLS 1.2+, modern suites,
// and with a client CA, mutual TLS (a client certificate is required and
// verified against it). mutual false gives the admin listener's
// configuration (same certificate, no client certificate).
func (t *tlsFiles) config(mutual bool) *tls.Config {
	base := &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     modernSuites,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
		NextProtos:       []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return t.pair.Load(), nil
		},
	}
	if !mutual || t.clientCA == "" {
		return base
	}
	base.ClientAuth = tls.RequireAndVerifyClientCert
	base.ClientCAs = t.pool.Load()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = t.pool.Load() // the CA as last (re)loaded
		return c, nil
	}
	return base
}

// isLoopback reports whether a listener address is on the loopback
// interface only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP != nil && tcp.IP.IsLoopback()
}

// ---- the running server's marker, for the CLI ----

const serveFile = "serve.json"

type serveMarker struct {
	PID   int    `json:"pid"`
	URL   string `json:"url"`
	Admin string `json:"admin,omitempty"`
}

func writeServeMarker(data string, m serveMarker) error {
	b, _ := json.Marshal(m)
	return os.WriteFile(filepath.Join(data, serveFile), b, 0o600)
}

func removeServeMarker(data string) { _ = os.Remove(filepath.Join(data, serveFile)) }

// runningServer reports a live `gpgate serve` on data, from its marker.
func runningServer(data string) (serveMarker, bool) {
	b, err := os.ReadFile(filepath.Join(data, serveFile))
	if err != nil {
		return serveMarker{}, false
	}
	var m serveMarker
	if json.Unmarshal(b, &m) != nil || m.PID <= 0 {
		return serveMarker{}, false
	}
	if m.PID != os.Getpid() && syscall.Kill(m.PID, 0) != nil {
		return serveMarker{}, false // a marker left by a killed server
	}
	return m, true
}

// errServerRunning explains why an admin verb cannot open the data
// directory, and what to do instead.
func errServerRunning(data, verb string, m serveMarker) error {
	url := m.URL
	if url == "" {
		url = "URL"
	}
	return fmt.Errorf("the data directory %s is in use by a running `gpgate serve` (pid %s, %s); stop it, or use its admin API: gpgate %s --base %s --client ID --key FILE", data, strconv.Itoa(m.PID), url, verb, url)
}
