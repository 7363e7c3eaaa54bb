// Package access is gpgate's record-access core: the one path from a
// caller's request to a patient's GP record that every face of gpgate (the
// FHIR REST API, the Shared Record Viewer, the token endpoint's
// patient-context grants) goes through.
//
// For every data request it resolves the patient, locates the practice,
// decides by the token's scopes and the sharing agreements (before the
// fetch, never depending on whether the patient exists), fetches the record
// from the practice's source, decides again on the record (the patient's
// consent to share, the clinician's consent to view or break-glass),
// redacts what may not leave (areas, the summary view, sensitive and
// confidential entries, free text), and writes the access durably to the
// audit log before it returns anything. Every refusal is audited too, with
// the rule that decided; the caller is told only what the error code
// names.
//
// New refuses to build a Core without its guards (scopes, policy,
// redactor, auditor): protection cannot be wired off by leaving one out.
package access

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Patients finds where a patient's record is: the NHS number behind a
// patient id, and the practice that holds the record. An unknown patient is
// a PATIENT_NOT_FOUND error.
type Patients interface {
	Resolve(ctx context.Context, patientID string) (fhir.NHSNumber, error)
	PracticeOf(ctx context.Context, nhs fhir.NHSNumber) (string, error)
}

// Records fetches a record from the patient's practice system.
type Records interface {
	Record(ctx context.Context, nhs fhir.NHSNumber, areas fhir.Areas) (*fhir.Record, error)
}

// DemographicRecords is an optional fast path of Records for a request that
// returns demographics only (Patient search, a read of the Patient, its
// practice or GP): the demographics part of the record, with Sharing set to
// the consent to share of the WHOLE record, and nothing in it referring to
// the rest of the record. ok false: the source cannot vouch for that, and
// the core fetches the whole record.
//
// The core decides on that part only when the decision permits: a policy
// whose permit on part of a record is the same permit on the whole of it
// (consent.DecidePatient: the record's facts only ever widen what a
// default allows). Any refusal is decided again on the whole record, so a
// refusal reads exactly as without the fast path.
type DemographicRecords interface {
	Demographics(ctx context.Context, nhs fhir.NHSNumber) (rec *fhir.Record, ok bool, err error)
}

// Scopes decides a request by the caller's token scopes (areas permitted,
// or ACCESS_DENIED).
type Scopes interface {
	Authorize(p *fhir.Principal, req *fhir.Request) fhir.Decision
}

// Policy is the sharing decision: agreements before the fetch, consent to
// share and consent to view after it.
type Policy interface {
	Organisation(ctx context.Context, p *fhir.Principal, req *fhir.Request, practice string) (fhir.Decision, error)
	Patient(ctx context.Context, p *fhir.Principal, req *fhir.Request, rec *fhir.Record) (fhir.Decision, error)
}

// Redactor returns what of a record may leave under a decision (a new
// Record; the one given is shared and never modified) and whether anything
// in the permitted areas was withheld.
type Redactor interface {
	Redact(rec *fhir.Record, dec fhir.Decision, now time.Time) (*fhir.Record, bool)
}

// Auditor writes an entry durably; it returns only once the entry is.
type Auditor interface {
	Record(ctx context.Context, e *fhir.AuditEntry) error
}

// Consents records, reads and revokes consents to view, says what one
// grants a patient-context principal, and what the agreements offer a
// caller (for a face that shows the choices).
type Consents interface {
	RecordConsent(ctx context.Context, p *fhir.Principal, req fhir.ConsentRequest) (*fhir.Resource, error)
	ReadConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
	RevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error)
	ConsentGrant(ctx context.Context, p *fhir.Principal, consentID string) (fhir.ConsentGrant, error)
	Sharing(ctx context.Context, p *fhir.Principal, nhs fhir.NHSNumber) (fhir.Decision, bool, error)
}

// AuditLog serves the audit log to auditors.
type AuditLog interface {
	SearchAuditEvents(ctx context.Context, v url.Values, strict bool) (*fhir.Page, error)
	ReadAuditEvent(ctx context.Context, id string) (*fhir.Resource, error)
}

// Agreements is the agreements register as the admin API speaks it (the
// agreement JSON of package consent, not FHIR).
type Agreements interface {
	ListAgreements(ctx context.Context) ([]byte, error)
	GetAgreement(ctx context.Context, id string) ([]byte, error)
	AddAgreement(ctx context.Context, body []byte) ([]byte, error)
	SetAgreementStatus(ctx context.Context, id, action string) ([]byte, error)
}

// Config wires a Core. Patients, Records, Scopes, Policy, Redactor and
// Auditor are required. Consents, AuditLog and Agreements are features: a
// Core without one answers its operations NOT_IMPLEMENTED.
type Config struct {
	Patients   Patients
	Records    Records
	Scopes     Scopes
	Policy     Policy
	Redactor   Redactor
	Auditor    Auditor
	Consents   Consents
	AuditLog   AuditLog
	Agreements Agreements
	// The online administration (admin.go, adminops.go): the client
	// registry and signing keys, the audit log's verify and export, and
	// revoking any consent to view. Each is optional (NOT_IMPLEMENTED).
	ClientAdmin  ClientAdmin
	AuditAdmin   AuditAdmin
	ConsentAdmin ConsentAdmin
	// SourceBudget is the deadline for a practice system to answer
	// (default 10 s).
	SourceBudget time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Core is the record-access core. Safe for concurrent use.
type Core struct {
	cfg Config
	now func() time.Time
	log *slog.Logger
}

// ErrMissingGuard is returned by New when a required collaborator is nil.
var ErrMissingGuard = errors.New("access: a Core needs Patients, Records, Scopes, Policy, Redactor and Auditor")

// New builds a Core. It refuses a configuration without any of its guards.
func New(cfg Config) (*Core, error) {
	if cfg.Patients == nil || cfg.Records == nil || cfg.Scopes == nil || cfg.Policy == nil || cfg.Redactor == nil || cfg.Auditor == nil {
		return nil, ErrMissingGuard
	}
	if cfg.SourceBudget <= 0 {
		cfg.SourceBudget = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Core{cfg: cfg, now: cfg.Now, log: cfg.Logger}, nil
}

// open is the record pipeline shared by every data interaction: scopes,
// resolve and locate, the agreement decision, the fetch, the decision on the
// record, redaction. Refusals and failures are audited here; a grant is
// audited by the operation just before it returns, when it knows what it
// returns.
func (c *Core) open(ctx context.Context, p *fhir.Principal, req *fhir.Request) (*fhir.Record, fhir.Decision, error) {
	ctx = fhir.WithMemo(ctx) // what the decisions read once per request
	if p == nil {
		return nil, fhir.Decision{}, c.refuse(ctx, p, req, fhir.Decision{Code: fhir.CodeUnauthorized, Rule: "an access token is required"})
	}
	sd := c.cfg.Scopes.Authorize(p, req)
	if !sd.Permit {
		return nil, sd, c.refuse(ctx, p, req, sd)
	}
	// What the scopes let the caller see of this patient at all, whatever
	// this request asks: redaction keeps it, so a resource reads the same
	// (its references to what the caller may see intact) however it is
	// reached.
	all := c.cfg.Scopes.Authorize(p, &fhir.Request{Interaction: "operation", Type: "Patient", PatientID: req.PatientID, NHS: req.NHS, Areas: fhir.AllAreas})
	visible := sd.Areas
	if all.Permit {
		visible |= all.Areas
	}
	// An unknown patient is not refused yet: the agreement decision runs
	// first, with no practice, so a caller gets the same refusal, after the
	// same work, whether or not the patient exists.
	nhs, practice, locErr := c.locate(ctx, req)
	req.NHS, req.Practice = nhs, practice
	asked := *req
	asked.Areas = fhir.AllAreas
	od, err := c.cfg.Policy.Organisation(ctx, p, &asked, practice)
	if err != nil {
		return nil, od, c.fail(ctx, p, req, err)
	}
	if !od.Permit {
		return nil, od, c.refuse(ctx, p, req, od)
	}
	if od.Areas&sd.Areas == 0 {
		return nil, od, c.refuse(ctx, p, req, fhir.Decision{Code: fhir.CodeNoOrganisationConsent, Rule: "area-not-shared"})
	}
	if locErr != nil {
		return nil, od, c.fail(ctx, p, req, locErr)
	}
	// The fetch carries the caller: a live source names the requesting
	// clinician and organisation to the practice (GP Connect's JWT).
	fctx, cancel := context.WithTimeout(fhir.WithPrincipal(ctx, p), c.cfg.SourceBudget)
	defer cancel()
	// The decision on the record reads all of it (the patient's coded
	// consent to share may sit in any area); redaction then keeps what the
	// decision permits. A demographics-only request may decide on the
	// demographics part when the source vouches for it (DemographicRecords).
	var rec *fhir.Record
	partial := false
	if dr, ok := c.cfg.Records.(DemographicRecords); ok && req.Areas == fhir.AreaDemographics {
		rec, partial, err = dr.Demographics(fctx, nhs)
	}
	if err == nil && !partial {
		rec, err = c.cfg.Records.Record(fctx, nhs, fhir.AllAreas)
	}
	if err != nil {
		if fctx.Err() != nil && ctx.Err() == nil {
			err = fhir.Errorf(fhir.CodeTimeout, "the practice system did not answer in time")
		}
		return nil, od, c.fail(ctx, p, req, err)
	}
	if req.PatientID == "" {
		req.PatientID = rec.PatientID
	}
	asked.PatientID = req.PatientID
	pd, err := c.patientDecision(ctx, p, &asked, visible&od.Areas, sd.Areas&od.Areas, rec)
	if partial && (err != nil || !pd.Permit) {
		// Refusals are decided on the whole record.
		if rec, err = c.cfg.Records.Record(fctx, nhs, fhir.AllAreas); err != nil {
			if fctx.Err() != nil && ctx.Err() == nil {
				err = fhir.Errorf(fhir.CodeTimeout, "the practice system did not answer in time")
			}
			return nil, od, c.fail(ctx, p, req, err)
		}
		pd, err = c.patientDecision(ctx, p, &asked, visible&od.Areas, sd.Areas&od.Areas, rec)
	}
	if err != nil {
		return nil, pd, c.fail(ctx, p, req, err)
	}
	if !pd.Permit {
		return nil, pd, c.refuse(ctx, p, req, pd)
	}
	dec := fhir.Decision{Permit: true, Rule: pd.Rule, BreakGlass: pd.BreakGlass, Areas: visible & od.Areas & pd.Areas}
	dec.Summary = (od.Summary | pd.Summary) & dec.Areas
	// What this request may return: its own areas within the decision.
	req.Areas = sd.Areas & dec.Areas
	out, _ := c.cfg.Redactor.Redact(rec, dec, c.now())
	return out, dec, nil
}

// patientDecision asks for the patient's consent, first for everything
// the caller could see (wide); when that is refused, for what this request
// asks (narrow: a system token without a consent to view may still
// identify the patient).
func (c *Core) patientDecision(ctx context.Context, p *fhir.Principal, asked *fhir.Request, wide, narrow fhir.Areas, rec *fhir.Record) (fhir.Decision, error) {
	asked.Areas = wide
	pd, err := c.cfg.Policy.Patient(ctx, p, asked, rec)
	if err == nil && !pd.Permit && wide != narrow {
		asked.Areas = narrow
		pd, err = c.cfg.Policy.Patient(ctx, p, asked, rec)
	}
	return pd, err
}

// locate resolves the request's patient to an NHS number and practice.
func (c *Core) locate(ctx context.Context, req *fhir.Request) (fhir.NHSNumber, string, error) {
	nhs := req.NHS
	if nhs == "" {
		n, err := c.cfg.Patients.Resolve(ctx, req.PatientID)
		if err != nil {
			return "", "", err
		}
		nhs = n
	}
	practice, err := c.cfg.Patients.PracticeOf(ctx, nhs)
	if err != nil {
		return nhs, "", err
	}
	return nhs, practice, nil
}

// refuse audits a policy refusal with the rule that decided, and returns
// the coded error to render. The audit keeps the exact rule; the caller is
// told only what is safe (publicReason).
func (c *Core) refuse(ctx context.Context, p *fhir.Principal, req *fhir.Request, dec fhir.Decision) error {
	code := dec.Code
	if code == "" {
		code = fhir.CodeAccessDenied
	}
	e := c.entry(ctx, p, req, dec, 0)
	e.Outcome, e.Code = fhir.OutcomeDenied, code
	if err := c.write(ctx, e); err != nil {
		return err
	}
	return fhir.Errorf(code, "%s", publicReason(code, dec.Rule))
}

// fail audits a failure (an error from a collaborator) and returns the
// error to render. A patient that cannot be found is refused as a caller
// without an agreement is: which one it was is kept in the audit only.
func (c *Core) fail(ctx context.Context, p *fhir.Principal, req *fhir.Request, err error) error {
	fe := fhir.AsError(err)
	e := c.entry(ctx, p, req, fhir.Decision{Rule: fe.Diagnostics}, 0)
	e.Outcome, e.Code = fhir.OutcomeDenied, fe.Code
	if fe.Code == fhir.CodeInternal || fe.Code == fhir.CodeTimeout {
		e.Outcome, e.Rule = fhir.OutcomeError, string(fe.Code)
	}
	if werr := c.write(ctx, e); werr != nil {
		return werr
	}
	switch fe.Code {
	case fhir.CodePatientNotFound:
		return fhir.Errorf(fhir.CodeNoOrganisationConsent, "%s", publicReason(fhir.CodeNoOrganisationConsent, ""))
	case fhir.CodeNoOrganisationConsent:
		return fhir.Errorf(fe.Code, "%s", publicReason(fe.Code, fe.Diagnostics))
	}
	return err
}

// grant audits a granted access of count resources; no durable audit, no
// data.
func (c *Core) grant(ctx context.Context, p *fhir.Principal, req *fhir.Request, dec fhir.Decision, count int) error {
	return c.write(ctx, c.entry(ctx, p, req, dec, count))
}

func (c *Core) write(ctx context.Context, e *fhir.AuditEntry) error {
	if err := c.cfg.Auditor.Record(ctx, e); err != nil {
		return fhir.Internal(err)
	}
	return nil
}

// publicReason is what a refusal says to the caller. Every agreement rule
// reads alike: which one refused (suspended, expired, wrong purpose...)
// would tell a caller that the patient exists at a practice it has an
// agreement with.
func publicReason(code fhir.Code, rule string) string {
	switch code {
	case fhir.CodeNoOrganisationConsent:
		return "no active sharing agreement between the patient's practice and your organisation covers this request (area, purpose, dates, break-glass)"
	case fhir.CodeNoPatientConsent:
		if rule == "" {
			return "the patient's consent does not permit this request"
		}
	}
	return rule
}

// entry describes one access for the audit log.
func (c *Core) entry(ctx context.Context, p *fhir.Principal, req *fhir.Request, dec fhir.Decision, count int) *fhir.AuditEntry {
	e := &fhir.AuditEntry{
		Time:          c.now(),
		RequestID:     fhir.RequestIDFrom(ctx),
		CorrelationID: fhir.CorrelationIDFrom(ctx),
		SourceAddress: fhir.ClientAddrFrom(ctx),
		Interaction:   req.Interaction,
		Outcome:       fhir.OutcomeGranted,
		Rule:          dec.Rule,
		PatientID:     req.PatientID,
		NHS:           req.NHS,
		Practice:      req.Practice,
		Types:         []string{req.Type},
		Areas:         dec.Areas & req.Areas,
		Count:         count,
		BreakGlass:    dec.BreakGlass,
	}
	if e.PatientID == "" && e.NHS != "" {
		e.PatientID = fhir.PatientID(e.NHS)
	}
	switch {
	case req.Interaction == "search-type" || req.Operation != "":
		e.Action = "PatientQuery"
	default:
		e.Action = "PatientRead"
	}
	if req.Query != nil {
		e.Query = auditQuery(req.Query)
	}
	if p != nil {
		e.ClientID, e.ConsumerODS, e.Practitioner, e.Role = p.ClientID, p.ConsumerODS, p.Practitioner, p.Role
		e.PurposeOfUse, e.TokenID = p.PurposeOfUse, p.TokenID
		e.BreakGlass = e.BreakGlass || p.BreakGlass
	}
	return e
}

// auditQuery keeps the names of the parameters used, never their values.
func auditQuery(q *fhir.Query) string {
	v := url.Values{}
	for _, f := range q.Filters {
		v.Add(f.Param, "")
	}
	return v.Encode()
}
