package idmap_test

import (
	"path/filepath"
	"testing"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/idmap"
	"github.com/gpgate/gpgate/adapters/idmap/idmaptest"
)

func TestContract(t *testing.T) {
	idmaptest.Run(t, func(t *testing.T) adapters.IDMap {
		s, err := idmap.Open(filepath.Join(t.TempDir(), "ids.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
