package consent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gpgate/gpgate/fhir"
)

// MaxConsentPeriod is the longest a consent to view may last.
const MaxConsentPeriod = 24 * time.Hour

// ExtBreakGlassReason is the extension on a POSTed Consent that carries the
// break-glass reason (valueString, mandatory for a break-glass, at most
// MaxReasonLen characters). gpgate strips it: the stored and returned
// Consent never holds it; the reason goes to the audit only
// (fhir.AuditEntry.Reason).
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
	NHS          fhir.NHSNumber // optional when PatientID is given
	Clinician    string         // SDS user id
	Organisation string         // consumer ODS; must be the caller's ("" = caller's)
	Period       Period         // zero start = now; zero end = start + 24 h
	BreakGlass   bool
	Reason       string // break-glass reason: audit only, never stored
}

// ViewConsent is a recorded consent to view, as stored.
type ViewConsent struct {
	ID           string         `json:"id"`
	PatientID    string         `json:"patientId"`
	NHS          fhir.NHSNumber `json:"nhs,omitempty"`
	Clinician    string         `json:"clinician"`
	Organisation string         `json:"organisation"`
	ClientID     string         `json:"clientId,omitempty"`
	Start        time.Time      `json:"start"`
	End          time.Time      `json:"end"`
	BreakGlass   bool           `json:"breakGlass,omitempty"`
	Status       string         `json:"status"` // active | inactive
	Recorded     time.Time      `json:"recorded"`
	Resource     []byte         `json:"resource"` // canonical UK Core Consent JSON
}

// Live reports whether the consent is active and now is in its period.
func (c *ViewConsent) Live(now time.Time) bool {
	return c != nil && c.Status == "active" && !now.Before(c.Start) && now.Before(c.End)
}

// Consents records consents to view and narrows patient-context tokens.
type Consents struct {
	Store      ConsentStore
	Agreements AgreementStore
	// PracticeOf names the practice of a patient (the patient index). An
	// unknown patient must return an error; it is answered exactly like a
	// practice without an agreement, so nothing reveals existence.
	PracticeOf func(ctx context.Context, nhs fhir.NHSNumber) (string, error)
	// ResolveNHS maps a patient id to its NHS number when the request did
	// not carry one (optional).
	ResolveNHS func(ctx context.Context, patientID string) (fhir.NHSNumber, error)
	Now        func() time.Time
	Logger     *slog.Logger
}

func (s *Consents) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// organisationAllows runs the agreement rules for the consent's caller and
// patient: the areas the agreements share, or a NO_ORGANISATION_CONSENT error.
func (s *Consents) organisationAllows(ctx context.Context, consumer string, nhs fhir.NHSNumber, breakGlass bool, now time.Time) (fhir.Areas, error) {
	if s.Agreements == nil || s.PracticeOf == nil {
		return 0, fhir.Internal(errors.New("consent: Consents needs Agreements and PracticeOf"))
	}
	practice, err := s.PracticeOf(ctx, nhs)
	if err != nil || practice == "" {
		return 0, fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", RuleNoAgreement)
	}
	ags, err := s.Agreements.ForProvider(ctx, practice)
	if err != nil {
		return 0, err
	}
	p := &fhir.Principal{ConsumerODS: consumer, BreakGlass: breakGlass}
	d := DecideOrganisation(Input{Principal: p, Request: &fhir.Request{Areas: fhir.AllAreas}, Practice: practice, Agreements: ags, Now: now})
	if !d.Permit {
		return 0, fhir.Errorf(d.Code, "%s", d.Rule)
	}
	return d.Areas, nil
}

// RecordConsent records a consent to view for the caller p (a system token
// of the consumer organisation) and returns the UK Core Consent resource.
// The organisation must be the caller's; the period at most 24 h and not in
// the past; a break-glass needs a reason and an agreement allowing
// break-glass. An agreement must cover the caller and the patient's practice
// (else NO_ORGANISATION_CONSENT, whether or not the patient exists).
// req.Reason is not stored: the caller puts it in the audit entry.
func (s *Consents) RecordConsent(ctx context.Context, p *fhir.Principal, req ConsentRequest) (*fhir.Resource, error) {
	if p == nil || p.ConsumerODS == "" {
		return nil, fhir.Errorf(fhir.CodeAccessDenied, "a consumer organisation is required")
	}
	now := s.now().UTC().Truncate(time.Second)
	if req.Organisation == "" {
		req.Organisation = p.ConsumerODS
	}
	if req.Organisation != p.ConsumerODS {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the consent's organization must be the caller's organisation").At("Consent.organization")
	}
	if req.Clinician == "" {
		req.Clinician = p.Practitioner
	}
	if err := validateRequest(&req, now); err != nil {
		return nil, err
	}
	if req.NHS == "" && s.ResolveNHS != nil {
		n, err := s.ResolveNHS(ctx, req.PatientID)
		if err != nil {
			return nil, fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", RuleNoAgreement)
		}
		req.NHS = n
	}
	if req.NHS != "" && fhir.PatientID(req.NHS) != req.PatientID {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "patient reference and NHS number name different patients").At("Consent.patient")
	}
	if _, err := s.organisationAllows(ctx, p.ConsumerODS, req.NHS, req.BreakGlass, now); err != nil {
		return nil, err
	}
	c := &ViewConsent{ID: newID(), PatientID: req.PatientID, NHS: req.NHS, Clinician: req.Clinician,
		Organisation: req.Organisation, ClientID: p.ClientID, Start: req.Period.Start, End: req.Period.End,
		BreakGlass: req.BreakGlass, Status: "active", Recorded: now}
	res, err := consentResource(c)
	if err != nil {
		return nil, fhir.Internal(err)
	}
	c.Resource = res.JSON
	if err := s.Store.PutConsent(ctx, c); err != nil {
		return nil, err
	}
	if s.Logger != nil {
		s.Logger.Info("consent: consent to view recorded", "consent", c.ID, "consumer", c.Organisation, "break_glass", c.BreakGlass)
	}
	return res, nil
}

func validateRequest(req *ConsentRequest, now time.Time) error {
	bad := func(expr, format string, args ...any) error {
		return fhir.Errorf(fhir.CodeInvalidParameter, format, args...).At(expr)
	}
	if req.PatientID == "" && req.NHS != "" {
		req.PatientID = fhir.PatientID(req.NHS)
	}
	if !fhir.ValidID(req.PatientID) {
		return bad("Consent.patient", "the consent needs the patient (reference or NHS number)")
	}
	if req.Clinician == "" || len(req.Clinician) > 64 || !printable(req.Clinician) {
		return bad("Consent.performer", "the consent needs the clinician's SDS user id")
	}
	if req.Period.Start.IsZero() {
		req.Period.Start = now
	}
	if req.Period.End.IsZero() {
		req.Period.End = req.Period.Start.Add(MaxConsentPeriod)
	}
	req.Period.Start, req.Period.End = req.Period.Start.UTC(), req.Period.End.UTC()
	switch {
	case !req.Period.End.After(req.Period.Start):
		return bad("Consent.provision.period", "the period must end after it starts")
	case req.Period.End.Sub(req.Period.Start) > MaxConsentPeriod:
		return bad("Consent.provision.period", "a consent to view lasts at most 24 hours")
	case !req.Period.End.After(now):
		return bad("Consent.provision.period", "the period has already ended")
	case req.Period.Start.After(now.Add(time.Hour)):
		return bad("Consent.provision.period", "the period must start within the hour")
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.BreakGlass {
		if req.Reason == "" {
			return bad("Consent.extension", "a break-glass needs a reason (extension %s)", ExtBreakGlassReason)
		}
	} else if req.Reason != "" {
		return bad("Consent.extension", "a reason is only recorded for a break-glass (provision.purpose ETREAT)")
	}
	if utf8.RuneCountInString(req.Reason) > MaxReasonLen || !utf8.ValidString(req.Reason) {
		return bad("Consent.extension", "the break-glass reason is at most %d characters of valid UTF-8", MaxReasonLen)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// GetConsent returns a recorded consent to view.
func (s *Consents) GetConsent(ctx context.Context, id string) (*ViewConsent, error) {
	if !fhir.ValidID(id) {
		return nil, notFound("Consent", id)
	}
	return s.Store.GetConsent(ctx, id)
}

// NarrowAreas checks a consent_reference for a patient-context token: the
// consent exists, is live, was recorded by consumerODS, and the agreements
// between the patient's practice and consumerODS (re-read now) are in force
// and allow break-glass where the consent is one. It returns the patient the
// token is bound to, the areas it may cover (map them with ScopesForAreas)
// and whether it is a break-glass. Errors are NO_PATIENT_CONSENT or
// NO_ORGANISATION_CONSENT with the rule id as diagnostics.
func (s *Consents) NarrowAreas(ctx context.Context, consumerODS, consentID string, now time.Time) (string, fhir.Areas, bool, error) {
	c, err := s.GetConsent(ctx, consentID)
	if err != nil {
		if fhir.AsError(err).Code == fhir.CodeReferenceNotFound {
			return "", 0, false, fhir.Errorf(fhir.CodeNoPatientConsent, "%s", RuleNoConsentToView)
		}
		return "", 0, false, err
	}
	if c.Organisation != consumerODS {
		return "", 0, false, fhir.Errorf(fhir.CodeNoPatientConsent, "%s", RuleConsentOtherOrg)
	}
	if !c.Live(now) {
		return "", 0, false, fhir.Errorf(fhir.CodeNoPatientConsent, "%s", RuleConsentExpired)
	}
	nhs := c.NHS
	if nhs == "" && s.ResolveNHS != nil {
		if nhs, err = s.ResolveNHS(ctx, c.PatientID); err != nil {
			return "", 0, false, fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", RuleNoAgreement)
		}
	}
	areas, err := s.organisationAllows(ctx, consumerODS, nhs, c.BreakGlass, now)
	if err != nil {
		return "", 0, false, err
	}
	return c.PatientID, areas, c.BreakGlass, nil
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

// consentResource renders the stored consent as a UK Core Consent,
// validated and canonicalised by fhir.Canonicalize.
func consentResource(c *ViewConsent) (*fhir.Resource, error) {
	org := refWire{Type: "Organization", Identifier: &identWire{System: fhir.ODSSystem, Value: c.Organisation}}
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
		Meta:         &metaWire{Profile: []string{fhir.ProfileConsent}},
		Status:       status,
		Scope:        &conceptWire{Coding: []codingWire{{System: "http://terminology.hl7.org/CodeSystem/consentscope", Code: "patient-privacy", Display: "Privacy Consent"}}},
		Category:     []conceptWire{{Coding: []codingWire{{System: fhir.LOINC, Code: "59284-0", Display: "Patient Consent"}}}},
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
	return fhir.Canonicalize(raw)
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
		return req, fhir.Errorf(fhir.CodeInvalidResource, "Consent body too large")
	}
	var w consentWire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return req, fhir.Errorf(fhir.CodeInvalidResource, "the body is not a JSON Consent: %s", jsonErr(err))
	}
	if dec.More() {
		return req, fhir.Errorf(fhir.CodeInvalidResource, "trailing data after the Consent")
	}
	if w.ResourceType != "Consent" {
		return req, fhir.Errorf(fhir.CodeInvalidResource, "the body must be a Consent resource")
	}
	bad := func(expr, format string, args ...any) (ConsentRequest, error) {
		return ConsentRequest{}, fhir.Errorf(fhir.CodeInvalidParameter, format, args...).At(expr)
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
		if !fhir.ValidID(id) {
			return bad("Consent.patient", "patient reference must be Patient/{id}")
		}
		req.PatientID = id
	} else if w.Patient.Reference != "" {
		return bad("Consent.patient", "patient reference must be Patient/{id}")
	}
	if w.Patient.Identifier != nil {
		if w.Patient.Identifier.System != fhir.NHSNumberSystem {
			return ConsentRequest{}, fhir.Errorf(fhir.CodeInvalidIdentifier, "patient identifier system must be %s", fhir.NHSNumberSystem).At("Consent.patient.identifier.system")
		}
		n, err := fhir.ParseNHSNumber(w.Patient.Identifier.Value)
		if err != nil {
			return ConsentRequest{}, err.(*fhir.Error).At("Consent.patient.identifier.value")
		}
		req.NHS = n
		if req.PatientID != "" && req.PatientID != fhir.PatientID(n) {
			return bad("Consent.patient", "patient reference and NHS number name different patients")
		}
		req.PatientID = fhir.PatientID(n)
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
		if o.Identifier == nil || o.Identifier.System != fhir.ODSSystem || !ValidODS(o.Identifier.Value) {
			return bad("Consent.organization", "organization must be identified by its ODS code (%s)", fhir.ODSSystem)
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
