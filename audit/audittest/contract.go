// Package audittest is the contract of an audit log store: the same table
// tests run against the bbolt log (package audit) and the PostgreSQL log
// (audit/pgaudit), so both keep the same promises — every Record durable
// and numbered without gaps, search and paging, verify, export, and
// forwarders that resume from their cursor.
package audittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
)

// Log is what the contract uses of a log (what gpgate uses of it).
type Log interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
	Append(ctx context.Context, e *fhir.AuditEntry) (uint64, error)
	QueryPage(ctx context.Context, f audit.Filter) (audit.Page, error)
	Get(ctx context.Context, seq uint64) (audit.Entry, bool, error)
	Verify(ctx context.Context) (audit.VerifyReport, error)
	Export(ctx context.Context, w io.Writer, since time.Time) (int, error)
	Forward(opt audit.ForwardOptions) (*audit.Forwarder, error)
	Stats() audit.Stats
	Close() error
}

// Options are what the contract sets on a log it opens.
type Options struct {
	Now  func() time.Time
	Key  ed25519.PrivateKey
	Node string
}

// Opener opens a log with opt: the same, underlying log each time it is
// called (a restart).
type Opener func(t *testing.T, opt Options) Log

// NewLog makes a fresh, empty log and returns its Opener.
type NewLog func(t *testing.T) Opener

// T0 is the contract's clock.
var T0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func key(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Run runs the contract; newLog gives a fresh log per subtest.
func Run(t *testing.T, newLog NewLog) {
	t.Run("ConcurrentRecordsGetDistinctSeqs", func(t *testing.T) { concurrent(t, newLog(t)) })
	t.Run("Search", func(t *testing.T) { search(t, newLog(t)) })
	t.Run("Paging", func(t *testing.T) { paging(t, newLog(t)) })
	t.Run("VerifyAndExport", func(t *testing.T) { verifyExport(t, newLog(t)) })
	t.Run("RecordedNeverGoesBack", func(t *testing.T) { monotonic(t, newLog(t)) })
	t.Run("ForwarderResumes", func(t *testing.T) { forwarder(t, newLog(t)) })
	t.Run("Closed", func(t *testing.T) { closed(t, newLog(t)) })
}

func entry(i int) *fhir.AuditEntry {
	return &fhir.AuditEntry{Time: T0, RequestID: fmt.Sprintf("req-%d", i), Action: "PatientRead", Interaction: "read",
		Outcome: fhir.OutcomeGranted, ClientID: "c1", ConsumerODS: "RXX01", NHS: "9990000018", Practice: "Y99001", Types: []string{"Condition"}}
}

func concurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	l := open(t, Options{Key: key(t), Node: "n1"})
	defer l.Close()
	const n = 200
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			seq, err := l.Append(ctx, entry(i))
			if err != nil {
				t.Error(err)
			}
			seqs[i] = seq
		}(i)
	}
	wg.Wait()
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	for i, s := range sorted {
		if s != uint64(i+1) {
			t.Fatalf("sequence numbers %v..., want 1..%d without gaps or repeats", sorted[:min(len(sorted), 10)], n)
		}
	}
	for i, seq := range seqs {
		e, ok, err := l.Get(ctx, seq)
		if err != nil || !ok || e.RequestID != fmt.Sprintf("req-%d", i) || e.Seq != seq || e.Node != "n1" || e.PatientID != fhir.PatientID("9990000018") {
			t.Fatalf("Get(%d) = %+v %v %v", seq, e, ok, err)
		}
	}
	if _, ok, err := l.Get(ctx, n+1); ok || err != nil {
		t.Fatalf("Get beyond the end: %v %v", ok, err)
	}
	st := l.Stats()
	if st.Entries != n || st.Commits == 0 || st.Commits > n || st.Head != n {
		t.Fatalf("stats %+v", st)
	}
}

// fixture records a small log whose entries differ in every filtered field.
func fixture(t *testing.T, l Log, c *clock) {
	ctx := context.Background()
	pA, pB := fhir.PatientID("9990000018"), fhir.PatientID("9990000026")
	rows := []fhir.AuditEntry{
		{Action: "token-issue", Outcome: fhir.OutcomeGranted, ClientID: "c1", ConsumerODS: "RXX01"},                                        // 1
		{Action: "PatientRead", Outcome: fhir.OutcomeGranted, ClientID: "c1", ConsumerODS: "RXX01", PatientID: pA, Practitioner: "555"},    // 2
		{Action: "PatientQuery", Outcome: fhir.OutcomeDenied, ClientID: "c2", ConsumerODS: "RXX02", PatientID: pA},                         // 3
		{Action: "PatientRead", Outcome: fhir.OutcomeGranted, ClientID: "c1", ConsumerODS: "RXX01", PatientID: pB, BreakGlass: true},       // 4
		{Action: "consent-record", Outcome: fhir.OutcomeGranted, ClientID: "c2", ConsumerODS: "RXX02", PatientID: pB, Practitioner: "555"}, // 5
		{Action: "PatientQuery", Outcome: fhir.OutcomeError, ClientID: "c3", ConsumerODS: "RXX03", PatientID: pA},                          // 6
		{Action: "PatientRead", Outcome: fhir.OutcomeGranted, ClientID: "c1", ConsumerODS: "RXX01", PatientID: pA, Practitioner: "777"},    // 7
	}
	for i := range rows {
		c.Set(T0.Add(time.Duration(i) * time.Hour))
		rows[i].Time = c.Now()
		if err := l.Record(ctx, &rows[i]); err != nil {
			t.Fatal(err)
		}
	}
}

func seqsOf(es []audit.Entry) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func search(t *testing.T, open Opener) {
	ctx := context.Background()
	c := &clock{t: T0}
	l := open(t, Options{Now: c.Now})
	defer l.Close()
	fixture(t, l, c)
	pA, pB := fhir.PatientID("9990000018"), fhir.PatientID("9990000026")
	for _, tc := range []struct {
		name  string
		f     audit.Filter
		want  []uint64
		total int
	}{
		{"all, newest first", audit.Filter{}, []uint64{7, 6, 5, 4, 3, 2, 1}, 7},
		{"patient", audit.Filter{Patient: pA}, []uint64{7, 6, 3, 2}, 4},
		{"entity Patient/", audit.Filter{Entity: "Patient/" + pB}, []uint64{5, 4}, 2},
		{"entity of another type", audit.Filter{Entity: "Observation/x"}, []uint64{}, 0},
		{"agent client", audit.Filter{Agent: "c2"}, []uint64{5, 3}, 2},
		{"agent clinician", audit.Filter{Agent: "555"}, []uint64{5, 2}, 2},
		{"agent organisation", audit.Filter{Agent: "RXX03"}, []uint64{6}, 1},
		{"outcome denied", audit.Filter{Outcome: fhir.OutcomeDenied}, []uint64{3}, 1},
		{"action", audit.Filter{Action: "PatientRead"}, []uint64{7, 4, 2}, 3},
		{"break-glass", audit.Filter{BreakGlassOnly: true}, []uint64{4}, 1},
		{"since (inclusive)", audit.Filter{Since: T0.Add(5 * time.Hour)}, []uint64{7, 6}, 2},
		{"until (exclusive)", audit.Filter{Until: T0.Add(2 * time.Hour)}, []uint64{2, 1}, 2},
		{"patient and window", audit.Filter{Patient: pA, Since: T0.Add(time.Hour), Until: T0.Add(6 * time.Hour)}, []uint64{6, 3, 2}, 3},
		{"patient and agent", audit.Filter{Patient: pA, Agent: "c1"}, []uint64{7, 2}, 2},
		{"nothing", audit.Filter{Patient: "pnobody"}, []uint64{}, 0},
		{"count only", audit.Filter{Patient: pA, TotalOnly: true}, []uint64{}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := l.QueryPage(ctx, tc.f)
			if err != nil || !slices.Equal(seqsOf(p.Entries), tc.want) || p.Total != tc.total || p.Next != 0 {
				t.Fatalf("got %v total %d next %d %v, want %v total %d", seqsOf(p.Entries), p.Total, p.Next, err, tc.want, tc.total)
			}
			for _, e := range p.Entries {
				if !tc.f.Matches(&e) {
					t.Fatalf("entry %d does not match the filter", e.Seq)
				}
			}
		})
	}
}

func paging(t *testing.T, open Opener) {
	ctx := context.Background()
	l := open(t, Options{})
	defer l.Close()
	for i := 0; i < 23; i++ {
		if err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	f := audit.Filter{Count: 5}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		p, err := l.QueryPage(ctx, f)
		if err != nil || p.Total < 23 {
			t.Fatalf("page: total %d %v", p.Total, err)
		}
		got = append(got, seqsOf(p.Entries)...)
		if pages == 1 {
			// entries arriving while paging do not shift the pages
			for i := 0; i < 3; i++ {
				if err := l.Record(ctx, entry(100+i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if p.Next == 0 {
			break
		}
		f.Before = p.Next
	}
	want := []uint64{}
	for s := uint64(23); s >= 1; s-- {
		want = append(want, s)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v, want %v", got, want)
	}
	p, err := l.QueryPage(ctx, audit.Filter{Count: 4, Offset: 2})
	if err != nil || !slices.Equal(seqsOf(p.Entries), []uint64{24, 23, 22, 21}) || p.Total != 26 {
		t.Fatalf("offset page %v total %d %v", seqsOf(p.Entries), p.Total, err)
	}
}

func verifyExport(t *testing.T, open Opener) {
	ctx := context.Background()
	c := &clock{t: T0}
	l := open(t, Options{Now: c.Now, Key: key(t)})
	defer l.Close()
	fixture(t, l, c)
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries != 7 || rep.Checkpoints == 0 || rep.FirstBroken != 0 {
		t.Fatalf("verify %+v %v", rep, err)
	}
	var buf bytes.Buffer
	n, err := l.Export(ctx, &buf, time.Time{})
	if err != nil || n != 7 || bytes.Count(buf.Bytes(), []byte("\n")) != 7 || !bytes.Contains(buf.Bytes(), []byte(`"resourceType":"AuditEvent"`)) {
		t.Fatalf("export %d %v", n, err)
	}
	buf.Reset()
	if n, err := l.Export(ctx, &buf, T0.Add(5*time.Hour)); err != nil || n != 2 {
		t.Fatalf("export since: %d %v", n, err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(audit.EventID(7))) || bytes.Contains(buf.Bytes(), []byte(audit.EventID(4))) {
		t.Fatal("export since holds the wrong entries")
	}
}

func monotonic(t *testing.T, open Opener) {
	ctx := context.Background()
	c := &clock{t: T0}
	l := open(t, Options{Now: c.Now})
	defer l.Close()
	if err := l.Record(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	c.Set(T0.Add(-time.Hour)) // the clock steps back
	if err := l.Record(ctx, entry(2)); err != nil {
		t.Fatal(err)
	}
	a, _, _ := l.Get(ctx, 1)
	b, _, _ := l.Get(ctx, 2)
	if b.Recorded.Before(a.Recorded) {
		t.Fatalf("recorded went back: %v then %v", a.Recorded, b.Recorded)
	}
}

type collector struct {
	mu   sync.Mutex
	seqs []uint64
}

func (c *collector) Deliver(ctx context.Context, e audit.Entry) error {
	c.mu.Lock()
	c.seqs = append(c.seqs, e.Seq)
	c.mu.Unlock()
	return nil
}

func (c *collector) got() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seqs)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func forwarder(t *testing.T, open Opener) {
	ctx := context.Background()
	l := open(t, Options{})
	for i := 0; i < 10; i++ {
		e := entry(i)
		if i%3 == 0 {
			e.Outcome = fhir.OutcomeDenied
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	c := &collector{}
	f, err := l.Forward(audit.ForwardOptions{Name: "trail", To: c, Match: audit.PatientAccessGranted, CursorEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Forward(audit.ForwardOptions{Name: "trail", To: c}); err == nil {
		t.Fatal("a second forwarder of one name on one log")
	}
	want := []uint64{2, 3, 5, 6, 8, 9}
	waitFor(t, "delivery", func() bool { return len(c.got()) >= len(want) })
	if err := f.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.got(), want) {
		t.Fatalf("delivered %v, want %v (granted only, in order)", c.got(), want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Cursor != 10 || st.Delivered != 6 {
		t.Fatalf("stats %+v", st)
	}
	for i := 10; i < 13; i++ {
		if err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	c2 := &collector{}
	f2, err := l.Forward(audit.ForwardOptions{Name: "trail", To: c2, Match: audit.PatientAccessGranted})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after restart", func() bool { return len(c2.got()) >= 3 })
	if err := f2.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c2.got(), []uint64{11, 12, 13}) {
		t.Fatalf("after restart delivered %v, want only the new entries", c2.got())
	}
	f2.Close()
	l.Close()
}

func closed(t *testing.T, open Opener) {
	ctx := context.Background()
	l := open(t, Options{Key: key(t)})
	if err := l.Record(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Record(ctx, entry(2)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
}
