package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/consent"
	consentpg "github.com/gpgate/gpgate/consent/pgstore"
	"github.com/gpgate/gpgate/consent/smart"
	smartpg "github.com/gpgate/gpgate/consent/smart/pgstore"
)

// clientStore is what gpgate needs of the client registry: clients and
// gpgate's own signing keys.
type clientStore interface {
	smart.ClientStore
	smart.KeyStore
}

// consentStore is what gpgate needs of the consent state: agreements and
// consents to view.
type consentStore interface {
	consent.AgreementStore
	consent.ConsentStore
}

// state is gpgate's own small state: registered clients and signing keys
// (consent/smart), sharing agreements and consents to view (consent). By
// default it is the state file DIR/gpgate.db, each package keeping its own
// buckets behind its own store interface (only the file is shared, opened
// once here). With a database (--database URL) the same interfaces are
// PostgreSQL stores shared by every node, and pool is open.
type state struct {
	db      *bolt.DB      // the state file; nil with a database
	pool    *pgxpool.Pool // nil without a database
	clients clientStore
	consent consentStore
}

// ping says whether the state store answers: the state file, or the
// database within ctx.
func (s *state) ping(ctx context.Context) error {
	if s.pool != nil {
		return s.pool.Ping(ctx)
	}
	return s.db.View(func(*bolt.Tx) error { return nil })
}

func openState(data string) (*state, error) { return openStateWithin(data, 3*time.Second) }

// openStateWithin opens the state file, waiting at most wait for a running
// server's lock.
func openStateWithin(data string, wait time.Duration) (*state, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(data, stateFile)
	if m, running := runningServer(data); running && m.PID != os.Getpid() {
		return nil, errServerRunning(data, "clients|agreements|audit ...", m)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: wait})
	if err != nil {
		if lerr := lockedErr(err, data, stateFile); lerr != err {
			return nil, fmt.Errorf("%w (while it runs, use its admin API, /admin/agreements and /admin/clients: give --base URL --client ID --key FILE)", lerr)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st := &state{db: db}
	cl, err := smart.NewBoltStore(db)
	if err == nil {
		st.clients = cl
		st.consent, err = consent.NewBoltStore(db, time.Now)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

// openStateAt is openState, or the PostgreSQL state when database is set
// (migrated by `gpgate migrate`; data is then not touched).
func openStateAt(ctx context.Context, data, database string) (*state, error) {
	if database == "" {
		return openState(data)
	}
	pool, err := openDatabase(ctx, database)
	if err != nil {
		return nil, err
	}
	return &state{pool: pool, clients: smartpg.New(pool, nil), consent: consentpg.New(pool, nil)}, nil
}

func (s *state) Close() error {
	if s.pool != nil {
		s.pool.Close()
	}
	if s.db != nil {
		return s.db.Close()
	}
	return nil
}
