package pgaudit_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/audit/audittest"
	"github.com/gpgate/gpgate/audit/pgaudit"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestContract(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audittest.Opener {
		pool := pgtest.Pool(t, pgaudit.Migrations)
		return func(t *testing.T, o audittest.Options) audittest.Log {
			l, err := pgaudit.Open(context.Background(), pool, pgaudit.Options{Now: o.Now, Key: o.Key, Node: o.Node})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}
	})
}

func TestRefusesAsynchronousCommit(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pool := pgtest.PoolAt(t, url, pgaudit.Migrations)
	if _, err := pool.Exec(ctx, "ALTER ROLE CURRENT_USER IN DATABASE "+dbName(url)+" SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	fresh := pgtest.PoolAt(t, url) // new sessions take the setting
	if _, err := pgaudit.Open(ctx, fresh, pgaudit.Options{}); err == nil || !strings.Contains(err.Error(), "synchronous_commit") {
		t.Fatalf("opened on a database without synchronous commit: %v", err)
	}
}

func dbName(url string) string {
	u := url[strings.LastIndex(url, "/")+1:]
	name, _, _ := strings.Cut(u, "?")
	return name
}
