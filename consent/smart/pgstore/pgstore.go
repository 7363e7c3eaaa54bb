// Package pgstore is the PostgreSQL smart.ClientStore, smart.KeyStore and
// smart.ReplayCache, for gpgate nodes that share their state (`gpgate serve
// --database URL`). It passes the same contract as the bbolt store
// (consent/smart/smarttest).
//
// Changes NOTIFY in their transaction: ClientsChannel (payload: the client
// id) when a client is added, disabled, enabled or its keys rotated, so
// every node drops what it caches about that client; KeysChannel when
// gpgate's signing keys change, so every node reloads them (a node signs
// with the active key it last loaded). The replay cache is one table: an
// assertion used on one node is refused on every other.
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are this store's schema changes, for `gpgate migrate`.
var Migrations = postgres.Migrations{Component: "smart", FS: must(fs.Sub(migrationFiles, "migrations"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}

// Notification channels.
const (
	ClientsChannel = "gpgate_clients"
	KeysChannel    = "gpgate_keys"
)

// Store is the PostgreSQL client registry and signing-key store.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var (
	_ smart.ClientStore = (*Store)(nil)
	_ smart.KeyStore    = (*Store)(nil)
)

// New returns the store over pool (migrated by Migrations); now stamps
// Created/Updated (time.Now when nil).
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

func internal(err error) error {
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe
	}
	return fhir.Internal(fmt.Errorf("smart/pgstore: %w", err))
}

// AddClient registers a new client (ValidateClient); an existing id is an
// error.
func (s *Store) AddClient(ctx context.Context, c *smart.Client) error {
	if err := smart.ValidateClient(c); err != nil {
		return err
	}
	cp := *c
	cp.Created = s.now().UTC()
	cp.Updated = cp.Created
	b, err := json.Marshal(&cp)
	if err != nil {
		return fhir.Internal(err)
	}
	return internal(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO smart_clients (id, body) VALUES ($1, $2)", cp.ID, string(b))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return fhir.Errorf(fhir.CodeBadRequest, "client %q is already registered", cp.ID)
		}
		if err != nil {
			return err
		}
		return postgres.Notify(ctx, tx, ClientsChannel, cp.ID)
	}))
}

func decodeClient(body string) (*smart.Client, error) {
	c := new(smart.Client)
	if err := json.Unmarshal([]byte(body), c); err != nil {
		return nil, fhir.Internal(fmt.Errorf("smart/pgstore: stored client unreadable: %w", err))
	}
	return c, nil
}

// GetClient returns the client, or a not-found error (errors.Is
// smart.ErrClientNotFound).
func (s *Store) GetClient(ctx context.Context, id string) (*smart.Client, error) {
	var body string
	err := s.pool.QueryRow(ctx, "SELECT body::text FROM smart_clients WHERE id = $1", id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, smart.ClientNotFound(id)
	}
	if err != nil {
		return nil, internal(err)
	}
	return decodeClient(body)
}

// ListClients returns every client, by id.
func (s *Store) ListClients(ctx context.Context) ([]*smart.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT body::text FROM smart_clients ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	var out []*smart.Client
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, internal(err)
		}
		c, err := decodeClient(body)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, internal(rows.Err())
}

func (s *Store) update(ctx context.Context, id string, f func(c *smart.Client)) error {
	return internal(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var body string
		err := tx.QueryRow(ctx, "SELECT body::text FROM smart_clients WHERE id = $1 FOR UPDATE", id).Scan(&body)
		if errors.Is(err, pgx.ErrNoRows) {
			return smart.ClientNotFound(id)
		}
		if err != nil {
			return err
		}
		c, err := decodeClient(body)
		if err != nil {
			return err
		}
		f(c)
		c.Updated = s.now().UTC()
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE smart_clients SET body = $2 WHERE id = $1", id, string(b)); err != nil {
			return err
		}
		return postgres.Notify(ctx, tx, ClientsChannel, id)
	}))
}

// DisableClient stops the client getting tokens.
func (s *Store) DisableClient(ctx context.Context, id string) error {
	return s.update(ctx, id, func(c *smart.Client) { c.Enabled = false })
}

// EnableClient re-enables a disabled client.
func (s *Store) EnableClient(ctx context.Context, id string) error {
	return s.update(ctx, id, func(c *smart.Client) { c.Enabled = true })
}

// RotateClientKey replaces the client's keys with the inline JWKS newJWKS
// (a JWKS URL is dropped).
func (s *Store) RotateClientKey(ctx context.Context, id string, newJWKS []byte) error {
	if _, err := smart.ParseClientJWKS(newJWKS); err != nil {
		return err
	}
	return s.update(ctx, id, func(c *smart.Client) {
		c.JWKS, c.JWKSURL = append(json.RawMessage(nil), newJWKS...), ""
	})
}

// SigningKeys returns gpgate's stored signing keys.
func (s *Store) SigningKeys(ctx context.Context) ([]smart.SigningKey, error) {
	var ring string
	err := s.pool.QueryRow(ctx, "SELECT ring::text FROM smart_keys WHERE id = 1").Scan(&ring)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, internal(err)
	}
	var out []smart.SigningKey
	if err := json.Unmarshal([]byte(ring), &out); err != nil {
		return nil, fhir.Internal(fmt.Errorf("smart/pgstore: stored signing keys unreadable: %w", err))
	}
	return out, nil
}

// SetSigningKeys replaces the key set under the row lock, refusing
// (smart.ErrSigningKeysChanged) to drop an active key another node stored.
func (s *Store) SetSigningKeys(ctx context.Context, keys []smart.SigningKey) error {
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		// the row exists from here on, so FOR UPDATE always has a row to lock
		if _, err := tx.Exec(ctx, "INSERT INTO smart_keys (id, ring) VALUES (1, '[]') ON CONFLICT DO NOTHING"); err != nil {
			return err
		}
		var ring string
		if err := tx.QueryRow(ctx, "SELECT ring::text FROM smart_keys WHERE id = 1 FOR UPDATE").Scan(&ring); err != nil {
			return err
		}
		var stored []smart.SigningKey
		if err := json.Unmarshal([]byte(ring), &stored); err != nil {
			return err
		}
		if err := smart.CheckKeysReplace(stored, keys); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE smart_keys SET ring = $1 WHERE id = 1", string(b)); err != nil {
			return err
		}
		return postgres.Notify(ctx, tx, KeysChannel, "")
	})
}

// ReplayCache is the shared smart.ReplayCache: one row per (client, jti)
// until the assertion expires. Expired rows are reused at once and deleted
// in the background every GCEvery.
type ReplayCache struct {
	pool *pgxpool.Pool
	now  func() time.Time
	log  *slog.Logger

	mu     sync.Mutex
	nextGC time.Time
	// GCEvery is the least time between sweeps of expired rows (default a minute).
	GCEvery time.Duration
}

var _ smart.ReplayCache = (*ReplayCache)(nil)

// NewReplayCache returns the replay cache over pool.
func NewReplayCache(pool *pgxpool.Pool, now func() time.Time, log *slog.Logger) *ReplayCache {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &ReplayCache{pool: pool, now: now, log: log, GCEvery: time.Minute}
}

// Use records (clientID, jti) until exp; fresh is false when it is already
// recorded and not expired. An error fails the token request closed.
func (r *ReplayCache) Use(ctx context.Context, clientID, jti string, exp time.Time) (bool, error) {
	now := r.now().UTC()
	var one int
	err := r.pool.QueryRow(ctx, `INSERT INTO smart_replay (client_id, jti, exp) VALUES ($1, $2, $3)
		ON CONFLICT (client_id, jti) DO UPDATE SET exp = EXCLUDED.exp WHERE smart_replay.exp <= $4
		RETURNING 1`, clientID, jti, exp.UTC(), now).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("smart/pgstore: replay cache: %w", err)
	}
	r.maybeGC(now)
	return true, nil
}

func (r *ReplayCache) maybeGC(now time.Time) {
	r.mu.Lock()
	due := !now.Before(r.nextGC)
	if due {
		r.nextGC = now.Add(r.GCEvery)
	}
	r.mu.Unlock()
	if !due {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := r.pool.Exec(ctx, "DELETE FROM smart_replay WHERE exp < $1", now.Add(-time.Minute)); err != nil {
			r.log.Warn("smart/pgstore: replay cache sweep failed", "err", err)
		}
	}()
}
