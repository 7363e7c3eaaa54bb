package gpconnect

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Config configures a live GP Connect source.
type Config struct {
	// URL is the provider's FHIR service root (the SDS nhsMhsEndPoint,
	// through the Spine Secure Proxy when one is used); the operation is
	// POSTed to URL + "/Patient/$gpc.getstructuredrecord". It is also the
	// JWT's aud.
	URL string
	// CertFile and KeyFile hold gpgate's client certificate (PEM); CAFile
	// the CA bundle the provider's certificate must chain to. TLS, when
	// set, is used instead (tests).
	CertFile, KeyFile, CAFile string
	TLS                       *tls.Config
	ODS                       string // the practice's ODS code
	FromASID, ToASID          string // Ssp-From (gpgate) and Ssp-To (the provider)
	Issuer                    string // JWT iss: gpgate's own endpoint URL
	Device                    Device // JWT requesting_device
	// Requester is used when the context carries none (RequesterFrom).
	Requester *Requester
	// Timeout bounds one fetch (default 30 s); the context's deadline, when
	// sooner, wins.
	Timeout time.Duration
	// MaxBodyBytes bounds the response body (default DefaultMaxBytes).
	MaxBodyBytes int64
	// DiaryEntries asks for diary entries (includeDiaryEntries) with the
	// events area; providers before Access Record Structured 1.5 refuse it.
	DiaryEntries bool
	// Groups fans a fetch out (see FanOut): one structured-record call per
	// group of the sections asked, in parallel, each within AreaTimeout; a
	// group that fails or runs out of time is left out of the answer with
	// a warning. With fewer than two groups (nil: the default) the record
	// is one call and fails as a whole.
	Groups []Sections
	// AreaTimeout bounds each group's call when Groups fans out (default
	// Timeout). Keep it under the practice's deadline so that a slow group
	// is left out rather than the whole answer.
	AreaTimeout time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	// Transport overrides the HTTP transport (tests); TLS settings above
	// are then ignored.
	Transport http.RoundTripper
}

// Client is a live GP Connect source: each Record is one
// $gpc.getstructuredrecord call to the practice. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger
}

// NewClient checks cfg and builds the HTTPS client (mutual TLS: the
// client certificate, and the CA bundle as the only roots).
func NewClient(cfg Config) (*Client, error) {
	if cfg.URL == "" || !strings.HasPrefix(cfg.URL, "https://") && cfg.Transport == nil {
		return nil, fmt.Errorf("gpconnect: the provider URL must be https://")
	}
	if !fhir.ValidODS(cfg.ODS) {
		return nil, fmt.Errorf("gpconnect: invalid practice ODS code")
	}
	if cfg.FromASID == "" || cfg.ToASID == "" {
		return nil, fmt.Errorf("gpconnect: FromASID and ToASID are required")
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Issuer == "" {
		cfg.Issuer = "https://gpgate.invalid/"
	}
	if cfg.Device.ID == "" {
		cfg.Device = Device{System: "https://gpgate.invalid/Id/device-identifier", ID: "gpgate", Model: "gpgate", Version: "1"}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.AreaTimeout <= 0 || cfg.AreaTimeout > cfg.Timeout {
		cfg.AreaTimeout = cfg.Timeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rt := cfg.Transport
	if rt == nil {
		tc := cfg.TLS
		if tc == nil {
			var err error
			if tc, err = TLSConfig(cfg.CertFile, cfg.KeyFile, cfg.CAFile); err != nil {
				return nil, err
			}
		}
		rt = &http.Transport{
			TLSClientConfig:       tc,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	return &Client{
		cfg: cfg,
		http: &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a provider does not redirect a clinical request
		}},
		log: cfg.Logger.With("source", "gpconnect", "practice", cfg.ODS),
	}, nil
}

// TLSConfig builds the mutual-TLS client configuration from PEM files:
// gpgate's certificate and key, and the CA bundle that alone is trusted
// for the provider (TLS 1.2 at least).
func TLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, fmt.Errorf("gpconnect: a client certificate, its key and a CA bundle are required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("gpconnect: client certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("gpconnect: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("gpconnect: CA bundle holds no certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Record fetches the patient's structured record for the areas and
// converts it: one call, or one per group of sections when Config.Groups
// fans out (see FanOut). The answer must be for the patient asked for;
// another patient's record is refused (an internal error whose cause is
// ErrWrongPatient) and logged without identifiers.
func (c *Client) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	start := c.cfg.Now()
	secs := SectionsFor(areas, c.cfg.DiaryEntries)
	groups := c.split(secs)
	parts := make([]part, len(groups))
	if len(groups) == 1 {
		parts[0] = c.fetchPart(ctx, nhs, groups[0])
	} else {
		var wg sync.WaitGroup
		for i, g := range groups {
			wg.Go(func() {
				gctx, cancel := context.WithTimeout(ctx, c.cfg.AreaTimeout)
				defer cancel()
				parts[i] = c.fetchPart(gctx, nhs, g)
			})
		}
		wg.Wait()
	}
	var (
		good     []*Bundle
		bodies   [][]byte
		failed   Sections
		firstErr error
	)
	for i := range parts {
		p := &parts[i]
		if p.err == nil {
			good = append(good, p.b)
			bodies = append(bodies, p.body)
			continue
		}
		// An answer about the patient (not found, dissent, another
		// patient's record) is the answer, whatever the other groups said.
		if patientLevel(p.err) || len(groups) == 1 {
			c.log.Warn("gpconnect fetch failed", "sections", p.s.String(), "err", redact(errText(p.err)), "took", c.cfg.Now().Sub(start))
			return nil, p.err
		}
		c.log.Warn("gpconnect sections left out", "sections", p.s.String(), "err", redact(errText(p.err)), "took", c.cfg.Now().Sub(start))
		failed |= p.s
		if firstErr == nil {
			firstErr = p.err
		}
	}
	if len(good) == 0 {
		return nil, firstErr
	}
	b := good[0]
	if len(good) > 1 {
		b = mergeBundles(good)
	}
	res, err := b.Convert(Options{NHS: nhs, Practice: c.cfg.ODS})
	if err != nil {
		return nil, &fhir.Error{Code: fhir.CodeInternal, Diagnostics: "the practice system's record could not be read", Cause: err}
	}
	for _, is := range b.issues {
		c.log.Info("gpconnect provider warning", "outcome", redact(outcomeCodes(is)))
	}
	n := 0
	for _, body := range bodies {
		n += len(body)
	}
	c.log.Info("gpconnect record fetched", "bytes", n, "calls", len(groups), "resources", len(res.Resources), "dropped", res.Dropped,
		"took", c.cfg.Now().Sub(start))
	rec := &fhir.Record{NHS: nhs, PatientID: fhir.PatientID(nhs), Practice: c.cfg.ODS, Version: version(bytes.Join(bodies, []byte{0})),
		Resources: res.Resources, Warnings: res.Warnings}
	rec.Warnings = append(rec.Warnings, unavailableWarnings(areas, failed, c.cfg.DiaryEntries)...)
	return filter(rec, areas), nil
}

// part is one structured-record call: the sections asked and what came back.
type part struct {
	s    Sections
	body []byte
	b    *Bundle
	err  error
}

// fetchPart performs one call and checks that its answer is a structured
// record for the patient asked for.
func (c *Client) fetchPart(ctx context.Context, nhs fhir.NHSNumber, s Sections) part {
	body, err := c.fetch(ctx, nhs, s)
	if err != nil {
		return part{s: s, err: err}
	}
	b, err := Parse(body)
	if err != nil {
		var fe *fhir.Error
		if errors.As(err, &fe) { // an OperationOutcome with HTTP 200
			return part{s: s, err: err}
		}
		c.log.Warn("gpconnect answer is not a structured record", "bytes", len(body), "err", redact(err.Error()))
		return part{s: s, err: &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the practice system answered with something that is not a record",
			Cause: fmt.Errorf("%w: %w", ErrUnavailable, err)}}
	}
	if own := b.PatientNHS(); own != string(nhs) {
		c.log.Error("gpconnect answer refused: the record is for another patient")
		return part{s: s, err: &fhir.Error{Code: fhir.CodeInternal, Diagnostics: "the practice system answered with another patient's record", Cause: ErrWrongPatient}}
	}
	return part{s: s, body: body, b: b}
}

// fetch performs the operation and returns a 200 body.
func (c *Client) fetch(ctx context.Context, nhs fhir.NHSNumber, sections Sections) ([]byte, error) {
	req := RequesterFrom(ctx)
	if req == nil {
		req = c.cfg.Requester
	}
	tok, err := Token(c.cfg.Now(), c.cfg.Issuer, c.cfg.URL, c.cfg.Device, req)
	if err != nil {
		return nil, &fhir.Error{Code: fhir.CodeInternal, Diagnostics: "no requesting practitioner for the practice system", Cause: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	params := BuildParameters(nhs, sections)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+"/Patient/$gpc.getstructuredrecord", bytes.NewReader(params))
	if err != nil {
		return nil, fhir.Internal(err)
	}
	hr.Header.Set("Accept", "application/fhir+json")
	hr.Header.Set("Content-Type", "application/fhir+json")
	hr.Header.Set("Authorization", "Bearer "+tok)
	hr.Header.Set("Ssp-TraceID", traceID())
	hr.Header.Set("Ssp-From", c.cfg.FromASID)
	hr.Header.Set("Ssp-To", c.cfg.ToASID)
	hr.Header.Set("Ssp-InteractionID", InteractionID)
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	if int64(len(body)) > c.cfg.MaxBodyBytes {
		return nil, &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the practice system's answer is too large",
			Cause: fmt.Errorf("%w: %w", ErrUnavailable, ErrMalformed)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp.StatusCode, body)
	}
	return body, nil
}

// unavailable maps a transport failure: the practice could not be reached
// or did not answer in time.
func unavailable(ctx context.Context, err error) error {
	cause := fmt.Errorf("%w: %w", ErrUnavailable, err)
	if ce := ctx.Err(); ce != nil {
		cause = fmt.Errorf("%w: %w", ErrUnavailable, ce)
	}
	return &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the practice system did not answer", Cause: cause}
}

func errText(err error) string {
	var fe *fhir.Error
	if errors.As(err, &fe) && fe.Cause != nil {
		return string(fe.Code) + ": " + fe.Cause.Error()
	}
	return err.Error()
}

// outcomeCodes summarises an OperationOutcome's issue codes for the log.
func outcomeCodes(oo obj) string {
	var out []string
	for _, is := range list(oo["issue"]) {
		io, _ := is.(obj)
		out = append(out, str(io["severity"])+":"+str(io["code"]))
		for _, c := range list(child(io, "details")["coding"]) {
			co, _ := c.(obj)
			out = append(out, str(co["code"]))
		}
	}
	return strings.Join(out, ",")
}

// traceID is a random (version 4) UUID for Ssp-TraceID.
func traceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
