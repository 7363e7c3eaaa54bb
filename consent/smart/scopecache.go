package smart

import (
	"strings"
	"sync"
)

// parsedScopes keeps the scopes of the tokens seen, parsed, keyed by the
// scope string: a token's scopes are read on every request it makes (twice:
// the request's own decision and the patient's whole view), and a region's
// tokens share a handful of scope strings. Bounded by bytes: when full it
// starts again empty. The cached slices are shared and never changed.
var parsedScopes = scopeCache{max: 1 << 20}

type scopeCache struct {
	mu    sync.RWMutex
	max   int
	bytes int
	m     map[string][]Scope
}

// scopesOf parses a principal's scopes (the token's scope claim, split).
func scopesOf(list []string) ([]Scope, error) {
	key := strings.Join(list, " ")
	c := &parsedScopes
	c.mu.RLock()
	s, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := ParseScopes(key)
	if err != nil {
		return nil, err // refusals are not cached
	}
	n := len(key) + 96*len(s)
	c.mu.Lock()
	if n <= c.max {
		if c.m == nil || c.bytes+n > c.max {
			c.m, c.bytes = map[string][]Scope{}, 0
		}
		if _, dup := c.m[key]; !dup {
			c.m[key] = s
			c.bytes += n
		}
	}
	c.mu.Unlock()
	return s, nil
}
