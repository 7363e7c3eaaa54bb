// Package pgstore is the PostgreSQL consent.AgreementStore and
// consent.ConsentStore, for gpgate nodes that share their state
// (`gpgate serve --database URL`). It passes the same contract as the
// bbolt store (consent/consenttest).
//
// Every agreement or group change NOTIFYs Channel in its transaction, so
// each node's agreement cache is dropped as soon as the change commits
// (postgres.Hub; consent.Service.InvalidateAgreements). Consents to view
// are never cached: every request reads them.
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are this store's schema changes, for `gpgate migrate`.
var Migrations = postgres.Migrations{Component: "consent", FS: must(fs.Sub(migrationFiles, "migrations"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}

// Channel is notified (payload: the agreement id, or "group:<name>") on
// every agreement or group change.
const Channel = "gpgate_agreements"

// Store is the PostgreSQL agreement and consent store.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var (
	_ consent.AgreementStore = (*Store)(nil)
	_ consent.ConsentStore   = (*Store)(nil)
)

// New returns the store over pool (migrated by Migrations). now stamps
// created/updated (time.Now when nil).
func New(pool *pgxpool.Pool, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pool: pool, now: now}
}

// internal wraps a database error: no detail reaches the caller.
func internal(err error) error {
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe
	}
	return fhir.Internal(fmt.Errorf("consent/pgstore: %w", err))
}

func (s *Store) stamp() time.Time { return s.now().UTC().Truncate(time.Second) }

func decode(body []byte, created, updated time.Time) (consent.Agreement, error) {
	a, err := consent.ParseAgreement(body)
	if err != nil {
		return consent.Agreement{}, fhir.Internal(fmt.Errorf("consent/pgstore: stored agreement unreadable: %w", err))
	}
	a.Created, a.Updated = created.UTC(), updated.UTC()
	return a, nil
}

// Add validates and stores a new agreement (random id when empty; an
// existing id is INVALID_PARAMETER).
func (s *Store) Add(ctx context.Context, a consent.Agreement) (consent.Agreement, error) {
	if err := a.Validate(); err != nil {
		return consent.Agreement{}, err
	}
	if a.ID == "" {
		a.ID = consent.NewAgreementID()
	}
	now := s.stamp()
	a.Created, a.Updated = now, now
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO consent_agreements (id, provider, body, created, updated) VALUES ($1, $2, $3, $4, $4)",
			a.ID, a.Provider, consent.AgreementJSON(a), now)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return consent.DuplicateAgreementError(a.ID)
		}
		if err != nil {
			return err
		}
		return postgres.Notify(ctx, tx, Channel, a.ID)
	})
	if err != nil {
		return consent.Agreement{}, internal(err)
	}
	return a, nil
}

// Get returns the agreement as stored (groups not expanded).
func (s *Store) Get(ctx context.Context, id string) (consent.Agreement, error) {
	var body []byte
	var created, updated time.Time
	err := s.pool.QueryRow(ctx, "SELECT body, created, updated FROM consent_agreements WHERE id = $1", id).Scan(&body, &created, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return consent.Agreement{}, consent.NotFoundError("agreement", id)
	}
	if err != nil {
		return consent.Agreement{}, internal(err)
	}
	return decode(body, created, updated)
}

// List returns every agreement, ordered by id.
func (s *Store) List(ctx context.Context) ([]consent.Agreement, error) {
	rows, err := s.pool.Query(ctx, "SELECT body, created, updated FROM consent_agreements ORDER BY id COLLATE \"C\"")
	if err != nil {
		return nil, internal(err)
	}
	return collect(rows, nil)
}

func collect(rows pgx.Rows, groups map[string][]string) ([]consent.Agreement, error) {
	defer rows.Close()
	var out []consent.Agreement
	for rows.Next() {
		var body []byte
		var created, updated time.Time
		var members []string
		dest := []any{&body, &created, &updated}
		if groups != nil {
			dest = append(dest, &members)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, internal(err)
		}
		a, err := decode(body, created, updated)
		if err != nil {
			return nil, err
		}
		if a.ConsumerGroup != "" && groups != nil {
			a.Consumers = append(append([]string(nil), a.Consumers...), members...)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err)
	}
	return out, nil
}

func (s *Store) setStatus(ctx context.Context, id string, to consent.Status) (consent.Agreement, error) {
	var a consent.Agreement
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var body []byte
		var created, updated time.Time
		err := tx.QueryRow(ctx, "SELECT body, created, updated FROM consent_agreements WHERE id = $1 FOR UPDATE", id).Scan(&body, &created, &updated)
		if errors.Is(err, pgx.ErrNoRows) {
			return consent.NotFoundError("agreement", id)
		}
		if err != nil {
			return err
		}
		if a, err = decode(body, created, updated); err != nil {
			return err
		}
		if !consent.CanTransition(a.Status, to) {
			return consent.TransitionError(a, to)
		}
		a.Status, a.Updated = to, s.stamp()
		if _, err := tx.Exec(ctx, "UPDATE consent_agreements SET body = $2, updated = $3 WHERE id = $1", id, consent.AgreementJSON(a), a.Updated); err != nil {
			return err
		}
		return postgres.Notify(ctx, tx, Channel, id)
	})
	if err != nil {
		return consent.Agreement{}, internal(err)
	}
	return a, nil
}

// Activate makes a draft or suspended agreement active.
func (s *Store) Activate(ctx context.Context, id string) (consent.Agreement, error) {
	return s.setStatus(ctx, id, consent.StatusActive)
}

// Suspend suspends an active agreement.
func (s *Store) Suspend(ctx context.Context, id string) (consent.Agreement, error) {
	return s.setStatus(ctx, id, consent.StatusSuspended)
}

// End ends an agreement for good.
func (s *Store) End(ctx context.Context, id string) (consent.Agreement, error) {
	return s.setStatus(ctx, id, consent.StatusEnded)
}

// ForProvider returns a practice's agreements with consumer groups
// expanded, in one query.
func (s *Store) ForProvider(ctx context.Context, practice string) ([]consent.Agreement, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.body, a.created, a.updated, coalesce(g.members, '{}')
		FROM consent_agreements a LEFT JOIN consent_groups g ON g.name = a.body->>'consumerGroup'
		WHERE a.provider = $1 ORDER BY a.id COLLATE "C"`, practice)
	if err != nil {
		return nil, internal(err)
	}
	return collect(rows, map[string][]string{})
}

// PutGroup stores (or replaces) a named consumer group.
func (s *Store) PutGroup(ctx context.Context, name string, members []string) error {
	ms, err := consent.GroupMembers(name, members)
	if err != nil {
		return err
	}
	return internal(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO consent_groups (name, members) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET members = EXCLUDED.members`, name, ms); err != nil {
			return err
		}
		return postgres.Notify(ctx, tx, Channel, "group:"+name)
	}))
}

// Group returns a group's members.
func (s *Store) Group(ctx context.Context, name string) ([]string, error) {
	var ms []string
	err := s.pool.QueryRow(ctx, "SELECT members FROM consent_groups WHERE name = $1", name).Scan(&ms)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, consent.NotFoundError("group", name)
	}
	if err != nil {
		return nil, internal(err)
	}
	return ms, nil
}

// PutConsent stores (or replaces: a revocation) a consent to view.
func (s *Store) PutConsent(ctx context.Context, c *fhir.ViewConsent) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fhir.Internal(err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO consent_view (id, patient_id, body) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET patient_id = EXCLUDED.patient_id, body = EXCLUDED.body`, c.ID, c.PatientID, b)
	return internal(err)
}

// GetConsent returns a consent to view, or REFERENCE_NOT_FOUND.
func (s *Store) GetConsent(ctx context.Context, id string) (*fhir.ViewConsent, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, "SELECT body FROM consent_view WHERE id = $1", id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, consent.NotFoundError("Consent", id)
	}
	if err != nil {
		return nil, internal(err)
	}
	var c fhir.ViewConsent
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fhir.Internal(fmt.Errorf("consent/pgstore: stored consent unreadable: %w", err))
	}
	return &c, nil
}
