package main

import (
	"context"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/internal/boltmem"
)

// mappedReleaser is a bbolt-backed store that can give back the pages
// read through its memory map (audit.Store, embedded.Store).
type mappedReleaser interface{ ReleaseMapped() error }

// boltFile adapts a *bolt.DB opened here (the state file).
type boltFile struct{ db *bolt.DB }

func (b boltFile) ReleaseMapped() error { return boltmem.Release(b.db) }

// releaseMappedEvery gives back, every interval until ctx ends, the pages
// each store has read through its memory map. They stay in the page cache
// (the next read faults them back from there), but out of the process's
// resident set: otherwise an append-only audit log and the records a
// region's callers read grow the RSS with the files, not with the work.
// Stores that are not bbolt files (PostgreSQL) are left out by the caller.
func releaseMappedEvery(ctx context.Context, every time.Duration, log *slog.Logger, stores ...mappedReleaser) {
	if every <= 0 || len(stores) == 0 {
		return
	}
	go tickEvery(ctx, every, func() {
		for _, s := range stores {
			if err := s.ReleaseMapped(); err != nil {
				log.Warn("releasing mapped pages failed", "err", err)
			}
		}
	})
}
