package pgaudit_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/audit/pgaudit"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/postgres"
	"github.com/gpgate/gpgate/postgres/pglocal"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

func entry(i int) *fhir.AuditEntry {
	return &fhir.AuditEntry{Time: time.Now().UTC(), RequestID: fmt.Sprintf("req-%d", i), Action: "PatientRead", Interaction: "read",
		Outcome: fhir.OutcomeGranted, ClientID: "c1", ConsumerODS: "RXX01", NHS: "9990000018", Practice: "Y99001"}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t *testing.T, pool *pgxpool.Pool, o pgaudit.Options) *pgaudit.Log {
	t.Helper()
	l, err := pgaudit.Open(context.Background(), pool, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Three nodes on one database, recording at once: one chain, numbered
// without gaps, that verifies, each entry naming the node that recorded it.
func TestNodesShareOneChain(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pgtest.PoolAt(t, url, pgaudit.Migrations)
	key := newKey(t)
	var nodes []*pgaudit.Log
	for i := 0; i < 3; i++ {
		nodes = append(nodes, open(t, pgtest.PoolAt(t, url), pgaudit.Options{Key: key, Node: fmt.Sprintf("node-%d", i), CheckpointEvery: 50}))
	}
	const per = 150
	var wg sync.WaitGroup
	seqs := make(chan uint64, 3*per)
	for n, l := range nodes {
		for w := 0; w < 10; w++ {
			wg.Add(1)
			go func(l *pgaudit.Log, n, w int) {
				defer wg.Done()
				for i := 0; i < per/10; i++ {
					seq, err := l.Append(ctx, entry(n*1000+w*100+i))
					if err != nil {
						t.Error(err)
						return
					}
					seqs <- seq
				}
			}(l, n, w)
		}
	}
	wg.Wait()
	close(seqs)
	var got []uint64
	for s := range seqs {
		got = append(got, s)
	}
	slices.Sort(got)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("sequence numbers have a gap or repeat at %d: %d", i+1, s)
		}
	}
	rep, err := nodes[0].Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries != 3*per || rep.Checkpoints < 3 {
		t.Fatalf("verify %+v %v", rep, err)
	}
	byNode := map[string]int{}
	for s := uint64(1); s <= 3*per; s++ {
		e, _, _ := nodes[1].Get(ctx, s)
		byNode[e.Node]++
	}
	if len(byNode) != 3 || byNode["node-0"] != per {
		t.Fatalf("entries by node %v", byNode)
	}
	var commits uint64
	for _, l := range nodes {
		commits += l.Stats().Commits
	}
	t.Logf("%d entries in %d commits (group commit)", 3*per, commits)
}

// Each kind of tampering, done with SQL by someone who can write the
// database, is found by Verify, naming the entry.
func TestVerifyFindsTampering(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	for _, tc := range []struct {
		name   string
		tamper []string
		broken uint64
		want   string
		// refused at start: the open-time check reads from the newest
		// checkpoint only (as the bbolt log's does); Verify reads all
		refused bool
	}{
		{"edit", []string{`UPDATE audit_log SET record = convert_to(replace(convert_from(record, 'UTF8'), 'req-5', 'req-X'), 'UTF8') WHERE seq = 6`}, 6, "hash mismatch", false},
		{"delete", []string{`DELETE FROM audit_log WHERE seq = 4`}, 4, "missing", false},
		{"swap", []string{
			`UPDATE audit_log SET seq = -1 WHERE seq = 3`, `UPDATE audit_log SET seq = 3 WHERE seq = 7`, `UPDATE audit_log SET seq = 7 WHERE seq = -1`}, 3, "swapped", true},
		{"hide from a patient's search", []string{`UPDATE audit_log SET patient_id = 'pother' WHERE seq = 5`}, 5, "search columns", false},
		{"truncate the tail and the head", []string{
			`DELETE FROM audit_log WHERE seq > 6`, `UPDATE audit_head SET seq = 6, hash = (SELECT hash FROM audit_log WHERE seq = 6)`}, 7, "truncated", true},
		{"re-chain", []string{
			`UPDATE audit_log SET record = convert_to(replace(convert_from(record, 'UTF8'), 'req-1"', 'req-Z"'), 'UTF8') WHERE seq = 2`,
			// recompute every hash from entry 2 on, and the head: only the signed checkpoints still disagree
			`DO $$ DECLARE r record; prev bytea; BEGIN
			   SELECT hash INTO prev FROM audit_log WHERE seq = 1;
			   FOR r IN SELECT seq, record FROM audit_log WHERE seq >= 2 ORDER BY seq LOOP
			     prev := sha256(prev || r.record);
			     UPDATE audit_log SET hash = prev WHERE seq = r.seq;
			   END LOOP;
			   UPDATE audit_head SET hash = prev;
			 END $$`}, 1, "re-chained", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := pgtest.Pool(t, pgaudit.Migrations)
			l := open(t, pool, pgaudit.Options{Key: key, CheckpointEvery: 4})
			for i := 0; i < 10; i++ {
				if err := l.Record(ctx, entry(i)); err != nil {
					t.Fatal(err)
				}
			}
			if rep, err := l.Verify(ctx); err != nil || !rep.OK() {
				t.Fatalf("before: %+v %v", rep, err)
			}
			for _, q := range tc.tamper {
				if _, err := pool.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := l.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.FirstBroken != tc.broken || !strings.Contains(rep.Err.Error(), tc.want) {
				t.Fatalf("report %+v, want broken at %d (%s)", rep, tc.broken, tc.want)
			}
			l.Close()
			// and a node refuses to start on it
			l2, err := pgaudit.Open(ctx, pool, pgaudit.Options{Key: key})
			if err == nil {
				l2.Close()
			}
			if tc.refused != (err != nil) {
				t.Fatalf("open after tampering: %v, want refused %v", err, tc.refused)
			}
		})
	}
}

// The log cut back behind a node's exported head (a restored backup) is
// refused at start; the operator's override opens it and says so in the log.
func TestBehindExportedHead(t *testing.T) {
	ctx := context.Background()
	key := newKey(t)
	headFile := filepath.Join(t.TempDir(), "head")
	pool := pgtest.Pool(t, pgaudit.Migrations)
	l := open(t, pool, pgaudit.Options{Key: key, HeadFile: headFile, CheckpointEvery: 1})
	for i := 0; i < 5; i++ {
		if err := l.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for _, q := range []string{`DELETE FROM audit_log WHERE seq > 3`, `DELETE FROM audit_checkpoint WHERE seq > 3`,
		`UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3), cp_seq = 3`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pgaudit.Open(ctx, pool, pgaudit.Options{Key: key, HeadFile: headFile}); err == nil || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("opened behind its head: %v", err)
	}
	l2 := open(t, pool, pgaudit.Options{Key: key, HeadFile: headFile, AcceptUnverified: true})
	p, err := l2.QueryPage(ctx, audit.Filter{Action: "audit-override"})
	if err != nil || p.Total != 1 || p.Entries[0].Seq != 4 {
		t.Fatalf("override entry: %+v %v", p, err)
	}
	if err := l2.Record(ctx, entry(9)); err != nil {
		t.Fatal(err)
	}
}

// One node delivers for a forwarder name at a time; when it stops, another
// takes over from the durable cursor and nothing is missed.
func TestForwarderFailsOver(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pgtest.PoolAt(t, url, pgaudit.Migrations)
	saved := audit.LeaseRetry
	audit.LeaseRetry = 20 * time.Millisecond
	defer func() { audit.LeaseRetry = saved }()
	a := open(t, pgtest.PoolAt(t, url), pgaudit.Options{Node: "a", PollEvery: 10 * time.Millisecond})
	b := open(t, pgtest.PoolAt(t, url), pgaudit.Options{Node: "b", PollEvery: 10 * time.Millisecond})
	var mu sync.Mutex
	got := map[string][]uint64{}
	deliver := func(node string) audit.Deliverer {
		return audit.DelivererFunc(func(ctx context.Context, e audit.Entry) error {
			mu.Lock()
			got[node] = append(got[node], e.Seq)
			mu.Unlock()
			return nil
		})
	}
	fa, err := a.Forward(audit.ForwardOptions{Name: "trail", To: deliver("a"), CursorEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a takes the lease", func() bool { return fa.Stats().Position == 0 && drained(fa) })
	fb, err := b.Forward(audit.ForwardOptions{Name: "trail", To: deliver("b"), CursorEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := b.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "a delivers 20", func() bool { mu.Lock(); defer mu.Unlock(); return len(got["a"]) == 20 })
	if err := fb.Drain(ctx); err != nil { // standing by: nothing to drain
		t.Fatal(err)
	}
	fa.Close()
	for i := 20; i < 30; i++ {
		if err := a.Record(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "b takes over", func() bool { mu.Lock(); defer mu.Unlock(); return len(got["b"]) >= 10 })
	mu.Lock()
	defer mu.Unlock()
	all := append(slices.Clone(got["a"]), got["b"]...)
	for i, s := range all {
		if s != uint64(i+1) {
			t.Fatalf("delivered a=%v b=%v: want 1..30 once each, in order", got["a"], got["b"])
		}
	}
	if len(all) != 30 {
		t.Fatalf("delivered %d", len(all))
	}
}

func drained(f *audit.Forwarder) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	return f.Drain(ctx) == nil
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With the database gone, Record fails (closed) instead of answering; when
// the database is back the next Record commits and the chain verifies.
func TestDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL of its own")
	}
	pgtest.Server(t) // skips without PostgreSQL
	ctx := context.Background()
	srv, err := pglocal.New(pglocal.Options{Dir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	pool, err := postgres.Open(ctx, srv.URL("postgres"), postgres.PoolOptions{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool, pgaudit.Migrations); err != nil {
		t.Fatal(err)
	}
	l, err := pgaudit.Open(ctx, pool, pgaudit.Options{Key: newKey(t), CommitTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Record(ctx, entry(1)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := l.Record(ctx, entry(2)); err == nil {
			t.Fatal("recorded with the database down")
		}
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a commit after the restart", func() bool { return l.Record(ctx, entry(3)) == nil })
	rep, err := l.Verify(ctx)
	if err != nil || !rep.OK() || rep.Entries < 2 {
		t.Fatalf("verify after restart %+v %v", rep, err)
	}
}
