package gpconnect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// providerCodes maps the Spine error codes a GP Connect provider answers
// with to what gpgate tells its own caller. Answers about the patient pass
// through (not found, dissent, invalid number); a refusal of gpgate's own
// request (parameters, resource, identifiers, authorisation) is gpgate's
// fault, an internal error whose cause the log keeps; a provider failure
// is SERVICE_UNAVAILABLE.
var providerCodes = map[string]fhir.Code{
	"PATIENT_NOT_FOUND":            fhir.CodePatientNotFound,
	"NO_PATIENT_CONSENT":           fhir.CodeNoPatientConsent,
	"INVALID_NHS_NUMBER":           fhir.CodeInvalidNHSNumber,
	"NO_RECORD_FOUND":              fhir.CodeNoRecordFound,
	"INVALID_PATIENT_DEMOGRAPHICS": fhir.CodePatientNotFound,
	"INTERNAL_SERVER_ERROR":        fhir.CodeTimeout,
	"NOT_IMPLEMENTED":              fhir.CodeTimeout,
	"TEMPORARILY_UNAVAILABLE":      fhir.CodeTimeout,
	"SERVICE_UNAVAILABLE":          fhir.CodeTimeout,
	// gpgate's request was refused: a configuration or protocol fault.
	"INVALID_RESOURCE":          fhir.CodeInternal,
	"INVALID_PARAMETER":         fhir.CodeInternal,
	"BAD_REQUEST":               fhir.CodeInternal,
	"INVALID_IDENTIFIER_SYSTEM": fhir.CodeInternal,
	"INVALID_IDENTIFIER_VALUE":  fhir.CodeInternal,
	"REFERENCE_NOT_FOUND":       fhir.CodeInternal,
	"FHIR_CONSTRAINT_VIOLATION": fhir.CodeInternal,
	"ACCESS_DENIED":             fhir.CodeInternal,
	"NON_AUTHORITATIVE":         fhir.CodeInternal,
	"ORGANISATION_NOT_FOUND":    fhir.CodeInternal,
	"PRACTITIONER_NOT_FOUND":    fhir.CodeInternal,
	"INVALID_ODS_CODE":          fhir.CodeInternal,
	"UNSUPPORTED_MEDIA_TYPE":    fhir.CodeInternal,
	"NOT_ACCEPTABLE":            fhir.CodeInternal,
}

var callerText = map[fhir.Code]string{
	fhir.CodePatientNotFound:  "the practice system has no record it can share for this patient",
	fhir.CodeNoPatientConsent: "the patient has dissented from sharing their record",
	fhir.CodeInvalidNHSNumber: "the practice system refused the NHS number",
	fhir.CodeNoRecordFound:    "the practice system has no record for this patient",
	fhir.CodeTimeout:          "the practice system is unavailable",
	fhir.CodeInternal:         "the practice system refused the request",
}

// OutcomeError maps a provider's OperationOutcome (with its HTTP status,
// 0 when unknown) to gpgate's coded error. The Spine code in
// issue.details decides; without one, the HTTP status does (5xx and 429:
// unavailable; other 4xx: rejected). Provider diagnostics are never
// passed on (they may carry identifiers).
func OutcomeError(oo obj, status int) error {
	spine := ""
	for _, is := range list(oo["issue"]) {
		io, _ := is.(obj)
		for _, c := range list(child(io, "details")["coding"]) {
			co, _ := c.(obj)
			if cd := strings.TrimSpace(str(co["code"])); cd != "" && spine == "" {
				spine = cd
			}
		}
	}
	return providerError(spine, status)
}

func providerError(spine string, status int) error {
	code, known := providerCodes[spine]
	if !known {
		switch {
		case status == http.StatusTooManyRequests || status >= 500:
			code = fhir.CodeTimeout
		case status == http.StatusNotFound && spine == "":
			code = fhir.CodeTimeout // no such endpoint: the practice's service is not there
		default:
			code = fhir.CodeInternal
		}
	}
	label := spine
	if label == "" {
		label = "no Spine code"
	}
	var cause error
	switch code {
	case fhir.CodeTimeout:
		cause = fmt.Errorf("%w: HTTP %d, %s", ErrUnavailable, status, label)
	case fhir.CodeInternal:
		cause = fmt.Errorf("%w: HTTP %d, %s", ErrRejected, status, label)
	default: // an answer about the patient, not a failure of the provider
		cause = fmt.Errorf("gpconnect: provider answered HTTP %d, %s", status, label)
	}
	return &fhir.Error{Code: code, Diagnostics: callerText[code], Cause: cause}
}

// statusError maps a non-200 answer whose body is not an OperationOutcome.
func statusError(status int, body []byte) error {
	var oo obj
	if json.NewDecoder(bytes.NewReader(body)).Decode(&oo) == nil && str(oo["resourceType"]) == "OperationOutcome" {
		return OutcomeError(oo, status)
	}
	return providerError("", status)
}
