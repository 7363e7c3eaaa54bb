package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/adapters/idmap/pgidmap"
	"github.com/gpgate/gpgate/audit/pgaudit"
	consentpg "github.com/gpgate/gpgate/consent/pgstore"
	smartpg "github.com/gpgate/gpgate/consent/smart/pgstore"
	"github.com/gpgate/gpgate/postgres"
)

// migrations are the schemas of every PostgreSQL store, in the order
// `gpgate migrate` applies them (each store's SQL files live in its own
// package).
var migrations = []postgres.Migrations{
	consentpg.Migrations,
	smartpg.Migrations,
	pgidmap.Migrations,
	pgaudit.Migrations,
}

// databaseEnv names the environment variable the --database flags default
// to, so a password in the URL need not appear in a process list.
const databaseEnv = "GPGATE_DATABASE"

const databaseUsage = "PostgreSQL URL (postgres://user@host:port/db) of the shared state of a multi-node deployment (default $" + databaseEnv + "; empty: bbolt files in the data directory)"

// openDatabase opens the pool and refuses a database `gpgate migrate` has
// not brought up to this gpgate's schema.
func openDatabase(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, url, postgres.PoolOptions{})
	if err != nil {
		return nil, err
	}
	if err := postgres.CheckSchema(ctx, pool, migrations...); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var database string
	fs := newFlags("migrate --database URL", "Creates or upgrades gpgate's tables in a PostgreSQL database (agreements, consents, clients and keys,\nthe replay cache, the patient id map, the audit log and forwarder cursors). Safe to run again and from\nseveral nodes at once (an advisory lock serialises it; all migrations or none are applied).", stderr)
	fs.StringVar(&database, "database", os.Getenv(databaseEnv), databaseUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if database == "" {
		fmt.Fprintln(stderr, "--database is required")
		fs.Usage()
		return errUsage
	}
	pool, err := postgres.Open(ctx, database, postgres.PoolOptions{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	done, err := postgres.Migrate(ctx, pool, migrations...)
	if err != nil {
		return err
	}
	for _, a := range done {
		fmt.Fprintf(stdout, "applied %s %04d %s\n", a.Component, a.Version, a.Name)
	}
	fmt.Fprintf(stdout, "database schema up to date (%d migrations applied now)\n", len(done))
	return nil
}
