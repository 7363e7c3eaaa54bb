package consent

import (
	"context"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// AgreementCache answers ForProvider from memory: every agreement, grouped
// by provider practice with consumer groups expanded, loaded in one read and
// replaced whole when it is invalidated or older than its TTL. A decision
// then costs a map lookup whether or not the practice has agreements (and
// whether or not the patient exists: an unknown patient has no practice).
// Writes through Service invalidate it at once; the TTL bounds how long a
// change made elsewhere (another node, the CLI) takes to be seen.
type AgreementCache struct {
	AgreementStore
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	loaded  time.Time
	valid   bool
	byPract map[string][]Agreement
}

// NewAgreementCache wraps st. ttl <= 0 means 5 seconds.
func NewAgreementCache(st AgreementStore, ttl time.Duration, now func() time.Time) *AgreementCache {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &AgreementCache{AgreementStore: st, ttl: ttl, now: now}
}

// Invalidate drops the cached agreements; the next decision reloads them.
func (c *AgreementCache) Invalidate() {
	c.mu.Lock()
	c.valid = false
	c.mu.Unlock()
}

// ForProvider returns the cached agreements of a practice. The slice is
// shared: callers must not modify it.
func (c *AgreementCache) ForProvider(ctx context.Context, practice string) ([]Agreement, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.valid || now.Sub(c.loaded) >= c.ttl || now.Before(c.loaded) {
		m, err := c.load(ctx)
		if err != nil {
			return nil, err
		}
		c.byPract, c.loaded, c.valid = m, now, true
	}
	return c.byPract[practice], nil
}

func (c *AgreementCache) load(ctx context.Context) (map[string][]Agreement, error) {
	all, err := c.AgreementStore.List(ctx)
	if err != nil {
		return nil, err
	}
	groups := map[string][]string{}
	m := make(map[string][]Agreement, len(all))
	for _, a := range all {
		if a.ConsumerGroup != "" {
			members, ok := groups[a.ConsumerGroup]
			if !ok {
				if members, err = c.AgreementStore.Group(ctx, a.ConsumerGroup); err != nil && fhir.AsError(err).Code != fhir.CodeReferenceNotFound {
					return nil, err
				}
				groups[a.ConsumerGroup] = members
			}
			a.Consumers = append(append([]string(nil), a.Consumers...), members...)
		}
		m[a.Provider] = append(m[a.Provider], a)
	}
	return m, nil
}

// The writes go through to the store and invalidate the cache.

func (c *AgreementCache) Add(ctx context.Context, a Agreement) (Agreement, error) {
	defer c.Invalidate()
	return c.AgreementStore.Add(ctx, a)
}

func (c *AgreementCache) Activate(ctx context.Context, id string) (Agreement, error) {
	defer c.Invalidate()
	return c.AgreementStore.Activate(ctx, id)
}

func (c *AgreementCache) Suspend(ctx context.Context, id string) (Agreement, error) {
	defer c.Invalidate()
	return c.AgreementStore.Suspend(ctx, id)
}

func (c *AgreementCache) End(ctx context.Context, id string) (Agreement, error) {
	defer c.Invalidate()
	return c.AgreementStore.End(ctx, id)
}

func (c *AgreementCache) PutGroup(ctx context.Context, name string, members []string) error {
	defer c.Invalidate()
	return c.AgreementStore.PutGroup(ctx, name, members)
}
