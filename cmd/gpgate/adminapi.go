package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir/rest"
)

// The admin verbs (clients, agreements, consent revoke, audit verify and
// export, signing keys) work two ways: against a running server through
// its admin API when --base URL --client ID --key FILE are given (the
// client needs the system scopes the call names: Client, Agreement,
// SigningKey, AuditEvent), else on the data directory when no server runs.

// apiFlags are the flags that select the admin API.
type apiFlags struct {
	base, client, key string
	cacert            string // CA of the server's certificate (a private CA)
	cert, certKey     string // client certificate for mutual TLS
}

func (a *apiFlags) register(fs *flag.FlagSet, keyHelp string) {
	fs.StringVar(&a.base, "base", "", "use the admin API of the gpgate serving at this base URL (with --client and --key)")
	fs.StringVar(&a.client, "client", "", "admin API: the client id to authenticate as")
	if keyHelp == "" {
		keyHelp = "admin API: the client's private key file (JWK or PEM)"
	}
	fs.StringVar(&a.key, "key", "", keyHelp)
	fs.StringVar(&a.cacert, "cacert", "", "admin API: CA certificate (PEM) to trust for the server's TLS certificate")
	fs.StringVar(&a.cert, "cert", "", "admin API: client certificate (PEM) for mutual TLS")
	fs.StringVar(&a.certKey, "cert-key", "", "admin API: the client certificate's private key (PEM)")
}

func (a *apiFlags) remote() bool { return a.base != "" }

// adminAPI is an authenticated client of a running server's admin API.
type adminAPI struct {
	base, client string
	key          []byte
	hc           *http.Client
}

func (a *apiFlags) open() (*adminAPI, error) {
	if a.client == "" || a.key == "" {
		return nil, errors.New("--base needs --client and --key (a client registered with the admin scopes)")
	}
	key, err := os.ReadFile(a.key)
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(a.cacert, a.cert, a.certKey)
	if err != nil {
		return nil, err
	}
	return &adminAPI{base: strings.TrimSuffix(a.base, "/"), client: a.client, key: key, hc: hc}, nil
}

// httpClient trusts cacert (besides the system roots) and presents a
// client certificate when one is given.
func httpClient(cacert, cert, certKey string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, err
		}
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s holds no PEM certificate", cacert)
		}
		tc.RootCAs = pool
	}
	if (cert == "") != (certKey == "") {
		return nil, errors.New("--cert and --cert-key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, certKey)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}, nil
}

// call makes one admin API call with a token for scope; it returns the body
// of a 2xx answer, or an error with the server's diagnostics.
func (a *adminAPI) call(ctx context.Context, method, path, scope string, body []byte, out io.Writer) ([]byte, error) {
	tok, _, err := smart.RequestTokenWith(ctx, a.hc, a.base+smart.PathToken, a.client, a.key, []string{scope}, nil)
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", scope, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode/100 == 2 && out != nil {
		if _, err := io.Copy(out, res.Body); err != nil {
			return nil, err
		}
		if res.Trailer.Get(rest.TrailerExportCount) == "" {
			return nil, fmt.Errorf("%s %s: the stream was cut short (no %s trailer): run it again, or with --since", method, path, rest.TrailerExportCount)
		}
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, path, res.StatusCode, outcomeText(b))
	}
	return b, nil
}

// localOnly is what a verb on the data directory says when a server holds it.
func localOnly(data, verb string) error {
	if m, running := runningServer(data); running {
		return errServerRunning(data, verb, m)
	}
	return nil
}
