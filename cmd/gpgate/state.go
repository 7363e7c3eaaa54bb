package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
)

// state is gpgate's own small-state file (DIR/gpgate.db): registered
// clients and signing keys (consent/smart), sharing agreements and consents
// to view (consent). Each package keeps its own buckets behind its own store
// interface; only the file is shared, opened once here.
type state struct {
	db      *bolt.DB
	clients *smart.BoltStore
	consent *consent.BoltStore
}

func openState(data string) (*state, error) { return openStateWithin(data, 3*time.Second) }

// openStateWithin opens the state file, waiting at most wait for a running
// server's lock.
func openStateWithin(data string, wait time.Duration) (*state, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(data, stateFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: wait})
	if err != nil {
		if lerr := lockedErr(err, data, stateFile); lerr != err {
			return nil, fmt.Errorf("%w (while it runs, agreements are managed through its admin API: /admin/agreements)", lerr)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st := &state{db: db}
	if st.clients, err = smart.NewBoltStore(db); err == nil {
		st.consent, err = consent.NewBoltStore(db, time.Now)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

func (s *state) Close() error { return s.db.Close() }
