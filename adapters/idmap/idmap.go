// Package idmap is the bbolt store behind adapters.IDMap: which NHS number a
// Patient logical id stands for, kept across restarts, so a patient first
// found by NHS number through PDS can be read by id later without any
// listing of patients. Only this package (of the id map's implementations)
// imports bbolt; a PostgreSQL implementation would satisfy the same
// interface.
package idmap

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/fhir"
)

var bucket = []byte("patient-ids")

// Store is a bbolt id map.
type Store struct {
	db  *bolt.DB
	own bool
}

// Open opens (creating) the id map database at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("idmap: open: %w", err)
	}
	s, err := New(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// New keeps the id map in a bucket of an open database (gpgate's state
// database, say); Close then leaves the database open.
func New(db *bolt.DB) (*Store, error) {
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		return nil, fmt.Errorf("idmap: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database when Open opened it.
func (s *Store) Close() error {
	if s.own {
		return s.db.Close()
	}
	return nil
}

// Put records that id stands for nhs (durable when it returns).
func (s *Store) Put(ctx context.Context, id string, nhs fhir.NHSNumber) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if id == "" || !fhir.ValidNHSNumber(string(nhs)) {
		return fmt.Errorf("idmap: an id and a valid NHS number are required")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(id), []byte(nhs))
	})
}

// PutBatch records many entries in one transaction (one fsync); it is
// what adapters.WriteBehind calls. An invalid entry fails the whole batch.
func (s *Store) PutBatch(ctx context.Context, entries map[string]fhir.NHSNumber) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for id, nhs := range entries {
		if id == "" || !fhir.ValidNHSNumber(string(nhs)) {
			return fmt.Errorf("idmap: an id and a valid NHS number are required")
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for id, nhs := range entries {
			if err := b.Put([]byte(id), []byte(nhs)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Get returns the NHS number id stands for, or "" when it is unknown.
func (s *Store) Get(ctx context.Context, id string) (fhir.NHSNumber, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var out fhir.NHSNumber
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte(id)); v != nil {
			out = fhir.NHSNumber(v)
		}
		return nil
	})
	return out, err
}
