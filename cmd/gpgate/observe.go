package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/access"
	"github.com/gpgate/gpgate/metrics"
)

// timedAuditor measures each durable audit write as the request sees it
// (queue, group commit, fsync) and remembers the last failure, for
// /metrics and /readyz.
type timedAuditor struct {
	st      auditStore
	m       *metrics.Metrics
	lastErr atomic.Int64 // unix nanos of the last failed write
	lastOK  atomic.Int64 // unix nanos of the last durable write
}

func (a *timedAuditor) Record(ctx context.Context, e *fhir.AuditEntry) error {
	start := time.Now()
	err := a.st.Record(ctx, e)
	if err != nil && ctx.Err() == nil {
		a.lastErr.Store(time.Now().UnixNano())
	} else if err == nil {
		a.lastOK.Store(time.Now().UnixNano())
	}
	a.m.AuditRecorded(time.Since(start), err)
	return err
}

// failing reports whether the last write failed (none succeeded since)
// and how long ago it failed.
func (a *timedAuditor) failing() (bool, time.Duration) {
	e := a.lastErr.Load()
	if e == 0 || e <= a.lastOK.Load() {
		return false, 0
	}
	return true, time.Since(time.Unix(0, e))
}

// tokenEvents tells metrics of every token decision and audits refused
// client authentications in aggregate (a refusal after the client
// authenticated is audited on its own by the token endpoint).
type tokenEvents struct {
	m        *metrics.Metrics
	refusals *access.Refusals
}

func (t tokenEvents) TokenIssued(context.Context, string) { t.m.TokenIssued() }

func (t tokenEvents) TokenRefused(ctx context.Context, r smart.Refusal) {
	t.m.TokenRefused(r.Reason)
	if !r.Authenticated {
		t.refusals.Refused(access.RefusedToken, r.ClientID, fhir.ClientAddrFrom(ctx), r.Reason)
	}
}

// limitRefused is rest.Limits.Refused: metrics, and the aggregated audit.
func limitRefused(m *metrics.Metrics, refusals *access.Refusals) func(ctx context.Context, kind, client, addr string) {
	return func(_ context.Context, kind, client, addr string) {
		m.RateLimited(kind)
		refusals.Refused(access.RefusedRate, client, addr, kind)
	}
}

// auditStats is what /metrics reads of the audit log and its forwarders.
func auditStats(st auditStore, fwds map[string]*audit.Forwarder, refusals *access.Refusals) func() metrics.AuditStats {
	return func() metrics.AuditStats {
		s := st.Stats()
		out := metrics.AuditStats{QueueDepth: s.QueueDepth, Entries: s.Entries, Commits: s.Commits, LastBatch: s.LastBatch,
			Head: s.Head, LastCheckpoint: s.LastCheckpoint, Checkpoints: s.Checkpoints, HeadExportErrors: s.HeadExportErrors,
			ForwarderLag: map[string]uint64{}, ForwarderFailures: map[string]uint64{}, RefusalsPendingFlushes: refusals.Pending()}
		for name, f := range fwds {
			fs := f.Stats()
			lag := uint64(0)
			if s.Head > fs.Position {
				lag = s.Head - fs.Position
			}
			out.ForwarderLag[name], out.ForwarderFailures[name] = lag, fs.Failures
		}
		return out
	}
}
