package pgstore_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/consent/smart/pgstore"
	"github.com/gpgate/gpgate/consent/smart/smarttest"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func stores(t *testing.T, now func() time.Time) smarttest.Stores {
	s := pgstore.New(pgtest.Pool(t, pgstore.Migrations), now)
	return smarttest.Stores{Clients: s, Keys: s}
}

func TestClientStoreContract(t *testing.T) { smarttest.RunClients(t, stores) }
func TestKeyStoreContract(t *testing.T)    { smarttest.RunKeys(t, stores) }

func TestReplayCacheContract(t *testing.T) {
	smarttest.RunReplay(t, func(t *testing.T, now func() time.Time) smart.ReplayCache {
		return pgstore.NewReplayCache(pgtest.Pool(t, pgstore.Migrations), now, nil)
	})
}

// Three nodes start at once on an empty key store: they all end up
// signing with one key, so a token from any verifies on every other.
func TestNodesStartingTogetherShareOneKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	pgtest.PoolAt(t, url, pgstore.Migrations)
	var wg sync.WaitGroup
	servers := make([]*smart.Server, 3)
	errs := make([]error, 3)
	for i := range servers {
		st := pgstore.New(pgtest.PoolAt(t, url), nil)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			servers[i], errs[i] = smart.NewServer(ctx, smart.Options{Clients: st, Keys: st, BaseURL: "https://gpgate.test"})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	keys, err := pgstore.New(pgtest.PoolAt(t, url), nil).SigningKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("%d keys stored %v, want one", len(keys), err)
	}
	// every node publishes (and signs with) the one stored key
	for i, s := range servers {
		w := httptest.NewRecorder()
		s.JWKSHandler().ServeHTTP(w, httptest.NewRequest("GET", smart.PathJWKS, nil))
		var set struct{ Keys []struct{ Kid string } }
		if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != keys[0].KID {
			t.Fatalf("node %d publishes %s, want only %s", i, w.Body.Bytes(), keys[0].KID)
		}
	}
}
