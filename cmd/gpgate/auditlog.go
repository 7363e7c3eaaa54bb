package main

import (
	"context"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/audit/pgaudit"
	"github.com/gpgate/gpgate/fhir"
)

// auditStore is what gpgate uses of its audit log, whichever store keeps
// it: the bbolt log in the data directory (audit.Store) or the PostgreSQL
// log every node shares (pgaudit.Log).
type auditStore interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
	QueryPage(ctx context.Context, f audit.Filter) (audit.Page, error)
	Get(ctx context.Context, seq uint64) (audit.Entry, bool, error)
	VerifyWith(ctx context.Context, vo audit.VerifyOptions) (audit.VerifyReport, error)
	Export(ctx context.Context, w io.Writer, since time.Time) (int, error)
	Forward(opt audit.ForwardOptions) (*audit.Forwarder, error)
	Stats() audit.Stats
	Close() error
}

var (
	_ auditStore = (*audit.Store)(nil)
	_ auditStore = (*pgaudit.Log)(nil)
)

// openAuditReadOnly opens the log for verify and export: the bbolt file in
// data, or the PostgreSQL log when database is set. done closes it.
func openAuditReadOnly(ctx context.Context, data, database string) (st auditStore, done func(), err error) {
	if database == "" {
		s, err := audit.Open(filepath.Join(data, auditFile), audit.Options{ReadOnly: true})
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
	pool, err := openDatabase(ctx, database)
	if err != nil {
		return nil, nil, err
	}
	l, err := pgaudit.Open(ctx, pool, pgaudit.Options{ReadOnly: true})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return l, func() { l.Close(); pool.Close() }, nil
}

// auditLogAPI adapts the audit store to access.AuditLog.
type auditLogAPI struct{ st auditStore }

func (a auditLogAPI) SearchAuditEvents(ctx context.Context, v url.Values, strict bool) (*fhir.Page, error) {
	f, err := audit.ParseFilter(v)
	if err != nil {
		return nil, err
	}
	if strict && len(f.Ignored) > 0 {
		return nil, fhir.Errorf(fhir.CodeBadRequest, "unknown search parameter %q for AuditEvent (Prefer: handling=strict)", f.Ignored[0])
	}
	if f.Count == 0 && !f.TotalOnly {
		f.Count = fhir.DefaultCount
	}
	pg, err := a.st.QueryPage(ctx, f)
	if err != nil {
		return nil, err
	}
	page := make([]*fhir.Resource, 0, len(pg.Entries))
	for _, e := range pg.Entries {
		page = append(page, resourceOf(e))
	}
	q := &fhir.Query{Type: "AuditEvent", Count: f.Count, Offset: f.Offset, Ignored: f.Ignored, Cursored: true}
	if pg.Next != 0 {
		q.Next = strconv.FormatUint(pg.Next, 10)
	}
	return &fhir.Page{Resources: page, Total: pg.Total, Query: q}, nil
}

func (a auditLogAPI) ReadAuditEvent(ctx context.Context, id string) (*fhir.Resource, error) {
	seq, ok := audit.ParseEventID(id)
	if !ok {
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no AuditEvent with that id")
	}
	e, found, err := a.st.Get(ctx, seq)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no AuditEvent with that id")
	}
	return resourceOf(e), nil
}

// resourceOf renders an entry and notes its patient for patient-context checks.
func resourceOf(e audit.Entry) *fhir.Resource {
	r := *audit.Resource(e)
	r.Ix.Patient = e.PatientID
	return &r
}
