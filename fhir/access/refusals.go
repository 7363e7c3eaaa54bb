package access

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Refusals audits refused authentications — no token, a forged or expired
// bearer, an unknown client, a bad assertion — and rate-limit refusals, in
// aggregate: one audit entry per (kind, client, address, reason) per window
// with the number of refusals, so a caller hammering gpgate with garbage
// cannot flood the audit log. The keys held are bounded: past MaxKeys,
// refusals are counted under one overflow key (address "*").
type Refusals struct {
	aud    Auditor
	window time.Duration
	max    int
	now    func() time.Time
	log    *slog.Logger

	mu sync.Mutex
	m  map[refusalKey]*refusalCount

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Kinds of aggregated refusal (the audit entry's action).
const (
	RefusedBearer = "auth-refused"  // the FHIR API: no token, invalid or expired token
	RefusedToken  = "token-refused" // the token endpoint, before the client authenticated
	RefusedRate   = "rate-limited"  // a rate or concurrency limit
)

type refusalKey struct{ kind, client, addr, reason string }

type refusalCount struct {
	n           int
	first, last time.Time
}

// RefusalOptions configure Refusals.
type RefusalOptions struct {
	Auditor Auditor       // required
	Window  time.Duration // default 1 minute
	MaxKeys int           // default 10 000
	Now     func() time.Time
	Logger  *slog.Logger
}

// NewRefusals starts the aggregator; Close flushes what it holds.
func NewRefusals(o RefusalOptions) *Refusals {
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 10_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Refusals{aud: o.Auditor, window: o.Window, max: o.MaxKeys, now: o.Now, log: o.Logger,
		m: map[refusalKey]*refusalCount{}, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// Refused counts one refusal. client is a registered client's id (never a
// name a caller merely claimed), addr the caller's IP, reason a word from
// a small fixed set.
func (r *Refusals) Refused(kind, client, addr, reason string) {
	now := r.now()
	k := refusalKey{kind, client, addr, reason}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[k]
	if !ok {
		if len(r.m) >= r.max {
			k = refusalKey{kind, "", "*", "overflow"}
			c = r.m[k]
		}
		if c == nil {
			c = &refusalCount{first: now}
			r.m[k] = c
		}
	}
	c.n++
	c.last = now
}

// Pending is the number of keys waiting for the next flush.
func (r *Refusals) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *Refusals) loop() {
	defer close(r.done)
	t := time.NewTicker(r.window)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := r.Flush(ctx); err != nil {
				r.log.Error("refused authentications could not be audited", "err", err)
			}
			cancel()
		}
	}
}

// Flush writes one audit entry per key held and forgets them.
func (r *Refusals) Flush(ctx context.Context) error {
	r.mu.Lock()
	m := r.m
	r.m = map[refusalKey]*refusalCount{}
	r.mu.Unlock()
	var first error
	for k, c := range m {
		code, interaction := fhir.CodeUnauthorized, "authenticate"
		switch k.kind {
		case RefusedRate:
			code = fhir.CodeTooManyRequests
		case RefusedToken:
			interaction = "token" // rendered as a (refused) user authentication
		}
		e := &fhir.AuditEntry{
			Time: c.first, Action: k.kind, Interaction: interaction, Outcome: fhir.OutcomeDenied, Code: code,
			Rule: fmt.Sprintf("%s %s: %d refused between %s and %s", k.kind, k.reason, c.n,
				c.first.UTC().Format(time.RFC3339), c.last.UTC().Format(time.RFC3339)),
			ClientID: k.client, SourceAddress: k.addr, Count: c.n,
		}
		if k.addr == "*" {
			e.SourceAddress = ""
		}
		if err := r.aud.Record(ctx, e); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close stops the aggregator and flushes what it holds.
func (r *Refusals) Close(ctx context.Context) error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return r.Flush(ctx)
}
