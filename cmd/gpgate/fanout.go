package main

import (
	"context"
	"log/slog"

	"github.com/gpgate/gpgate/adapters"
	"github.com/gpgate/gpgate/fhir"
)

// durableAuditor is gpgate's own audit log: it returns only once an entry is
// durable.
type durableAuditor interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
}

// practiceAudit writes every entry to gpgate's audit log first (fail closed),
// then tells the patient's practice system, as the MIG does, through the
// adapter's optional AccessRecorder hook. The practice's own trail is best
// effort: a failure there is logged, never fatal to the request, because
// gpgate's log already holds the entry.
type practiceAudit struct {
	log durableAuditor
	reg *adapters.Registry
	lg  *slog.Logger
}

func (a practiceAudit) Record(ctx context.Context, e *fhir.AuditEntry) error {
	if err := a.log.Record(ctx, e); err != nil {
		return err
	}
	if e.NHS != "" && (e.Action == "PatientRead" || e.Action == "PatientQuery") {
		if err := a.reg.RecordAccess(ctx, e.NHS, e); err != nil {
			a.lg.Warn("practice audit hook failed", "request_id", e.RequestID, "err", err)
		}
	}
	return nil
}
