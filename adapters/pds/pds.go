// Package pds finds the practice a patient is registered with from the
// Personal Demographics Service (PDS FHIR R4: GET {base}/Patient/{nhs}), live
// or from a folder of recorded PDS Patients, through a short-lived bounded
// cache.
//
// What it decides, after the PDS specification
// (NHSDigital/personal-demographics-service-api, "Get patient details"):
//
//   - The practice is Patient.generalPractitioner[].identifier with system
//     https://fhir.nhs.uk/Id/ods-organization-code (PDS gives at most one),
//     when its period holds today; a registration that has ended, or not yet
//     begun, names no practice.
//   - Not found (RESOURCE_NOT_FOUND) and invalidated (INVALIDATED_RESOURCE)
//     are PATIENT_NOT_FOUND, cached briefly.
//   - Restricted patients (meta.security R, very restricted V): PDS removes
//     address, telecom, contacts and the general practice. gpgate cannot place
//     them through PDS, so Lookup answers PATIENT_NOT_FOUND (a source that
//     lists its patients, the embedded store or an extract folder, still finds
//     them through the registry's index); Patient returns the resource with
//     those elements removed even when a source left them in.
//   - Superseded numbers: PDS answers with the surviving patient, whose id is
//     not the number asked. Lookup answers PATIENT_NOT_FOUND for the old
//     number (the GP system holds the record under the new one, and naming it
//     before any policy decision would tell the caller about a patient);
//     Patient reports Superseded and the new number, for a caller that may.
package pds

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gpgate/gpgate/fhir"
)

// TokenSource gives the bearer token for PDS (application-restricted access
// is client_credentials with a signed JWT; adapters/backendauth does it).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Options configures a Client: exactly one of BaseURL and Recorded.
type Options struct {
	// BaseURL is the PDS FHIR R4 base, e.g.
	// https://int.api.service.nhs.uk/personal-demographics/FHIR/R4.
	BaseURL string
	// Recorded is a folder of PDS Patient JSON files (*.json). A file answers
	// for the valid NHS number in its name when it has one (so a file named
	// for an old number holding the surviving patient is a superseded
	// answer), else for the number in the resource.
	Recorded   string
	Token      TokenSource  // optional: Authorization: Bearer
	HTTPClient *http.Client // default: 10s timeout
	// TTL is how long an answer is kept (default 5m); NegativeTTL how long a
	// not-found is (default 30s); MaxEntries bounds the cache (default 10,000).
	TTL         time.Duration
	NegativeTTL time.Duration
	MaxEntries  int
	MaxBody     int64 // largest PDS answer read (default 1 MiB)
	Now         func() time.Time
	Logger      *slog.Logger
}

// Client looks patients up on PDS. It implements adapters.Locator.
type Client struct {
	opt  Options
	base *url.URL

	recMu    sync.RWMutex
	recorded map[fhir.NHSNumber]string // NHS number -> file

	mu    sync.Mutex
	lru   *list.List // of *entry, front = most recent
	cache map[fhir.NHSNumber]*list.Element
}

type entry struct {
	nhs     fhir.NHSNumber
	p       *Patient
	err     error
	expires time.Time
}

// New returns a live or recorded client.
func New(o Options) (*Client, error) {
	if (o.BaseURL == "") == (o.Recorded == "") {
		return nil, fmt.Errorf("pds: exactly one of BaseURL and Recorded is required")
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 30 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10000
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opt: o, lru: list.New(), cache: map[fhir.NHSNumber]*list.Element{}}
	if o.BaseURL != "" {
		u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("pds: BaseURL must be an absolute http(s) URL")
		}
		c.base = u
		return c, nil
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload re-reads the recorded folder and empties the cache.
func (c *Client) Reload() error {
	if c.opt.Recorded == "" {
		return nil
	}
	files, err := filepath.Glob(filepath.Join(c.opt.Recorded, "*.json"))
	if err != nil {
		return fmt.Errorf("pds: %w", err)
	}
	idx := map[fhir.NHSNumber]string{}
	bad := 0
	for _, f := range files {
		n := nhsInName(filepath.Base(f))
		if n == "" {
			raw, err := os.ReadFile(f)
			if err != nil {
				bad++
				continue
			}
			p, err := ParsePatient(raw, "", c.opt.Now())
			if err != nil {
				bad++
				continue
			}
			n = p.NHS
		}
		idx[n] = f
	}
	if bad > 0 {
		c.opt.Logger.Warn("pds: recorded files skipped", "count", bad)
	}
	c.recMu.Lock()
	c.recorded = idx
	c.recMu.Unlock()
	c.mu.Lock()
	c.lru.Init()
	clear(c.cache)
	c.mu.Unlock()
	return nil
}

// nhsInName returns the first run of ten digits in a file name that is a
// valid NHS number, or "".
func nhsInName(name string) fhir.NHSNumber {
	for i := 0; i+10 <= len(name); i++ {
		j := i
		for j < len(name) && name[j] >= '0' && name[j] <= '9' {
			j++
		}
		if j-i == 10 && fhir.ValidNHSNumber(name[i:j]) {
			return fhir.NHSNumber(name[i:j])
		}
		if j > i {
			i = j - 1
		}
	}
	return ""
}

func notFound() error {
	return fhir.Errorf(fhir.CodePatientNotFound, "no patient with that NHS number is registered at a connected practice")
}

// Lookup returns the ODS code of the practice the patient is registered with
// now. A patient PDS does not know, has invalidated, superseded, restricts,
// or names no current practice for is PATIENT_NOT_FOUND.
func (c *Client) Lookup(ctx context.Context, nhs fhir.NHSNumber) (string, error) {
	p, err := c.Patient(ctx, nhs)
	if err != nil {
		return "", err
	}
	switch {
	case p.Superseded:
		c.opt.Logger.Info("pds: NHS number superseded")
		return "", notFound()
	case p.Restricted:
		c.opt.Logger.Info("pds: restricted patient: practice withheld")
		return "", notFound()
	case p.ODS == "":
		c.opt.Logger.Info("pds: no current registered practice")
		return "", notFound()
	}
	return p.ODS, nil
}

// Patient returns what PDS says about the NHS number (through the cache).
func (c *Client) Patient(ctx context.Context, nhs fhir.NHSNumber) (*Patient, error) {
	if p, err, ok := c.cached(nhs); ok {
		return p, err
	}
	var (
		p   *Patient
		err error
	)
	if c.base != nil {
		p, err = c.fetch(ctx, nhs)
	} else {
		p, err = c.read(nhs)
	}
	switch {
	case err == nil:
		c.store(nhs, p, nil, c.opt.TTL)
	case fhir.AsError(err).Code == fhir.CodePatientNotFound:
		c.store(nhs, nil, err, c.opt.NegativeTTL)
	}
	return p, err
}

func (c *Client) cached(nhs fhir.NHSNumber) (*Patient, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.cache[nhs]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*entry)
	if !c.opt.Now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.cache, nhs)
		return nil, nil, false
	}
	c.lru.MoveToFront(el)
	if e.err != nil {
		return nil, notFound(), true // only not-found is cached; a fresh error each time
	}
	return e.p, nil, true
}

func (c *Client) store(nhs fhir.NHSNumber, p *Patient, err error, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.cache[nhs]; ok {
		c.lru.Remove(el)
	}
	c.cache[nhs] = c.lru.PushFront(&entry{nhs: nhs, p: p, err: err, expires: c.opt.Now().Add(ttl)})
	for c.lru.Len() > c.opt.MaxEntries {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.cache, el.Value.(*entry).nhs)
	}
}

// read answers from the recorded folder.
func (c *Client) read(nhs fhir.NHSNumber) (*Patient, error) {
	c.recMu.RLock()
	f, ok := c.recorded[nhs]
	c.recMu.RUnlock()
	if !ok {
		return nil, notFound()
	}
	raw, err := os.ReadFile(f)
	if errors.Is(err, os.ErrNotExist) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("pds: recorded: %w", err))
	}
	p, err := ParsePatient(raw, nhs, c.opt.Now())
	if err != nil {
		return nil, fhir.Internal(err)
	}
	return p, nil
}

// fetch asks PDS: GET {base}/Patient/{nhs}.
func (c *Client) fetch(ctx context.Context, nhs fhir.NHSNumber) (*Patient, error) {
	u := *c.base
	u.Path += "/Patient/" + string(nhs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("X-Request-ID", uuid.NewString())
	corr := fhir.RequestIDFrom(ctx)
	if corr == "" {
		corr = uuid.NewString()
	}
	req.Header.Set("X-Correlation-ID", corr)
	if c.opt.Token != nil {
		tok, err := c.opt.Token.Token(ctx)
		if err != nil {
			return nil, &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the demographics service is unavailable", Cause: fmt.Errorf("pds: token: %w", err)}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.opt.HTTPClient.Do(req)
	if err != nil {
		c.opt.Logger.Warn("pds: request failed", "err", redactURL(err))
		return nil, &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the demographics service is unavailable", Cause: redactURL(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opt.MaxBody+1))
	if err != nil {
		return nil, &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the demographics service is unavailable", Cause: redactURL(err)}
	}
	if int64(len(body)) > c.opt.MaxBody {
		return nil, fhir.Internal(fmt.Errorf("pds: answer larger than %d bytes", c.opt.MaxBody))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		p, err := ParsePatient(body, nhs, c.opt.Now())
		if err != nil {
			c.opt.Logger.Warn("pds: unreadable patient", "err", err)
			return nil, fhir.Internal(err)
		}
		return p, nil
	case resp.StatusCode == http.StatusNotFound:
		c.opt.Logger.Info("pds: not found", "pds_code", outcomeCode(body))
		return nil, notFound()
	case resp.StatusCode == http.StatusBadRequest && outcomeCode(body) == "INVALID_RESOURCE_ID":
		return nil, fhir.Errorf(fhir.CodeInvalidNHSNumber, "the NHS number is not valid")
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		c.opt.Logger.Warn("pds: unavailable", "status", resp.StatusCode, "pds_code", outcomeCode(body))
		return nil, fhir.Errorf(fhir.CodeTimeout, "the demographics service is unavailable")
	default: // 400 on a header, 401, 403: gpgate's own configuration is wrong
		c.opt.Logger.Error("pds: refused", "status", resp.StatusCode, "pds_code", outcomeCode(body))
		return nil, fhir.Internal(fmt.Errorf("pds: status %d %s", resp.StatusCode, outcomeCode(body)))
	}
}

// outcomeCode returns the first Spine error code of an OperationOutcome, or "".
func outcomeCode(body []byte) string {
	var oo struct {
		Issue []struct {
			Details struct {
				Coding []fhir.Coding `json:"coding"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil {
		return ""
	}
	for _, is := range oo.Issue {
		for _, c := range is.Details.Coding {
			if validCode(c.Code) {
				return c.Code
			}
		}
	}
	return ""
}

// validCode accepts the shape of a Spine error code (upper case and
// underscores), so nothing else from the answer reaches the log.
func validCode(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// redactURL drops the URL (which carries the NHS number) from a client error.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
