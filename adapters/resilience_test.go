package adapters

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

func TestRetryOnlyIdempotent(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		header  string
		status  int
		wantHit int64
	}{
		{"GET retried on 503", http.MethodGet, "", 503, 3},
		{"GET retried on 429", http.MethodGet, "", 429, 3},
		{"GET not retried on 500", http.MethodGet, "", 500, 1},
		{"GET not retried on 404", http.MethodGet, "", 404, 1},
		{"POST never retried", http.MethodPost, "", 503, 1},
		{"POST with Idempotency-Key retried", http.MethodPost, "k1", 503, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			var bodies sync.Map
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := hits.Add(1)
				b := make([]byte, 16)
				k, _ := r.Body.Read(b)
				bodies.Store(n, string(b[:k]))
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			var slept []time.Duration
			rt := NewRetryTransport(nil, RetryOptions{Attempts: 3, Jitter: func() float64 { return 0.5 },
				Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }})
			req, _ := http.NewRequest(tc.method, srv.URL, strings.NewReader("body"))
			if tc.header != "" {
				req.Header.Set("Idempotency-Key", tc.header)
			}
			resp, err := (&http.Client{Transport: rt}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			if got := hits.Load(); got != tc.wantHit {
				t.Fatalf("upstream hits = %d, want %d", got, tc.wantHit)
			}
			if tc.wantHit == 3 {
				// exponential: half of 100ms, then half of 200ms
				if len(slept) != 2 || slept[0] != 50*time.Millisecond || slept[1] != 100*time.Millisecond {
					t.Fatalf("backoff = %v", slept)
				}
				if tc.method == http.MethodPost {
					if b, _ := bodies.Load(int64(3)); b != "body" {
						t.Fatalf("replayed body = %q", b)
					}
				}
			}
		})
	}
}

func TestRetryStopsAtDeadline(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(503)
	}))
	defer srv.Close()
	rt := NewRetryTransport(nil, RetryOptions{Attempts: 5, Sleep: func(context.Context, time.Duration) error {
		t.Fatal("slept although the backoff would pass the deadline")
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 || resp.StatusCode != 503 {
		t.Fatalf("hits %d status %d", hits.Load(), resp.StatusCode)
	}
}

// --- snapshot cache --------------------------------------------------------

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestSnapshotHitTTLAndKey(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	src := &fakeSource{fn: answer("v1", 10, 20)}
	snaps := NewSnapshots(SnapshotOptions{TTL: 10 * time.Second, Now: clk.Now})
	s := snaps.Wrap("P1", src)
	ctx := context.Background()
	steps := []struct {
		name      string
		advance   time.Duration
		nhs       fhir.NHSNumber
		areas     fhir.Areas
		wantCalls int64
	}{
		{"first fetch", 0, nhsA, fhir.AreaProblems, 1},
		{"page two: a hit", time.Second, nhsA, fhir.AreaProblems, 1},
		{"other areas: a miss", 0, nhsA, fhir.AreaMedication, 2},
		{"other patient: a miss", 0, nhsB, fhir.AreaProblems, 3},
		{"just before TTL: a hit", 8 * time.Second, nhsA, fhir.AreaProblems, 3},
		{"at TTL: refetched", time.Second, nhsA, fhir.AreaProblems, 4},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clk.Add(st.advance)
			rec, err := s.Record(ctx, st.nhs, st.areas)
			if err != nil || rec.NHS != st.nhs || len(rec.Resources) != 2 {
				t.Fatalf("Record = %+v, %v", rec, err)
			}
			if c := src.calls.Load(); c != st.wantCalls {
				t.Fatalf("calls = %d, want %d", c, st.wantCalls)
			}
		})
	}
	t.Run("a caller may change its copy", func(t *testing.T) {
		rec, _ := s.Record(ctx, nhsA, fhir.AreaProblems)
		rec.Resources = rec.Resources[:0]
		rec.Practice = "X"
		again, _ := s.Record(ctx, nhsA, fhir.AreaProblems)
		if len(again.Resources) != 2 || again.Practice != "" {
			t.Fatalf("snapshot changed through a caller's copy: %+v", again)
		}
	})
}

// TestSnapshotPartialAnswerShortLived: a record with an area left out is
// held for paging (PartialTTL), then the practice is asked again.
func TestSnapshotPartialAnswerShortLived(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	src := &fakeSource{fn: func(_ context.Context, nhs fhir.NHSNumber, _ fhir.Areas) (*fhir.Record, error) {
		rec := okRecord(nhs, "v1", 10)
		if nhs == nhsB {
			rec.Warnings = []fhir.Issue{{Severity: "warning", Code: fhir.WarnAreaUnavailable}}
		}
		return rec, nil
	}}
	snaps := NewSnapshots(SnapshotOptions{TTL: 30 * time.Second, PartialTTL: 5 * time.Second, Now: clk.Now})
	s := snaps.Wrap("P1", src)
	ctx := context.Background()
	steps := []struct {
		name      string
		advance   time.Duration
		nhs       fhir.NHSNumber
		wantCalls int64
	}{
		{"complete record fetched", 0, nhsA, 1},
		{"partial record fetched", 0, nhsB, 2},
		{"partial: next page a hit", 4 * time.Second, nhsB, 2},
		{"partial: past PartialTTL refetched", 2 * time.Second, nhsB, 3},
		{"complete: still a hit", 0, nhsA, 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clk.Add(st.advance)
			if _, err := s.Record(ctx, st.nhs, fhir.AreaProblems); err != nil {
				t.Fatal(err)
			}
			if c := src.calls.Load(); c != st.wantCalls {
				t.Fatalf("calls = %d, want %d", c, st.wantCalls)
			}
		})
	}
}

func TestSnapshotBytesBound(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	src := &fakeSource{fn: answer("v1", 300, 100)} // 400 bytes a record
	snaps := NewSnapshots(SnapshotOptions{MaxBytes: 1000, TTL: time.Hour, Now: clk.Now})
	s := snaps.Wrap("P1", src)
	ctx := context.Background()
	for _, n := range []fhir.NHSNumber{nhsA, nhsB, nhsC} {
		if _, err := s.Record(ctx, n, fhir.AreaProblems); err != nil {
			t.Fatal(err)
		}
		if _, b := snaps.Stats(); b > 1000 {
			t.Fatalf("cache holds %d bytes, bound 1000", b)
		}
	}
	if e, b := snaps.Stats(); e != 2 || b != 800 {
		t.Fatalf("stats = %d entries, %d bytes; want 2, 800", e, b)
	}
	// nhsA was least recently used: evicted; nhsC is held.
	calls := src.calls.Load()
	_, _ = s.Record(ctx, nhsC, fhir.AreaProblems)
	if src.calls.Load() != calls {
		t.Fatal("most recent snapshot was evicted")
	}
	_, _ = s.Record(ctx, nhsA, fhir.AreaProblems)
	if src.calls.Load() != calls+1 {
		t.Fatal("least recent snapshot was not evicted")
	}
	t.Run("a record larger than the bound is never held", func(t *testing.T) {
		big := NewSnapshots(SnapshotOptions{MaxBytes: 100, Now: clk.Now})
		bs := big.Wrap("P1", &fakeSource{fn: answer("v1", 300)})
		_, _ = bs.Record(ctx, nhsA, fhir.AreaProblems)
		if e, b := big.Stats(); e != 0 || b != 0 {
			t.Fatalf("stats = %d, %d", e, b)
		}
	})
}

// versioned is a source with a record-level version check.
type versioned struct {
	*fakeSource
	version atomic.Value
	checks  atomic.Int64
}

func (v *versioned) Version(context.Context, fhir.NHSNumber) (string, error) {
	v.checks.Add(1)
	return v.version.Load().(string), nil
}

func TestSnapshotNeverServesAcrossVersionChange(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	v := &versioned{}
	v.version.Store("v1")
	v.fakeSource = &fakeSource{fn: func(_ context.Context, nhs fhir.NHSNumber, _ fhir.Areas) (*fhir.Record, error) {
		return okRecord(nhs, v.version.Load().(string), 10), nil
	}}
	snaps := NewSnapshots(SnapshotOptions{TTL: time.Hour, Now: clk.Now})
	// behind a guard, as wired: the guard passes the version check on.
	s := snaps.Wrap("P1", Guard("P1", v, GuardOptions{}))
	ctx := context.Background()
	_, _ = s.Record(ctx, nhsA, fhir.AreaProblems)
	_, _ = s.Record(ctx, nhsA, fhir.AreaMedication)
	rec, _ := s.Record(ctx, nhsA, fhir.AreaProblems)
	if v.calls.Load() != 2 || rec.Version != "v1" || v.checks.Load() != 1 {
		t.Fatalf("calls %d checks %d version %s", v.calls.Load(), v.checks.Load(), rec.Version)
	}
	v.version.Store("v2")
	rec, _ = s.Record(ctx, nhsA, fhir.AreaProblems)
	if rec.Version != "v2" || v.calls.Load() != 3 {
		t.Fatalf("served %s after a version change (calls %d)", rec.Version, v.calls.Load())
	}
	// The fetch of v2 dropped the medication snapshot of v1 as well.
	if e, _ := snaps.Stats(); e != 1 {
		t.Fatalf("entries = %d, want 1", e)
	}
	t.Run("Invalidate drops a patient's snapshots", func(t *testing.T) {
		snaps.Invalidate("P1", nhsA)
		if e, _ := snaps.Stats(); e != 0 {
			t.Fatalf("entries = %d", e)
		}
	})
}

func TestSnapshotOneFetchForConcurrentCallers(t *testing.T) {
	release := make(chan struct{})
	src := &fakeSource{fn: func(ctx context.Context, nhs fhir.NHSNumber, _ fhir.Areas) (*fhir.Record, error) {
		<-release
		return okRecord(nhs, "v1", 5), nil
	}}
	snaps := NewSnapshots(SnapshotOptions{})
	s := snaps.Wrap("P1", src)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Record(context.Background(), nhsA, fhir.AreaProblems); err != nil {
				t.Error(err)
			}
		}()
	}
	for {
		snaps.mu.Lock()
		n := len(snaps.inflight)
		snaps.mu.Unlock()
		if n == 1 && src.calls.Load() == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if c := src.calls.Load(); c != 1 {
		t.Fatalf("calls = %d, want 1", c)
	}
}

func TestSnapshotErrorsAreNotCached(t *testing.T) {
	src := &fakeSource{fn: failing(fhir.CodeTimeout)}
	s := NewSnapshots(SnapshotOptions{}).Wrap("P1", src)
	for i := 0; i < 3; i++ {
		if _, err := s.Record(context.Background(), nhsA, fhir.AreaProblems); err == nil {
			t.Fatal("no error")
		}
	}
	if src.calls.Load() != 3 {
		t.Fatalf("calls = %d", src.calls.Load())
	}
}

func BenchmarkSnapshotHit(b *testing.B) {
	sizes := make([]int, 500)
	for i := range sizes {
		sizes[i] = 800
	}
	src := &fakeSource{fn: answer("v1", sizes...)}
	s := NewSnapshots(SnapshotOptions{TTL: time.Hour}).Wrap("P1", src)
	ctx := context.Background()
	if _, err := s.Record(ctx, nhsA, fhir.AreaProblems); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Record(ctx, nhsA, fhir.AreaProblems); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGuardClosed(b *testing.B) {
	g := Guard("P1", &fakeSource{fn: answer("v1", 10)}, GuardOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := g.Record(ctx, nhsA, fhir.AreaProblems); err != nil {
			b.Fatal(err)
		}
	}
}
