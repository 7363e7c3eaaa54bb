package rest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// read serves GET /{type}/{id}.
func (s *Server) read(c echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if err := checkType(typ); err != nil {
		return err
	}
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "read", Type: typ, ID: id, PatientID: fhir.PatientIDOf(id), Areas: fhir.AreasOfType(typ)}
	rec, dec, err := s.access(c.Request().Context(), req)
	if err != nil {
		return err
	}
	r := rec.Find(typ, id)
	if r == nil || !dec.Areas.Any(r.Ix.Area) {
		_ = s.audit(c.Request().Context(), req, rec, dec, 0, fhir.CodeNoRecordFound)
		return fhir.Errorf(fhir.CodeNoRecordFound, "no %s with that id", typ)
	}
	if err := s.audit(c.Request().Context(), req, rec, dec, 1, ""); err != nil {
		return err
	}
	etag := etagOf(r.JSON)
	c.Response().Header().Set("ETag", etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && match == etag {
		return c.NoContent(http.StatusNotModified)
	}
	if !r.Ix.LastUpdated.IsZero() {
		c.Response().Header().Set("Last-Modified", r.Ix.LastUpdated.UTC().Format(http.TimeFormat))
	}
	return s.writeJSON(c, http.StatusOK, r.JSON)
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

func checkType(typ string) error {
	if !fhir.IsReadable(typ) {
		return fhir.Errorf(fhir.CodeUnknownResourceType, "resource type %q is not served", truncate(typ, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s)
}

func strict(c echo.Context) bool {
	for _, p := range c.Request().Header.Values("Prefer") {
		for _, part := range strings.Split(p, ",") {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(part), " ", ""), "handling=strict") {
				return true
			}
		}
	}
	return false
}

// search serves GET /{type}?...
func (s *Server) search(c echo.Context) error {
	typ := c.Param("type")
	if err := checkType(typ); err != nil {
		return err
	}
	values := c.QueryParams()
	q, err := fhir.ParseQuery(typ, values, strict(c))
	if err != nil {
		return err
	}
	req := &fhir.Request{Interaction: "search-type", Type: typ, Query: q, PatientID: q.Patient, NHS: q.NHS, Areas: fhir.AreasOfType(typ)}
	if typ == "Patient" {
		return s.searchPatient(c, req)
	}
	if q.Patient == "" {
		return fhir.Errorf(fhir.CodeInvalidParameter, "a %s search needs the patient parameter", typ).At("patient")
	}
	rec, dec, err := s.access(c.Request().Context(), req)
	if err != nil {
		if fe := fhir.AsError(err); fe.Code == fhir.CodePatientNotFound {
			return s.writeSearchset(c, req, nil, nil)
		}
		return err
	}
	var matches []*fhir.Resource
	for _, r := range rec.Resources {
		if r.Type == typ && dec.Areas.Any(r.Ix.Area) && q.Match(r) {
			matches = append(matches, r)
		}
	}
	return s.finishSearch(c, req, rec, dec, matches)
}

func (s *Server) finishSearch(c echo.Context, req *fhir.Request, rec *fhir.Record, dec fhir.Decision, matches []*fhir.Resource) error {
	req.Query.SortResources(matches)
	page := pageOf(matches, req.Query)
	if err := s.audit(c.Request().Context(), req, rec, dec, len(page), ""); err != nil {
		return err
	}
	return s.writeSearchset(c, req, matches, rec.Warnings)
}

func pageOf(all []*fhir.Resource, q *fhir.Query) []*fhir.Resource {
	if q.Offset >= len(all) {
		return nil
	}
	end := min(len(all), q.Offset+q.Count)
	return all[q.Offset:end]
}

// searchPatient serves Patient?identifier=... and Patient?_id=...: a
// search that finds nothing is an empty Bundle, not an error.
func (s *Server) searchPatient(c echo.Context, req *fhir.Request) error {
	q := req.Query
	if q.NHS == "" {
		for _, f := range q.Filters {
			if f.Param == "_id" && len(f.Tokens) == 1 && !f.Not {
				req.PatientID = f.Tokens[0].Code
			}
		}
		if req.PatientID == "" {
			return fhir.Errorf(fhir.CodeInvalidParameter, "Patient search needs one identifier or one _id").At("identifier")
		}
	}
	req.Areas = fhir.AreaDemographics
	rec, dec, err := s.access(c.Request().Context(), req)
	if err != nil {
		if fe := fhir.AsError(err); fe.Code == fhir.CodePatientNotFound {
			_ = s.audit(c.Request().Context(), req, nil, fhir.Decision{Permit: true}, 0, "")
			return s.writeSearchset(c, req, nil, nil)
		}
		return err
	}
	var matches []*fhir.Resource
	if p := rec.Patient(); p != nil && q.Match(p) {
		matches = append(matches, p)
	}
	return s.finishSearch(c, req, rec, dec, matches)
}

// everything serves GET /Patient/{id}/$everything: the record as a
// searchset, paged; _type narrows the types.
func (s *Server) everything(c echo.Context) error {
	id := c.Param("id")
	if !fhir.ValidID(id) {
		return fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	q := &fhir.Query{Type: "Patient", Patient: id, Count: fhir.DefaultCount}
	values := c.QueryParams()
	var types map[string]bool
	for k, v := range values {
		switch k {
		case "_count", "_offset":
			n, err := strconv.Atoi(v[len(v)-1])
			if err != nil || n < 0 || n > 1<<30 {
				return fhir.Errorf(fhir.CodeInvalidParameter, "%s must be a non-negative integer", k).At(k)
			}
			if k == "_count" {
				q.Count = min(n, fhir.MaxCount)
			} else {
				q.Offset = n
			}
		case "_type":
			types = map[string]bool{}
			for _, t := range strings.Split(strings.Join(v, ","), ",") {
				if err := checkType(t); err != nil {
					return fhir.Errorf(fhir.CodeInvalidParameter, "_type names a type that is not served").At("_type")
				}
				types[t] = true
			}
		case "_format", "_pretty":
		default:
			if strict(c) {
				return fhir.Errorf(fhir.CodeBadRequest, "unknown parameter %q for $everything (Prefer: handling=strict)", truncate(k, 40))
			}
			q.Ignored = append(q.Ignored, truncate(k, 40))
		}
	}
	req := &fhir.Request{Interaction: "operation", Operation: "$everything", Type: "Patient", ID: id, PatientID: id, Areas: fhir.AllAreas, Query: q}
	rec, dec, err := s.access(c.Request().Context(), req)
	if err != nil {
		return err
	}
	matches := make([]*fhir.Resource, 0, len(rec.Resources))
	for _, r := range rec.Resources {
		if dec.Areas.Any(r.Ix.Area) && (types == nil || types[r.Type]) {
			matches = append(matches, r)
		}
	}
	page := pageOf(matches, q)
	if err := s.audit(c.Request().Context(), req, rec, dec, len(page), ""); err != nil {
		return err
	}
	return s.writeSearchset(c, req, matches, rec.Warnings)
}

// access is the record pipeline shared by every data interaction: resolve
// the patient, locate the practice, authorise, and fetch what was permitted.
// Denials are audited here; grants are audited by the caller just before the
// answer is written, when it knows what it returns.
func (s *Server) access(ctx context.Context, req *fhir.Request) (*fhir.Record, fhir.Decision, error) {
	// An unknown patient is not refused here: the authorizer runs first with
	// no practice, so a caller without an agreement gets the same refusal
	// whether or not the patient exists.
	nhs := req.NHS
	var notFound error
	if nhs == "" {
		n, err := s.cfg.Records.Resolve(req.PatientID)
		if err != nil {
			notFound = err
		}
		nhs = n
	}
	req.NHS = nhs
	meta := RecordMeta{NHS: nhs}
	if s.cfg.Locator != nil && notFound == nil {
		ods, err := s.cfg.Locator.PracticeOf(nhs)
		if err != nil {
			notFound = err
		}
		meta.Practice = ods
	}
	dec := fhir.Decision{Permit: true, Areas: req.Areas}
	if s.cfg.Authorizer != nil {
		d, err := s.cfg.Authorizer.Authorize(ctx, fhir.PrincipalFrom(ctx), req, meta)
		if err != nil {
			return nil, dec, s.deny(ctx, req, err)
		}
		dec = d
		if !dec.Permit {
			return nil, dec, s.refuse(ctx, req, dec)
		}
	}
	if notFound != nil {
		return nil, dec, s.deny(ctx, req, notFound)
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.SourceBudget)
	defer cancel()
	// The record policy decides on the whole record (the patient's coded
	// consent to share may sit in any area), then redacts it to the
	// permitted areas.
	fetch := dec.Areas
	if s.cfg.Policy != nil {
		fetch = fhir.AllAreas
	}
	rec, err := s.cfg.Records.Record(fctx, nhs, fetch)
	if err != nil {
		if fctx.Err() != nil && ctx.Err() == nil {
			err = fhir.Errorf(fhir.CodeTimeout, "the practice system did not answer in time")
		}
		return nil, dec, s.deny(ctx, req, err)
	}
	if req.PatientID == "" {
		req.PatientID = rec.PatientID
	}
	if s.cfg.Policy != nil {
		rec, dec, err = s.cfg.Policy.Apply(ctx, fhir.PrincipalFrom(ctx), req, rec, dec)
		if err != nil {
			return nil, dec, s.deny(ctx, req, err)
		}
		if !dec.Permit {
			return nil, dec, s.refuse(ctx, req, dec)
		}
	}
	return rec, dec, nil
}

// deny audits a refusal or failure and returns the error to render.
func (s *Server) deny(ctx context.Context, req *fhir.Request, err error) error {
	fe := fhir.AsError(err)
	if aerr := s.audit(ctx, req, nil, fhir.Decision{Code: fe.Code}, 0, fe.Code); aerr != nil {
		return aerr
	}
	return err
}

// refuse audits a policy refusal with the rule that decided, and returns the
// coded error to render. The audit keeps the exact rule; the caller is told
// the rule the code names. Agreement rules are all answered alike, because
// which agreement rule refused (suspended, expired, wrong purpose...) would
// tell a caller that the patient exists at a practice it has an agreement
// with; an unknown patient is refused as "no agreement".
func (s *Server) refuse(ctx context.Context, req *fhir.Request, dec fhir.Decision) error {
	if aerr := s.audit(ctx, req, nil, dec, 0, dec.Code); aerr != nil {
		return aerr
	}
	return fhir.Errorf(dec.Code, "%s", publicRule(dec))
}

// publicRule is what a refusal says to the caller.
func publicRule(dec fhir.Decision) string {
	if dec.Code == fhir.CodeNoOrganisationConsent {
		return "no active sharing agreement between the patient's practice and your organisation covers this request (area, purpose, dates, break-glass)"
	}
	return dec.Rule
}

// audit records the access durably. No durable audit, no data: a failure here
// fails the request with a generic 500.
func (s *Server) audit(ctx context.Context, req *fhir.Request, rec *fhir.Record, dec fhir.Decision, count int, code fhir.Code) error {
	if s.cfg.Auditor == nil {
		return nil
	}
	return s.writeAudit(ctx, s.auditEntry(ctx, req, rec, dec, count, code))
}

func (s *Server) writeAudit(ctx context.Context, e *fhir.AuditEntry) error {
	if s.cfg.Auditor == nil {
		return nil
	}
	if err := s.cfg.Auditor.Record(ctx, e); err != nil {
		return fhir.Internal(err)
	}
	return nil
}

// auditEntry describes one access for the audit log.
func (s *Server) auditEntry(ctx context.Context, req *fhir.Request, rec *fhir.Record, dec fhir.Decision, count int, code fhir.Code) *fhir.AuditEntry {
	e := &fhir.AuditEntry{
		Time:        s.now(),
		RequestID:   fhir.RequestIDFrom(ctx),
		Interaction: req.Interaction,
		Outcome:     fhir.OutcomeGranted,
		Code:        code,
		Rule:        dec.Rule,
		PatientID:   req.PatientID,
		NHS:         req.NHS,
		Types:       []string{req.Type},
		Areas:       dec.Areas,
		Count:       count,
	}
	e.Action = "PatientRead"
	if req.Interaction == "search-type" || req.Operation != "" {
		e.Action = "PatientQuery"
	}
	if req.Query != nil {
		e.Query = auditQuery(req)
	}
	if code != "" {
		e.Outcome = fhir.OutcomeDenied
		if code == fhir.CodeInternal || code == fhir.CodeTimeout {
			e.Outcome = fhir.OutcomeError
		}
	}
	if rec != nil {
		e.Practice = rec.Practice
	}
	if p := fhir.PrincipalFrom(ctx); p != nil {
		e.ClientID, e.ConsumerODS, e.Practitioner, e.Role = p.ClientID, p.ConsumerODS, p.Practitioner, p.Role
		e.PurposeOfUse, e.TokenID, e.BreakGlass = p.PurposeOfUse, p.TokenID, p.BreakGlass
	}
	e.BreakGlass = e.BreakGlass || dec.BreakGlass
	return e
}

func auditQuery(req *fhir.Request) string {
	v := url.Values{}
	for _, f := range req.Query.Filters {
		v.Add(f.Param, "")
	}
	return v.Encode()
}
