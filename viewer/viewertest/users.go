package viewertest

import (
	"context"
	"sync"
	"time"

	"github.com/gpgate/gpgate/viewer/users"
)

// Users is an in-memory account store.
type Users struct {
	mu sync.Mutex
	m  map[string]users.User
}

// FastParams are cheap Argon2id parameters for tests only.
var FastParams = users.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Add stores an account with the password hashed under p.
func (s *Users) Add(u users.User, password string, p users.Params, now time.Time) error {
	h, err := users.Hash(password, p)
	if err != nil {
		return err
	}
	u.Username = users.Normalise(u.Username)
	u.Hash, u.Created, u.PasswordSet, u.Updated = h, now, now, now
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]users.User{}
	}
	s.m[u.Username] = u
	return nil
}

// Update changes an account in place.
func (s *Users) Update(username string, f func(*users.User)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.m[users.Normalise(username)]
	if ok {
		f(&u)
		s.m[u.Username] = u
	}
}

// User implements viewer.Users.
func (s *Users) User(ctx context.Context, username string) (*users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.m[users.Normalise(username)]
	if !ok {
		return nil, users.ErrNotFound
	}
	return &u, nil
}
