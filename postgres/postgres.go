// Package postgres is gpgate's PostgreSQL plumbing, shared by the store
// implementations that run a multi-node deployment (consent/pgstore,
// consent/smart/pgstore, audit/pgaudit, adapters/idmap/pgidmap): opening a
// connection pool, applying each store's migrations (SQL files embedded in
// the store's own package, applied by `gpgate migrate`), and cross-node
// cache invalidation by LISTEN/NOTIFY (Hub).
//
// It knows no table of any store: each store package owns its schema, its
// queries and its notification channel.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolOptions tune Open. Zero fields take the defaults.
type PoolOptions struct {
	// MaxConns bounds the pool (default 16: the audit writer holds one,
	// the forwarder's lease one, requests share the rest).
	MaxConns int32
	// ConnectTimeout bounds a connection attempt (default 3 s), so an
	// unreachable database fails requests quickly (closed) rather than
	// hanging them.
	ConnectTimeout time.Duration
	// AppName is application_name (default "gpgate").
	AppName string
}

// Open parses url (a postgres:// URL or key=value DSN; the pool_* query
// parameters of pgxpool are honoured) and returns a pool that has reached
// the server once.
func Open(ctx context.Context, url string, o PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: database URL: %w", redact(err))
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	} else if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 3 * time.Second
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
	}
	if o.AppName == "" {
		o.AppName = "gpgate"
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = o.AppName
	}
	// A connection that has seen the server go away is not reused.
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", redact(err))
	}
	pctx, cancel := context.WithTimeout(ctx, 2*o.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach the database: %w", redact(err))
	}
	return pool, nil
}

// redact drops a connection error's configuration detail (which may carry
// a password) and keeps its message.
func redact(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errors.New(ce.Unwrap().Error())
	}
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the database URL")
	}
	return err
}

// Notify sends a notification on channel from within tx: PostgreSQL
// delivers it to every listening node when (and only if) tx commits.
func Notify(ctx context.Context, tx pgx.Tx, channel, payload string) error {
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload)
	return err
}

// InTx runs fn in a transaction on pool, committing when fn returns nil.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}
