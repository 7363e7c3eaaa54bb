package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// A consent to view: the clinician's record that the patient agreed, now,
// to their GP record being viewed (or a break-glass), as gpgate receives it
// (POST /Consent, a minimal UK Core Consent), stores it and answers it.

// Purposes of use (HL7 v3 ActReason) a consent to view records.
const (
	PurposeTreat     = "TREAT"
	PurposeEmergency = "ETREAT"
	// ActReasonSystem is the code system of purposes of use.
	ActReasonSystem = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
)

// MaxConsentPeriod is the longest a consent to view may last.
const MaxConsentPeriod = 24 * time.Hour

// ExtBreakGlassReason is the extension on a POSTed Consent that carries the
// break-glass reason (valueString, mandatory for a break-glass, at most
// MaxReasonLen characters). gpgate strips it: the stored and returned
// Consent never holds it; the reason goes to the audit only
// (AuditEntry.Reason).
const ExtBreakGlassReason = "https://gpgate.dev/fhir/StructureDefinition/Extension-GPGate-BreakGlassReason"

// MaxReasonLen bounds a break-glass reason.
const MaxReasonLen = 1000

// SDSUserSystem identifies a clinician by SDS user id.
const SDSUserSystem = "https://fhir.nhs.uk/Id/sds-user-id"

// ConsentPolicyURI is the policy a gpgate consent to view records (R4
// Consent needs a policy or policyRule, ppc-1).
const ConsentPolicyURI = "https://gpgate.dev/fhir/policy/consent-to-view"

// Period is a time interval [Start, End).
type Period struct{ Start, End time.Time }

// ConsentRequest is a clinician's statement that the patient consented to
// their record being viewed now, or a break-glass.
type ConsentRequest struct {
	PatientID    string
	NHS          NHSNumber // optional when PatientID is given
	Clinician    string    // SDS user id
	Organisation string    // consumer ODS; must be the caller's ("" = caller's)
	Period       Period    // zero start = now; zero end = start + 24 h
	BreakGlass   bool
	Reason       string // break-glass reason: audit only, never stored
}

// ViewConsent is a recorded consent to view, as stored.
type ViewConsent struct {
	ID           string    `json:"id"`
	PatientID    string    `json:"patientId"`
	NHS          NHSNumber `json:"nhs,omitempty"`
	Clinician    string    `json:"clinician"`
	Organisation string    `json:"organisation"`
	ClientID     string    `json:"clientId,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	BreakGlass   bool      `json:"breakGlass,omitempty"`
	Status       string    `json:"status"` // active | inactive
	Recorded     time.Time `json:"recorded"`
	Resource     []byte    `json:"resource"` // canonical UK Core Consent JSON
}

// Live reports whether the consent is active and now is in its period.
func (c *ViewConsent) Live(now time.Time) bool {
	return c != nil && c.Status == "active" && !now.Before(c.Start) && now.Before(c.End)
}

// ValidClinician reports a usable SDS user id: 1..64 printable ASCII
// characters without spaces.
func ValidClinician(s string) bool { return s != "" && len(s) <= 64 && printable(s) }

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// consentWire is the subset of a UK Core Consent gpgate reads and writes.
type consentWire struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id,omitempty"`
	Meta         *metaWire      `json:"meta,omitempty"`
	Extension    []extWire      `json:"extension,omitempty"`
	Status       string         `json:"status"`
	Scope        *conceptWire   `json:"scope,omitempty"`
	Category     []conceptWire  `json:"category,omitempty"`
	Patient      *refWire       `json:"patient,omitempty"`
	DateTime     string         `json:"dateTime,omitempty"`
	Performer    []refWire      `json:"performer,omitempty"`
	Organization []refWire      `json:"organization,omitempty"`
	Policy       []policyWire   `json:"policy,omitempty"`
	Provision    *provisionWire `json:"provision,omitempty"`
}

type metaWire struct {
	Profile []string `json:"profile,omitempty"`
}
type extWire struct {
	URL         string `json:"url"`
	ValueString string `json:"valueString,omitempty"`
}
type codingWire struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}
type conceptWire struct {
	Coding []codingWire `json:"coding,omitempty"`
}
type identWire struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}
type refWire struct {
	Reference  string     `json:"reference,omitempty"`
	Type       string     `json:"type,omitempty"`
	Identifier *identWire `json:"identifier,omitempty"`
}
type policyWire struct {
	URI string `json:"uri,omitempty"`
}
type periodWire struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}
type actorWire struct {
	Role      conceptWire `json:"role"`
	Reference refWire     `json:"reference"`
}
type provisionWire struct {
	Type    string       `json:"type,omitempty"`
	Period  *periodWire  `json:"period,omitempty"`
	Actor   []actorWire  `json:"actor,omitempty"`
	Purpose []codingWire `json:"purpose,omitempty"`
}

// ConsentResource renders the stored consent as a UK Core Consent,
// validated and canonicalised by Canonicalize.
func ConsentResource(c *ViewConsent) (*Resource, error) {
	org := refWire{Type: "Organization", Identifier: &identWire{System: ODSSystem, Value: c.Organisation}}
	purpose := codingWire{System: ActReasonSystem, Code: PurposeTreat, Display: "treatment"}
	if c.BreakGlass {
		purpose = codingWire{System: ActReasonSystem, Code: PurposeEmergency, Display: "Emergency Treatment"}
	}
	status := c.Status
	if status == "" {
		status = "active"
	}
	w := consentWire{
		ResourceType: "Consent", ID: c.ID,
		Meta:         &metaWire{Profile: []string{ProfileConsent}},
		Status:       status,
		Scope:        &conceptWire{Coding: []codingWire{{System: "http://terminology.hl7.org/CodeSystem/consentscope", Code: "patient-privacy", Display: "Privacy Consent"}}},
		Category:     []conceptWire{{Coding: []codingWire{{System: LOINC, Code: "59284-0", Display: "Patient Consent"}}}},
		Patient:      &refWire{Reference: "Patient/" + c.PatientID},
		DateTime:     c.Recorded.UTC().Format(time.RFC3339),
		Performer:    []refWire{{Type: "Practitioner", Identifier: &identWire{System: SDSUserSystem, Value: c.Clinician}}},
		Organization: []refWire{org},
		Policy:       []policyWire{{URI: ConsentPolicyURI}},
		Provision: &provisionWire{
			Type:   "permit",
			Period: &periodWire{Start: c.Start.UTC().Format(time.RFC3339), End: c.End.UTC().Format(time.RFC3339)},
			Actor: []actorWire{{
				Role:      conceptWire{Coding: []codingWire{{System: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", Code: "IRCP", Display: "information recipient"}}},
				Reference: org,
			}},
			Purpose: []codingWire{purpose},
		},
	}
	raw, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	return Canonicalize(raw)
}

const maxConsentBody = 64 << 10

// ParseConsentBody reads the body of POST /Consent: a minimal UK Core
// Consent. Read: patient (reference "Patient/id" or identifier NHS number),
// performer[0] (identifier SDS user id), organization[0] (identifier ODS
// code, optional: the caller's), provision.period (optional, at most 24 h),
// provision.purpose ETREAT for a break-glass, and the break-glass reason in
// extension ExtBreakGlassReason (valueString), which is stripped. status, if
// present, must be active; scope and category, if present, must be
// patient-privacy and are otherwise ignored. Not JSON or not a Consent:
// INVALID_RESOURCE; a bad element: INVALID_PARAMETER with its path.
func ParseConsentBody(body []byte) (ConsentRequest, error) {
	var req ConsentRequest
	if len(body) > maxConsentBody {
		return req, Errorf(CodeInvalidResource, "Consent body too large")
	}
	var w consentWire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return req, Errorf(CodeInvalidResource, "the body is not a JSON Consent: %s", JSONError(err))
	}
	if dec.More() {
		return req, Errorf(CodeInvalidResource, "trailing data after the Consent")
	}
	if w.ResourceType != "Consent" {
		return req, Errorf(CodeInvalidResource, "the body must be a Consent resource")
	}
	bad := func(expr, format string, args ...any) (ConsentRequest, error) {
		return ConsentRequest{}, Errorf(CodeInvalidParameter, format, args...).At(expr)
	}
	if w.Status != "" && w.Status != "active" {
		return bad("Consent.status", "a consent to view is recorded active")
	}
	if w.Scope != nil && len(w.Scope.Coding) > 0 {
		ok := false
		for _, c := range w.Scope.Coding {
			ok = ok || c.Code == "patient-privacy"
		}
		if !ok {
			return bad("Consent.scope", "scope must be patient-privacy")
		}
	}
	if w.Patient == nil {
		return bad("Consent.patient", "patient is required")
	}
	if id, ok := strings.CutPrefix(w.Patient.Reference, "Patient/"); ok && w.Patient.Reference != "" {
		if !ValidID(id) {
			return bad("Consent.patient", "patient reference must be Patient/{id}")
		}
		req.PatientID = id
	} else if w.Patient.Reference != "" {
		return bad("Consent.patient", "patient reference must be Patient/{id}")
	}
	if w.Patient.Identifier != nil {
		if w.Patient.Identifier.System != NHSNumberSystem {
			return ConsentRequest{}, Errorf(CodeInvalidIdentifier, "patient identifier system must be %s", NHSNumberSystem).At("Consent.patient.identifier.system")
		}
		n, err := ParseNHSNumber(w.Patient.Identifier.Value)
		if err != nil {
			return ConsentRequest{}, err.(*Error).At("Consent.patient.identifier.value")
		}
		req.NHS = n
		if req.PatientID != "" && req.PatientID != PatientID(n) {
			return bad("Consent.patient", "patient reference and NHS number name different patients")
		}
		req.PatientID = PatientID(n)
	}
	if req.PatientID == "" {
		return bad("Consent.patient", "patient needs a reference or an NHS number identifier")
	}
	if len(w.Performer) != 1 || w.Performer[0].Identifier == nil || w.Performer[0].Identifier.System != SDSUserSystem || w.Performer[0].Identifier.Value == "" {
		return bad("Consent.performer", "performer must be one clinician identified by %s", SDSUserSystem)
	}
	req.Clinician = w.Performer[0].Identifier.Value
	if len(req.Clinician) > 64 || !printable(req.Clinician) {
		return bad("Consent.performer", "the SDS user id is 1..64 printable characters")
	}
	switch len(w.Organization) {
	case 0:
	case 1:
		o := w.Organization[0]
		if o.Identifier == nil || o.Identifier.System != ODSSystem || !ValidODS(o.Identifier.Value) {
			return bad("Consent.organization", "organization must be identified by its ODS code (%s)", ODSSystem)
		}
		req.Organisation = o.Identifier.Value
	default:
		return bad("Consent.organization", "one organization: the caller's")
	}
	if pv := w.Provision; pv != nil {
		if pv.Type != "" && pv.Type != "permit" {
			return bad("Consent.provision.type", "a consent to view is a permit")
		}
		if pv.Period != nil {
			var err error
			if req.Period.Start, err = parseInstant(pv.Period.Start); err != nil {
				return bad("Consent.provision.period.start", "start must be a dateTime with a time zone")
			}
			if req.Period.End, err = parseInstant(pv.Period.End); err != nil {
				return bad("Consent.provision.period.end", "end must be a dateTime with a time zone")
			}
		}
		for _, p := range pv.Purpose {
			switch {
			case p.Code == PurposeEmergency && (p.System == "" || p.System == ActReasonSystem):
				req.BreakGlass = true
			case p.Code == PurposeTreat && (p.System == "" || p.System == ActReasonSystem):
			default:
				return bad("Consent.provision.purpose", "purpose must be %s TREAT or ETREAT (break-glass)", ActReasonSystem)
			}
		}
	}
	for _, e := range w.Extension {
		if e.URL == ExtBreakGlassReason {
			if req.Reason != "" {
				return bad("Consent.extension", "one break-glass reason")
			}
			req.Reason = e.ValueString
			if strings.TrimSpace(req.Reason) == "" {
				return bad("Consent.extension", "the break-glass reason is empty")
			}
		}
	}
	if req.BreakGlass && req.Reason == "" {
		return bad("Consent.extension", "a break-glass (purpose ETREAT) needs a reason in extension %s", ExtBreakGlassReason)
	}
	if !req.BreakGlass && req.Reason != "" {
		return bad("Consent.extension", "a reason is only recorded for a break-glass (provision.purpose ETREAT)")
	}
	if utf8.RuneCountInString(req.Reason) > MaxReasonLen || !utf8.ValidString(req.Reason) {
		return bad("Consent.extension", "the break-glass reason is at most %d characters of valid UTF-8", MaxReasonLen)
	}
	return req, nil
}

// parseInstant reads a dateTime with seconds and zone; "" is zero.
func parseInstant(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// JSONError describes a decoding error without echoing input values.
func JSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("wrong type for %q", te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed"
}

// ConsentGrant is what a recorded consent to view lets a patient-context
// principal (a token or a viewer session bound to it) see now: its patient,
// the areas the agreements in force share (demographics included), those of
// them shared as the summary view only, and whether it is a break-glass.
type ConsentGrant struct {
	PatientID  string
	Areas      Areas
	Summary    Areas
	BreakGlass bool
}
