package main

import (
	"context"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/audit"
)

// practiceTrail tells a patient's practice system about a granted access
// to its record, as the MIG does, through the source's AccessRecorder. It
// is an audit.Deliverer: the audit log is the outbox, a durable forwarder
// (audit.Store.Forward, filter audit.PatientAccessGranted) delivers each
// granted read or query after gpgate's own entry is durable, off the
// request path, at least once, with retries. Refusals never reach a
// practice (a refusal must cost the same whether or not the patient
// exists).
type practiceTrail struct{ reg *adapters.Registry }

func (p practiceTrail) Deliver(ctx context.Context, e audit.Entry) error {
	return p.reg.RecordAccess(ctx, e.NHS, &e.AuditEntry)
}
