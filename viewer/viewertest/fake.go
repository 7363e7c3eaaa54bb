// Package viewertest is a fake record-access core for the viewer's tests
// and its demo server: agreements, dissent, consent to view bound to the
// clinician, patient-context principals and summary filtering, with a call
// log. It decides the way fhir/access does, in miniature; it is not a
// policy anyone should deploy.
package viewertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/viewer"
)

// Agreement shares a practice's records with a consumer organisation.
type Agreement struct {
	Consumer   string // ODS
	Practice   string // ODS
	Areas      fhir.Areas
	BreakGlass bool
}

// Call is one call the fake answered, for tests to inspect.
type Call struct {
	Method    string
	Principal fhir.Principal
	PatientID string
	Consent   viewer.ConsentRequest
	Err       fhir.Code
}

// Core is the fake. Fill Records and Agreements before use.
type Core struct {
	Records    []*fhir.Record
	Agreements []Agreement
	Now        func() time.Time
	// Leak returns every resource of the record whatever the decision
	// (a broken core), to prove the viewer filters by the permitted areas
	// on its own.
	Leak bool
	// Fail makes the named method fail with the error.
	Fail map[string]error

	mu       sync.Mutex
	consents map[string]consent
	calls    []Call
}

type consent struct {
	patientID, consumer, clinician, client string
	breakGlass, revoked                    bool
}

var _ viewer.Core = (*Core)(nil)

// Calls returns a copy of the call log.
func (c *Core) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// Revoke ends a consent (as its recording client would).
func (c *Core) Revoke(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.consents[id]; ok {
		x.revoked = true
		c.consents[id] = x
	}
}

// SetDissent records (or clears) a patient's dissent from sharing.
func (c *Core) SetDissent(patientID string, dissent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.Records {
		if r.PatientID == patientID {
			r.Sharing = fhir.SharingConsented
			if dissent {
				r.Sharing = fhir.SharingDissent
			}
		}
	}
}

func (c *Core) log(method string, p *fhir.Principal, patientID string, req viewer.ConsentRequest, err error) {
	cl := Call{Method: method, PatientID: patientID, Consent: req}
	if p != nil {
		cl.Principal = *p
		cl.Principal.Scopes = slices.Clone(p.Scopes)
	}
	if err != nil {
		cl.Err = fhir.AsError(err).Code
	}
	c.calls = append(c.calls, cl)
}

func (c *Core) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Core) failure(method string) error {
	if c.Fail != nil {
		return c.Fail[method]
	}
	return nil
}

func (c *Core) byNHS(n fhir.NHSNumber) *fhir.Record {
	for _, r := range c.Records {
		if r.NHS == n {
			return r
		}
	}
	return nil
}

func (c *Core) byID(id string) *fhir.Record {
	for _, r := range c.Records {
		if r.PatientID == id {
			return r
		}
	}
	return nil
}

func (c *Core) agreement(consumer, practice string) *Agreement {
	for i, a := range c.Agreements {
		if a.Consumer == consumer && a.Practice == practice {
			return &c.Agreements[i]
		}
	}
	return nil
}

var errNoOrg = fhir.Errorf(fhir.CodeNoOrganisationConsent, "no sharing agreement covers this request")

func checkPrincipal(p *fhir.Principal) error {
	if p == nil || p.ClientID == "" || p.ConsumerODS == "" || p.Practitioner == "" || p.PurposeOfUse == "" {
		return fhir.Errorf(fhir.CodeUnauthorized, "incomplete principal")
	}
	return nil
}

func hasScope(p *fhir.Principal, s string) bool { return slices.Contains(p.Scopes, s) }

// locate: the organisation-level decision, the same answer whether or not
// the patient exists.
func (c *Core) locate(p *fhir.Principal, rec *fhir.Record) (*Agreement, error) {
	if rec == nil {
		return nil, errNoOrg
	}
	a := c.agreement(p.ConsumerODS, rec.Practice)
	if a == nil {
		return nil, errNoOrg
	}
	return a, nil
}

func (c *Core) FindPatient(ctx context.Context, p *fhir.Principal, nhs fhir.NHSNumber) (d *viewer.Demographics, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.log("FindPatient", p, "", viewer.ConsentRequest{}, err) }()
	if err := c.failure("FindPatient"); err != nil {
		return nil, err
	}
	if err := checkPrincipal(p); err != nil {
		return nil, err
	}
	if !hasScope(p, "system/Patient.rs") {
		return nil, fhir.Errorf(fhir.CodeAccessDenied, "scope")
	}
	if !fhir.ValidNHSNumber(string(nhs)) {
		return nil, fhir.Errorf(fhir.CodeInvalidNHSNumber, "invalid")
	}
	rec := c.byNHS(nhs)
	if _, err := c.locate(p, rec); err != nil {
		return nil, err
	}
	if rec.Sharing == fhir.SharingDissent {
		return nil, fhir.Errorf(fhir.CodeNoPatientConsent, "patient-dissent")
	}
	out := &viewer.Demographics{}
	for _, r := range rec.Resources {
		switch r.Type {
		case "Patient":
			out.Patient = r
		case "Organization":
			if out.Practice == nil {
				out.Practice = r
			}
		case "Practitioner":
			if out.GP == nil {
				out.GP = r
			}
		}
	}
	return out, nil
}

func (c *Core) SharingOptions(ctx context.Context, p *fhir.Principal, patientID string) (s *viewer.Sharing, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.log("SharingOptions", p, patientID, viewer.ConsentRequest{}, err) }()
	if err := c.failure("SharingOptions"); err != nil {
		return nil, err
	}
	if err := checkPrincipal(p); err != nil {
		return nil, err
	}
	a, err := c.locate(p, c.byID(patientID))
	if err != nil {
		return nil, err
	}
	return &viewer.Sharing{Areas: a.Areas, BreakGlass: a.BreakGlass}, nil
}

func (c *Core) RecordConsent(ctx context.Context, p *fhir.Principal, req viewer.ConsentRequest) (id string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	logged := req
	logged.Reason = "" // the fake keeps no reason either
	defer func() { c.log("RecordConsent", p, req.PatientID, logged, err) }()
	if err := c.failure("RecordConsent"); err != nil {
		return "", err
	}
	if err := checkPrincipal(p); err != nil {
		return "", err
	}
	if !hasScope(p, "system/Consent.c") {
		return "", fhir.Errorf(fhir.CodeAccessDenied, "scope")
	}
	rec := c.byID(req.PatientID)
	a, err := c.locate(p, rec)
	if err != nil {
		return "", err
	}
	if rec.NHS != req.NHS || req.Clinician != p.Practitioner {
		return "", fhir.Errorf(fhir.CodeInvalidResource, "consent does not match")
	}
	if rec.Sharing == fhir.SharingDissent {
		return "", fhir.Errorf(fhir.CodeNoPatientConsent, "patient-dissent")
	}
	if req.BreakGlass {
		if !a.BreakGlass {
			return "", fhir.Errorf(fhir.CodeAccessDenied, "break-glass not allowed")
		}
		if strings.TrimSpace(req.Reason) == "" {
			return "", fhir.Errorf(fhir.CodeInvalidParameter, "break-glass needs a reason")
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	id = hex.EncodeToString(b[:])
	if c.consents == nil {
		c.consents = map[string]consent{}
	}
	c.consents[id] = consent{patientID: req.PatientID, consumer: p.ConsumerODS, clinician: p.Practitioner, client: p.ClientID, breakGlass: req.BreakGlass}
	return id, nil
}

// RevokeConsent ends a consent to view; only the client and organisation
// that recorded it may (anyone else: NO_RECORD_FOUND, as for no consent).
func (c *Core) RevokeConsent(ctx context.Context, p *fhir.Principal, consentID string) (err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.log("RevokeConsent", p, "", viewer.ConsentRequest{}, err) }()
	if err := c.failure("RevokeConsent"); err != nil {
		return err
	}
	if err := checkPrincipal(p); err != nil {
		return err
	}
	if !hasScope(p, "system/Consent.d") {
		return fhir.Errorf(fhir.CodeAccessDenied, "scope")
	}
	x, ok := c.consents[consentID]
	if !ok || x.consumer != p.ConsumerODS || x.client != p.ClientID {
		return fhir.Errorf(fhir.CodeNoRecordFound, "no Consent with that id")
	}
	x.revoked = true
	c.consents[consentID] = x
	return nil
}

func (c *Core) PatientContext(ctx context.Context, p *fhir.Principal, consentID string) (pp *fhir.Principal, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.log("PatientContext", p, "", viewer.ConsentRequest{}, err) }()
	if err := c.failure("PatientContext"); err != nil {
		return nil, err
	}
	if err := checkPrincipal(p); err != nil {
		return nil, err
	}
	x, ok := c.consents[consentID]
	if !ok || x.revoked || x.consumer != p.ConsumerODS || x.clinician != p.Practitioner || x.client != p.ClientID {
		return nil, fhir.Errorf(fhir.CodeNoPatientConsent, "no consent to view")
	}
	rec := c.byID(x.patientID)
	a, err := c.locate(p, rec)
	if err != nil {
		return nil, err
	}
	out := *p
	out.PatientID, out.ConsentRef, out.BreakGlass = x.patientID, consentID, x.breakGlass
	out.Scopes = fhir.AreaScopes(a.Areas)
	if x.breakGlass {
		out.PurposeOfUse = "BTG"
	}
	return &out, nil
}

func (c *Core) Everything(ctx context.Context, p *fhir.Principal, patientID string) (res *viewer.Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.log("Everything", p, patientID, viewer.ConsentRequest{}, err) }()
	if err := c.failure("Everything"); err != nil {
		return nil, err
	}
	if err := checkPrincipal(p); err != nil {
		return nil, err
	}
	x, ok := c.consents[p.ConsentRef]
	if p.PatientID != patientID || !ok || x.revoked || x.patientID != patientID || x.clinician != p.Practitioner {
		return nil, fhir.Errorf(fhir.CodeNoPatientConsent, "no consent to view")
	}
	rec := c.byID(patientID)
	a, err := c.locate(p, rec)
	if err != nil {
		return nil, err
	}
	if rec.Sharing == fhir.SharingDissent {
		return nil, fhir.Errorf(fhir.CodeNoPatientConsent, "patient-dissent")
	}
	res = &viewer.Result{Areas: a.Areas, Warnings: slices.Clone(rec.Warnings)}
	withheld := false
	now := c.now()
	for _, r := range rec.Resources {
		if r.Ix.Confidential {
			withheld = true
			if !c.Leak {
				continue
			}
		}
		if c.Leak || r.Ix.Area == fhir.AreaDemographics || a.Areas.Has(r.Ix.Area) ||
			(a.Areas&fhir.AreaSummary != 0 && fhir.SummaryAreas.Has(r.Ix.Area) && summary(r, now)) {
			res.Resources = append(res.Resources, r)
		}
	}
	if withheld {
		res.Warnings = append(res.Warnings, fhir.Issue{Severity: "warning", Code: fhir.WarnConfidentialItems})
	}
	return res, nil
}

// summary is the fake's own summary filter (written apart from the
// viewer's, so a test can catch the viewer's going wrong).
func summary(r *fhir.Resource, now time.Time) bool {
	switch r.Type {
	case "Condition":
		return r.Ix.Area == fhir.AreaProblems && (r.Ix.ClinicalStatus == "active" || r.Ix.ClinicalStatus == "recurrence" || r.Ix.ClinicalStatus == "relapse")
	case "MedicationStatement":
		return r.Ix.Status == "active"
	case "Medication":
		return true
	case "MedicationRequest":
		return r.Ix.Intent == "plan" && r.Ix.Status == "active"
	case "AllergyIntolerance":
		return true
	case "Observation", "DiagnosticReport", "Specimen":
		return r.Ix.Area == fhir.AreaInvestigations && r.Ix.Start.After(now.AddDate(-1, 0, 0))
	}
	return false
}
