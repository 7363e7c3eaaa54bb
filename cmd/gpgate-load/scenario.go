package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/gpgate/gpgate/fhir"
)

// call is one HTTP request of an operation. tok is nil for calls that go
// out without a token (never to gpgate).
type call struct {
	method, path string
	body         []byte
	tok          *token
}

// op is one consumer operation: a fixed sequence of calls (a search and
// every page after it, recorded once from gpgate's own next links).
type op struct {
	calls     []call
	resources int // resources in the whole answer
	bytes     int // bytes of the whole answer
}

// scenario is a named pool of operations; a worker picks one at random for
// each iteration. peer holds the same operations as a peer server is asked
// them (nil: the peer does not take part).
type scenario struct {
	name, desc string
	ops        []*op
	peer       []*op
}

// recorder runs each operation once against gpgate at setup: it follows
// next links to build the call sequence, keeps every answer's bytes for
// the bare-bytes baseline, and every resource for the peer.
type recorder struct {
	c        *consumer
	baseline *baseline
	peer     *peerData
}

type bundleJSON struct {
	Total int `json:"total"`
	Link  []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// record runs first and the pages after it; it fails on any answer but 200.
// With keep, the resources go to the peer (as members of member's
// $everything when member is not "").
func (r *recorder) record(ctx context.Context, first call, keep bool, member string) (*op, error) {
	o := &op{}
	next := first
	for i := 0; ; i++ {
		if i > 200 {
			return nil, fmt.Errorf("%s: more than 200 pages", first.path)
		}
		st, b, err := r.c.do(ctx, next.method, next.path, next.body, next.tok.get())
		if err != nil {
			return nil, err
		}
		if st != http.StatusOK {
			return nil, &statusError{status: st, body: b}
		}
		r.baseline.put(next.method, next.path, next.body, b)
		o.calls = append(o.calls, next)
		o.bytes += len(b)
		var bj bundleJSON
		if err := json.Unmarshal(b, &bj); err != nil {
			return nil, fmt.Errorf("%s: not a Bundle: %w", next.path, err)
		}
		o.resources += len(bj.Entry)
		if keep && r.peer != nil {
			for _, e := range bj.Entry {
				r.peer.add(member, e.Resource)
			}
		}
		link := ""
		for _, l := range bj.Link {
			if l.Relation == "next" {
				link = l.URL
			}
		}
		if link == "" {
			return o, nil
		}
		p, err := relative(r.c.base, link)
		if err != nil {
			return nil, err
		}
		next = call{method: http.MethodGet, path: p, tok: first.tok}
	}
}

type statusError struct {
	status int
	body   []byte
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d: %.300s", e.status, e.body)
}

// regionNHS lists n NHS numbers of a demo region: the generator gives 999-
// prefixed test numbers with a valid check digit, in order (one notable
// patient's number is made invalid; it fails at setup and is left out).
func regionNHS(n int) []fhir.NHSNumber {
	out := make([]fhir.NHSNumber, 0, n)
	for k := 0; len(out) < n && k < 1000000; k++ {
		nine := fmt.Sprintf("999%06d", k)
		c, ok := fhir.CheckDigit(nine)
		if !ok {
			continue
		}
		out = append(out, fhir.NHSNumber(nine+string(c)))
	}
	return out
}

// sample picks k of the numbers, spread evenly over the whole list with a
// seeded jitter, in a seeded random order.
func sample(all []fhir.NHSNumber, k int, seed uint64) []fhir.NHSNumber {
	if k >= len(all) {
		k = len(all)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]fhir.NHSNumber, 0, k)
	step := float64(len(all)) / float64(k)
	for i := 0; i < k; i++ {
		j := int(float64(i)*step) + r.IntN(max(1, int(step)))
		out = append(out, all[min(j, len(all)-1)])
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func searchPath(nhs fhir.NHSNumber) string {
	return "/Patient?identifier=" + url.QueryEscape(fhir.NHSNumberSystem+"|"+string(nhs))
}

// patientID finds a patient's logical id as a consumer does: a Patient
// search by NHS number (ids are keyed per deployment: a consumer cannot
// derive them).
func (c *consumer) patientID(ctx context.Context, nhs fhir.NHSNumber) (string, error) {
	st, b, err := c.do(ctx, http.MethodGet, searchPath(nhs), nil, c.system.get())
	if err != nil {
		return "", err
	}
	if st != http.StatusOK {
		return "", &statusError{status: st, body: b}
	}
	var bj bundleJSON
	if err := json.Unmarshal(b, &bj); err != nil || len(bj.Entry) == 0 {
		return "", fmt.Errorf("Patient search by NHS number found no Patient")
	}
	var p struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(bj.Entry[0].Resource, &p); err != nil || p.ID == "" {
		return "", fmt.Errorf("Patient search by NHS number answered a Patient without an id")
	}
	return p.ID, nil
}

// structuredBody asks $getstructuredrecord for every section.
func structuredBody(nhs fhir.NHSNumber) []byte {
	params := []map[string]any{{"name": "patientNHSNumber", "valueIdentifier": map[string]string{"system": fhir.NHSNumberSystem, "value": string(nhs)}}}
	for _, s := range fhir.Sections {
		params = append(params, map[string]any{"name": s.Param})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	return b
}

// areaSearches are the per-area searches an EPR makes for a summary view.
var areaSearches = []string{
	"/Condition?patient=%s&category=problem-list-item",
	"/MedicationStatement?patient=%s",
	"/AllergyIntolerance?patient=%s",
	"/Observation?patient=%s&category=laboratory",
}

type setupOptions struct {
	regionPatients  int // patients in the region
	searchPool      int // patients for Patient search
	mixPool         int // patients for the record-size mix
	target          int // resources of the fixed-size record
	everythingCount int // _count of $everything pages (0: the server's default)
	seed            uint64
	log             io.Writer
}

// setup builds the scenarios: tokens, consents, and one recorded run of
// every operation.
func setup(ctx context.Context, c *consumer, bl *baseline, peer *peerData, o setupOptions) ([]*scenario, error) {
	rec := &recorder{c: c, baseline: bl, peer: peer}
	all := regionNHS(o.regionPatients)

	// Patient search by NHS number, over patients spread across the whole
	// region, with the system token.
	search := &scenario{name: "patient-search", desc: fmt.Sprintf("Patient?identifier=<NHS number>, system token, %d patients spread over the region of %d", o.searchPool, o.regionPatients)}
	skipped := 0
	for _, n := range sample(all, o.searchPool, o.seed) {
		op, err := rec.record(ctx, call{method: http.MethodGet, path: searchPath(n), tok: c.system}, true, "")
		if err != nil {
			var se *statusError
			if asStatus(err, &se) && se.status == http.StatusForbidden {
				skipped++ // dissent, or the invalid number: refused, left out
				continue
			}
			return nil, fmt.Errorf("patient search: %w", err)
		}
		search.ops = append(search.ops, op)
		search.peer = append(search.peer, untokened(op))
	}
	if len(search.ops) == 0 {
		return nil, fmt.Errorf("patient search: every patient was refused")
	}
	fmt.Fprintf(o.log, "setup: patient-search: %d patients (%d refused and left out)\n", len(search.ops), skipped)

	// The record-size mix: patients spread over the region, each with a
	// consent to view and a patient-context token.
	type pat struct {
		nhs fhir.NHSNumber
		id  string
		tok *token
	}
	var mix []pat
	for _, n := range sample(all, o.mixPool, o.seed+1) {
		id, err := c.patientID(ctx, n)
		if err != nil {
			fmt.Fprintf(o.log, "setup: a mix patient left out: %v\n", err)
			continue
		}
		t, err := c.patientToken(ctx, id)
		if err != nil {
			fmt.Fprintf(o.log, "setup: a mix patient left out: %v\n", err)
			continue
		}
		mix = append(mix, pat{n, id, t})
	}
	everyMix := &scenario{name: "everything-mix", desc: fmt.Sprintf("$everything, all pages, %d patients spread over the region (the region's mix of record sizes)", len(mix))}
	structured := &scenario{name: "structured", desc: "$getstructuredrecord, every section, the same patients"}
	areas := &scenario{name: "area-search", desc: "problems, medication, allergies, laboratory searches (all pages), the same patients"}
	var sizes []int
	for _, p := range mix {
		eop, err := rec.record(ctx, call{method: http.MethodGet, path: everythingPath(p.id, o.everythingCount), tok: p.tok}, true, p.id)
		if err != nil {
			var se *statusError
			if asStatus(err, &se) && se.status == http.StatusForbidden {
				continue // the patient dissents
			}
			return nil, fmt.Errorf("everything: %w", err)
		}
		everyMix.ops = append(everyMix.ops, eop)
		everyMix.peer = append(everyMix.peer, peerEverything(p.id, eop))
		sizes = append(sizes, eop.resources)
		sop, err := rec.record(ctx, call{method: http.MethodPost, path: "/Patient/$getstructuredrecord", body: structuredBody(p.nhs), tok: p.tok}, false, "")
		if err != nil {
			return nil, fmt.Errorf("structured record: %w", err)
		}
		structured.ops = append(structured.ops, sop)
		for _, f := range areaSearches {
			aop, err := rec.record(ctx, call{method: http.MethodGet, path: fmt.Sprintf(f, p.id), tok: p.tok}, false, "")
			if err != nil {
				return nil, fmt.Errorf("area search: %w", err)
			}
			areas.ops = append(areas.ops, aop)
		}
	}
	if len(everyMix.ops) == 0 {
		return nil, fmt.Errorf("everything: no patient of the mix could be read")
	}
	sort.Ints(sizes)
	everyMix.desc += fmt.Sprintf(": %d to %d resources, median %d", sizes[0], sizes[len(sizes)-1], sizes[len(sizes)/2])
	fmt.Fprintf(o.log, "setup: everything-mix: %d patients, %d to %d resources (median %d)\n", len(sizes), sizes[0], sizes[len(sizes)-1], sizes[len(sizes)/2])

	// The fixed-size record: the first patient in region order whose
	// record is within 15% of the target size.
	var fixed *scenario
	for i, n := range all {
		if i >= 400 {
			break
		}
		id, err := c.patientID(ctx, n)
		if err != nil {
			continue
		}
		t, err := c.patientToken(ctx, id)
		if err != nil {
			continue
		}
		st, b, err := c.do(ctx, http.MethodGet, "/Patient/"+id+"/$everything?_count=1", nil, t.get())
		if err != nil || st != http.StatusOK {
			continue
		}
		var bj bundleJSON
		if json.Unmarshal(b, &bj) != nil || bj.Total < o.target*85/100 || bj.Total > o.target*115/100 {
			continue
		}
		fop, err := rec.record(ctx, call{method: http.MethodGet, path: everythingPath(id, o.everythingCount), tok: t}, true, id)
		if err != nil {
			return nil, fmt.Errorf("everything %d: %w", o.target, err)
		}
		fixed = &scenario{name: "everything-" + strconv.Itoa(o.target),
			desc: fmt.Sprintf("$everything of one record of %d resources (%d KB), all %d pages", fop.resources, fop.bytes/1024, len(fop.calls)),
			ops:  []*op{fop},
			peer: []*op{peerEverything(id, fop)}}
		break
	}
	out := []*scenario{search}
	if fixed != nil {
		out = append(out, fixed)
		fmt.Fprintf(o.log, "setup: %s: %s\n", fixed.name, fixed.desc)
	} else {
		fmt.Fprintf(o.log, "setup: no record of about %d resources among the first 400 patients\n", o.target)
	}
	return append(out, everyMix, structured, areas), nil
}

func everythingPath(id string, count int) string {
	p := "/Patient/" + id + "/$everything"
	if count > 0 {
		p += "?_count=" + strconv.Itoa(count)
	}
	return p
}

// peerEverything is $everything as the peer is asked it: one request
// answering the whole record.
func peerEverything(id string, o *op) *op {
	return &op{calls: []call{{method: http.MethodGet, path: "/Patient/" + id + "/$everything"}}, resources: o.resources}
}

// untokened copies an operation for the peer: the same calls, no token.
func untokened(o *op) *op {
	cp := *o
	cp.calls = make([]call, len(o.calls))
	for i, c := range o.calls {
		c.tok = nil
		cp.calls[i] = c
	}
	return &cp
}

func asStatus(err error, target **statusError) bool { return errors.As(err, target) }
