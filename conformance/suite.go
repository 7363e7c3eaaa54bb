package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/profiles"
)

// RunOptions configure one run of the black-box suite against a deployment.
type RunOptions struct {
	Base     string // the server's base URL, e.g. https://gpgate.example.nhs.uk/fhir
	ClientID string // a SMART Backend Services client registered on the deployment
	Key      []byte // the client's private key (JWK or PEM); read from KeyFile when nil
	KeyFile  string
	Scope    string // system scopes, default "system/*.rs" (demographics: Patient search)
	// Clinical data is read as a clinician's EPR does: a consent to view
	// recorded with POST /Consent (system/Consent.c) for Clinician (an SDS
	// user id), then a patient-context token (PatientScope, default
	// "patient/*.rs") bound to it.
	Clinician    string // default 555000111222
	PatientScope string
	// AuditClientID and AuditKey(File), when given, are a client holding
	// system/AuditEvent.rs: the AuditEvent search parameters are then
	// exercised too (otherwise only the refusal to a clinical token is).
	AuditClientID string
	AuditKey      []byte
	AuditKeyFile  string
	// NHS numbers of patients the deployment holds. Discover more by probing
	// the demo region's numbering (999-prefixed test numbers, in order) up to
	// Discover patients; with no NHS numbers and Discover 0, 3 are discovered.
	NHS      []string
	Discover int
	// Walk fetches everything gpgate emits for every patient (every
	// $everything page, a searchset per type, a read per type,
	// $getstructuredrecord for every StructuredEvery-th patient) — for dumping
	// to an external validator. Without it the suite samples.
	Walk            bool
	StructuredEvery int // default 10
	// Dump, when set, is a directory every FHIR JSON response body is
	// written to, one file per response.
	Dump string
	Out  io.Writer            // a pass/fail line per check; nil for none
	HTTP *http.Client         // default: 60 s timeout
	Now  func() time.Time     // default time.Now
	Log  func(string, ...any) // optional progress
}

// Check is the outcome of one named check.
type Check struct {
	Name     string   `json:"name"`
	Pass     bool     `json:"pass"`
	Count    int      `json:"count"`              // things examined
	Detail   string   `json:"detail,omitempty"`   // what was examined
	Failures []string `json:"failures,omitempty"` // the first failures
	Skipped  []string `json:"skipped,omitempty"`  // what could not be exercised, and why
	Millis   int64    `json:"ms"`
}

// Report is the result of a run; Write renders it as JSON.
type Report struct {
	Base      string         `json:"base"`
	Started   time.Time      `json:"started"`
	Millis    int64          `json:"ms"`
	OK        bool           `json:"ok"`
	Passed    int            `json:"passed"`
	Failed    int            `json:"failed"`
	Patients  []string       `json:"patients"` // logical ids exercised
	Requests  int            `json:"requests"`
	Throttled int            `json:"throttled,omitempty"` // 429s waited out and retried
	Resources int            `json:"resources"`           // distinct resources checked against UK Core
	Warnings  map[string]int `json:"warnings,omitempty"`  // profile warnings by rule
	Checks    []*Check       `json:"checks"`
}

// Write writes the report as indented JSON.
func (r *Report) Write(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Failures returns the names of the checks that failed.
func (r *Report) Failures() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c.Name)
		}
	}
	return out
}

const maxFailures = 25

type runner struct {
	o    RunOptions
	hc   *http.Client
	rep  *Report
	out  io.Writer
	base string

	mu       sync.Mutex
	tokens   map[string]tokenCache
	dumpSeq  int
	seen     map[[32]byte]bool
	profileC *Check // the running UK Core check
	textC    *Check // the running free-text check

	cs       *capStatement
	patients []*patient
	dumping  bool // the running step's responses go to Options.Dump
}

// dumpSteps are the steps whose responses are dumped: each resource gpgate
// emits once per place it is emitted, not the suite's many probing searches.
var dumpSteps = map[string]bool{"metadata": true, "no-token": true, "operation-definitions": true, "patients": true,
	"operation-getstructuredrecord": true, "error-shapes": true, "walk": true}

type tokenCache struct {
	tok   string
	until time.Time
}

// Run runs the suite. The error is for a run that could not happen at all
// (no key, server unreachable); failed checks are in the Report (Report.OK).
func Run(ctx context.Context, o RunOptions) (*Report, error) {
	if o.Base == "" || o.ClientID == "" {
		return nil, fmt.Errorf("conformance: Base and ClientID are required")
	}
	if o.Key == nil {
		if o.KeyFile == "" {
			return nil, fmt.Errorf("conformance: Key or KeyFile is required")
		}
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("conformance: %w", err)
		}
		o.Key = b
	}
	if o.AuditKey == nil && o.AuditKeyFile != "" {
		b, err := os.ReadFile(o.AuditKeyFile)
		if err != nil {
			return nil, fmt.Errorf("conformance: %w", err)
		}
		o.AuditKey = b
	}
	if o.Scope == "" {
		o.Scope = "system/*.rs"
	}
	if o.PatientScope == "" {
		o.PatientScope = "patient/*.rs"
	}
	if o.Clinician == "" {
		o.Clinician = "555000111222"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StructuredEvery <= 0 {
		o.StructuredEvery = 10
	}
	if len(o.NHS) == 0 && o.Discover == 0 {
		o.Discover = 3
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	polite := &politeTransport{next: base, attempts: 6, maxWait: 10 * time.Second, sleep: time.Sleep}
	client := *hc
	client.Transport = polite
	hc = &client
	if o.Dump != "" {
		if err := os.MkdirAll(o.Dump, 0o755); err != nil {
			return nil, err
		}
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	start := o.Now()
	r := &runner{o: o, hc: hc, out: out, base: strings.TrimSuffix(o.Base, "/"),
		rep:    &Report{Base: o.Base, Started: start.UTC(), Warnings: map[string]int{}},
		tokens: map[string]tokenCache{}, seen: map[[32]byte]bool{}}
	r.profileC = &Check{Name: "uk-core-profiles", Pass: true, Detail: "every resource and Bundle seen satisfies the R4 base rules and every UK Core profile it claims (profiles package)"}
	r.textC = &Check{Name: "no-free-text", Pass: true, Detail: "every string in every resource seen is coded or structural by its R4 type (profiles.CodedOnly): no narrative, note, comment, free-text string, unknown element or uncoded CodeableConcept"}

	if _, err := r.get(ctx, "/metadata", false, nil); err != nil {
		return nil, fmt.Errorf("conformance: %s is not reachable: %w", o.Base, err)
	}
	r.run(ctx)
	r.finish(r.profileC, 0)
	r.finish(r.textC, 0)
	for _, c := range r.rep.Checks {
		if c.Pass {
			r.rep.Passed++
		} else {
			r.rep.Failed++
		}
	}
	r.rep.OK = r.rep.Failed == 0
	r.rep.Millis = o.Now().Sub(start).Milliseconds()
	for _, p := range r.patients {
		r.rep.Patients = append(r.rep.Patients, p.id)
	}
	r.rep.Throttled = int(polite.throttled.Load())
	fmt.Fprintf(out, "%d checks: %d passed, %d failed; %d requests, %d distinct resources checked\n",
		len(r.rep.Checks), r.rep.Passed, r.rep.Failed, r.rep.Requests, r.rep.Resources)
	if r.rep.Throttled > 0 {
		fmt.Fprintf(out, "the server's rate limits answered 429 %d times: each waited out (Retry-After) and sent again\n", r.rep.Throttled)
	}
	return r.rep, nil
}

func (r *runner) run(ctx context.Context) {
	r.step(ctx, "metadata", r.checkMetadata)
	if r.cs == nil {
		return // nothing more can be known about the deployment
	}
	r.step(ctx, "smart-configuration", r.checkSmartConfig)
	r.step(ctx, "token", r.checkToken)
	r.step(ctx, "token-rejections", r.checkTokenRejections)
	r.step(ctx, "no-token", r.checkNoToken)
	r.step(ctx, "operation-definitions", r.checkOperationDefinitions)
	r.step(ctx, "patients", r.checkPatients)
	if len(r.patients) == 0 {
		return
	}
	r.step(ctx, "read", r.checkRead)
	r.step(ctx, "search-parameters", r.checkSearchParams)
	r.step(ctx, "search-patient-totals", r.checkPatientTotals)
	r.step(ctx, "undeclared-parameters", r.checkUndeclared)
	r.step(ctx, "paging", r.checkPaging)
	r.step(ctx, "client-interactions", r.checkClientInteractions)
	r.step(ctx, "includes", r.checkIncludes)
	r.step(ctx, "operation-everything", r.checkEverythingOp)
	r.step(ctx, "operation-getstructuredrecord", r.checkStructuredOp)
	r.step(ctx, "references", r.checkReferences)
	r.step(ctx, "error-shapes", r.checkErrors)
	if r.o.Walk {
		r.step(ctx, "walk", r.walk)
	}
}

// step runs one check and prints its line.
func (r *runner) step(ctx context.Context, name string, f func(context.Context, *Check)) {
	c := &Check{Name: name, Pass: true}
	start := r.o.Now()
	r.dumping = dumpSteps[name]
	func() {
		defer func() {
			if p := recover(); p != nil {
				c.fail("panic: %v", p)
			}
		}()
		f(ctx, c)
	}()
	r.finish(c, r.o.Now().Sub(start).Milliseconds())
}

func (r *runner) finish(c *Check, ms int64) {
	c.Millis = ms
	r.rep.Checks = append(r.rep.Checks, c)
	status := "PASS"
	if !c.Pass {
		status = "FAIL"
	}
	line := fmt.Sprintf("%s %-30s %d examined", status, c.Name, c.Count)
	if len(c.Skipped) > 0 {
		line += fmt.Sprintf(", %d not exercised", len(c.Skipped))
	}
	fmt.Fprintln(r.out, line)
	for i, f := range c.Failures {
		if i == 5 {
			fmt.Fprintf(r.out, "     ... %d more in the report\n", len(c.Failures)-5)
			break
		}
		fmt.Fprintf(r.out, "     - %s\n", f)
	}
}

func (c *Check) fail(format string, args ...any) {
	c.Pass = false
	if len(c.Failures) < maxFailures {
		c.Failures = append(c.Failures, fmt.Sprintf(format, args...))
	}
}

func (c *Check) skip(format string, args ...any) {
	c.Skipped = append(c.Skipped, fmt.Sprintf(format, args...))
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request is what do sends.
type request struct {
	method string
	path   string // absolute URL or path under the base
	body   []byte
	ctype  string
	header map[string]string
	token  string // bearer token; "" for none
	label  string // for the dump file name
}

func (r *runner) do(ctx context.Context, q request) (response, error) {
	u := q.path
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = r.base + u
	}
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	req, err := http.NewRequestWithContext(ctx, q.method, u, body)
	if err != nil {
		return response{}, err
	}
	if q.body != nil {
		ct := q.ctype
		if ct == "" {
			ct = "application/fhir+json"
		}
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	for k, v := range q.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := r.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return response{}, err
	}
	r.mu.Lock()
	r.rep.Requests++
	r.mu.Unlock()
	out := response{status: res.StatusCode, header: res.Header, body: b}
	if r.o.Dump != "" && r.dumping && strings.HasPrefix(res.Header.Get("Content-Type"), "application/fhir+json") && len(b) > 0 {
		r.dump(q.label, b)
	}
	return out, nil
}

func (r *runner) dump(label string, b []byte) {
	r.mu.Lock()
	r.dumpSeq++
	n := r.dumpSeq
	r.mu.Unlock()
	if label == "" {
		label = "response"
	}
	name := fmt.Sprintf("%06d-%s.json", n, sanitize(label))
	_ = os.WriteFile(filepath.Join(r.o.Dump, name), b, 0o644)
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 60 {
		b = b[:60]
	}
	return string(b)
}

// get is an authenticated (or not) GET with the default label.
func (r *runner) get(ctx context.Context, path string, auth bool, header map[string]string) (response, error) {
	q := request{method: http.MethodGet, path: path, header: header, label: labelOf(path)}
	if auth {
		tok, err := r.token(ctx)
		if err != nil {
			return response{}, err
		}
		q.token = tok
	}
	return r.do(ctx, q)
}

// pget is a GET about patient p's record, with p's patient-context token.
func (r *runner) pget(ctx context.Context, p *patient, path string, header map[string]string) (response, error) {
	tok, err := r.ptoken(ctx, p)
	if err != nil {
		return response{}, err
	}
	return r.do(ctx, request{method: http.MethodGet, path: path, header: header, token: tok, label: labelOf(path)})
}

func labelOf(path string) string {
	p := strings.TrimPrefix(path, "/")
	if i := strings.IndexAny(p, "?"); i >= 0 {
		p = p[:i]
	}
	return strings.ReplaceAll(p, "/", "-")
}

// seenResource runs the UK Core and free-text checks on a resource or Bundle
// the suite received, once per distinct body.
func (r *runner) seenResource(where string, raw []byte, opts ...profiles.BundleOption) {
	sum := sha256.Sum256(raw)
	r.mu.Lock()
	if r.seen[sum] {
		r.mu.Unlock()
		return
	}
	r.seen[sum] = true
	r.mu.Unlock()
	var probs []profiles.Problem
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	_ = json.Unmarshal(raw, &head)
	if head.ResourceType == "Bundle" {
		probs = profiles.CheckBundle(raw, opts...)
		for _, e := range bundleEntries(raw) {
			if r.countResource(e) {
				r.freeText(where, e)
			}
		}
	} else {
		probs = profiles.CheckJSON(raw)
		if r.countResource(raw) {
			r.freeText(where, raw)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.profileC.Count++
	for _, p := range probs {
		if strings.HasPrefix(p.Rule, profiles.RuleCodedOnly) {
			// a resource's own strings are freeText's, once per distinct
			// resource; the Bundle's (links, entry.response) are here
			if head.ResourceType == "Bundle" && !inEntryResource(p.Path) {
				r.textC.fail("%s: %s", where, p)
			}
			continue
		}
		if p.Severity == profiles.Error {
			r.profileC.fail("%s: %s", where, p)
			continue
		}
		r.rep.Warnings[p.Rule]++
	}
}

// inEntryResource reports whether a problem path is inside an entry's
// resource ("Bundle.entry[3].resource...").
func inEntryResource(path string) bool {
	rest, ok := strings.CutPrefix(path, "Bundle.entry[")
	if !ok {
		return false
	}
	_, tail, _ := strings.Cut(rest, "]")
	return strings.HasPrefix(tail, ".resource")
}

// countResource counts a distinct resource; it reports whether it is new.
func (r *runner) countResource(raw []byte) bool {
	sum := sha256.Sum256(append([]byte("entry:"), raw...))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[sum] {
		return false
	}
	r.seen[sum] = true
	r.rep.Resources++
	return true
}

func bundleEntries(raw []byte) []json.RawMessage {
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	_ = json.Unmarshal(raw, &b)
	out := make([]json.RawMessage, 0, len(b.Entry))
	for _, e := range b.Entry {
		if len(e.Resource) > 0 {
			out = append(out, e.Resource)
		}
	}
	return out
}

// freeText is the suite's coded-only check of one resource: every string
// in it must be coded or structural by its R4 type and position
// (profiles.CodedOnly, which takes types from the R4 type system, not from
// the redactor's lists). OperationOutcome and gpgate's other
// administrative resources are not record content; CodedOnly passes them.
func (r *runner) freeText(where string, raw []byte) {
	r.mu.Lock()
	r.textC.Count++
	r.mu.Unlock()
	for _, p := range profiles.CodedOnly(raw) {
		if strings.HasPrefix(p.Rule, profiles.RuleCodedOnly) { // not "json": that is profileC's
			r.failText("%s: %s", where, p)
		}
	}
}

func (r *runner) failText(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.textC.fail(format, args...)
}

// nhsNumbers returns the first n 999-prefixed NHS numbers with a valid
// check digit, in order, starting after skip of them: the numbering of
// `gpgate demo` regions.
func demoNHSNumbers(from, n int) []string {
	var out []string
	for k := from; len(out) < n && k < 1000000; k++ {
		nine := fmt.Sprintf("999%06d", k)
		c, ok := fhir.CheckDigit(nine)
		if !ok {
			continue
		}
		out = append(out, nine+string(c))
	}
	return out
}
