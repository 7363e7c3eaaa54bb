package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/idmap"
	"github.com/gpgate/gpgate/adapters/idmap/pgidmap"
	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/audit/pgaudit"
	"github.com/gpgate/gpgate/consent"
	consentpg "github.com/gpgate/gpgate/consent/pgstore"
	"github.com/gpgate/gpgate/consent/smart"
	smartpg "github.com/gpgate/gpgate/consent/smart/pgstore"
	"github.com/gpgate/gpgate/postgres"
)

// backends are the stores `gpgate serve` runs on: bbolt files in the data
// directory (one node: the default), or, with --database, PostgreSQL
// stores every node shares — clients and keys, agreements and consents,
// the replay cache, the patient id map, the audit log and its forwarder
// cursors — with LISTEN/NOTIFY to drop each node's caches on a change.
// The viewer's local accounts stay in the node's state file either way.
type backends struct {
	audit   auditStore
	state   *state
	usersDB *bolt.DB
	ids     adapters.IDMap    // the persistent patient id map
	replay  smart.ReplayCache // nil: in memory, this node only
	hub     *postgres.Hub     // nil without a database
	closers []func()
}

func openBackends(ctx context.Context, o serveOpts, trusted []ed25519.PublicKey, log *slog.Logger) (b *backends, err error) {
	b = &backends{}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if o.database == "" {
		// The log verifies its chain from the last signed checkpoint, and
		// against the exported head, before it serves: a rewritten or
		// truncated log refuses to open.
		al, err := audit.Open(filepath.Join(o.data, auditFile), audit.Options{Logger: log, KeyFile: o.auditKey, HeadFile: o.auditHead,
			HeadSink: audit.LogHeadSink{Logger: log}, TrustedKeys: trusted, AcceptUnverified: o.auditOverride, Node: o.node})
		if err != nil {
			return nil, err
		}
		b.add(func() { al.Close() })
		b.audit = al
		if b.state, err = openState(o.data); err != nil {
			return nil, err
		}
		b.add(func() { b.state.Close() })
		b.usersDB = b.state.db
		ids, err := idmap.Open(filepath.Join(o.data, idmapFile))
		if err != nil {
			return nil, err
		}
		b.add(func() { ids.Close() })
		b.ids = ids
		return b, nil
	}
	pool, err := openDatabase(ctx, o.database)
	if err != nil {
		return nil, err
	}
	b.add(pool.Close)
	b.hub = postgres.NewHub(o.database, log)
	// the same open-time check against this node's exported head
	al, err := pgaudit.Open(ctx, pool, pgaudit.Options{Logger: log, KeyFile: o.auditKey, HeadFile: o.auditHead,
		HeadSink: audit.LogHeadSink{Logger: log}, TrustedKeys: trusted, AcceptUnverified: o.auditOverride, Node: o.node, Hub: b.hub})
	if err != nil {
		return nil, err
	}
	b.add(func() { al.Close() })
	b.audit = al
	b.state = &state{pool: pool, clients: smartpg.New(pool, nil), consent: consentpg.New(pool, nil)}
	b.ids = pgidmap.New(pool)
	b.replay = smartpg.NewReplayCache(pool, nil, log)
	users, err := bolt.Open(filepath.Join(o.data, stateFile), 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open the viewer's accounts in %s: %w", o.data, err)
	}
	b.add(func() { users.Close() })
	b.usersDB = users
	return b, nil
}

func (b *backends) add(f func()) { b.closers = append(b.closers, f) }

// Close closes what openBackends opened, last first.
func (b *backends) Close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

// watch drops this node's caches when another node (or the CLI) changes
// the shared state, until ctx ends: agreements (the policy's cache) and
// gpgate's signing keys (a node signs with the key it last loaded). Without
// a database there is nothing to watch: this node makes every change.
func (b *backends) watch(ctx context.Context, policy *consent.Service, authz *smart.Server, log *slog.Logger) {
	if b.hub == nil {
		return
	}
	b.hub.Subscribe(consentpg.Channel, func(string) { policy.InvalidateAgreements() })
	b.hub.Subscribe(smartpg.KeysChannel, func(string) {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := authz.ReloadKeys(rctx); err != nil {
				log.Warn("reloading signing keys after a change on another node failed", "err", err)
			}
		}()
	})
	go b.hub.Run(ctx) //nolint:errcheck // logs and reconnects until ctx ends
}
