package fhir

import (
	"context"
	"encoding/base32"
	"strings"
	"sync/atomic"
)

// Record is one patient's GP record as a source returned it: canonical
// resources, with the Patient first, and any warnings about what is missing.
type Record struct {
	NHS       NHSNumber
	PatientID string
	Practice  string // provider practice ODS code
	Version   string // source version of the record; changes whenever it does
	Resources []*Resource
	Warnings  []Issue // areas unavailable, items withheld at source, ...
	Sharing   SharingConsent

	// derivedSharing memoizes DerivedSharing: 0 not yet derived, else
	// 1 + the SharingConsent. Read and written atomically.
	derivedSharing int32
}

// DerivedSharing returns scan(r) — the patient's consent to share derived
// from the coded entries of the whole record (consent.SharingFromRecord) —
// computed once per Record: a record a source returns is read-only and
// shared between requests (the sources' caches), so the scan need not run
// on every request that decides on it. scan must be a pure function of the
// record, the same for every call. A copy of the Record carries the
// answer with it: copies keep or narrow the resources (area filters),
// and the consent to share is the whole record's.
func (r *Record) DerivedSharing(scan func(*Record) SharingConsent) SharingConsent {
	if v := atomic.LoadInt32(&r.derivedSharing); v != 0 {
		return SharingConsent(v - 1)
	}
	s := scan(r)
	atomic.StoreInt32(&r.derivedSharing, int32(s)+1)
	return s
}

// SharingConsent is the patient's consent to share as the GP system records it.
type SharingConsent int

const (
	SharingUnknown SharingConsent = iota // no coded entry: the agreement's default applies
	SharingConsented
	SharingDissent
)

// Patient returns the record's Patient resource, or nil.
func (r *Record) Patient() *Resource {
	for _, x := range r.Resources {
		if x.Type == "Patient" {
			return x
		}
	}
	return nil
}

// Find returns the resource of type t and id, or nil.
func (r *Record) Find(t, id string) *Resource {
	for _, x := range r.Resources {
		if x.ID == id && x.Type == t {
			return x
		}
	}
	return nil
}

// Select returns the resources of the given type (all types when t is "")
// inside areas.
func (r *Record) Select(t string, areas Areas) []*Resource {
	out := make([]*Resource, 0, len(r.Resources))
	for _, x := range r.Resources {
		if (t == "" || x.Type == t) && areas.Any(x.Ix.Area) {
			out = append(out, x)
		}
	}
	return out
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ResourceID builds the id of a record resource from its patient's id and an
// id local to the record ([A-Za-z0-9.-], at most 64 - 18 characters).
func ResourceID(patientID, local string) string {
	return patientID + "-" + local
}

// PatientIDOf returns the patient id part of a resource id made by ResourceID.
func PatientIDOf(resourceID string) string {
	if i := strings.IndexByte(resourceID, '-'); i > 0 {
		return resourceID[:i]
	}
	return resourceID
}

// Principal is the authenticated caller, bound from its access token.
type Principal struct {
	ClientID     string
	ConsumerODS  string // caller's organisation
	Practitioner string // clinician (subject_id), may be empty for system calls
	Role         string
	Name         string
	PurposeOfUse string
	Scopes       []string
	PatientID    string // patient context; "" for system tokens
	ConsentRef   string
	TokenID      string // jti
	BreakGlass   bool
}

// Request is what a handler asks of the record: which patient, which type and
// areas, and the query, if any.
type Request struct {
	Interaction string // read | search-type | operation
	Operation   string // $everything, $getstructuredrecord
	Type        string
	ID          string
	PatientID   string
	NHS         NHSNumber
	Areas       Areas
	Query       *Query
	// Practice is filled in by the record-access core once it has located
	// the patient, for the audit; callers leave it empty.
	Practice string
}

// Decision is a policy decision: which areas may be returned and why not.
// Summary marks areas of Areas permitted as the summary view only (an
// agreement sharing "summary" rather than those whole areas).
type Decision struct {
	Permit     bool
	Areas      Areas
	Summary    Areas
	Code       Code   // denial code when !Permit
	Rule       string // which rule decided, for the audit
	BreakGlass bool   // the permit rests on a break-glass (flagged in the audit for review)
}

type ctxKey int

const (
	principalKey ctxKey = iota
	requestIDKey
	correlationIDKey
	clientAddrKey
)

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// PrincipalFrom returns the principal in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey).(*Principal)
	return p
}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestIDFrom returns the request id in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// WithCorrelationID returns ctx carrying the caller's own request id (its
// X-Request-ID), kept apart from gpgate's request id.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationIDKey, id)
}

// CorrelationIDFrom returns the caller's correlation id in ctx, or "".
func CorrelationIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(correlationIDKey).(string)
	return s
}

// WithClientAddr returns ctx carrying the caller's network address (IP).
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey, addr)
}

// ClientAddrFrom returns the caller's network address in ctx, or "".
func ClientAddrFrom(ctx context.Context) string {
	s, _ := ctx.Value(clientAddrKey).(string)
	return s
}
