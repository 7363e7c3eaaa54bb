package smart_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/consent/smart/smarttest"
)

func boltStores(t *testing.T, now func() time.Time) smarttest.Stores {
	st, err := smart.OpenBolt(filepath.Join(t.TempDir(), "smart.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Now = now
	t.Cleanup(func() { st.Close() })
	return smarttest.Stores{Clients: st, Keys: st}
}

func TestBoltClientStoreContract(t *testing.T) { smarttest.RunClients(t, boltStores) }
func TestBoltKeyStoreContract(t *testing.T)    { smarttest.RunKeys(t, boltStores) }

func TestMemoryReplayCacheContract(t *testing.T) {
	smarttest.RunReplay(t, func(t *testing.T, now func() time.Time) smart.ReplayCache {
		return smart.NewMemoryReplayCache(1000, now)
	})
}
