package consent_test

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/consenttest"
)

func TestBoltStoreContract(t *testing.T) {
	consenttest.Run(t, func(t *testing.T, now func() time.Time) (consent.AgreementStore, consent.ConsentStore) {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := consent.NewBoltStore(db, now)
		if err != nil {
			t.Fatal(err)
		}
		return s, s
	})
}
