package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// stepClock is an injectable clock advancing step (default 1ms) per call.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(max(c.step, time.Millisecond))
	return c.t
}

func openTest(t testing.TB, opt Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.db")
	if opt.Now == nil {
		opt.Now = (&stepClock{t: t0}).Now
	}
	s, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func entryFor(i int) *fhir.AuditEntry {
	nhs := []fhir.NHSNumber{"9000000009", "9000000017", "9000000025"}[i%3]
	e := &fhir.AuditEntry{
		Time: t0, RequestID: fmt.Sprintf("req-%d", i), Action: "PatientRead", Interaction: "read",
		Outcome: fhir.OutcomeGranted, Rule: "agreement", ClientID: fmt.Sprintf("client-%d", i%2),
		ConsumerODS: "RRK", Practitioner: fmt.Sprintf("sds-%d", i%5), PurposeOfUse: "TREAT",
		NHS: nhs, Practice: "A20047", Types: []string{"Patient"}, Areas: fhir.AreaDemographics, Count: 1,
	}
	if i%4 == 3 {
		e.Outcome, e.Code = fhir.OutcomeDenied, fhir.CodeNoOrganisationConsent
	}
	if i%7 == 6 {
		e.BreakGlass, e.Reason = true, "unconscious"
	}
	return e
}

func TestRecordRoundTrip(t *testing.T) {
	s, path := openTest(t, Options{Node: "n1"})
	ctx := context.Background()
	in := entryFor(6)
	seq, err := s.Append(ctx, in)
	if err != nil || seq != 1 {
		t.Fatalf("Append = %d, %v", seq, err)
	}
	got, ok, err := s.Get(ctx, 1)
	if err != nil || !ok {
		t.Fatalf("Get = %v %v", ok, err)
	}
	want := *in
	want.PatientID = fhir.PatientID(in.NHS) // derived from the NHS number
	if fmt.Sprint(got.AuditEntry) != fmt.Sprint(want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got.AuditEntry, want)
	}
	if got.Seq != 1 || got.Node != "n1" || got.Recorded.IsZero() || got.ID() != "audit-000000000001" {
		t.Errorf("entry meta %d %q %v %s", got.Seq, got.Node, got.Recorded, got.ID())
	}
	if in.PatientID != "" {
		t.Error("Record modified its argument")
	}
	// reopen: the sequence continues and the chain holds
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if seq, err := s2.Append(ctx, entryFor(1)); err != nil || seq != 2 {
		t.Fatalf("Append after reopen = %d, %v", seq, err)
	}
	rep, err := s2.Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestEventID(t *testing.T) {
	for _, tc := range []struct {
		id  string
		seq uint64
		ok  bool
	}{
		{"audit-000000000123", 123, true},
		{"audit-000000000000", 0, false},
		{"audit-123", 0, false},
		{"audit-00000000012x", 0, false},
		{"x-000000000123", 0, false},
		{"audit-18446744073709551615", ^uint64(0), true},
	} {
		t.Run(tc.id, func(t *testing.T) {
			seq, ok := ParseEventID(tc.id)
			if seq != tc.seq || ok != tc.ok {
				t.Errorf("ParseEventID(%q) = %d %v", tc.id, seq, ok)
			}
			if ok && EventID(seq) != tc.id {
				t.Errorf("EventID(%d) = %s", seq, EventID(seq))
			}
		})
	}
}

func fill(t testing.TB, s *Store, n int) {
	t.Helper()
	// sequential so sequence order equals i order
	for i := range n {
		if _, err := s.Append(context.Background(), entryFor(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuery(t *testing.T) {
	s, _ := openTest(t, Options{})
	const n = 60
	fill(t, s, n)
	ctx := context.Background()
	pid := fhir.PatientID("9000000017")
	// The stepClock gives entry i (seq i+1) recorded = t0 + (i+1)ms, so the
	// head load at open consumed no tick: check via Get instead of assuming.
	e10, _, _ := s.Get(ctx, 10)
	e20, _, _ := s.Get(ctx, 20)
	expect := func(f Filter) []uint64 {
		var out []uint64
		for seq := uint64(n); seq >= 1; seq-- {
			e, _, _ := s.Get(ctx, seq)
			if f.match(&e) {
				out = append(out, seq)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
	}{
		{"all", Filter{Count: 1000}},
		{"default page", Filter{}},
		{"patient", Filter{Patient: pid}},
		{"entity", Filter{Entity: "Patient/" + pid}},
		{"entity other type", Filter{Entity: "Consent/x"}},
		{"agent client", Filter{Agent: "client-1"}},
		{"agent clinician", Filter{Agent: "sds-3"}},
		{"agent ods", Filter{Agent: "RRK", Count: 5, Offset: 3}},
		{"denied", Filter{Outcome: fhir.OutcomeDenied}},
		{"break glass", Filter{BreakGlassOnly: true}},
		{"since", Filter{Since: e20.Recorded}},
		{"until", Filter{Until: e10.Recorded}},
		{"window+patient", Filter{Patient: pid, Since: e10.Recorded, Until: e20.Recorded}},
		{"patient+agent+denied", Filter{Patient: pid, Agent: "sds-2", Outcome: fhir.OutcomeDenied}},
		{"offset past end", Filter{Offset: 100}},
		{"page", Filter{Count: 7, Offset: 5}},
		{"total only", Filter{TotalOnly: true, Patient: pid}},
		{"unknown patient", Filter{Patient: "pnobody"}},
		{"action none", Filter{Action: "PatientQuery"}},
		{"action", Filter{Action: "PatientRead", Count: 3}},
		{"patient vs other entity", Filter{Patient: pid, Entity: "Patient/" + fhir.PatientID("9000000009")}},
		{"patient and same entity", Filter{Patient: pid, Entity: "Patient/" + pid}},
		{"agent+denied+break glass", Filter{Agent: "client-1", Outcome: fhir.OutcomeDenied, BreakGlassOnly: true}},
		{"agent granted", Filter{Agent: "sds-4", Outcome: fhir.OutcomeGranted}},
		{"agent prefix only", Filter{Agent: "client-"}},
		{"since+until", Filter{Since: e10.Recorded, Until: e20.Recorded, Count: 4, Offset: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := expect(tc.f)
			got, total, err := s.Query(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if tc.f.Entity == "Consent/x" && len(all) != 0 {
				t.Fatal("test expectation broken")
			}
			if total != len(all) {
				t.Errorf("total = %d, want %d", total, len(all))
			}
			count := tc.f.Count
			if count == 0 {
				count = fhir.DefaultCount
			}
			if tc.f.TotalOnly {
				count = 0
			}
			lo := min(tc.f.Offset, len(all))
			hi := min(lo+count, len(all))
			want := all[lo:hi]
			var gotSeq []uint64
			for _, e := range got {
				gotSeq = append(gotSeq, e.Seq)
			}
			if fmt.Sprint(gotSeq) != fmt.Sprint(want) {
				t.Errorf("seqs = %v\nwant %v", gotSeq, want)
			}
		})
	}
	if _, total, _ := s.Query(ctx, Filter{Patient: pid}); total == 0 || total == n {
		t.Errorf("patient filter selects %d of %d: fixture too uniform", total, n)
	}
}

func TestQueryCancelled(t *testing.T) {
	s, _ := openTest(t, Options{})
	fill(t, s, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Query(ctx, Filter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Query on cancelled ctx = %v", err)
	}
}

func TestVerifyEmptyAndGood(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	rep, err := s.Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries != 0 {
		t.Fatalf("empty Verify = %+v %v", rep, err)
	}
	fill(t, s, 25)
	rep, err = s.Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries != 25 || rep.FirstBroken != 0 {
		t.Fatalf("Verify = %+v %v", rep, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWriteFailure: when the commit fails, Record fails (the caller fails
// closed) and nothing is half-written.
func TestWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Record(ctx, entryFor(0)); err != nil {
		t.Fatal(err)
	}
	must(t, db.Close()) // the database goes away under the store
	if err := s.Record(ctx, entryFor(1)); err == nil {
		t.Fatal("Record succeeded on a closed database")
	}
	must(t, s.Close())
	db, err = bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s2, err := New(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rep, err := s2.Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries != 1 {
		t.Errorf("Verify after failure = %+v %v", rep, err)
	}
}

func TestRefusesNoSync(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "a.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := New(db, Options{}); err == nil {
		t.Error("New accepted a NoSync database")
	}
}

func TestRecordContext(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Record(ctx, entryFor(0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Record(cancelled) = %v", err)
	}
	if err := s.Record(context.Background(), nil); err == nil {
		t.Error("Record(nil) succeeded")
	}
}

// TestRecordWaitCancelled: a caller whose context ends while its entry waits
// behind a slow commit gets ctx.Err(); the entry is still committed.
func TestRecordWaitCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := New(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Hold bbolt's writer lock so the commit blocks.
	tx, err := db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Record(ctx, entryFor(0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Record = %v, want context.DeadlineExceeded", err)
	}
	must(t, tx.Rollback())
	// The next Record is queued behind the first: once it is acknowledged,
	// the first is committed too, and stays.
	seq, err := s.Append(context.Background(), entryFor(1))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 2 {
		t.Fatalf("seq %d, want 2 (the abandoned entry is 1)", seq)
	}
	if e, ok, err := s.Get(context.Background(), 1); err != nil || !ok || e.RequestID != "req-0" {
		t.Fatalf("abandoned entry: %v %v %+v", ok, err, e)
	}
	rep, err := s.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("Verify %+v %v", rep, err)
	}
}

func TestCloseFlushesAndRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Record(context.Background(), entryFor(i)); err == nil {
				mu.Lock()
				acked++
				mu.Unlock()
			} else if !errors.Is(err, ErrClosed) {
				t.Errorf("Record: %v", err)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	must(t, s.Close())
	wg.Wait()
	must(t, s.Close()) // idempotent
	if err := s.Record(context.Background(), entryFor(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v", err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rep, err := s2.Verify(context.Background())
	if err != nil || !rep.OK() || rep.Entries != acked {
		t.Errorf("Verify = %+v %v, acked %d", rep, err, acked)
	}
}

func TestConcurrentRecord(t *testing.T) {
	s, _ := openTest(t, Options{})
	const writers, each = 32, 20
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				seq, err := s.Append(context.Background(), entryFor(w*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Fatalf("sequence %d acknowledged twice", q)
		}
		seen[q] = true
	}
	for q := uint64(1); q <= writers*each; q++ {
		if !seen[q] {
			t.Fatalf("sequence %d missing", q)
		}
	}
	rep, err := s.Verify(context.Background())
	if err != nil || !rep.OK() || rep.Entries != writers*each {
		t.Fatalf("Verify = %+v %v", rep, err)
	}
}

// TestRecordedMonotonic: a clock stepping backwards never makes recorded
// times decrease along the log (Query's Since cut-off relies on it).
func TestRecordedMonotonic(t *testing.T) {
	times := []time.Time{t0, t0.Add(-time.Hour), t0.Add(time.Second)}
	i := 0
	s, _ := openTest(t, Options{Now: func() time.Time { t := times[min(i, len(times)-1)]; i++; return t }})
	for j := range 3 {
		if _, err := s.Append(context.Background(), entryFor(j)); err != nil {
			t.Fatal(err)
		}
	}
	var prev time.Time
	for seq := uint64(1); seq <= 3; seq++ {
		e, _, _ := s.Get(context.Background(), seq)
		if e.Recorded.Before(prev) {
			t.Errorf("recorded went backwards at %d", seq)
		}
		prev = e.Recorded
	}
}

func TestExport(t *testing.T) {
	s, _ := openTest(t, Options{})
	fill(t, s, 10)
	ctx := context.Background()
	e6, _, _ := s.Get(ctx, 6)
	for _, tc := range []struct {
		name  string
		since time.Time
		first uint64
		n     int
	}{
		{"all", time.Time{}, 1, 10},
		{"since 6", e6.Recorded, 6, 5},
		{"since before first", t0.Add(-time.Hour), 1, 10},
		{"since after last", t0.Add(time.Hour), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := s.Export(ctx, &buf, tc.since)
			if err != nil || n != tc.n {
				t.Fatalf("Export = %d %v", n, err)
			}
			if tc.n == 0 {
				if buf.Len() != 0 {
					t.Fatalf("wrote %q", buf.String())
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != tc.n {
				t.Fatalf("%d lines", len(lines))
			}
			for i, l := range lines {
				r, err := fhir.Canonicalize([]byte(l))
				if err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				if r.ID != EventID(tc.first+uint64(i)) {
					t.Errorf("line %d id %s", i, r.ID)
				}
			}
		})
	}
}

func TestScanFrom(t *testing.T) {
	s, _ := openTest(t, Options{})
	fill(t, s, 5)
	var got []uint64
	err := s.Scan(context.Background(), 2, func(e Entry) error { got = append(got, e.Seq); return nil })
	if err != nil || fmt.Sprint(got) != "[3 4 5]" {
		t.Errorf("Scan = %v %v", got, err)
	}
	stop := errors.New("stop")
	if err := s.Scan(context.Background(), 0, func(Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Scan error = %v", err)
	}
}

// Auditor is the interface DESIGN.md gives the request path; Store has it.
type Auditor interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
}

var _ Auditor = (*Store)(nil)

func TestResourceSplices(t *testing.T) {
	e := renderCases()[0].e
	r := Resource(e)
	b := (&fhir.Bundle{Type: "searchset", Total: 1, Entries: []fhir.BundleEntry{{Resource: r, Mode: "match"}}}).AppendJSON(nil)
	if _, err := fhir.Parse(b); err != nil {
		t.Fatalf("searchset of AuditEvents: %v\n%s", err, b)
	}
	if r.ID != "audit-000000000123" || !bytes.Contains(b, Render(e)) {
		t.Errorf("resource %s not spliced", r.ID)
	}
}
