package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// SpineErrorSystem is the code system of the GP Connect / Spine error and
// warning codes carried in OperationOutcome.issue.details.
const SpineErrorSystem = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"

// Code is a GP Connect (Spine) error or warning code.
type Code string

// The error codes gpgate answers with. Each has one HTTP status and one FHIR
// issue type, so a handler never chooses a status by hand.
const (
	CodeBadRequest            Code = "BAD_REQUEST"
	CodeInvalidNHSNumber      Code = "INVALID_NHS_NUMBER"
	CodeInvalidParameter      Code = "INVALID_PARAMETER"
	CodeInvalidResource       Code = "INVALID_RESOURCE"
	CodeInvalidIdentifier     Code = "INVALID_IDENTIFIER_SYSTEM"
	CodePatientNotFound       Code = "PATIENT_NOT_FOUND"
	CodeNoRecordFound         Code = "NO_RECORD_FOUND"
	CodeReferenceNotFound     Code = "REFERENCE_NOT_FOUND"
	CodeUnknownResourceType   Code = "UNKNOWN_RESOURCE_TYPE"
	CodeAccessDenied          Code = "ACCESS_DENIED"
	CodeNoPatientConsent      Code = "NO_PATIENT_CONSENT"
	CodeNoOrganisationConsent Code = "NO_ORGANISATION_CONSENT"
	CodeUnauthorized          Code = "UNAUTHORISED"
	CodeMethodNotAllowed      Code = "METHOD_NOT_ALLOWED"
	CodeNotAcceptable         Code = "NOT_ACCEPTABLE"
	CodeUnsupportedMediaType  Code = "UNSUPPORTED_MEDIA_TYPE"
	CodeBodyTooLarge          Code = "REQUEST_TOO_LARGE"
	CodeTimeout               Code = "SERVICE_UNAVAILABLE"
	CodeNotImplemented        Code = "NOT_IMPLEMENTED"
	CodeTooManyRequests       Code = "TOO_MANY_REQUESTS"
	CodeInternal              Code = "INTERNAL_SERVER_ERROR"
)

type codeInfo struct {
	status  int
	issue   string // FHIR IssueType
	display string
}

var codes = map[Code]codeInfo{
	CodeBadRequest:            {http.StatusBadRequest, "invalid", "Bad request"},
	CodeInvalidNHSNumber:      {http.StatusBadRequest, "value", "Invalid NHS number"},
	CodeInvalidParameter:      {http.StatusUnprocessableEntity, "invalid", "Invalid parameter"},
	CodeInvalidResource:       {http.StatusUnprocessableEntity, "invalid", "Invalid resource"},
	CodeInvalidIdentifier:     {http.StatusBadRequest, "value", "Invalid identifier system"},
	CodePatientNotFound:       {http.StatusNotFound, "not-found", "Patient not found"},
	CodeNoRecordFound:         {http.StatusNotFound, "not-found", "No record found"},
	CodeReferenceNotFound:     {http.StatusNotFound, "not-found", "Reference not found"},
	CodeUnknownResourceType:   {http.StatusNotFound, "not-supported", "Unknown resource type"},
	CodeAccessDenied:          {http.StatusForbidden, "forbidden", "Access denied"},
	CodeNoPatientConsent:      {http.StatusForbidden, "forbidden", "No patient consent to share"},
	CodeNoOrganisationConsent: {http.StatusForbidden, "forbidden", "No organisational consent"},
	CodeUnauthorized:          {http.StatusUnauthorized, "login", "Unauthorised"},
	CodeMethodNotAllowed:      {http.StatusMethodNotAllowed, "not-supported", "Method not allowed"},
	CodeNotAcceptable:         {http.StatusNotAcceptable, "not-supported", "Not acceptable"},
	CodeUnsupportedMediaType:  {http.StatusUnsupportedMediaType, "not-supported", "Unsupported media type"},
	CodeBodyTooLarge:          {http.StatusRequestEntityTooLarge, "too-costly", "Request too large"},
	CodeTimeout:               {http.StatusServiceUnavailable, "timeout", "Service unavailable"},
	CodeNotImplemented:        {http.StatusNotImplemented, "not-supported", "Not implemented"},
	CodeTooManyRequests:       {http.StatusTooManyRequests, "throttled", "Too many requests"},
	CodeInternal:              {http.StatusInternalServerError, "exception", "Internal server error"},
}

// Error is gpgate's one coded error. Diagnostics is safe to show the caller;
// Cause is internal detail that goes to the log only.
type Error struct {
	Code        Code
	Diagnostics string
	Expression  string // FHIRPath of the offending element or parameter, optional
	Cause       error
}

// Errorf builds a coded error with caller-safe diagnostics.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Diagnostics: fmt.Sprintf(format, args...)}
}

// Internal wraps an internal failure: the caller sees a generic 500, the log
// sees cause.
func Internal(cause error) *Error {
	return &Error{Code: CodeInternal, Cause: cause}
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Diagnostics, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Diagnostics)
}

func (e *Error) Unwrap() error { return e.Cause }

// At names the parameter or element that was wrong.
func (e *Error) At(expression string) *Error { e.Expression = expression; return e }

// Status is the HTTP status for the error's code.
func (e *Error) Status() int {
	if ci, ok := codes[e.Code]; ok {
		return ci.status
	}
	return http.StatusInternalServerError
}

// AsError maps any error to a coded error. Errors that are not coded become
// INTERNAL_SERVER_ERROR with the original kept as Cause (for the log only).
func AsError(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		if _, ok := codes[fe.Code]; ok {
			return fe
		}
	}
	return Internal(err)
}

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity    string // fatal | error | warning | information
	Code        Code
	Diagnostics string
	Expression  string
}

// OperationOutcome renders the error as a FHIR R4 OperationOutcome (UK Core
// profile) in canonical JSON. INTERNAL_SERVER_ERROR never carries diagnostics.
func (e *Error) OperationOutcome() []byte {
	diag := e.Diagnostics
	if e.Code == CodeInternal || codes[e.Code].status == 0 {
		diag = "" // never leak internal detail
	}
	return OperationOutcome(Issue{Severity: "error", Code: e.Code, Diagnostics: diag, Expression: e.Expression})
}

type ooCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}
type ooIssue struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Details  struct {
		Coding []ooCoding `json:"coding"`
	} `json:"details"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}
type ooResource struct {
	ResourceType string    `json:"resourceType"`
	Meta         metaOnly  `json:"meta"`
	Issue        []ooIssue `json:"issue"`
}
type metaOnly struct {
	Profile []string `json:"profile"`
}

// ProfileOperationOutcome is the UK Core OperationOutcome profile.
const ProfileOperationOutcome = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"

// OperationOutcome renders issues as an OperationOutcome.
func OperationOutcome(issues ...Issue) []byte {
	oo := ooResource{ResourceType: "OperationOutcome", Meta: metaOnly{Profile: []string{ProfileOperationOutcome}}}
	for _, is := range issues {
		ci, ok := codes[is.Code]
		issueType := ci.issue
		display := ci.display
		if !ok {
			w := warnings[is.Code]
			issueType, display = w.issue, w.display
			if issueType == "" {
				issueType = "informational"
			}
		}
		o := ooIssue{Severity: is.Severity, Code: issueType, Diagnostics: is.Diagnostics}
		o.Details.Coding = []ooCoding{{System: WarningSystem(is.Code), Code: string(is.Code), Display: display}}
		if is.Expression != "" {
			o.Expression = []string{is.Expression}
		}
		oo.Issue = append(oo.Issue, o)
	}
	b, _ := json.Marshal(oo) // plain structs of strings: cannot fail
	return b
}

// Warning codes (GP Connect ListWarningCode / Spine warnings) used when part of
// an answer is withheld or missing.
const (
	WarnDataInTransit       Code = "data-in-transit"
	WarnConfidentialItems   Code = "confidential-items"
	WarnDataAwaitingFiling  Code = "data-awaiting-filing"
	WarnAreaUnavailable     Code = "AREA_UNAVAILABLE"
	WarnUnknownParamIgnored Code = "UNKNOWN_PARAMETER_IGNORED"
	// WarnUncodedItems: the source holds entries without a clinical code
	// (free text, uncoded entries) that are not shared (coded data only).
	WarnUncodedItems Code = "UNCODED_ITEMS_WITHHELD"
	// WarnAttachmentsWithheld: the source holds attachments (documents,
	// images) that are not shared.
	WarnAttachmentsWithheld Code = "ATTACHMENTS_WITHHELD"
	// WarnStatusDefaulted: an element the source did not record was given a
	// default value; Issue.Expression names the element.
	WarnStatusDefaulted Code = "STATUS_DEFAULTED"
)

// Section empty reasons: why a source said a section of the record is
// empty (UK Core ListEmptyReasonCode, base list-empty-reason). A source
// reports one as an Issue whose Expression names the area (Area.Name());
// a section List built for that area while empty carries it as its
// emptyReason, so "nothing recorded" and "withheld" stay apart.
const (
	EmptyNoContentRecorded Code = "no-content-recorded" // UK Core: nothing recorded
	EmptyNilKnown          Code = "nilknown"
	EmptyNotAsked          Code = "notasked"
	EmptyNotStarted        Code = "notstarted"
	EmptyClosed            Code = "closed"
	EmptyWithheld          Code = "withheld"    // may exist, not shared
	EmptyUnavailable       Code = "unavailable" // may exist, could not be given
)

// EmptyReason reports whether c is a section empty reason.
func EmptyReason(c Code) bool {
	switch c {
	case EmptyNoContentRecorded, EmptyNilKnown, EmptyNotAsked, EmptyNotStarted, EmptyClosed, EmptyWithheld, EmptyUnavailable:
		return true
	}
	return false
}

var warnings = map[Code]struct{ issue, display string }{
	WarnConfidentialItems:   {"suppressed", "Confidential Items"},
	WarnDataInTransit:       {"incomplete", "Data in Transit"},
	WarnDataAwaitingFiling:  {"incomplete", "Data Awaiting Filing"},
	WarnAreaUnavailable:     {"incomplete", "Area unavailable"},
	WarnUnknownParamIgnored: {"informational", "Unknown parameter ignored"},
	WarnUncodedItems:        {"suppressed", "Uncoded items withheld"},
	WarnAttachmentsWithheld: {"suppressed", "Attachments withheld"},
	WarnStatusDefaulted:     {"informational", "Status defaulted"},
	EmptyNoContentRecorded:  {"informational", "No Content Recorded"},
	EmptyNilKnown:           {"informational", "Nil Known"},
	EmptyNotAsked:           {"informational", "Not Asked"},
	EmptyNotStarted:         {"informational", "Not Started"},
	EmptyClosed:             {"informational", "Closed"},
	EmptyWithheld:           {"suppressed", "Information Withheld"},
	EmptyUnavailable:        {"incomplete", "Unavailable"},
}

// EmptyDisplay is the display of a section empty reason ("" for others).
func EmptyDisplay(c Code) string {
	if !EmptyReason(c) {
		return ""
	}
	return warnings[c].display
}

// WarningSystem returns the code system a warning code belongs to: the UK
// Core ListWarningCode system for list warnings, the UK Core or base
// list-empty-reason system for section empty reasons, the Spine system
// otherwise.
func WarningSystem(c Code) string {
	switch c {
	case WarnConfidentialItems, WarnDataInTransit, WarnDataAwaitingFiling:
		return ListWarningCodeSystem
	case EmptyNoContentRecorded:
		return UKCoreListEmptyReasonSystem
	case EmptyNilKnown, EmptyNotAsked, EmptyNotStarted, EmptyClosed, EmptyWithheld, EmptyUnavailable:
		return ListEmptyReasonSystem
	}
	return SpineErrorSystem
}

// Codes lists every error code gpgate answers with and its HTTP status (for
// documentation and the tests that keep it true).
func Codes() map[Code]int {
	out := make(map[Code]int, len(codes))
	for c, ci := range codes {
		out[c] = ci.status
	}
	return out
}
