package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

func TestMedianAndRatio(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		t.Run(fmt.Sprint(tc.in), func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Fatalf("median = %v, want %v", got, tc.want)
			}
		})
	}
	rs := []result{
		{Target: "gpgate", Scenario: "s", Concurrency: 1, Throughput: 50, P99: 9},
		{Target: "baseline", Scenario: "s", Concurrency: 1, Throughput: 100, P99: 1},
		{Target: "gpgate", Scenario: "s", Concurrency: 1, Throughput: 90, P99: 3},
		{Target: "baseline", Scenario: "s", Concurrency: 1, Throughput: 100, P99: 1},
		{Target: "gpgate", Scenario: "s", Concurrency: 1, Throughput: 60, P99: 5},
		{Target: "baseline", Scenario: "s", Concurrency: 1, Throughput: 200, P99: 2},
	}
	r, ok := ratio(rs, "s", 1, "gpgate", "baseline")
	if !ok || r != 0.5 { // per-round ratios 0.5, 0.9, 0.3: median 0.5
		t.Fatalf("ratio = %v %v, want 0.5", r, ok)
	}
	if _, ok := ratio(rs, "s", 16, "gpgate", "baseline"); ok {
		t.Fatal("a ratio without rounds")
	}
	s := summarise(rs)[cellKey{"s", 1, "gpgate"}]
	if s.Throughput != 60 || s.P99 != 5 || s.Rounds != 3 {
		t.Fatalf("summary %+v", s)
	}
}

// TestBaselineAnswersTheSameBytes: the baseline answers each recorded
// request with exactly the recorded bytes, and nothing else.
func TestBaselineAnswersTheSameBytes(t *testing.T) {
	b := newBaseline()
	b.put(http.MethodGet, "/Patient?identifier=x%7C1", nil, []byte(`{"a":1}`))
	b.put(http.MethodPost, "/Patient/$getstructuredrecord", []byte(`{"p":1}`), []byte(`{"b":2}`))
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	defer b.close()
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{http.MethodGet, "/Patient?identifier=x%7C1", "", 200, `{"a":1}`},
		{http.MethodPost, "/Patient/$getstructuredrecord", `{"p":1}`, 200, `{"b":2}`},
		{http.MethodPost, "/Patient/$getstructuredrecord", `{"p":2}`, 404, ""},
		{http.MethodGet, "/Patient?identifier=x%7C2", "", 404, ""},
	} {
		t.Run(tc.method+tc.path+tc.body, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			req, _ := newRequest(context.Background(), b.url, tc.method, tc.path, body, "tok")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || (tc.status == 200 && string(got) != tc.want) {
				t.Fatalf("%d %s, want %d %s", res.StatusCode, got, tc.status, tc.want)
			}
		})
	}
}

func TestRelative(t *testing.T) {
	for _, tc := range []struct {
		base, link, want string
		err              bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/Condition?patient=p&_offset=50", "/Condition?patient=p&_offset=50", false},
		{"http://127.0.0.1:8080/fhir", "http://127.0.0.1:8080/fhir/Patient/p/$everything?_offset=2", "/Patient/p/$everything?_offset=2", false},
		{"http://127.0.0.1:8080", "/Condition?_offset=1", "/Condition?_offset=1", false},
		{"http://127.0.0.1:8080", "http://elsewhere.example/Condition", "", true},
	} {
		t.Run(tc.link, func(t *testing.T) {
			got, err := relative(tc.base, tc.link)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("relative = %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestRegionSample(t *testing.T) {
	all := regionNHS(1000)
	if len(all) != 1000 {
		t.Fatalf("%d numbers", len(all))
	}
	seen := map[fhir.NHSNumber]bool{}
	for _, n := range all {
		if !fhir.ValidNHSNumber(string(n)) || !strings.HasPrefix(string(n), "999") || seen[n] {
			t.Fatalf("bad or repeated number %s", n)
		}
		seen[n] = true
	}
	s := sample(all, 100, 1)
	if len(s) != 100 {
		t.Fatalf("sample of %d", len(s))
	}
	// Spread over the whole region: every tenth of it is represented.
	idx := map[fhir.NHSNumber]int{}
	for i, n := range all {
		idx[n] = i
	}
	deciles := map[int]bool{}
	for _, n := range s {
		deciles[idx[n]/100] = true
	}
	if len(deciles) != 10 {
		t.Fatalf("sample covers %d tenths of the region", len(deciles))
	}
	if fmt.Sprint(sample(all, 100, 1)) != fmt.Sprint(s) {
		t.Fatal("the sample depends on more than the seed")
	}
}

// fakeGate pages a 5-resource Bundle 2 at a time and counts requests.
func fakeGate(t *testing.T) (*httptest.Server, *int) {
	n := 0
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		off := 0
		fmt.Sscan(r.URL.Query().Get("_offset"), &off)
		var entries []string
		for i := off; i < min(off+2, 5); i++ {
			entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Condition","id":"p-c%d","subject":{"reference":"Patient/p"}}}`, i))
		}
		links := ""
		if off+2 < 5 {
			links = fmt.Sprintf(`,"link":[{"relation":"next","url":"%s/Condition?patient=p&_offset=%d"}]`, srv.URL, off+2)
		}
		fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","total":5%s,"entry":[%s]}`, links, strings.Join(entries, ","))
	}))
	return srv, &n
}

// TestRecordFollowsPages: recording an operation follows every next link,
// keeps each page's bytes for the baseline and each resource for the peer;
// driving it runs the same calls.
func TestRecordFollowsPages(t *testing.T) {
	srv, n := fakeGate(t)
	defer srv.Close()
	tok := &token{}
	tok.set("tok", time.Minute)
	c := &consumer{base: srv.URL, hc: srv.Client()}
	bl, pd := newBaseline(), newPeerData()
	rec := &recorder{c: c, baseline: bl, peer: pd}
	o, err := rec.record(context.Background(), call{method: http.MethodGet, path: "/Condition?patient=p", tok: tok}, true, "p")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.calls) != 3 || o.resources != 5 || *n != 3 {
		t.Fatalf("%d calls, %d resources, %d requests", len(o.calls), o.resources, *n)
	}
	if len(bl.answers) != 3 || len(pd.list) != 5 || len(pd.members["p"]) != 5 {
		t.Fatalf("baseline %d answers, peer %d resources, %d members", len(bl.answers), len(pd.list), len(pd.members["p"]))
	}
	if err := bl.start(); err != nil {
		t.Fatal(err)
	}
	defer bl.close()
	for _, tg := range []target{
		{name: "gpgate", base: srv.URL, hc: srv.Client(), auth: true},
		{name: "baseline", base: bl.url, hc: http.DefaultClient, auth: true},
	} {
		got, err := runOp(context.Background(), tg, o)
		if err != nil || got != int64(o.bytes) {
			t.Fatalf("%s: %d bytes, %v; want %d", tg.name, got, err, o.bytes)
		}
	}
	// Without the token gpgate refuses: an error, not a measured op.
	if _, err := runOp(context.Background(), target{base: srv.URL, hc: srv.Client()}, o); err == nil {
		t.Fatal("a refused call was not an error")
	}
	// A refusal at setup is a statusError the setup can recognise.
	_, err = rec.record(context.Background(), call{method: http.MethodGet, path: "/Condition?patient=p", tok: &token{}}, false, "")
	var se *statusError
	if !asStatus(err, &se) || se.status != http.StatusUnauthorized {
		t.Fatalf("refusal at setup: %v", err)
	}
}

func TestDriveCountsOpsAndErrors(t *testing.T) {
	srv, _ := fakeGate(t)
	defer srv.Close()
	tok := &token{}
	tok.set("tok", time.Minute)
	good := &op{calls: []call{{method: http.MethodGet, path: "/Condition?patient=p", tok: tok}}}
	bad := &op{calls: []call{{method: http.MethodGet, path: "/Condition?patient=p"}}}
	for _, tc := range []struct {
		name       string
		ops        []*op
		wantErrors bool
	}{{"ok", []*op{good}, false}, {"refused", []*op{bad}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scenario{name: tc.name, ops: tc.ops}
			r := drive(context.Background(), target{name: "gpgate", base: srv.URL, hc: srv.Client(), auth: true, ops: func(s *scenario) []*op { return s.ops }}, s, 2, 20*time.Millisecond, 200*time.Millisecond, 1)
			if tc.wantErrors != (r.Errors > 0) || tc.wantErrors != (r.Ops == 0) {
				t.Fatalf("%+v", r)
			}
			if !tc.wantErrors && (r.P50 <= 0 || r.Max < r.P99 || r.P99 < r.P50 || r.Throughput <= 0) {
				t.Fatalf("figures %+v", r)
			}
		})
	}
}

func TestPrintReport(t *testing.T) {
	rs := []result{
		{Target: "gpgate", Scenario: "everything-500", Concurrency: 16, Throughput: 500, P50: 1, P95: 2, P99: 3, Max: 4},
		{Target: "baseline", Scenario: "everything-500", Concurrency: 16, Throughput: 1000, P99: 1},
		{Target: "peer", Scenario: "everything-500", Concurrency: 16, Throughput: 20, P99: 100},
	}
	var b bytes.Buffer
	printReport(&b, []*scenario{{name: "everything-500", desc: "d", peer: []*op{{}}}}, []int{16}, rs, true)
	for _, want := range []string{"everything-500", "50.0%", "25.0x", "500"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
