package main

import (
	"context"
	"net/url"
	"strconv"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
)

// auditLogAPI adapts the audit store to access.AuditLog.
type auditLogAPI struct{ st *audit.Store }

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
