package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gpgate/gpgate/adapters/gpconnect/emulator"
)

// runProviderEmulator serves a GP Connect provider emulator over a folder
// of recorded structured-record responses (for demos and black-box tests).
func runProviderEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("provider-emulator", "--recorded DIR --listen ADDR [--tls-cert FILE --tls-key FILE [--client-ca FILE]]\n\n"+
		"Answers GP Connect Access Record Structured ($gpc.getstructuredrecord) from recorded STU3 responses,\n"+
		"checking the Spine headers and the JWT as a provider does.", stderr)
	dir := fs.String("recorded", "", "folder of recorded structured-record responses (*.json)")
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	cert := fs.String("tls-cert", "", "server certificate (PEM); without it the emulator speaks plain HTTP")
	key := fs.String("tls-key", "", "server private key (PEM)")
	clientCA := fs.String("client-ca", "", "CA bundle (PEM) client certificates must chain to; requires --tls-cert")
	ods := fs.String("ods", "A99999", "ODS code of the emulated practice")
	asid := fs.String("asid", "", "the provider's ASID: requests with another Ssp-To are refused (default: any)")
	latency := fs.Duration("latency", 0, "delay every answer by this much")
	logLevel := fs.String("log-level", "info", "debug | info | warn | error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "--recorded is required")
		fs.Usage()
		return errUsage
	}
	if (*cert == "") != (*key == "") || (*clientCA != "" && *cert == "") {
		fmt.Fprintln(stderr, "--tls-cert and --tls-key go together; --client-ca needs them")
		return errUsage
	}
	log := newLogger(stderr, *logLevel, "json")
	em, err := emulator.New(emulator.Config{Dir: *dir, ODS: *ods, ASID: *asid, Logger: log})
	if err != nil {
		return err
	}
	em.SetFault(emulator.Fault{Latency: *latency})
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second}
	if *cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("--client-ca holds no certificate")
			}
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
		srv.TLSConfig = tc
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	scheme := "http"
	if *cert != "" {
		scheme = "https"
	}
	n, _ := em.Patients(ctx)
	fmt.Fprintf(stdout, "GP Connect provider emulator for %s on %s://%s (%d patients)\n", *ods, scheme, ln.Addr(), len(n))
	errc := make(chan error, 1)
	go func() {
		if *cert != "" {
			errc <- srv.ServeTLS(ln, *cert, *key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
