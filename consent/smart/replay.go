package smart

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ReplayCache remembers client-assertion jti values until the assertion
// expires, so an assertion is used once. A multi-node deployment gives one
// shared implementation.
type ReplayCache interface {
	// Use records (clientID, jti) until exp. fresh is false when it was
	// already recorded; an error fails the request closed.
	Use(ctx context.Context, clientID, jti string, exp time.Time) (fresh bool, err error)
}

// ErrReplayCacheFull is returned when the in-memory cache is full of live
// entries; the token request is refused (503) rather than an entry dropped.
var ErrReplayCacheFull = errors.New("smart: replay cache full")

// MemoryReplayCache is the in-memory, bounded ReplayCache.
type MemoryReplayCache struct {
	mu      sync.Mutex
	max     int
	now     func() time.Time
	seen    map[string]time.Time
	nextGC  time.Time
	gcEvery time.Duration
}

// NewMemoryReplayCache holds at most max live entries.
func NewMemoryReplayCache(max int, now func() time.Time) *MemoryReplayCache {
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{max: max, now: now, seen: make(map[string]time.Time), gcEvery: time.Minute}
}

// Use implements ReplayCache.
func (c *MemoryReplayCache) Use(_ context.Context, clientID, jti string, exp time.Time) (bool, error) {
	key := clientID + "\x00" + jti
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.seen[key]; ok && now.Before(until) {
		return false, nil
	}
	if len(c.seen) >= c.max || now.After(c.nextGC) {
		c.gc(now)
		if len(c.seen) >= c.max {
			return false, ErrReplayCacheFull
		}
	}
	c.seen[key] = exp
	return true, nil
}

func (c *MemoryReplayCache) gc(now time.Time) {
	for k, until := range c.seen {
		if !now.Before(until) {
			delete(c.seen, k)
		}
	}
	c.nextGC = now.Add(c.gcEvery)
}

// Len is the number of entries held (live or not yet collected).
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
