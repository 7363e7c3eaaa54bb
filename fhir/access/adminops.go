package access

import (
	"context"
	"io"
	"net/url"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// The online administration: the client registry, gpgate's signing keys,
// the audit log's verification and export, and an administrator's revoke
// of any consent to view. Each call is authorised by the token's scopes —
// system scopes naming the administrative resource literally (Client,
// SigningKey, AuditEvent, Agreement; no wildcard reaches them) — and
// audited, granted or refused, before anything is answered.

// ClientAdmin is the client registry and the signing keys as the admin API
// speaks them (JSON; consent/smart.Admin).
type ClientAdmin interface {
	ListClients(ctx context.Context) ([]byte, error)
	GetClient(ctx context.Context, id string) ([]byte, error)
	AddClient(ctx context.Context, body []byte) ([]byte, error)
	// SetClient applies disable | enable | rotate-key (body: the new JWKS).
	SetClient(ctx context.Context, id, action string, body []byte) ([]byte, error)
	RotateSigningKey(ctx context.Context, body []byte) ([]byte, error)
}

// AuditAdmin verifies and exports the audit log while it is written.
type AuditAdmin interface {
	// VerifyAudit walks the whole log against its anchors and answers the
	// report as JSON ({"ok":false,...} when it does not verify: that is
	// an answer, not an error).
	VerifyAudit(ctx context.Context) ([]byte, error)
	// ExportAudit writes the AuditEvents recorded at or after since as
	// NDJSON, oldest first, and says how many.
	ExportAudit(ctx context.Context, w io.Writer, since time.Time) (int, error)
}

// ConsentAdmin revokes any consent to view, whoever recorded it.
type ConsentAdmin interface {
	AdminRevokeConsent(ctx context.Context, id string) (*fhir.Resource, error)
}

// adminQuery is what an admin call's audit entry keeps of its target.
func adminQuery(id, action string) string {
	v := url.Values{}
	if id != "" {
		v.Set("id", id)
	}
	if action != "" {
		v.Set("action", action)
	}
	return v.Encode()
}

// Clients runs an admin call on the client registry (system scopes naming
// Client): interaction search-type (list), read (id), create (body: the
// client JSON) or update (id; action disable | enable | rotate-key, whose
// body is the new public JWK Set).
func (c *Core) Clients(ctx context.Context, p *fhir.Principal, interaction, id, action string, body []byte) ([]byte, error) {
	if id != "" && !validClientID(id) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid client id").At("id")
	}
	req := &fhir.Request{Interaction: interaction, Type: "Client", ID: id}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.ClientAdmin == nil {
		return nil, notImplemented("the clients admin API")
	}
	var out []byte
	var err error
	switch interaction {
	case "search-type":
		out, err = c.cfg.ClientAdmin.ListClients(ctx)
	case "read":
		out, err = c.cfg.ClientAdmin.GetClient(ctx, id)
	case "create":
		out, err = c.cfg.ClientAdmin.AddClient(ctx, body)
	case "update":
		out, err = c.cfg.ClientAdmin.SetClient(ctx, id, action, body)
	default:
		return nil, fhir.Errorf(fhir.CodeNotImplemented, "clients: %s is not supported", safe(interaction))
	}
	return c.adminAnswer(ctx, p, req, id, action, out, err)
}

// RotateSigningKey makes a new token-signing key active (system/SigningKey.u);
// tokens signed by the previous key verify until they expire.
func (c *Core) RotateSigningKey(ctx context.Context, p *fhir.Principal, body []byte) ([]byte, error) {
	req := &fhir.Request{Interaction: "update", Type: "SigningKey"}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.ClientAdmin == nil {
		return nil, notImplemented("signing-key rotation")
	}
	out, err := c.cfg.ClientAdmin.RotateSigningKey(ctx, body)
	return c.adminAnswer(ctx, p, req, "", "rotate", out, err)
}

func (c *Core) adminAnswer(ctx context.Context, p *fhir.Principal, req *fhir.Request, id, action string, out []byte, err error) ([]byte, error) {
	if aerr := c.outcome(ctx, p, req, "admin", err, 0, func(e *fhir.AuditEntry) {
		if err == nil {
			e.Rule = "admin"
		}
		e.Query = adminQuery(id, action)
	}); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// auditAdmin authorises an audit-log administration call: an auditor's
// system token (AuditEvent read scopes); a patient-context token never
// reaches the whole log.
func (c *Core) auditAdmin(ctx context.Context, p *fhir.Principal, req *fhir.Request) error {
	if p != nil && p.PatientID != "" {
		return c.refuse(ctx, p, req, fhir.Decision{Code: fhir.CodeAccessDenied, Rule: "the whole audit log needs a system token"})
	}
	if err := c.authorize(ctx, p, req); err != nil {
		return err
	}
	if c.cfg.AuditAdmin == nil {
		return notImplemented("audit log administration")
	}
	return nil
}

// VerifyAudit verifies the whole audit log while the server writes it
// (system/AuditEvent.rs) and answers the report.
func (c *Core) VerifyAudit(ctx context.Context, p *fhir.Principal) ([]byte, error) {
	req := &fhir.Request{Interaction: "search-type", Type: "AuditEvent", Operation: "verify"}
	if err := c.auditAdmin(ctx, p, req); err != nil {
		return nil, err
	}
	out, err := c.cfg.AuditAdmin.VerifyAudit(ctx)
	return c.adminAnswer(ctx, p, req, "", "verify", out, err)
}

// ExportAudit streams the AuditEvents recorded at or after since to w as
// NDJSON (system/AuditEvent.rs). The export is audited before the first
// byte is written: no durable audit, no data.
func (c *Core) ExportAudit(ctx context.Context, p *fhir.Principal, since time.Time, w io.Writer) (int, error) {
	req := &fhir.Request{Interaction: "search-type", Type: "AuditEvent", Operation: "export"}
	if err := c.auditAdmin(ctx, p, req); err != nil {
		return 0, err
	}
	q := ""
	if !since.IsZero() {
		q = "since=" + since.UTC().Format(time.RFC3339)
	}
	if err := c.outcome(ctx, p, req, "admin", nil, 0, func(e *fhir.AuditEntry) {
		e.Rule, e.Query = "admin", adminQuery("", "export")
		if q != "" {
			e.Query += "&" + q
		}
	}); err != nil {
		return 0, err
	}
	return c.cfg.AuditAdmin.ExportAudit(ctx, w, since)
}

// AdminRevokeConsent revokes any consent to view, whoever recorded it: a
// sharing administrator's act (system/Agreement.u — whoever may suspend an
// agreement may withdraw a consent under it). Tokens bound to it stop
// working at once.
func (c *Core) AdminRevokeConsent(ctx context.Context, p *fhir.Principal, id string) (*fhir.Resource, error) {
	if !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "update", Type: "Agreement", ID: id}
	if err := c.authorize(ctx, p, req); err != nil {
		return nil, err
	}
	if c.cfg.ConsentAdmin == nil {
		return nil, notImplemented("revoking consents")
	}
	r, err := c.cfg.ConsentAdmin.AdminRevokeConsent(ctx, id)
	if err == nil {
		req.PatientID = r.Ix.Patient
	}
	if aerr := c.outcome(ctx, p, req, "consent-revoke", err, 1, func(e *fhir.AuditEntry) {
		e.Types = []string{"Consent"}
		if err == nil {
			e.Rule = "admin"
		}
		e.Query = adminQuery(id, "revoke")
	}); aerr != nil {
		return nil, aerr
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func validClientID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == ':' || b == '-') {
			return false
		}
	}
	return true
}
