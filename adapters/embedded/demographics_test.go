package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

// classifyAs is a sharing classifier that answers v and counts its calls.
func classifyAs(v fhir.SharingConsent, calls *int) SharingClassifier {
	return func(*fhir.Record) fhir.SharingConsent {
		*calls++
		return v
	}
}

func TestDemographics(t *testing.T) {
	pid := fhir.PatientID(nhsA)
	// A demographics resource referring to a clinical one of the record:
	// redacting it alone could differ from redacting it in the record.
	plain := func(t testing.TB) *fhir.Record { return record(t, nhsA) }
	tangled := func(t testing.TB) *fhir.Record {
		r := record(t, nhsA)
		r.Resources[0] = res(t, `{"resourceType":"Patient","id":"`+pid+`","link":[{"other":{"reference":"Condition/`+fhir.ResourceID(pid, "cond-1")+`"}}]}`)
		return r
	}
	for _, tc := range []struct {
		name     string
		classify bool // the store has a classifier (answering consent)
		rec      func(testing.TB) *fhir.Record
		sharing  fhir.SharingConsent // set by the writer
		vouched  bool
		want     fhir.SharingConsent
		calls    int // classifier calls per write
	}{
		{name: "no classifier, unknown", rec: plain, vouched: false},
		{name: "no classifier, source says dissent", rec: plain, sharing: fhir.SharingDissent, vouched: true, want: fhir.SharingDissent},
		{name: "classifier", classify: true, rec: plain, vouched: true, want: fhir.SharingConsented, calls: 1},
		{name: "classifier, source's value wins", classify: true, rec: plain, sharing: fhir.SharingDissent, vouched: true, want: fhir.SharingDissent},
		{name: "demographics refer to the record", classify: true, rec: tangled, vouched: false, calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			var opts []Option
			if tc.classify {
				opts = append(opts, WithSharing(classifyAs(fhir.SharingConsented, &calls)))
			}
			s := open(t, opts...)
			in := tc.rec(t)
			in.Sharing = tc.sharing
			if err := s.PutRecord("Y99001", in); err != nil {
				t.Fatal(err)
			}
			if calls != tc.calls {
				t.Errorf("classifier called %d times, want %d", calls, tc.calls)
			}
			src := s.Source("Y99001")
			rec, ok, err := src.Demographics(context.Background(), nhsA)
			if err != nil || ok != tc.vouched {
				t.Fatalf("Demographics = %v, %v, %v; want vouched %v", rec, ok, err, tc.vouched)
			}
			full, err := src.Record(context.Background(), nhsA, fhir.AllAreas)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				if rec != nil {
					t.Fatal("a record it does not vouch for was returned")
				}
				return
			}
			if rec.Sharing != tc.want || full.Sharing != tc.want {
				t.Errorf("sharing: demographics %v, whole record %v; want %v for both", rec.Sharing, full.Sharing, tc.want)
			}
			var want []string
			for _, r := range full.Resources {
				if r.Ix.Area == fhir.AreaDemographics {
					want = append(want, r.Type+"/"+r.ID+" "+string(r.JSON))
				}
			}
			var got []string
			for _, r := range rec.Resources {
				got = append(got, r.Type+"/"+r.ID+" "+string(r.JSON))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("demographics\n got %v\nwant %v", got, want)
			}
			if rec.PatientID != full.PatientID || rec.Practice != "Y99001" || rec.NHS != nhsA {
				t.Errorf("record ids: %+v", rec)
			}
			if rec.Version != full.Version+DemographicsVersion {
				t.Errorf("version %q, want the record's %q + %q", rec.Version, full.Version, DemographicsVersion)
			}
			again, _, _ := src.Demographics(context.Background(), nhsA)
			if again != rec {
				t.Error("a second read did not come from the cache")
			}
		})
	}
}

func TestDemographicsUnknownAndMoved(t *testing.T) {
	calls := 0
	s := open(t, WithSharing(classifyAs(fhir.SharingUnknown, &calls)))
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ods string
		nhs fhir.NHSNumber
	}{{"Y99002", nhsA}, {"Y99001", nhsB}} {
		if _, ok, err := s.Source(tc.ods).Demographics(context.Background(), tc.nhs); ok || code(err) != fhir.CodePatientNotFound {
			t.Errorf("%s at %s: ok %v err %v, want PATIENT_NOT_FOUND", tc.nhs, tc.ods, ok, err)
		}
	}
	// Moved to another practice: the new one answers, the old one does not.
	if err := s.PutRecord("Y99002", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Source("Y99002").Demographics(context.Background(), nhsA); !ok || err != nil {
		t.Errorf("after the move: %v %v", ok, err)
	}
	if _, _, err := s.Source("Y99001").Demographics(context.Background(), nhsA); code(err) != fhir.CodePatientNotFound {
		t.Errorf("old practice after the move: %v", err)
	}
}

// A store written before the demographics index existed answers "not
// vouched", never an error: the caller reads the whole record.
func TestDemographicsOldStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	calls := 0
	s, err := Open(path, WithSharing(classifyAs(fhir.SharingConsented, &calls)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPractice("Y99001", "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketDemographics) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rec, ok, err := s.Source("Y99001").Demographics(context.Background(), nhsA); ok || err != nil || rec != nil {
		t.Fatalf("old store: %v %v %v", rec, ok, err)
	}
	if _, err := s.Source("Y99001").Record(context.Background(), nhsA, fhir.AllAreas); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeDemographicsRejectsDamage(t *testing.T) {
	good := encodeDemographics(record(t, nhsA), nil)
	if _, _, _, err := decodeDemographics(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"format", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(append([]byte(nil), good...), '}')},
		{"count", append([]byte{demographicsFormat, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, good[4:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, _, err := decodeDemographics(tc.b); err == nil {
				t.Fatal("damage not detected")
			}
		})
	}
}

func FuzzDecodeDemographics(f *testing.F) {
	f.Add(encodeDemographics(record(f, nhsA), nil))
	f.Add([]byte{demographicsFormat, 1, 3, 1, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, _, _, err := decodeDemographics(b)
		if err == nil {
			for _, r := range res {
				if r == nil || len(r.JSON) == 0 {
					t.Fatal("decoded an empty resource")
				}
			}
		}
	})
}

// TestAccessesGroupCommit: accesses recorded concurrently are all
// written, in groups; Flush makes them durable (visible after reopening);
// an access to a patient the practice does not hold is refused at once;
// Close writes what is still queued.
func TestAccessesGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gp.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPractice("Y99001", "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	src := s.Source("Y99001")
	before := accessCommits(s)
	const n = 256
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			nhs := fhir.NHSNumber(nhsA)
			if i%16 == 15 {
				nhs = nhsB // not held: refused
			}
			errs[i] = src.RecordAccess(context.Background(), nhs, &fhir.AuditEntry{Time: time.Unix(int64(i), 0), Outcome: fhir.OutcomeGranted, RequestID: fmt.Sprint(i)})
		}(i)
	}
	wg.Wait()
	written := 0
	for i, err := range errs {
		switch {
		case i%16 == 15 && code(err) != fhir.CodePatientNotFound:
			t.Errorf("access %d to a patient not held: %v", i, err)
		case i%16 != 15 && err != nil:
			t.Errorf("access %d: %v", i, err)
		case i%16 != 15:
			written++
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	txs := accessCommits(s) - before
	t.Logf("%d accesses in %d write transactions", written, txs)
	if txs >= uint64(written) {
		t.Errorf("%d write transactions for %d accesses: not grouped", txs, written)
	}
	got, err := src.Accesses(context.Background(), nhsA)
	if err != nil || len(got) != written {
		t.Fatalf("after Flush: %d accesses (%v), want %d", len(got), err, written)
	}
	// Queued, then closed: Close writes them.
	for i := 0; i < 10; i++ {
		if err := src.RecordAccess(context.Background(), nhsA, &fhir.AuditEntry{Outcome: fhir.OutcomeGranted}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.RecordAccess(context.Background(), nhsA, &fhir.AuditEntry{}); err == nil {
		t.Error("an access after Close was accepted")
	}
	s, err = Open(path, WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err = s.Source("Y99001").Accesses(context.Background(), nhsA)
	if err != nil || len(got) != written+10 {
		t.Fatalf("after reopening: %d accesses (%v), want %d", len(got), err, written+10)
	}
}

// TestAccessWriteFailure: when the file cannot be written, Flush reports
// the error and new accesses are refused with it (so the caller keeps them
// and retries); the queued ones are retried, not dropped, until Close.
func TestAccessWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gp.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPractice("Y99001", "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, WithReadOnly()) // every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.accesses.retry = time.Millisecond
	src := s.Source("Y99001")
	if err := src.RecordAccess(context.Background(), nhsA, &fhir.AuditEntry{Outcome: fhir.OutcomeGranted}); err != nil {
		t.Fatalf("queued: %v", err)
	}
	if err := s.Flush(context.Background()); err == nil {
		t.Fatal("Flush succeeded on a read-only file")
	}
	if err := src.RecordAccess(context.Background(), nhsA, &fhir.AuditEntry{}); err == nil {
		t.Fatal("an access was accepted while writes fail")
	}
	s.accesses.mu.Lock()
	queued := len(s.accesses.queue)
	s.accesses.mu.Unlock()
	if queued != 1 {
		t.Fatalf("%d accesses queued, want the 1 being retried", queued)
	}
}

// accessCommits is the transactions that wrote accesses.
func accessCommits(s *Store) uint64 {
	s.accesses.mu.Lock()
	defer s.accesses.mu.Unlock()
	return s.accesses.commits
}

// trailStore is a store with one practice and patient nhsA, its access
// writer lingering linger, closed when the test ends.
func trailStore(t *testing.T, linger time.Duration) (*Store, *Source) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "gp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.PutPractice("Y99001", "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord("Y99001", record(t, nhsA)); err != nil {
		t.Fatal(err)
	}
	s.accesses.mu.Lock()
	s.accesses.linger = linger
	s.accesses.mu.Unlock()
	return s, s.Source("Y99001")
}

// TestAccessesLinger: accesses that arrive one at a time, spaced out (as
// the practice trail hands them over), still share a transaction: woken by
// the first, the writer lingers before it writes. Without the linger each
// would be a transaction and an fsync of its own.
func TestAccessesLinger(t *testing.T) {
	s, src := trailStore(t, 2*time.Second) // longer than the spacing below, however slow the machine
	const n = 10
	for i := 0; i < n; i++ {
		if err := src.RecordAccess(context.Background(), nhsA, &fhir.AuditEntry{Outcome: fhir.OutcomeGranted, RequestID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if txs := accessCommits(s); txs > 2 {
		t.Fatalf("%d spaced accesses took %d transactions: the writer did not linger", n, txs)
	}
	if got, err := src.Accesses(context.Background(), nhsA); err != nil || len(got) != n {
		t.Fatalf("%d accesses written (%v), want %d", len(got), err, n)
	}
}

// TestAccessTrailPagesFull: a patient's trail only appends, so its pages
// are filled before they split (bbolt's default leaves an appended bucket's
// pages half empty: twice the file and the pages written).
func TestAccessTrailPagesFull(t *testing.T) {
	s, src := trailStore(t, 0) // a transaction per Flush below, without waiting
	var err error
	for i := range 2000 {
		if err := src.RecordAccess(context.Background(), nhsA, &fhir.AuditEntry{Outcome: fhir.OutcomeGranted, RequestID: fmt.Sprint("request-", i)}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 { // many transactions, as under load
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketAccess).Bucket([]byte(nhsA)).Stats()
		if st.LeafPageN < 10 {
			return fmt.Errorf("%d leaf pages: too few to tell", st.LeafPageN)
		}
		if used := float64(st.LeafInuse) / float64(st.LeafPageN*tx.DB().Info().PageSize); used < 0.8 {
			return fmt.Errorf("the trail's leaf pages are %.0f%% used (%d pages)", used*100, st.LeafPageN)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
