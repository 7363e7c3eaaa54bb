package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gpgate/gpgate/postgres"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	v1 := postgres.Migrations{Component: "demo", FS: fstest.MapFS{
		"0001_init.sql": {Data: []byte("CREATE TABLE demo_a (id int PRIMARY KEY)")},
	}}
	v2 := postgres.Migrations{Component: "demo", FS: fstest.MapFS{
		"0001_init.sql": {Data: []byte("CREATE TABLE demo_a (id int PRIMARY KEY)")},
		"0002_b.sql":    {Data: []byte("CREATE TABLE demo_b (id int PRIMARY KEY)")},
	}}
	pool := pgtest.Pool(t)
	if err := postgres.CheckSchema(ctx, pool, v1); err == nil || !strings.Contains(err.Error(), "gpgate migrate") {
		t.Fatalf("CheckSchema on an empty database: %v", err)
	}
	for _, tc := range []struct {
		name    string
		set     postgres.Migrations
		applied int
		check   error
	}{
		{"first", v1, 1, nil},
		{"again", v1, 0, nil},
		{"newer", v2, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := postgres.Migrate(ctx, pool, tc.set)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.applied {
				t.Fatalf("applied %v, want %d", got, tc.applied)
			}
			if err := postgres.CheckSchema(ctx, pool, tc.set); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := postgres.CheckSchema(ctx, pool, v1); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("an older gpgate on a newer schema: %v", err)
	}
	bad := []postgres.Migrations{
		{Component: "gap", FS: fstest.MapFS{"0002_x.sql": {Data: []byte("SELECT 1")}}},
		{Component: "name", FS: fstest.MapFS{"init.sql": {Data: []byte("SELECT 1")}}},
		{Component: "fails", FS: fstest.MapFS{"0001_x.sql": {Data: []byte("CREATE TABLE demo_c (id int); SELECT nonsense")}}},
	}
	for _, m := range bad {
		t.Run("refused/"+m.Component, func(t *testing.T) {
			if _, err := postgres.Migrate(ctx, pool, m); err == nil {
				t.Fatal("migrated")
			}
		})
	}
	// a failed migration leaves nothing behind
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'demo_c'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("demo_c: %d %v", n, err)
	}
}

func TestHubDeliversOnCommitOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := pgtest.URL(t)
	pool := pgtest.PoolAt(t, url)
	hub := postgres.NewHub(url, nil)
	got := make(chan string, 16)
	hub.Subscribe("demo_changes", func(p string) { got <- p })
	go hub.Run(ctx)
	// the first call is the (re)connect: drop everything
	select {
	case p := <-got:
		if p != postgres.Reconnected {
			t.Fatalf("first payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hub did not connect")
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.Notify(ctx, tx, "demo_changes", "rolled-back"); err != nil {
		t.Fatal(err)
	}
	tx.Rollback(ctx)
	tx, _ = pool.Begin(ctx)
	if err := postgres.Notify(ctx, tx, "demo_changes", "a"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "a" {
			t.Fatalf("payload %q, want a (a rolled-back change must not notify)", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
}
