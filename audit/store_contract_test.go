package audit_test

import (
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/audit/audittest"
)

func TestStoreContract(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audittest.Opener {
		path := filepath.Join(t.TempDir(), "audit.db")
		return func(t *testing.T, o audittest.Options) audittest.Log {
			s, err := audit.Open(path, audit.Options{Now: o.Now, Key: o.Key, Node: o.Node})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}
