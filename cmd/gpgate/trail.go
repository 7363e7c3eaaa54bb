package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
)

// practiceTrail tells each patient's practice system about granted
// accesses to its record, as the MIG does, off the request path: gpgate's
// own audit log is the outbox. It follows the log after the entry it last
// delivered and hands each granted read or query to the practice's source
// (adapters.AccessRecorder). Refusals never reach a practice (a refusal
// must cost the same whether or not the patient exists), and a slow or
// failing practice system never holds up a request. Delivery is retried
// with backoff; it is at least once.
type practiceTrail struct {
	log   *audit.Store
	reg   *adapters.Registry
	lg    *slog.Logger
	every time.Duration
}

// run delivers until ctx ends, then makes one last pass (bounded) so what
// was answered before a shutdown reaches its practice; it closes done when
// it has finished with the stores.
func (t practiceTrail) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	var cursor uint64
	// Start after what is already in the log.
	_ = t.log.Scan(ctx, 0, func(e audit.Entry) error { cursor = e.Seq; return nil })
	backoff := t.every
	tick := time.NewTimer(t.every)
	defer tick.Stop()
	for {
		pass := ctx
		select {
		case <-ctx.Done():
			var cancel context.CancelFunc
			pass, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			t.deliver(pass, &cursor)
			cancel()
			return
		case <-tick.C:
		}
		if err := t.deliver(pass, &cursor); err != nil && ctx.Err() == nil {
			t.lg.Warn("practice trail delivery failed; will retry", "err", err)
			backoff = min(backoff*2, 30*time.Second)
		} else {
			backoff = t.every
		}
		tick.Reset(backoff)
	}
}

// deliver hands every entry after *cursor to its practice.
func (t practiceTrail) deliver(ctx context.Context, cursor *uint64) error {
	return t.log.Scan(ctx, *cursor, func(e audit.Entry) error {
		if deliverable(&e.AuditEntry) {
			if err := t.reg.RecordAccess(ctx, e.NHS, &e.AuditEntry); err != nil {
				return err
			}
		}
		*cursor = e.Seq
		return nil
	})
}

// deliverable: granted accesses to a patient's record.
func deliverable(e *fhir.AuditEntry) bool {
	return e.Outcome == fhir.OutcomeGranted && e.NHS != "" && (e.Action == "PatientRead" || e.Action == "PatientQuery")
}
