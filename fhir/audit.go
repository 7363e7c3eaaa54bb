package fhir

import "time"

// AuditEntry is one access decision as the audit log records it: who, why,
// what, outcome, when. The audit package renders it as an R4 AuditEvent.
type AuditEntry struct {
	Time      time.Time
	RequestID string // gpgate's own id of the request
	// CorrelationID is the caller's X-Request-ID, when it sent a usable
	// one: kept beside gpgate's id, never instead of it.
	CorrelationID string
	// SourceAddress is the caller's network address (IP), when known.
	SourceAddress string
	// Action is the IHE BALP-style event: "PatientRead", "PatientQuery",
	// "token-issue", "consent-record", "admin".
	Action      string
	Interaction string // read | search-type | operation | create | token
	Outcome     string // "granted" | "denied" | "error"
	Code        Code   // denial or error code
	Rule        string // rule that decided

	ClientID     string
	ConsumerODS  string
	Practitioner string
	Role         string
	PurposeOfUse string
	TokenID      string
	BreakGlass   bool
	Reason       string // break-glass reason: kept only in the audit

	PatientID string
	NHS       NHSNumber
	Practice  string
	Types     []string
	Areas     Areas
	Query     string // the query string with values of free-text parameters dropped
	Count     int    // resources returned
}

// Outcome values.
const (
	OutcomeGranted = "granted"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)
