package pgidmap_test

import (
	"os"
	"testing"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/adapters/idmap/idmaptest"
	"github.com/gpgate/gpgate/adapters/idmap/pgidmap"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var _ adapters.IDMap = (*pgidmap.Store)(nil)

func TestContract(t *testing.T) {
	idmaptest.Run(t, func(t *testing.T) adapters.IDMap {
		return pgidmap.New(pgtest.Pool(t, pgidmap.Migrations))
	})
}
