package audit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/gpgate/gpgate/fhir"
)

// TestCursorPagingUnderAppends: paging newest first by cursor while other
// goroutines keep appending shows every entry that existed at the first
// page exactly once, in order, for a scan, an index and a filtered search;
// the total counts the whole search.
func TestCursorPagingUnderAppends(t *testing.T) {
	pid := fhir.PatientID("9000000017")
	for _, tc := range []struct {
		name string
		f    Filter
	}{
		{"scan", Filter{Count: 7}},
		{"patient index", Filter{Patient: pid, Count: 4}},
		{"agent index", Filter{Agent: "client-1", Count: 5}},
		{"filtered scan", Filter{Outcome: fhir.OutcomeGranted, Count: 6}},
		{"page of one", Filter{Action: "PatientRead", Count: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTest(t, Options{})
			ctx := context.Background()
			fill(t, s, 60)
			want := matchingSeqs(t, s, 60, func(e *Entry) bool { return tc.f.match(e) })
			for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
				want[i], want[j] = want[j], want[i] // newest first
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 { // writers keep appending between and during pages
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := s.Append(ctx, entryFor(100+w*1000+i)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			var all []uint64
			f := tc.f
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				p, err := s.QueryPage(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range p.Entries {
					all = append(all, e.Seq)
				}
				if len(p.Entries) > f.Count || (p.Next != 0 && len(p.Entries) != f.Count) {
					t.Fatalf("page of %d (count %d) next %d", len(p.Entries), f.Count, p.Next)
				}
				if p.Total < len(want) {
					t.Fatalf("total %d below the %d matches already there", p.Total, len(want))
				}
				if p.Next == 0 {
					break
				}
				f.Before = p.Next
				// round trip the cursor through the query string, as a next link does
				v, err := url.ParseQuery(fmt.Sprintf("_cursor=%d", p.Next))
				must(t, err)
				pf, err := ParseFilter(v)
				if err != nil || pf.Before != p.Next {
					t.Fatalf("ParseFilter(_cursor) = %+v %v", pf, err)
				}
			}
			close(stop)
			wg.Wait()
			// strictly descending: nothing twice, nothing out of order; the
			// entries appended before the first page lead, and are left out
			var got []uint64
			for i, seq := range all {
				if i > 0 && seq >= all[i-1] {
					t.Fatalf("seq %d after %d: %v", seq, all[i-1], all)
				}
				if seq <= 60 {
					got = append(got, seq)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("paged %v\nwant  %v", got, want)
			}
		})
	}
}

func TestParseFilterCursor(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want uint64
		bad  bool
	}{
		{"_cursor=42", 42, false},
		{"_cursor=18446744073709551615", ^uint64(0), false},
		{"_cursor=0", 0, true},
		{"_cursor=-1", 0, true},
		{"_cursor=audit-000000000042", 0, true},
		{"_cursor=", 0, true},
	} {
		t.Run(tc.q, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.q)
			f, err := ParseFilter(v)
			if tc.bad {
				var fe *fhir.Error
				if !errors.As(err, &fe) || fe.Expression != "_cursor" {
					t.Fatalf("err %v, want INVALID_PARAMETER at _cursor", err)
				}
				return
			}
			if err != nil || f.Before != tc.want {
				t.Fatalf("= %+v %v", f, err)
			}
		})
	}
}

// TestQueryPageNext: Next is set exactly when older matches remain, and
// Offset still works (after the cursor) for old links.
func TestQueryPageNext(t *testing.T) {
	s, _ := openTest(t, Options{})
	fill(t, s, 10)
	ctx := context.Background()
	for _, tc := range []struct {
		f     Filter
		seqs  string
		next  uint64
		total int
	}{
		{Filter{Count: 3}, "[10 9 8]", 8, 10},
		{Filter{Count: 3, Before: 8}, "[7 6 5]", 5, 10},
		{Filter{Count: 3, Before: 4}, "[3 2 1]", 0, 10},
		{Filter{Count: 10}, "[10 9 8 7 6 5 4 3 2 1]", 0, 10},
		{Filter{Count: 2, Before: 8, Offset: 1}, "[6 5]", 5, 10},
		{Filter{Count: 3, Before: 1}, "[]", 0, 10},
		{Filter{TotalOnly: true}, "[]", 0, 10},
	} {
		t.Run(fmt.Sprintf("%+v", tc.f), func(t *testing.T) {
			p, err := s.QueryPage(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, e := range p.Entries {
				seqs = append(seqs, e.Seq)
			}
			if fmt.Sprint(seqs) != tc.seqs || p.Next != tc.next || p.Total != tc.total {
				t.Errorf("= %v next %d total %d", seqs, p.Next, p.Total)
			}
		})
	}
}
