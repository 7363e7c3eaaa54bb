package pgaudit_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gpgate/gpgate/audit/pgaudit"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

// BenchmarkRecordParallel is the audit write path of one node under
// concurrent requests: each op is one durable Record (group commit). It
// reports entries per commit. Against pgtest's server fsync is off; run
// with PG_DURABLE numbers from docs/scale.md (make cluster) for the disk.
func BenchmarkRecordParallel(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			ctx := context.Background()
			url := pgtest.URL(b)
			pgtest.PoolAt(b, url, pgaudit.Migrations)
			logs := make([]*pgaudit.Log, nodes)
			for i := range logs {
				l, err := pgaudit.Open(ctx, pgtest.PoolAt(b, url), pgaudit.Options{Node: fmt.Sprint(i)})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				logs[i] = l
			}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				l := logs[int(n.Add(1))%nodes]
				for i := 0; pb.Next(); i++ {
					if err := l.Record(ctx, entry(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			var commits, entries uint64
			for _, l := range logs {
				commits += l.Stats().Commits
				entries += l.Stats().Entries
			}
			if commits > 0 {
				b.ReportMetric(float64(entries)/float64(commits), "entries/commit")
			}
		})
	}
}
