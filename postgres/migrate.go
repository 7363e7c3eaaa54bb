package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrations are one store's schema changes: SQL files NNNN_name.sql in
// FS (numbered from 0001, never renumbered or edited once released: add a
// new file), applied in order, each once, recorded in gpgate_schema.
type Migrations struct {
	Component string // e.g. "audit"; the key in gpgate_schema
	FS        fs.FS  // the files, usually an embed.FS sub-directory
}

type step struct {
	version int
	name    string
	sql     string
}

func (m Migrations) steps() ([]step, error) {
	names, err := fs.Glob(m.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []step
	seen := map[int]string{}
	for _, n := range names {
		num, _, ok := strings.Cut(path.Base(n), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %s/%s: want NNNN_name.sql", m.Component, n)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("postgres: migrations %s and %s of %s share version %d", other, n, m.Component, v)
		}
		seen[v] = n
		b, err := fs.ReadFile(m.FS, n)
		if err != nil {
			return nil, err
		}
		out = append(out, step{v, n, string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, s := range out {
		if s.version != i+1 {
			return nil, fmt.Errorf("postgres: migrations of %s skip from %d to %d", m.Component, i, s.version)
		}
	}
	return out, nil
}

// migrateLock is the advisory lock key that serialises migrations (any
// fixed number; "gpgate" in ASCII).
const migrateLock = 0x677067617465

// Applied is one migration applied by Migrate.
type Applied struct {
	Component string
	Version   int
	Name      string
}

// Migrate applies the pending migrations of every set in one transaction
// under an advisory lock (two nodes migrating at once wait for each
// other): all of them or none. It returns what it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, sets ...Migrations) ([]Applied, error) {
	var done []Applied
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrateLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS gpgate_schema (
			component text NOT NULL,
			version integer NOT NULL,
			name text NOT NULL,
			applied timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (component, version))`); err != nil {
			return err
		}
		for _, m := range sets {
			steps, err := m.steps()
			if err != nil {
				return err
			}
			var cur int
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM gpgate_schema WHERE component = $1", m.Component).Scan(&cur); err != nil {
				return err
			}
			if cur > len(steps) {
				return fmt.Errorf("postgres: the database's %s schema is at version %d, newer than this gpgate knows (%d): upgrade gpgate", m.Component, cur, len(steps))
			}
			for _, s := range steps[cur:] {
				if _, err := tx.Exec(ctx, s.sql); err != nil {
					return fmt.Errorf("postgres: migration %s/%s: %w", m.Component, s.name, err)
				}
				if _, err := tx.Exec(ctx, "INSERT INTO gpgate_schema (component, version, name) VALUES ($1, $2, $3)", m.Component, s.version, s.name); err != nil {
					return err
				}
				done = append(done, Applied{m.Component, s.version, s.name})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// CheckSchema reports an error unless every set's migrations are all
// applied: a node refuses to serve a database `gpgate migrate` has not
// brought up to date (or one newer than it knows).
func CheckSchema(ctx context.Context, pool *pgxpool.Pool, sets ...Migrations) error {
	for _, m := range sets {
		steps, err := m.steps()
		if err != nil {
			return err
		}
		var cur int
		err = pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM gpgate_schema WHERE component = $1", m.Component).Scan(&cur)
		if err != nil {
			if strings.Contains(err.Error(), "gpgate_schema") {
				return fmt.Errorf("postgres: the database has no gpgate schema: run `gpgate migrate --database URL` first")
			}
			return err
		}
		switch {
		case cur < len(steps):
			return fmt.Errorf("postgres: the database's %s schema is at version %d, this gpgate needs %d: run `gpgate migrate --database URL`", m.Component, cur, len(steps))
		case cur > len(steps):
			return fmt.Errorf("postgres: the database's %s schema is at version %d, newer than this gpgate knows (%d): upgrade gpgate", m.Component, cur, len(steps))
		}
	}
	return nil
}
