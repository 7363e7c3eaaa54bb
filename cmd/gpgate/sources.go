package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/backendauth"
	"github.com/gpgate/gpgate/adapters/fhirapi"
	"github.com/gpgate/gpgate/adapters/gpconnect"
	"github.com/gpgate/gpgate/adapters/gpconnect/emulator"
	"github.com/gpgate/gpgate/adapters/pds"
)

// sourceEnv builds practice sources from the practices file: what every
// live source shares (the snapshot cache, the logger, gpgate's own URL as
// the GP Connect JWT issuer) and what must be closed at shutdown (emulators
// serve starts in process).
type sourceEnv struct {
	log    *slog.Logger
	snaps  *adapters.Snapshots
	issuer string

	mu        sync.Mutex
	closers   []func() error
	emulators map[string]*emulator.Emulator // by practice ODS (tests reach them through emulatorHook)
	urls      map[string]string             // practice ODS -> provider URL of a live GP Connect practice
}

func newSourceEnv(log *slog.Logger, snaps *adapters.Snapshots, issuer string) *sourceEnv {
	return &sourceEnv{log: log, snaps: snaps, issuer: issuer, emulators: map[string]*emulator.Emulator{}, urls: map[string]string{}}
}

// close stops what the env started, last first.
func (e *sourceEnv) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	return errors.Join(errs...)
}

// source builds the source of one practice. Live sources (GP Connect, FHIR
// API) come wrapped by adapters.Live: the practice's guard (deadline,
// circuit, concurrency bound) inside the shared snapshot cache.
func (e *sourceEnv) source(ctx context.Context, p practiceConfig) (adapters.Source, error) {
	switch p.kindKey() {
	case "gp2gp":
		return gp2gpSource(p, e.log)
	case "gpconnect-recorded":
		return gpconnect.NewRecorded(p.Recorded, p.ODS, gpconnect.WithLogger(e.log))
	case "gpconnect":
		c, err := e.gpconnectClient(ctx, p)
		if err != nil {
			return nil, err
		}
		return adapters.Live(p.ODS, c, e.snaps, p.guard(e.log)), nil
	case "fhirapi":
		s, err := fhirapiSource(p, e.log)
		if err != nil {
			return nil, err
		}
		return adapters.Live(p.ODS, s, e.snaps, p.guard(e.log)), nil
	}
	return nil, fmt.Errorf("unknown kind %q", p.Kind)
}

// gpconnectClient builds the live GP Connect client, starting the
// practice's emulator first when the entry asks for one.
func (e *sourceEnv) gpconnectClient(ctx context.Context, p practiceConfig) (*gpconnect.Client, error) {
	u := p.URL
	if p.Emulator != nil {
		var err error
		if u, err = e.startEmulator(p); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
	}
	cfg := gpconnect.Config{URL: u, CertFile: p.Cert, KeyFile: p.Key, CAFile: p.CA, ODS: p.ODS,
		FromASID: p.FromASID, ToASID: p.ToASID, Issuer: e.issuer, DiaryEntries: p.DiaryEntries,
		Timeout: p.deadline(), AreaTimeout: p.areaTimeout(), Logger: e.log}
	if p.FanOut == nil || *p.FanOut {
		cfg.Groups = gpconnect.FanOut
	}
	c, err := gpconnect.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.urls[p.ODS] = u
	e.mu.Unlock()
	return c, nil
}

// startEmulator serves the practice's recorded structured records as a GP
// Connect provider on a loopback port, over TLS with client certificates
// required, and returns its FHIR service root.
func (e *sourceEnv) startEmulator(p practiceConfig) (string, error) {
	ec := p.Emulator
	cert, err := tls.LoadX509KeyPair(ec.Cert, ec.Key)
	if err != nil {
		return "", fmt.Errorf("server certificate: %w", err)
	}
	pem, err := os.ReadFile(ec.ClientCA)
	if err != nil {
		return "", fmt.Errorf("client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("client CA %s holds no certificate", ec.ClientCA)
	}
	listen := ec.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", err
	}
	u := "https://" + ln.Addr().String() + "/" + p.ODS + "/STU3/1/gpconnect/structured/fhir"
	em, err := emulator.New(emulator.Config{Dir: ec.Recorded, ODS: p.ODS, ASID: p.ToASID, Audience: u, Logger: e.log})
	if err != nil {
		ln.Close()
		return "", err
	}
	if ec.Latency != "" {
		d, _ := time.ParseDuration(ec.Latency)
		em.SetFault(emulator.Fault{Latency: d})
	}
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		ErrorLog:  slog.NewLogLogger(e.log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("gpconnect emulator stopped", "practice", p.ODS, "err", err)
		}
	}()
	e.mu.Lock()
	e.emulators[p.ODS] = em
	e.closers = append(e.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	})
	e.mu.Unlock()
	e.log.Info("gpconnect provider emulator started in process", "practice", p.ODS, "url", u)
	return u, nil
}

// fhirapiSource builds a FHIR API source: retries of idempotent reads, and
// SMART Backend Services to the upstream when configured.
func fhirapiSource(p practiceConfig, log *slog.Logger) (*fhirapi.Source, error) {
	attempts := 3
	if p.Retries != nil {
		attempts = *p.Retries + 1
	}
	rt := adapters.NewRetryTransport(nil, adapters.RetryOptions{Attempts: attempts})
	o := fhirapi.Options{BaseURL: p.URL, Practice: p.ODS, HTTPClient: &http.Client{Transport: rt},
		AreaTimeout: p.areaTimeout(), PageSize: p.PageSize, Logger: log}
	if p.TokenURL != "" {
		tok, err := tokenClient(p.TokenURL, p.ClientID, p.Key, p.Scope, rt, log)
		if err != nil {
			return nil, err
		}
		o.Token = tok
	}
	return fhirapi.New(o)
}

func tokenClient(tokenURL, clientID, keyFile, scope string, rt http.RoundTripper, log *slog.Logger) (*backendauth.Client, error) {
	key, err := backendauth.LoadKey(keyFile)
	if err != nil {
		return nil, err
	}
	return backendauth.New(backendauth.Options{TokenURL: tokenURL, ClientID: clientID, Key: key, Scope: scope,
		HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second}, Logger: log})
}

// pdsLocator builds the PDS client (live or recorded).
func pdsLocator(c *pdsConfig, log *slog.Logger) (*pds.Client, error) {
	rt := adapters.NewRetryTransport(nil, adapters.RetryOptions{})
	o := pds.Options{BaseURL: strings.TrimRight(c.URL, "/"), Recorded: c.Recorded, TTL: time.Duration(c.TTL),
		HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second}, Logger: log}
	if c.TokenURL != "" {
		tok, err := tokenClient(c.TokenURL, c.ClientID, c.Key, "", rt, log)
		if err != nil {
			return nil, err
		}
		o.Token = tok
	}
	return pds.New(o)
}
