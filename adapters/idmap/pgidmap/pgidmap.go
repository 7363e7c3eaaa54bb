// Package pgidmap is the PostgreSQL adapters.IDMap: the Patient logical id
// -> NHS number map every node shares, so a patient found by NHS number on
// one node can be read by id on any other. It passes the same contract as
// the bbolt map (adapters/idmap/idmaptest).
package pgidmap

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are this store's schema changes, for `gpgate migrate`.
var Migrations = postgres.Migrations{Component: "idmap", FS: must(fs.Sub(migrationFiles, "migrations"))}

func must(f fs.FS, err error) fs.FS {
	if err != nil {
		panic(err)
	}
	return f
}

// Store is the PostgreSQL id map.
type Store struct{ pool *pgxpool.Pool }

// New returns the id map over pool (migrated by Migrations).
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Put records that id stands for nhs (durable when it returns).
func (s *Store) Put(ctx context.Context, id string, nhs fhir.NHSNumber) error {
	if id == "" || !fhir.ValidNHSNumber(string(nhs)) {
		return fmt.Errorf("pgidmap: an id and a valid NHS number are required")
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO patient_ids (id, nhs) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET nhs = EXCLUDED.nhs", id, string(nhs))
	if err != nil {
		return fmt.Errorf("pgidmap: %w", err)
	}
	return nil
}

// Get returns the NHS number id stands for, or "" when it is unknown.
func (s *Store) Get(ctx context.Context, id string) (fhir.NHSNumber, error) {
	var nhs string
	err := s.pool.QueryRow(ctx, "SELECT nhs FROM patient_ids WHERE id = $1", id).Scan(&nhs)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pgidmap: %w", err)
	}
	return fhir.NHSNumber(nhs), nil
}
