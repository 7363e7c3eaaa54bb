// Package pgtest gives tests a real PostgreSQL: one throwaway server per
// test binary (pglocal, fsync off), and a fresh database per test, with the
// given migrations applied. Tests skip, saying why, where the PostgreSQL
// server binaries are not installed (apt-get install postgresql); set
// GPGATE_PG_REQUIRED=1 to make that a failure instead (CI does).
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//	func TestX(t *testing.T) { pool := pgtest.Pool(t, mystore.Migrations) ... }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/postgres"
	"github.com/gpgate/gpgate/postgres/pglocal"
)

var (
	once    sync.Once
	srv     *pglocal.Server
	dir     string
	srvErr  error
	counter atomic.Int64
)

// Main runs the tests and stops the server if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		_ = srv.Stop()
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	return code
}

func start() {
	dir, srvErr = os.MkdirTemp("", "gpgate-pgtest-")
	if srvErr != nil {
		return
	}
	s, err := pglocal.New(pglocal.Options{Dir: dir, Fast: true})
	if err != nil {
		srvErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		srvErr = err
		return
	}
	srv = s
}

// Server returns the shared server, starting it on first use; the test is
// skipped (or fails under GPGATE_PG_REQUIRED=1) when it cannot start.
func Server(t testing.TB) *pglocal.Server {
	t.Helper()
	once.Do(start)
	if srvErr != nil {
		if errors.Is(srvErr, pglocal.ErrNoBinaries) && os.Getenv("GPGATE_PG_REQUIRED") == "" {
			t.Skipf("no PostgreSQL to test against: %v", srvErr)
		}
		t.Fatalf("pgtest: %v", srvErr)
	}
	return srv
}

// URL creates a fresh, empty database for this test and returns its URL.
func URL(t testing.TB) string {
	t.Helper()
	s := Server(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), counter.Add(1))
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}

// Pool is a pool on a fresh database with sets migrated; closed at the
// end of the test.
func Pool(t testing.TB, sets ...postgres.Migrations) *pgxpool.Pool {
	t.Helper()
	return PoolAt(t, URL(t), sets...)
}

// PoolAt is Pool on the database at url (shared by several pools of one
// test: the nodes of a cluster).
func PoolAt(t testing.TB, url string, sets ...postgres.Migrations) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url, postgres.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if len(sets) > 0 {
		if _, err := postgres.Migrate(ctx, pool, sets...); err != nil {
			t.Fatal(err)
		}
	}
	return pool
}
