package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// collector is a Deliverer that records what it was given.
type collector struct {
	mu   sync.Mutex
	seqs []uint64
	fail func(e Entry, attempt int) error // nil: always succeed
	n    map[uint64]int
}

func (c *collector) Deliver(ctx context.Context, e Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[uint64]int{}
	}
	c.n[e.Seq]++
	if c.fail != nil {
		if err := c.fail(e, c.n[e.Seq]); err != nil {
			return err
		}
	}
	c.seqs = append(c.seqs, e.Seq)
	return nil
}

func (c *collector) got() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint64(nil), c.seqs...)
}

// waitFor polls cond until it holds (a generous deadline keeps a stuck
// forwarder from hanging the run; nothing is asserted about time).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// matchingSeqs lists the sequence numbers 1..n that match.
func matchingSeqs(t *testing.T, s *Store, n int, match func(*Entry) bool) []uint64 {
	var out []uint64
	for seq := uint64(1); seq <= uint64(n); seq++ {
		e, ok, err := s.Get(context.Background(), seq)
		if err != nil || !ok {
			t.Fatalf("Get %d: %v", seq, err)
		}
		if match == nil || match(&e) {
			out = append(out, seq)
		}
	}
	return out
}

func TestPatientAccessGranted(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    fhir.AuditEntry
		want bool
	}{
		{"granted read", fhir.AuditEntry{Outcome: fhir.OutcomeGranted, Action: "PatientRead", NHS: "9000000009"}, true},
		{"granted search", fhir.AuditEntry{Outcome: fhir.OutcomeGranted, Action: "PatientQuery", NHS: "9000000009"}, true},
		{"denied", fhir.AuditEntry{Outcome: fhir.OutcomeDenied, Action: "PatientRead", NHS: "9000000009"}, false},
		{"error", fhir.AuditEntry{Outcome: fhir.OutcomeError, Action: "PatientRead", NHS: "9000000009"}, false},
		{"no patient", fhir.AuditEntry{Outcome: fhir.OutcomeGranted, Action: "PatientQuery"}, false},
		{"token", fhir.AuditEntry{Outcome: fhir.OutcomeGranted, Action: "token-issue", NHS: "9000000009"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PatientAccessGranted(&Entry{AuditEntry: tc.e}); got != tc.want {
				t.Errorf("= %v", got)
			}
		})
	}
}

// TestForwarderDelivers: the matching entries, each once, in log order,
// including those recorded before the forwarder started; the cursor is
// durable after Close and the next start resumes from it.
func TestForwarderDelivers(t *testing.T) {
	s, path := openTest(t, Options{})
	fill(t, s, 10) // before the forwarder starts
	c := &collector{}
	f, err := s.Forward(ForwardOptions{Name: "practice-trail", To: c, Match: PatientAccessGranted, CursorEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 40; i++ {
		if _, err := s.Append(context.Background(), entryFor(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "delivery", func() bool { return f.Stats().Position == 40 })
	want := matchingSeqs(t, s, 40, PatientAccessGranted)
	if got := c.got(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v\nwant      %v", got, want)
	}
	if len(want) == 0 || len(want) == 40 {
		t.Fatal("fixture: the filter should select some entries")
	}
	must(t, s.Close())
	s2, err := Open(path, Options{})
	must(t, err)
	defer s2.Close()
	if cur, err := s2.Cursor("practice-trail"); err != nil || cur != 40 {
		t.Fatalf("durable cursor %d %v", cur, err)
	}
	fill(t, s2, 1) // entry 41, entryFor(0): granted
	c2 := &collector{}
	f2, err := s2.Forward(ForwardOptions{Name: "practice-trail", To: c2, Match: PatientAccessGranted})
	must(t, err)
	waitFor(t, "delivery after restart", func() bool { return f2.Stats().Position == 41 })
	if got := c2.got(); fmt.Sprint(got) != "[41]" {
		t.Fatalf("after a clean restart delivered %v, want only [41]", got)
	}
}

// TestForwarderRetries: failures are retried with backoff until the
// delivery succeeds; nothing is skipped or reordered.
func TestForwarderRetries(t *testing.T) {
	s, _ := openTest(t, Options{})
	c := &collector{fail: func(e Entry, attempt int) error {
		if e.Seq%3 == 0 && attempt <= 3 {
			return errors.New("practice system unavailable")
		}
		return nil
	}}
	f, err := s.Forward(ForwardOptions{Name: "flaky", To: c, MinBackoff: time.Microsecond, MaxBackoff: 50 * time.Microsecond})
	must(t, err)
	fill(t, s, 10)
	waitFor(t, "delivery", func() bool { return f.Stats().Position == 10 })
	if got := fmt.Sprint(c.got()); got != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Fatalf("delivered %s", got)
	}
	if st := f.Stats(); st.Failures != 9 || st.Delivered != 10 || st.Skipped != 0 {
		t.Fatalf("stats %+v: want 9 failures (3 entries x 3), 10 delivered", st)
	}
}

func TestForwarderBackoff(t *testing.T) {
	f := &Forwarder{opt: ForwardOptions{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Minute}}
	for _, tc := range []struct {
		attempt  int
		lo, high time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{5, 1600 * time.Millisecond, 3200 * time.Millisecond},
		{30, 30 * time.Second, time.Minute},
		{1000, 30 * time.Second, time.Minute},
	} {
		t.Run(fmt.Sprint(tc.attempt), func(t *testing.T) {
			for range 100 {
				if d := f.backoff(tc.attempt); d < tc.lo || d > tc.high {
					t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tc.attempt, d, tc.lo, tc.high)
				}
			}
		})
	}
}

// TestForwarderPermanent: an entry refused for good is skipped (counted),
// the rest delivered.
func TestForwarderPermanent(t *testing.T) {
	s, _ := openTest(t, Options{})
	c := &collector{fail: func(e Entry, attempt int) error {
		if e.Seq == 2 {
			return Permanent(errors.New("unknown patient at the practice"))
		}
		return nil
	}}
	f, err := s.Forward(ForwardOptions{Name: "p", To: c})
	must(t, err)
	fill(t, s, 3)
	waitFor(t, "delivery", func() bool { return f.Stats().Position == 3 })
	if got := fmt.Sprint(c.got()); got != "[1 3]" || f.Stats().Skipped != 1 {
		t.Fatalf("delivered %s, stats %+v", got, f.Stats())
	}
}

// TestForwarderOffRequestPath: a Deliverer that never returns neither
// blocks Record nor adds a transaction to the writer's: N sequential
// Records are N commits with or without a forwarder, and the forwarder's
// cursor writes are transactions of its own.
func TestForwarderOffRequestPath(t *testing.T) {
	const n = 30
	commits := func(withForwarder bool, to Deliverer) (Stats, ForwarderStats) {
		s, _ := openTest(t, Options{})
		var f *Forwarder
		if withForwarder {
			var err error
			f, err = s.Forward(ForwardOptions{Name: "trail", To: to, CursorEvery: time.Nanosecond})
			must(t, err)
		}
		fill(t, s, n) // returns: Record never waits for the forwarder
		var fs ForwarderStats
		if f != nil {
			if _, ok := to.(*collector); ok {
				waitFor(t, "delivery", func() bool { return f.Stats().Position == n })
			}
			fs = f.Stats()
		}
		st := s.Stats()
		must(t, s.Close()) // cancels a stuck delivery
		return st, fs
	}
	base, _ := commits(false, nil)
	withF, fs := commits(true, &collector{})
	blocked := DelivererFunc(func(ctx context.Context, e Entry) error { <-ctx.Done(); return ctx.Err() })
	stuck, sfs := commits(true, blocked)
	if base.Commits != n || withF.Commits != n || stuck.Commits != n {
		t.Fatalf("writer commits: %d without a forwarder, %d with, %d with a stuck one; want %d each", base.Commits, withF.Commits, stuck.Commits, n)
	}
	if fs.CursorWrites == 0 || fs.Delivered != n {
		t.Fatalf("forwarder stats %+v", fs)
	}
	if sfs.Delivered != 0 || sfs.Cursor != 0 {
		t.Fatalf("stuck forwarder stats %+v", sfs)
	}
}

// TestForwarderRedeliversAfterCrash: entries delivered whose cursor advance
// never became durable (the process died first) are delivered again:
// at least once, never a gap.
func TestForwarderRedeliversAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := bbolt.Open(path, 0o600, nil)
	must(t, err)
	s, err := New(db, Options{})
	must(t, err)
	c := &collector{}
	f, err := s.Forward(ForwardOptions{Name: "trail", To: c, CursorEvery: time.Nanosecond})
	must(t, err)
	fill(t, s, 5)
	waitFor(t, "first deliveries", func() bool { return f.Stats().Cursor == 5 })
	must(t, f.Close())
	// from here on the cursor lags the deliveries
	f, err = s.Forward(ForwardOptions{Name: "trail", To: c, CursorEvery: time.Hour})
	must(t, err)
	fill(t, s, 5)
	waitFor(t, "second deliveries", func() bool { return f.Stats().Position == 10 })
	if f.Stats().Cursor != 5 {
		t.Fatalf("cursor %d: want it still at 5", f.Stats().Cursor)
	}
	must(t, db.Close()) // the crash: the cursor write at Close cannot happen
	s.Close()
	db, err = bbolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	s2, err := New(db, Options{})
	must(t, err)
	defer s2.Close()
	c2 := &collector{}
	f2, err := s2.Forward(ForwardOptions{Name: "trail", To: c2})
	must(t, err)
	waitFor(t, "redelivery", func() bool { return f2.Stats().Position == 10 })
	if got := fmt.Sprint(c2.got()); got != "[6 7 8 9 10]" {
		t.Fatalf("redelivered %s, want [6 7 8 9 10]", got)
	}
	if got := fmt.Sprint(c.got()); got != "[1 2 3 4 5 6 7 8 9 10]" {
		t.Fatalf("first run delivered %s", got)
	}
}

func TestForwarderOptions(t *testing.T) {
	s, _ := openTest(t, Options{})
	c := &collector{}
	for _, name := range []string{"", "a/b", "x y", string(make([]byte, 65))} {
		if _, err := s.Forward(ForwardOptions{Name: name, To: c}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := s.Forward(ForwardOptions{Name: "x"}); err == nil {
		t.Error("no Deliverer accepted")
	}
	f, err := s.Forward(ForwardOptions{Name: "x", To: c})
	must(t, err)
	if _, err := s.Forward(ForwardOptions{Name: "x", To: c}); err == nil {
		t.Error("two forwarders with one name")
	}
	must(t, f.Close())
	g, err := s.Forward(ForwardOptions{Name: "x", To: c}) // the name is free again
	must(t, err)
	must(t, s.Close())
	must(t, g.Close()) // after the store's Close: a no-op
	if _, err := s.Forward(ForwardOptions{Name: "y", To: c}); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close = %v", err)
	}
}

func TestForwarderDrain(t *testing.T) {
	s, _ := openTest(t, Options{})
	c := &collector{}
	f, err := s.Forward(ForwardOptions{Name: "d", To: c, Match: PatientAccessGranted})
	must(t, err)
	fill(t, s, 25)
	must(t, f.Drain(context.Background()))
	if f.Stats().Position < 25 {
		t.Fatalf("drained at %d", f.Stats().Position)
	}
	if got, want := fmt.Sprint(c.got()), fmt.Sprint(matchingSeqs(t, s, 25, PatientAccessGranted)); got != want {
		t.Fatalf("delivered %s, want %s", got, want)
	}

	stuck, err := s.Forward(ForwardOptions{Name: "stuck", To: DelivererFunc(func(ctx context.Context, e Entry) error {
		<-ctx.Done()
		return ctx.Err()
	})})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := stuck.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain of a stuck forwarder = %v", err)
	}
	must(t, stuck.Close())
	if err := stuck.Drain(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Drain after Close = %v", err)
	}
}

// readCounter is a Feed that counts the forwarder's reads of the log.
type readCounter struct {
	Feed
	mu    sync.Mutex
	reads int
}

func (r *readCounter) ReadAfter(ctx context.Context, after uint64, limit int) ([]Entry, bool, error) {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
	return r.Feed.ReadAfter(ctx, after, limit)
}

func (r *readCounter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads
}

// TestForwarderLingerGroupsCommits: woken by a commit, a lingering
// forwarder waits before it reads, so the commits meanwhile are delivered
// by one read of the log, in order, each once (without Linger each commit
// is a pass of its own).
func TestForwarderLingerGroupsCommits(t *testing.T) {
	s, _ := openTest(t, Options{})
	defer s.Close()
	feed := &readCounter{Feed: storeFeed{s}}
	c := &collector{}
	f, err := NewForwarder(feed, ForwardOptions{Name: "lingering", To: c, Linger: 3 * time.Second})
	must(t, err)
	defer f.Close()
	waitFor(t, "the first pass", func() bool { return feed.count() >= 1 })
	before := feed.count()
	const n = 10
	for i := 0; i < n; i++ { // each Append returns once its commit is durable
		if _, err := s.Append(context.Background(), entryFor(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "delivery", func() bool { return f.Stats().Position == n })
	if got := c.got(); fmt.Sprint(got) != fmt.Sprint(matchingSeqs(t, s, n, nil)) {
		t.Fatalf("delivered %v", got)
	}
	if passes := feed.count() - before; passes > 2 {
		t.Fatalf("%d commits read in %d passes: the forwarder did not linger", n, passes)
	}
}
