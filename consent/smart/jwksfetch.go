package smart

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

const (
	maxJWKSBytes   = 64 << 10
	jwksMinRefetch = 30 * time.Second
)

// jwksCache fetches and caches clients' JWKS URLs.
type jwksCache struct {
	hc  *http.Client
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu      sync.Mutex // one fetch at a time per URL
	set     jwk.Set
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
}

func newJWKSCache(hc *http.Client, ttl time.Duration, now func() time.Time) *jwksCache {
	return &jwksCache{hc: hc, ttl: ttl, now: now, entries: map[string]*jwksEntry{}}
}

// key returns the key kid from the JWKS at url, fetching when the cached
// set is stale or lacks kid (at most every 30 s per URL for a missing kid).
func (c *jwksCache) key(ctx context.Context, url, kid string) (jwk.Key, error) {
	c.mu.Lock()
	e := c.entries[url]
	if e == nil {
		if len(c.entries) > 10_000 {
			c.entries = map[string]*jwksEntry{}
		}
		e = &jwksEntry{}
		c.entries[url] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	fresh := e.set != nil && now.Sub(e.fetched) < c.ttl
	if fresh {
		if k, ok := e.set.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	var refetch bool
	if fresh {
		refetch = now.Sub(e.tried) >= jwksMinRefetch // a new key may have been published
	} else {
		refetch = e.tried.IsZero() || now.Sub(e.tried) >= time.Second // failures at most once a second
	}
	if refetch {
		e.tried = now
		set, err := c.fetch(ctx, url)
		if err != nil && !fresh {
			return nil, err // never use a stale set: a removed key must stop working
		}
		if err == nil {
			e.set, e.fetched, fresh = set, now, true
		}
	}
	if fresh {
		if k, ok := e.set.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no key %q in the client's JWKS", trunc(kid))
}

func (c *jwksCache) fetch(ctx context.Context, url string) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch client JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch client JWKS: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch client JWKS: %w", err)
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("client JWKS larger than %d bytes", maxJWKSBytes)
	}
	return parseFetchedJWKS(b)
}

// parseFetchedJWKS keeps the usable public signing keys of a published
// JWKS (a published set may also hold encryption or other keys); a private
// key anywhere in it, or no usable key, fails the whole set.
func parseFetchedJWKS(b []byte) (jwk.Set, error) {
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("client JWKS does not parse: %w", err)
	}
	out := jwk.NewSet()
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if ak, ok := k.(jwk.AsymmetricKey); ok && ak.IsPrivate() {
			return nil, fmt.Errorf("client JWKS holds a private key")
		}
		if _, ok := k.(jwk.SymmetricKey); ok {
			return nil, fmt.Errorf("client JWKS holds a symmetric key")
		}
		if checkPublicKey(k) != nil {
			continue
		}
		if _, dup := out.LookupKeyID(k.KeyID()); dup {
			return nil, fmt.Errorf("client JWKS has two keys with kid %q", trunc(k.KeyID()))
		}
		_ = out.AddKey(k)
	}
	if out.Len() == 0 {
		return nil, fmt.Errorf("client JWKS has no usable signing key")
	}
	return out, nil
}
