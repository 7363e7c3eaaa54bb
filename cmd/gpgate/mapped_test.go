package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

type countingReleaser struct {
	n   atomic.Int64
	err error
}

func (c *countingReleaser) ReleaseMapped() error { c.n.Add(1); return c.err }

// TestReleaseMappedEvery: every store is asked on each tick, a failing one
// does not stop the others, and the loop ends with its context.
func TestReleaseMappedEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ok, failing := &countingReleaser{}, &countingReleaser{err: errors.New("madvise: invalid argument")}
	releaseMappedEvery(ctx, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), failing, ok)
	deadline := time.Now().Add(30 * time.Second)
	for ok.n.Load() < 3 || failing.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d and %d releases", ok.n.Load(), failing.n.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	time.Sleep(20 * time.Millisecond) // a tick in flight finishes
	n := ok.n.Load()
	time.Sleep(50 * time.Millisecond)
	if ok.n.Load() != n {
		t.Fatalf("releases went on after the context ended (%d -> %d)", n, ok.n.Load())
	}
	off := &countingReleaser{}
	releaseMappedEvery(context.Background(), 0, slog.Default(), off) // --release-mapped 0: never
	time.Sleep(20 * time.Millisecond)
	if off.n.Load() != 0 {
		t.Fatalf("--release-mapped 0 released %d times", off.n.Load())
	}
}
