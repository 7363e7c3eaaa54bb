package smart

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

func isNotFound(err error) bool { return errors.Is(err, ErrClientNotFound) }

// Events is told of token issuance decisions. TokenRefused gets every
// refusal at the token endpoint, before the client authenticated (unknown
// client, bad or replayed assertion: not audited one by one, so an
// attacker cannot flood the audit log — aggregate them) and after it
// (scope, grant: each is audited by the Server too, Authenticated true).
type Events interface {
	TokenIssued(ctx context.Context, clientID string)
	TokenRefused(ctx context.Context, r Refusal)
}

// Refusal describes a refused token request.
type Refusal struct {
	// Reason is one of a small fixed set: unknown-client, client-disabled,
	// unknown-key, bad-assertion, replayed-assertion, or an OAuth error
	// code (invalid_request, invalid_scope, invalid_grant, server_error, ...).
	Reason string
	// ClientID is the registered client the request named ("" when it
	// named none or an unregistered one: a caller's claim is never echoed).
	ClientID      string
	Authenticated bool
}

func (s *Server) refusal(ctx context.Context, e *OAuthError) {
	if s.events == nil {
		return
	}
	r := Refusal{Reason: e.reason, ClientID: e.client, Authenticated: e.authenticated}
	if r.Reason == "" {
		r.Reason = e.Code
	}
	s.events.TokenRefused(ctx, r)
}

// clientStates caches what token verification must re-check of a client
// on every request: enabled, and the kids of its inline keys.
type clientStates struct {
	st  ClientStore
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]clientState
}

type clientState struct {
	found, enabled bool
	url            bool // keys at a JWKS URL: rotation happens there
	kids           map[string]bool
	at             time.Time
}

const maxClientStates = 10_000

func newClientStates(st ClientStore, ttl time.Duration, now func() time.Time) *clientStates {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	return &clientStates{st: st, ttl: ttl, now: now, m: map[string]clientState{}}
}

func (c *clientStates) get(ctx context.Context, id string) (clientState, error) {
	now := c.now()
	c.mu.Lock()
	cs, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Sub(cs.at) < c.ttl && !now.Before(cs.at) {
		return cs, nil
	}
	cs = clientState{at: now}
	cl, err := c.st.GetClient(ctx, id)
	switch {
	case err == nil:
		cs.found, cs.enabled, cs.url = true, cl.Enabled, cl.JWKSURL != ""
		if !cs.url {
			if set, perr := ParseClientJWKS(cl.JWKS); perr == nil {
				cs.kids = map[string]bool{}
				for i := 0; i < set.Len(); i++ {
					k, _ := set.Key(i)
					cs.kids[k.KeyID()] = true
				}
			}
		}
	case isNotFound(err):
	default:
		return cs, err
	}
	c.mu.Lock()
	if len(c.m) >= maxClientStates {
		clear(c.m)
	}
	c.m[id] = cs
	c.mu.Unlock()
	return cs, nil
}

func (c *clientStates) invalidate(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// check refuses a token whose client is gone or disabled, or whose client
// key is no longer registered (the client's keys were rotated).
//
// A client store that does not answer is not a refusal of the token (a
// 401 would send the client to ask for another, and be audited as a
// refused bearer): it is an error of gpgate's, returned as such.
func (c *clientStates) check(ctx context.Context, at *AccessToken) error {
	cs, err := c.get(ctx, at.Principal.ClientID)
	if err != nil {
		return fmt.Errorf("smart: checking the token's client: %w", err)
	}
	switch {
	case !cs.found:
		return invalidToken("the token's client is no longer registered")
	case !cs.enabled:
		return invalidToken("the token's client is disabled")
	case at.ClientKID != "" && !cs.url && !cs.kids[at.ClientKID]:
		return invalidToken("the client key that obtained the token has been rotated out")
	}
	return nil
}

// invalidating is the client store as the Server hands it out: every
// change drops the client's cached state, so it applies to the next request.
type invalidating struct {
	ClientStore
	cs *clientStates
}

func (i invalidating) AddClient(ctx context.Context, c *Client) error {
	defer i.cs.invalidate(c.ID)
	return i.ClientStore.AddClient(ctx, c)
}

func (i invalidating) DisableClient(ctx context.Context, id string) error {
	defer i.cs.invalidate(id)
	return i.ClientStore.DisableClient(ctx, id)
}

func (i invalidating) EnableClient(ctx context.Context, id string) error {
	defer i.cs.invalidate(id)
	return i.ClientStore.EnableClient(ctx, id)
}

func (i invalidating) RotateClientKey(ctx context.Context, id string, jwks []byte) error {
	defer i.cs.invalidate(id)
	return i.ClientStore.RotateClientKey(ctx, id, jwks)
}
