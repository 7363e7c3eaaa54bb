// Package fhirapi is a Source over an upstream FHIR R4 server (a newer GP
// system, or any R4 server holding a practice's records): the Patient by NHS
// number, then one search per resource type of the areas asked, run in
// parallel, each with its own deadline and with paging (link next) followed
// to the end. An area whose search fails or runs out of time is left out and
// named in a warning on the Record: a partial answer, clearly marked.
//
// Every resource is re-identified (fhir.ResourceID of the patient's gpgate
// id), its references rewritten to the new ids or dropped when they point at
// anything not fetched, its meta reduced to the UK Core profile, lastUpdated
// and security labels, and it is validated and rendered canonical by
// fhir.Canonicalize. A resource that fails validation is left out and its
// area carries a warning.
package fhirapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Kind is the practices-file kind of this source.
const Kind = "fhirapi"

// TokenSource gives the bearer token for the upstream (SMART Backend
// Services; adapters/backendauth implements it). When it also has Forget(),
// a 401 answer forgets the token and the request is tried once more.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

type forgetter interface{ Forget() }

// Options configures a Source.
type Options struct {
	BaseURL  string // upstream FHIR R4 base, e.g. https://gp.example/fhir/R4
	Practice string // the practice's ODS code
	Token    TokenSource
	// HTTPClient carries the transport (wrap it in adapters.RetryTransport
	// for retries of idempotent reads); default: no overall timeout (the
	// per-area deadline bounds each search).
	HTTPClient *http.Client
	// AreaTimeout bounds each area's searches, paging included (default 8s):
	// keep it under the practice deadline so a slow area is left out, not the
	// whole answer.
	AreaTimeout time.Duration
	PageSize    int   // _count asked per page (default 100)
	MaxPages    int   // pages followed per search before the area is given up (default 100)
	MaxBody     int64 // largest page read (default 32 MiB)
	MaxParallel int   // searches in flight at once for one record (default 6)
	Logger      *slog.Logger
}

// Source reads records from the upstream server. It implements
// adapters.Source.
type Source struct {
	opt  Options
	base *url.URL
	bstr string
}

// New checks the options and returns a Source.
func New(o Options) (*Source, error) {
	u, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("fhirapi: BaseURL must be an absolute http(s) URL without a query")
	}
	if o.Practice == "" {
		return nil, fmt.Errorf("fhirapi: Practice is required")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.AreaTimeout <= 0 {
		o.AreaTimeout = 8 * time.Second
	}
	if o.PageSize <= 0 {
		o.PageSize = 100
	}
	if o.MaxPages <= 0 {
		o.MaxPages = 100
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 32 << 20
	}
	if o.MaxParallel <= 0 {
		o.MaxParallel = 6
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{opt: o, base: u, bstr: u.String()}, nil
}

// search is one type's search: the query and the types it may bring back
// (the type itself and, through _include, its Medications).
type search struct {
	typ     string
	query   url.Values
	include map[string]bool // types accepted as includes
	areas   fhir.Areas      // asked areas the type may fall in
}

// plan lists the searches for the areas asked. A type with no patient
// search parameter of its own (Medication, and the demographics types) comes
// with another search's _include.
func (s *Source) plan(pid string, areas fhir.Areas) []search {
	var out []search
	for _, t := range fhir.TypesOf(areas &^ fhir.AreaDemographics) {
		if t == "Medication" || t == "Organization" || t == "Practitioner" || t == "Patient" {
			continue
		}
		q := url.Values{"patient": {pid}, "_count": {strconv.Itoa(s.opt.PageSize)}}
		sr := search{typ: t, query: q, areas: fhir.AreasOfType(t) & areas}
		if t == "MedicationStatement" || t == "MedicationRequest" {
			q.Set("_include", t+":medication")
			sr.include = map[string]bool{"Medication": true}
		}
		for k, v := range filterFor(t, areas) {
			q[k] = v
		}
		out = append(out, sr)
	}
	return out
}

// filterFor narrows a type's search on the server when that cannot lose a
// resource gpgate would place in an asked area: only when the type's default
// area (where a resource without a matching category or code falls) is not
// asked, and every asked area of the type is told apart by code, or every
// one by category.
func filterFor(t string, areas fhir.Areas) url.Values {
	var codes, cats []string
	fallbackAsked, mixed := false, false
	first := true
	for _, d := range fhir.AreaTable {
		for _, at := range d.Types {
			if at.Type != t {
				continue
			}
			isFallback := first && len(at.Codes) == 0
			if len(at.Codes) == 0 {
				first = false
			}
			if !areas.Any(d.Area) {
				continue
			}
			switch {
			case isFallback || (at.Category == "" && len(at.Codes) == 0):
				fallbackAsked = true
			case len(at.Codes) > 0:
				for _, c := range at.Codes {
					codes = append(codes, c.System+"|"+c.Code)
				}
			default:
				cats = append(cats, at.CategorySystem+"|"+at.Category)
			}
		}
	}
	if fallbackAsked || (len(codes) > 0 && len(cats) > 0) {
		mixed = true
	}
	switch {
	case mixed:
		return nil
	case len(codes) > 0:
		return url.Values{"code": {strings.Join(codes, ",")}}
	case len(cats) > 0:
		return url.Values{"category": {strings.Join(cats, ",")}}
	}
	return nil
}

// result is what one search brought back.
type result struct {
	sr      search
	entries []Entry
	err     error
}

// Record fetches the patient's record: Patient (with its practice and GP),
// then the areas asked, in parallel.
func (s *Source) Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error) {
	patient, demo, err := s.findPatient(ctx, nhs)
	if err != nil {
		return nil, err
	}
	plan := s.plan(patient.ID, areas)
	results := make([]result, len(plan))
	sem := make(chan struct{}, s.opt.MaxParallel)
	var wg sync.WaitGroup
	for i, sr := range plan {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = result{sr: sr, err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, s.opt.AreaTimeout)
			defer cancel()
			es, err := s.searchAll(actx, sr)
			results[i] = result{sr: sr, entries: es, err: err}
		}()
	}
	wg.Wait()
	return s.assemble(nhs, areas, patient, demo, results)
}

// findPatient finds the one Patient with the NHS number, with the practice
// and GP it references when the server includes them.
func (s *Source) findPatient(ctx context.Context, nhs fhir.NHSNumber) (Entry, []Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.AreaTimeout)
	defer cancel()
	q := url.Values{"identifier": {fhir.NHSNumberSystem + "|" + string(nhs)}}
	q.Add("_include", "Patient:general-practitioner")
	q.Add("_include", "Patient:organization")
	page, status, err := s.get(ctx, s.bstr+"/Patient?"+q.Encode())
	if status == http.StatusBadRequest { // a server that refuses the includes
		q.Del("_include")
		page, _, err = s.get(ctx, s.bstr+"/Patient?"+q.Encode())
	}
	if err != nil {
		s.opt.Logger.Warn("fhirapi: patient search failed", "practice", s.opt.Practice, "err", err)
		return Entry{}, nil, &fhir.Error{Code: fhir.CodeTimeout, Diagnostics: "the practice system is unavailable", Cause: err}
	}
	var matches, demo []Entry
	for _, e := range page.Entries {
		switch {
		case e.Type == "Patient" && e.Mode != "include":
			if carriesNHS(e.JSON, nhs) {
				matches = append(matches, e)
			}
		case e.Type == "Organization" || e.Type == "Practitioner":
			demo = append(demo, e)
		}
	}
	switch len(matches) {
	case 0:
		return Entry{}, nil, fhir.Errorf(fhir.CodePatientNotFound, "no patient with that NHS number is held by the practice")
	case 1:
		return matches[0], demo, nil
	}
	s.opt.Logger.Error("fhirapi: more than one patient with one NHS number", "practice", s.opt.Practice, "count", len(matches))
	return Entry{}, nil, fhir.Internal(errors.New("fhirapi: ambiguous patient"))
}

// carriesNHS reports whether a Patient's identifiers include the NHS number
// (an upstream that answers with another patient is refused).
func carriesNHS(raw []byte, nhs fhir.NHSNumber) bool {
	var p struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if err := jsonUnmarshal(raw, &p); err != nil {
		return false
	}
	for _, id := range p.Identifier {
		if id.System == fhir.NHSNumberSystem && strings.ReplaceAll(id.Value, " ", "") == string(nhs) {
			return true
		}
	}
	return false
}

// errPages marks a search given up at MaxPages.
var errPages = errors.New("fhirapi: too many pages")

// searchAll runs one search and follows its next links to the end.
func (s *Source) searchAll(ctx context.Context, sr search) ([]Entry, error) {
	next := s.bstr + "/" + sr.typ + "?" + sr.query.Encode()
	var out []Entry
	for pages := 0; next != ""; pages++ {
		if pages == s.opt.MaxPages {
			return nil, errPages
		}
		page, _, err := s.get(ctx, next)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Entries {
			if (e.Type == sr.typ && e.Mode != "include") || (e.Mode == "include" && sr.include[e.Type]) {
				out = append(out, e)
			}
		}
		if next, err = s.follow(page.Next); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// follow checks a next link: it must stay on the upstream's origin (the
// bearer token never goes elsewhere). A relative link is resolved on the base.
func (s *Source) follow(link string) (string, error) {
	if link == "" {
		return "", nil
	}
	u, err := s.base.Parse(link)
	if err != nil {
		return "", fmt.Errorf("fhirapi: next link: %w", err)
	}
	if u.Scheme != s.base.Scheme || u.Host != s.base.Host {
		return "", errors.New("fhirapi: next link leaves the upstream server")
	}
	return u.String(), nil
}

// get fetches one searchset page. It returns the HTTP status when there was
// an answer.
func (s *Source) get(ctx context.Context, u string) (*Page, int, error) {
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, 0, err
		}
		req.Header.Set("Accept", "application/fhir+json")
		if id := fhir.RequestIDFrom(ctx); id != "" {
			req.Header.Set("X-Request-ID", id)
		}
		if s.opt.Token != nil {
			tok, err := s.opt.Token.Token(ctx)
			if err != nil {
				return nil, 0, fmt.Errorf("fhirapi: token: %w", err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := s.opt.HTTPClient.Do(req)
		if err != nil {
			return nil, 0, redactURL(err)
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, s.opt.MaxBody+1))
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && try == 0 {
			if f, ok := s.opt.Token.(forgetter); ok {
				f.Forget()
				continue
			}
		}
		if resp.StatusCode != http.StatusOK {
			return nil, resp.StatusCode, fmt.Errorf("fhirapi: upstream status %d", resp.StatusCode)
		}
		if rerr != nil {
			return nil, resp.StatusCode, redactURL(rerr)
		}
		if int64(len(body)) > s.opt.MaxBody {
			return nil, resp.StatusCode, fmt.Errorf("fhirapi: page larger than %d bytes", s.opt.MaxBody)
		}
		page, err := ParsePage(body)
		return page, resp.StatusCode, err
	}
}

// redactURL drops the URL (which carries the patient's upstream id or NHS
// number) from a client error.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// assemble re-identifies and canonicalises what was fetched and builds the
// Record: Patient first, then demographics, then each area's resources in
// plan order; failed areas are left out with a warning each.
func (s *Source) assemble(nhs fhir.NHSNumber, areas fhir.Areas, patient Entry, demo []Entry, results []result) (*fhir.Record, error) {
	pid := fhir.PatientID(nhs)
	var failed fhir.Areas
	for _, r := range results {
		if r.err != nil {
			failed |= r.sr.areas
			s.opt.Logger.Warn("fhirapi: area left out", "practice", s.opt.Practice, "type", r.sr.typ,
				"areas", r.sr.areas.String(), "err", r.err)
		}
	}
	type cand struct {
		e  Entry
		ix *fhir.Resource // upstream resource, indexed (for area and profile)
		id string
	}
	var cands []cand
	seen := map[string]bool{}
	w := &rewriter{base: s.bstr, refs: map[string]string{}}
	add := func(e Entry, newID string, keep func(*fhir.Resource) bool) {
		key := e.Type + "/" + e.ID
		if seen[key] {
			return
		}
		r, err := fhir.NewResource(e.JSON)
		if err != nil || (keep != nil && !keep(r)) {
			return
		}
		seen[key] = true
		w.refs[key] = e.Type + "/" + newID
		if e.FullURL != "" {
			w.refs[e.FullURL] = e.Type + "/" + newID
		}
		cands = append(cands, cand{e, r, newID})
	}
	add(patient, pid, nil)
	for _, e := range demo {
		add(e, fhir.ResourceID(pid, localID(e.Type, e.ID)), nil)
	}
	for _, r := range results {
		if r.err != nil {
			continue
		}
		for _, e := range r.entries {
			add(e, fhir.ResourceID(pid, localID(e.Type, e.ID)), func(x *fhir.Resource) bool {
				return areas.Any(x.Ix.Area) && !failed.Any(x.Ix.Area)
			})
		}
	}
	rec := &fhir.Record{NHS: nhs, PatientID: pid, Practice: s.opt.Practice}
	invalid := map[fhir.Area]int{}
	h := sha256.New()
	for _, c := range cands {
		raw, err := w.Rewrite(c.e.JSON, c.id, profileOf(c.ix))
		var res *fhir.Resource
		if err == nil {
			res, err = fhir.Canonicalize(raw)
		}
		if err != nil {
			if c.e.Type == "Patient" {
				s.opt.Logger.Warn("fhirapi: upstream Patient is not valid R4", "practice", s.opt.Practice)
				return nil, fhir.Internal(errors.New("fhirapi: upstream Patient is not valid R4")) // the cause may quote values
			}
			invalid[c.ix.Ix.Area]++
			continue
		}
		rec.Resources = append(rec.Resources, res)
		h.Write(res.JSON)
	}
	fhir.LinkMedicationCodes(rec.Resources)
	rec.Version = "fhirapi-" + hex.EncodeToString(h.Sum(nil)[:12])
	for _, a := range areas.List() {
		switch {
		case failed.Any(a):
			rec.Warnings = append(rec.Warnings, fhir.Issue{Severity: "warning", Code: fhir.WarnAreaUnavailable,
				Diagnostics: "the practice system did not return the " + a.Name() + " area in time; it is left out of this answer"})
		case invalid[a] > 0:
			s.opt.Logger.Warn("fhirapi: invalid upstream resources left out", "practice", s.opt.Practice, "area", a.Name(), "count", invalid[a])
			rec.Warnings = append(rec.Warnings, fhir.Issue{Severity: "warning", Code: fhir.WarnAreaUnavailable,
				Diagnostics: "some entries of the " + a.Name() + " area could not be read from the practice system and are left out"})
		}
	}
	return rec, nil
}
