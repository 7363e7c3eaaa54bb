package audit

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// fromFile reads entries after seq from the log file itself, past the ring.
func fromFile(t *testing.T, s *Store, after uint64, limit int) []Entry {
	t.Helper()
	var got []Entry
	for seq := after + 1; len(got) < limit; seq++ {
		e, ok, err := s.Get(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, e)
	}
	return got
}

// TestRecentServesWhatTheFileHolds: a forwarder cannot tell the ring from
// the file. Entries the JSON encoding changes (invalid UTF-8, local times
// with monotonic readings, empty non-nil Types, area bits no name stands
// for) read back from memory exactly as from the file.
func TestRecentServesWhatTheFileHolds(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		london = time.FixedZone("BST", 3600)
	}
	cases := []struct {
		name string
		e    fhir.AuditEntry
	}{
		{"plain", *entryFor(1)},
		{"break glass", *entryFor(6)},
		{"local time with monotonic reading", fhir.AuditEntry{Time: time.Now().In(london), Action: "PatientRead", Outcome: "granted"}},
		{"zero time", fhir.AuditEntry{Action: "token-issue", Outcome: "granted"}},
		{"invalid UTF-8", fhir.AuditEntry{Time: t0, Action: "PatientQuery", Query: "name=\xff\xfeA", Reason: "ok\xc3"}},
		{"invalid UTF-8 in types", fhir.AuditEntry{Time: t0, Types: []string{"Patient", "Pat\x80ient"}}},
		{"HTML and control characters", fhir.AuditEntry{Time: t0, Rule: "<b>&amp;</b>\u2028\n\t\"", Query: "a=<script>"}},
		{"empty types, not nil", fhir.AuditEntry{Time: t0, Types: []string{}}},
		{"stray area bits", fhir.AuditEntry{Time: t0, Areas: fhir.AreaProblems | 1<<15}},
		{"summary and all", fhir.AuditEntry{Time: t0, Areas: fhir.AllAreas | fhir.AreaSummary}},
		{"NHS number only", fhir.AuditEntry{Time: t0, NHS: "9000000009", Count: -1}},
	}
	s, _ := openTest(t, Options{Node: "node-a"})
	for _, c := range cases {
		e := c.e
		if err := s.Record(context.Background(), &e); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	feed := storeFeed{s}
	mem, more, ok := s.recent.after(0, 100)
	if !ok || more || len(mem) != len(cases) {
		t.Fatalf("ring after(0): %d entries, more %v, ok %v; want %d from memory", len(mem), more, ok, len(cases))
	}
	file := fromFile(t, s, 0, 100)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(mem[i], file[i]) {
				t.Errorf("from memory:\n%#v\nfrom the file:\n%#v", mem[i], file[i])
			}
		})
	}
	viaFeed, _, err := feed.ReadAfter(context.Background(), 3, 4)
	if err != nil || !reflect.DeepEqual(viaFeed, file[3:7]) {
		t.Errorf("ReadAfter(3, 4) = %d entries, %v; want entries 4-7 as the file holds them", len(viaFeed), err)
	}
}

// TestRecentBoundedAndFallsBack: the ring keeps about recentBytes; a reader
// behind it reads the file, and gets the same entries either way.
func TestRecentBoundedAndFallsBack(t *testing.T) {
	s, _ := openTest(t, Options{})
	big := fhir.AuditEntry{Time: t0, Action: "PatientQuery", Query: fmt.Sprintf("%0900d", 0)}
	n := 2 * recentBytes / (900 + entryOverhead)
	for i := 0; i < n; i++ {
		e := big
		e.RequestID = fmt.Sprint("req-", i)
		if err := s.Record(context.Background(), &e); err != nil {
			t.Fatal(err)
		}
	}
	s.recent.mu.Lock()
	held, bytes, first := len(s.recent.entries), s.recent.bytes, s.recent.entries[0].Seq
	s.recent.mu.Unlock()
	if bytes > recentBytes || held >= n || held < n/4 {
		t.Fatalf("ring holds %d of %d entries, %d bytes; want a bounded share under %d bytes", held, n, bytes, recentBytes)
	}
	if _, _, ok := s.recent.after(first-2, 10); ok {
		t.Errorf("after(%d) served from a ring starting at %d: entries %d would be skipped", first-2, first, first-1)
	}
	feed := storeFeed{s}
	for _, after := range []uint64{0, first - 2, first - 1, uint64(n) - 5, uint64(n)} {
		got, _, err := feed.ReadAfter(context.Background(), after, 8)
		if err != nil {
			t.Fatal(err)
		}
		if want := fromFile(t, s, after, 8); !reflect.DeepEqual(got, want) {
			t.Errorf("ReadAfter(%d): %d entries, the file %d, or they differ", after, len(got), len(want))
		}
	}
}

// TestRecentRestartsOnGap: a batch that does not follow the ring's newest
// entry replaces it rather than leaving a hole readers would skip.
func TestRecentRestartsOnGap(t *testing.T) {
	var r recentRing
	mk := func(seqs ...uint64) []*pending {
		var b []*pending
		for _, q := range seqs {
			b = append(b, &pending{seq: q, entry: &fhir.AuditEntry{Action: "a"}, payload: []byte(`{"action":"a"}`)})
		}
		return b
	}
	r.add(mk(1, 2, 3), t0, "")
	r.add(mk(7, 8), t0, "")
	if got, _, ok := r.after(2, 10); ok {
		t.Errorf("after(2) from the ring = %d entries; want the file (3-6 are not in memory)", len(got))
	}
	if got, _, ok := r.after(6, 10); !ok || len(got) != 2 || got[0].Seq != 7 {
		t.Errorf("after(6) = %v, ok %v; want 7 and 8", got, ok)
	}
	r.add([]*pending{{seq: 9, payload: []byte(`not json`)}}, t0, "")
	if _, _, ok := r.after(8, 10); ok {
		t.Error("a batch that cannot be decoded left the ring serving")
	}
}

// BenchmarkReadAfter is a forwarder's read of the newest 512 entries: from
// the recent ring, and from the file (as a forwarder behind the ring, or
// any forwarder before the ring, reads).
func BenchmarkReadAfter(b *testing.B) {
	s, _ := openTest(b, Options{})
	const n = 512
	for i := 0; i < n; i++ {
		if err := s.Record(context.Background(), entryFor(i)); err != nil {
			b.Fatal(err)
		}
	}
	feed := storeFeed{s}
	b.Run("memory", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, _, _ := feed.ReadAfter(context.Background(), 0, n); len(got) != n {
				b.Fatalf("%d entries", len(got))
			}
		}
	})
	s.recent.reset()
	b.Run("file", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, _, _ := feed.ReadAfter(context.Background(), 0, n); len(got) != n {
				b.Fatalf("%d entries", len(got))
			}
		}
	})
}
