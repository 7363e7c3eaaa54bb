package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// indexState reads what the indexes hold: keys per bucket and the mark.
func indexState(t *testing.T, db *bbolt.DB) (patientKeys, agentKeys int, mark uint64) {
	t.Helper()
	must(t, db.View(func(tx *bbolt.Tx) error {
		patientKeys = tx.Bucket(bucketPatient).Stats().KeyN
		agentKeys = tx.Bucket(bucketAgent).Stats().KeyN
		mark = indexedThrough(tx)
		return nil
	}))
	return
}

// TestDeferredIndex: the patient and agent indexes are written behind the
// log, yet a query by patient or agent finds every entry at once; Close
// writes the waiting keys; an Open after a stop that left entries
// unindexed (a crash) indexes them.
func TestDeferredIndex(t *testing.T) {
	ctx := context.Background()
	frozen := func() time.Time { return t0 } // no index write falls due by time
	s, path := openTest(t, Options{Now: frozen})
	const n = 30
	wantPatient := map[string]int{}
	wantAgent := map[string]int{}
	keys, agentKeys := 0, 0
	for i := 0; i < n; i++ {
		e := entryFor(i)
		if _, err := s.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		wantPatient[fhir.PatientID(e.NHS)]++
		agents := agentsOf(e)
		for _, a := range agents {
			wantAgent[a]++
		}
		keys++
		agentKeys += len(agents)
	}
	query := func(t *testing.T, s *Store, stage string) {
		t.Helper()
		for _, tc := range []struct {
			name string
			f    Filter
			want int
		}{
			{"patient 0", Filter{Patient: fhir.PatientID(entryFor(0).NHS)}, wantPatient[fhir.PatientID(entryFor(0).NHS)]},
			{"patient 1 as entity", Filter{Entity: "Patient/" + fhir.PatientID(entryFor(1).NHS)}, wantPatient[fhir.PatientID(entryFor(1).NHS)]},
			{"agent: organisation", Filter{Agent: "RRK"}, wantAgent["RRK"]},
			{"agent: clinician", Filter{Agent: "sds-3"}, wantAgent["sds-3"]},
			{"agent: client, granted only", Filter{Agent: "client-1", Outcome: fhir.OutcomeGranted}, -1},
		} {
			t.Run(stage+"/"+tc.name, func(t *testing.T) {
				want := tc.want
				if want < 0 { // counted from the entries
					want = 0
					for i := 0; i < n; i++ {
						if e := entryFor(i); e.ClientID == "client-1" && e.Outcome == fhir.OutcomeGranted {
							want++
						}
					}
				}
				tc.f.Count = fhir.MaxCount
				es, total, err := s.Query(ctx, tc.f)
				if err != nil || total != want || len(es) != want {
					t.Fatalf("%d entries, total %d (%v); want %d", len(es), total, err, want)
				}
				for i := 1; i < len(es); i++ {
					if es[i].Seq >= es[i-1].Seq {
						t.Fatalf("not newest first at %d: %d after %d", i, es[i].Seq, es[i-1].Seq)
					}
				}
			})
		}
	}
	pk, _, mark := indexState(t, s.db)
	if pk >= keys || mark >= n {
		t.Fatalf("the index holds %d of %d patient keys, marked through %d of %d: nothing was deferred, the test cannot see the log tail being read", pk, keys, mark, n)
	}
	query(t, s, "deferred")
	must(t, s.Close())

	reopen := func() *Store {
		s, err := Open(path, Options{Now: frozen})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s = reopen()
	if pk, ak, mark := indexState(t, s.db); pk != keys || ak != agentKeys || mark != n {
		t.Fatalf("after Close: %d patient keys (want %d), %d agent keys (want %d), marked through %d (want %d)", pk, keys, ak, agentKeys, mark, n)
	}
	query(t, s, "closed")
	must(t, s.Close())

	// A stop that left entries 11.. unindexed: their keys gone, the mark back.
	db, err := bbolt.Open(path, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bbolt.Tx) error {
		for _, b := range []*bbolt.Bucket{tx.Bucket(bucketPatient), tx.Bucket(bucketAgent)} {
			var del [][]byte
			must(t, b.ForEach(func(k, _ []byte) error {
				if binary.BigEndian.Uint64(k[len(k)-8:]) > 10 {
					del = append(del, bytes.Clone(k))
				}
				return nil
			}))
			for _, k := range del {
				must(t, b.Delete(k))
			}
		}
		return tx.Bucket(bucketMeta).Put(keyIndexed, seqKey(10))
	}))
	if pk, _, _ := indexState(t, db); pk >= keys {
		t.Fatalf("fixture: %d patient keys left", pk)
	}
	must(t, db.Close())
	s = reopen()
	if pk, ak, mark := indexState(t, s.db); pk != keys || ak != agentKeys || mark != n {
		t.Fatalf("after a crash and Open: %d patient keys (want %d), %d agent keys (want %d), marked through %d (want %d)", pk, keys, ak, agentKeys, mark, n)
	}
	query(t, s, "reindexed")
	if _, err := s.Verify(ctx); err != nil {
		t.Fatalf("Verify after reindexing: %v", err)
	}
}

// TestDeferredIndexWrittenInGroups: under a clock that moves, the indexes
// are written once indexEvery has passed, not per commit.
func TestDeferredIndexWrittenInGroups(t *testing.T) {
	clock := &stepClock{t: t0, step: indexEvery / 4}
	s, _ := openTest(t, Options{Now: clock.Now})
	for i := 0; i < 12; i++ {
		if _, err := s.Append(context.Background(), entryFor(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, mark := indexState(t, s.db)
	if mark == 0 || mark == 12 {
		t.Fatalf("marked through %d of 12 with the clock moving %v a commit: want the indexes written every few commits", mark, indexEvery/4)
	}
}
