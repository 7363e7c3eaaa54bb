package audit

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestGroupCommitGroups: N Records that arrive while a commit is in
// progress are committed together, in one transaction (one fsync): with
// bbolt's writer lock held, the writer takes what is queued and blocks;
// everything else queues behind it; once the lock is released two
// transactions at most carry all N entries. Counts, not time.
func TestGroupCommitGroups(t *testing.T) {
	for _, anchoredLog := range []bool{false, true} {
		name := "unanchored"
		if anchoredLog {
			name = "anchored"
		}
		t.Run(name, func(t *testing.T) {
			const n = 64
			path := filepath.Join(t.TempDir(), "audit.db")
			db, err := bbolt.Open(path, 0o600, nil)
			must(t, err)
			defer db.Close()
			opt := Options{CheckpointInterval: time.Hour}
			if anchoredLog {
				opt.Key = testKey
				opt.CheckpointEvery = 16 // a checkpoint rides along, no transaction of its own
			}
			s, err := New(db, opt)
			must(t, err)
			defer s.Close()
			before := s.Stats()
			tx, err := db.Begin(true) // hold bbolt's writer lock
			must(t, err)
			var wg sync.WaitGroup
			seqs := make(chan uint64, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					seq, err := s.Append(context.Background(), entryFor(i))
					if err != nil {
						t.Error(err)
					}
					seqs <- seq
				}()
			}
			waitFor(t, "every Record queued or taken", func() bool {
				return int(s.dequeued.Load())+len(s.queue) == n
			})
			must(t, tx.Rollback())
			wg.Wait()
			close(seqs)
			st := s.Stats()
			if st.Entries != n || st.Commits < 1 || st.Commits > 2 {
				t.Fatalf("%d entries in %d transactions; want %d in at most 2", st.Entries, st.Commits, n)
			}
			if st.CheckpointOnly != before.CheckpointOnly {
				t.Errorf("checkpoints took transactions of their own: %+v", st)
			}
			if anchoredLog && st.LastCheckpoint != n {
				t.Errorf("last checkpoint %d, want %d", st.LastCheckpoint, n)
			}
			seen := map[uint64]bool{}
			for q := range seqs {
				if q < 1 || q > n || seen[q] {
					t.Fatalf("sequence %d", q)
				}
				seen[q] = true
			}
		})
	}
}

// TestStats: the counters a metrics endpoint reads.
func TestStats(t *testing.T) {
	s, _ := openTest(t, Options{})
	fill(t, s, 3)
	st := s.Stats()
	if st.Commits != 3 || st.Entries != 3 || st.LastBatch != 1 || st.Head != 3 || st.QueueDepth != 0 || st.Checkpoints != 0 {
		t.Errorf("stats %+v", st)
	}
}
