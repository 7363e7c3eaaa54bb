// Package boltstore keeps the viewer's local clinician accounts in bbolt,
// in the bucket viewer_users of a database that may be shared with other
// packages (DIR/gpgate.db). Only this package imports bbolt for accounts.
package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/viewer/users"
)

var bucket = []byte("viewer_users")

// Store is the bbolt account store.
type Store struct {
	db  *bbolt.DB
	Now func() time.Time
}

// New uses an already open database; it creates the bucket if needed and
// never closes db.
func New(db *bbolt.DB) (*Store, error) {
	err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("users: create bucket: %w", err)
	}
	return &Store{db: db, Now: time.Now}, nil
}

// User returns the account with the (case-insensitive) username, or
// users.ErrNotFound.
func (s *Store) User(ctx context.Context, username string) (*users.User, error) {
	var u *users.User
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(users.Normalise(username)))
		if v == nil {
			return users.ErrNotFound
		}
		u = new(users.User)
		return json.Unmarshal(v, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Add stores a new account; the username must be free.
func (s *Store) Add(ctx context.Context, u *users.User) error {
	c := *u
	c.Username = users.Normalise(c.Username)
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Hash == "" {
		return fmt.Errorf("users: a password hash is required")
	}
	now := s.Now().UTC()
	c.Created, c.Updated, c.PasswordSet = now, now, now
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(c.Username)) != nil {
			return users.ErrExists
		}
		return put(b, &c)
	})
}

// List returns every account, by username.
func (s *Store) List(ctx context.Context) ([]*users.User, error) {
	var out []*users.User
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			u := new(users.User)
			if err := json.Unmarshal(v, u); err != nil {
				return fmt.Errorf("users: account %q: %w", k, err)
			}
			out = append(out, u)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, err
}

// SetDisabled disables or re-enables an account.
func (s *Store) SetDisabled(ctx context.Context, username string, disabled bool) error {
	return s.update(username, func(u *users.User) { u.Disabled = disabled })
}

// SetPassword replaces the account's password hash; sessions begun before
// now end.
func (s *Store) SetPassword(ctx context.Context, username, hash string) error {
	if hash == "" {
		return fmt.Errorf("users: a password hash is required")
	}
	now := s.Now().UTC()
	return s.update(username, func(u *users.User) { u.Hash, u.PasswordSet = hash, now })
}

func (s *Store) update(username string, f func(*users.User)) error {
	key := []byte(users.Normalise(username))
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		v := b.Get(key)
		if v == nil {
			return users.ErrNotFound
		}
		u := new(users.User)
		if err := json.Unmarshal(v, u); err != nil {
			return err
		}
		f(u)
		u.Updated = s.Now().UTC()
		return put(b, u)
	})
}

func put(b *bbolt.Bucket, u *users.User) error {
	v, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return b.Put([]byte(u.Username), v)
}
