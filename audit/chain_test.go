package audit

import (
	"strings"
	"testing"
)

// CheckEntry is the per-entry rule both stores run; each class of damage
// has its own message (the tamper tests of each store check the walk).
func TestCheckEntry(t *testing.T) {
	rec := func(seq string) []byte { return []byte(`{"seq":` + seq + `,"recorded":"2026-01-02T03:04:05Z","x":1}`) }
	var prev [32]byte
	prev[0] = 7
	good := ChainHash(prev, rec("5"))
	for _, tc := range []struct {
		name   string
		seq    uint64
		stored []byte
		record []byte
		want   string
	}{
		{"intact", 5, good[:], rec("5"), ""},
		{"a gap", 6, good[:], rec("6"), "entry 5 is missing (deleted): the next entry is 6"},
		{"another entry's record", 5, good[:], rec("4"), "entry 5 holds the record of entry 4"},
		{"unreadable record", 5, good[:], []byte(`{"x":1}`), "entry 5: record unreadable"},
		{"edited record", 5, good[:], append(rec("5")[:len(rec("5"))-2], '2', '}'), "entry 5: hash mismatch"},
		{"edited hash", 5, make([]byte, 32), rec("5"), "entry 5: hash mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, bad := CheckEntry(5, tc.seq, prev, tc.stored, tc.record)
			if tc.want == "" {
				if bad != "" || sum != good {
					t.Fatalf("intact entry refused: %q", bad)
				}
				return
			}
			if !strings.HasPrefix(bad, tc.want) {
				t.Fatalf("got %q, want %q...", bad, tc.want)
			}
		})
	}
}

// Gather takes what is queued, without waiting, up to max in all.
func TestGather(t *testing.T) {
	for _, tc := range []struct {
		name          string
		queued, max   int
		closed        bool
		want, remains int
	}{
		{"nothing queued", 0, 8, false, 1, 0},
		{"some queued", 3, 8, false, 4, 0},
		{"more than max", 10, 4, false, 4, 7},
		{"closed queue", 2, 8, true, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := make(chan int, 16)
			for i := 0; i < tc.queued; i++ {
				q <- i
			}
			if tc.closed {
				close(q)
			}
			got := Gather([]int{-1}, q, tc.max)
			if len(got) != tc.want || len(q) != tc.remains {
				t.Fatalf("batch of %d, %d left; want %d, %d", len(got), len(q), tc.want, tc.remains)
			}
		})
	}
}
