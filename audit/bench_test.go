package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// benchDir is where benchmark databases go: a temp dir on the real disk
// (AUDIT_BENCH_DIR overrides, e.g. to compare disks).
func benchDir(b *testing.B) string {
	if d := os.Getenv("AUDIT_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "auditbench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

// runWriters spreads b.N writes over w goroutines calling write, and reports
// durable writes/s and the per-write latency at p50/p99 (the time the audit
// adds to a request).
func runWriters(b *testing.B, w int, write func(i int) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, w)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t := time.Now()
				if err := write(i); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(0, "ns/op") // wall time per op is meaningless across writers
}

// BenchmarkRecord: durable group-committed writes at 1, 16 and 64 concurrent
// writers.
func BenchmarkRecord(b *testing.B) {
	for _, w := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			s, err := Open(filepath.Join(benchDir(b), "audit.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			runWriters(b, w, func(i int) error { return s.Record(ctx, entryFor(i)) })
			reportBatching(b, s)
		})
	}
}

// reportBatching reports entries per transaction: group commit at work.
func reportBatching(b *testing.B, s *Store) {
	st := s.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Entries)/float64(st.Commits), "entries/commit")
	}
}

// BenchmarkRecordAnchored: 64 writers on an anchored log (default cadence:
// a signed checkpoint every 1024 entries or second, exported to a head
// file), with and without a forwarder delivering every entry: what signing
// and forwarding cost the request path.
func BenchmarkRecordAnchored(b *testing.B) {
	for _, tc := range []struct {
		name    string
		forward bool
		every   int
	}{
		{"default-cadence", false, 0},
		{"checkpoint-every-commit", false, 1},
		{"default-cadence+forwarder", true, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir, keyDir := benchDir(b), benchDir(b)
			s, err := Open(filepath.Join(dir, "audit.db"), Options{Key: testKey, HeadFile: filepath.Join(keyDir, "audit.head"), CheckpointEvery: tc.every})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var f *Forwarder
			if tc.forward {
				f, err = s.Forward(ForwardOptions{Name: "bench", To: DelivererFunc(func(context.Context, Entry) error { return nil })})
				if err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			runWriters(b, 64, func(i int) error { return s.Record(ctx, entryFor(i)) })
			reportBatching(b, s)
			st := s.Stats()
			b.ReportMetric(float64(st.Checkpoints), "checkpoints")
			if f != nil {
				b.ReportMetric(float64(f.Stats().CursorWrites), "cursor-writes")
			}
		})
	}
}

func BenchmarkSignCheckpoint(b *testing.B) {
	var h [32]byte
	for b.Loop() {
		hd := signHead(testKey, 123456, h, t0, "gpgate-1")
		_, _ = hd.MarshalText()
	}
}

func BenchmarkParseAndVerifyHead(b *testing.B) {
	hd := signHead(testKey, 123456, [32]byte{1}, t0, "gpgate-1")
	line, _ := hd.MarshalText()
	keys := []ed25519.PublicKey{pubOf(testKey)}
	for b.Loop() {
		h, err := ParseHead(line)
		if err != nil || h.Verify(keys) != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenAnchored100k: opening an anchored 100k-entry log checks the
// chain from the newest checkpoint only (fast start); Verify walks it all.
func BenchmarkOpenAnchored100k(b *testing.B) {
	dir, keyDir := benchDir(b), benchDir(b)
	path := filepath.Join(dir, "audit.db")
	opt := Options{Key: testKey, HeadFile: filepath.Join(keyDir, "audit.head")}
	s, err := Open(path, opt)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*pending, 0, 1000)
	for i := range 100_000 {
		payload, _ := encodePayload(entryFor(i))
		batch = append(batch, &pending{payload: payload})
		if len(batch) == cap(batch) {
			if err := s.commit(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(path, opt)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("verify", func(b *testing.B) {
		s, err := Open(path, Options{ReadOnly: true, Key: testKey, HeadFile: opt.HeadFile})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for b.Loop() {
			rep, err := s.Verify(context.Background())
			if err != nil || !rep.OK() || rep.Entries != 100_000 {
				b.Fatal(rep, err)
			}
		}
	})
}

// BenchmarkBaselineUpdatePerWrite is the same work (framing, chain hash,
// log, indexes, head) committed one bbolt Update per write, at 64 writers:
// what group commit is measured against.
func BenchmarkBaselineUpdatePerWrite(b *testing.B) {
	for _, w := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", w), func(b *testing.B) {
			s, err := Open(filepath.Join(benchDir(b), "audit.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var mu sync.Mutex // commit owns the chain head, as the writer goroutine does
			runWriters(b, w, func(i int) error {
				payload, err := encodePayload(entryFor(i))
				if err != nil {
					return err
				}
				p := &pending{payload: payload, pid: fhir.PatientID("9000000009"), agents: []string{"client-1", "RRK"}}
				mu.Lock()
				defer mu.Unlock()
				return s.commit([]*pending{p})
			})
		})
	}
}

// query100k is a 100k-entry log built once for the query benchmarks.
var query100k struct {
	once sync.Once
	dir  string
	s    *Store
	err  error
}

func load100k(b *testing.B) *Store {
	query100k.once.Do(func() {
		dir := os.Getenv("AUDIT_BENCH_DIR")
		query100k.dir, query100k.err = os.MkdirTemp(dir, "audit100k")
		if query100k.err != nil {
			return
		}
		clock := &stepClock{t: t0, step: time.Minute} // one minute per 1000-entry commit
		s, err := Open(filepath.Join(query100k.dir, "audit.db"), Options{Now: clock.Now})
		if err != nil {
			query100k.err = err
			return
		}
		// bulk load through the writer's own commit, 1000 entries a transaction
		batch := make([]*pending, 0, 1000)
		for i := range 100_000 {
			e := entryFor(i)
			e.NHS = fhir.NHSNumber(fmt.Sprintf("%09d", i%5000)) // 5000 patients, 20 events each
			e.PatientID = fhir.PatientID(e.NHS)
			e.Practitioner = fmt.Sprintf("sds-%d", i%400)
			payload, _ := encodePayload(e)
			batch = append(batch, &pending{payload: payload, pid: e.PatientID, agents: []string{e.ClientID, e.Practitioner, e.ConsumerODS}})
			if len(batch) == cap(batch) {
				if err := s.commit(batch); err != nil {
					query100k.err = err
					return
				}
				batch = batch[:0]
			}
		}
		query100k.s = s
	})
	if query100k.err != nil {
		b.Fatal(query100k.err)
	}
	return query100k.s
}

// BenchmarkQuery100k: Query on a 100k-entry log, by index and by scan.
func BenchmarkQuery100k(b *testing.B) {
	s := load100k(b)
	ctx := context.Background()
	last, _, _ := s.Get(ctx, 100_000)
	for _, tc := range []struct {
		name string
		f    Filter
	}{
		{"patient-index", Filter{Patient: fhir.PatientID("000001234")}},
		{"agent-index-clinician", Filter{Agent: "sds-17"}},
		{"scan-newest-page", Filter{}},
		{"scan-cursor-page-mid-log", Filter{Before: 50_000}},
		{"scan-offset-page-mid-log", Filter{Offset: 50_000}},
		{"scan-denied-total", Filter{Outcome: fhir.OutcomeDenied}},
		{"scan-break-glass", Filter{BreakGlassOnly: true, Count: 10}},
		{"scan-since-last-10-minutes", Filter{Since: last.Recorded.Add(-10 * time.Minute)}},
		{"scan-until-first-10-minutes", Filter{Until: last.Recorded.Add(-90 * time.Minute), Count: 10}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			total := 0
			for b.Loop() {
				_, n, err := s.Query(ctx, tc.f)
				if err != nil {
					b.Fatal(err)
				}
				total = n
			}
			b.ReportMetric(float64(total), "matches")
		})
	}
}

func BenchmarkVerify100k(b *testing.B) {
	s := load100k(b)
	for b.Loop() {
		rep, err := s.Verify(context.Background())
		if err != nil || !rep.OK() {
			b.Fatal(rep, err)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	e := renderCases()[2].e
	for b.Loop() {
		_ = Render(e)
	}
}

// cleanup100k removes the 100k fixture after the run (called from TestMain).
func cleanup100k() {
	if query100k.s != nil {
		query100k.s.Close()
	}
	if query100k.dir != "" {
		os.RemoveAll(query100k.dir)
	}
}

// timedWriters runs w goroutines calling write for d and returns how many
// writes completed.
func timedWriters(b *testing.B, w int, d time.Duration, write func(i int) error) int {
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := write(int(n.Load())); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(n.Load())
}

// BenchmarkGroupCommitVsBaseline64 alternates group commit and one Update
// per write at 64 writers in 250 ms slices, so both see the same disk and
// machine load, and reports both rates and their ratio. Each op is one pair
// of slices: run it with -benchtime=8x or so.
func BenchmarkGroupCommitVsBaseline64(b *testing.B) {
	dir := benchDir(b)
	gc, err := Open(filepath.Join(dir, "gc.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer gc.Close()
	base, err := Open(filepath.Join(dir, "base.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()
	ctx := context.Background()
	var mu sync.Mutex
	const slice = 250 * time.Millisecond
	var gcN, baseN int
	var gcT, baseT time.Duration
	for b.Loop() {
		t := time.Now()
		gcN += timedWriters(b, 64, slice, func(i int) error { return gc.Record(ctx, entryFor(i)) })
		gcT += time.Since(t)
		t = time.Now()
		baseN += timedWriters(b, 64, slice, func(i int) error {
			payload, err := encodePayload(entryFor(i))
			if err != nil {
				return err
			}
			p := &pending{payload: payload, pid: fhir.PatientID("9000000009"), agents: []string{"client-1", "RRK"}}
			mu.Lock()
			defer mu.Unlock()
			return base.commit([]*pending{p})
		})
		baseT += time.Since(t)
	}
	g, bl := float64(gcN)/gcT.Seconds(), float64(baseN)/baseT.Seconds()
	b.ReportMetric(g, "group-writes/s")
	b.ReportMetric(bl, "baseline-writes/s")
	b.ReportMetric(g/bl, "ratio")
	b.ReportMetric(0, "ns/op")
}
