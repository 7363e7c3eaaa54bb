package access

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

type fakeAdmin struct{ err error }

func (f fakeAdmin) ListClients(context.Context) ([]byte, error) {
	return []byte(`{"clients":[]}`), f.err
}
func (f fakeAdmin) GetClient(context.Context, string) ([]byte, error) { return []byte(`{}`), f.err }
func (f fakeAdmin) AddClient(context.Context, []byte) ([]byte, error) { return []byte(`{}`), f.err }
func (f fakeAdmin) SetClient(context.Context, string, string, []byte) ([]byte, error) {
	return []byte(`{}`), f.err
}
func (f fakeAdmin) RotateSigningKey(context.Context, []byte) ([]byte, error) {
	return []byte(`{}`), f.err
}
func (f fakeAdmin) VerifyAudit(context.Context) ([]byte, error) { return []byte(`{"ok":true}`), f.err }
func (f fakeAdmin) ExportAudit(_ context.Context, w io.Writer, _ time.Time) (int, error) {
	_, _ = io.WriteString(w, "{}\n")
	return 1, f.err
}
func (f fakeAdmin) AdminRevokeConsent(context.Context, string) (*fhir.Resource, error) {
	if f.err != nil {
		return nil, f.err
	}
	return fhir.NewResource([]byte(`{"resourceType":"Consent","id":"c1","status":"inactive"}`))
}

// Every admin call is authorised by the scopes and audited, granted or
// refused; a patient-context token never reaches the whole audit log; no
// durable audit, no export.
func TestAdminOperationsAuthoriseAndAudit(t *testing.T) {
	admin := &fhir.Principal{ClientID: "ops", ConsumerODS: "Y99000"}
	withAdmin := func(err error) opt {
		return func(c *Config, _ *world) {
			a := fakeAdmin{err: err}
			c.ClientAdmin, c.AuditAdmin, c.ConsentAdmin = a, a, a
		}
	}
	refuseAll := func(c *Config, w *world) {
		c.Scopes = fakeScopes{calls: w.calls, decide: func(*fhir.Principal, *fhir.Request) fhir.Decision {
			return fhir.Decision{Code: fhir.CodeAccessDenied, Rule: "no admin scope"}
		}}
	}
	ops := []struct {
		name string
		call func(c *Core, p *fhir.Principal) error
		typ  string
	}{
		{"clients list", func(c *Core, p *fhir.Principal) error {
			_, err := c.Clients(context.Background(), p, "search-type", "", "", nil)
			return err
		}, "Client"},
		{"client disable", func(c *Core, p *fhir.Principal) error {
			_, err := c.Clients(context.Background(), p, "update", "demo-ehr", "disable", nil)
			return err
		}, "Client"},
		{"signing key", func(c *Core, p *fhir.Principal) error {
			_, err := c.RotateSigningKey(context.Background(), p, nil)
			return err
		}, "SigningKey"},
		{"audit verify", func(c *Core, p *fhir.Principal) error { _, err := c.VerifyAudit(context.Background(), p); return err }, "AuditEvent"},
		{"audit export", func(c *Core, p *fhir.Principal) error {
			_, err := c.ExportAudit(context.Background(), p, time.Time{}, io.Discard)
			return err
		}, "AuditEvent"},
		{"consent revoke", func(c *Core, p *fhir.Principal) error {
			_, err := c.AdminRevokeConsent(context.Background(), p, "c1")
			return err
		}, "Consent"},
	}
	for _, op := range ops {
		t.Run(op.name+"/granted", func(t *testing.T) {
			w := newWorld(t, withAdmin(nil))
			if err := op.call(w.core, admin); err != nil {
				t.Fatal(err)
			}
			if len(*w.audit) != 1 || (*w.audit)[0].Outcome != fhir.OutcomeGranted || (*w.audit)[0].Types[0] != op.typ || (*w.audit)[0].ClientID != "ops" {
				t.Fatalf("audit %+v", *w.audit)
			}
		})
		t.Run(op.name+"/refused by scope", func(t *testing.T) {
			w := newWorld(t, withAdmin(nil), refuseAll)
			if err := op.call(w.core, admin); codeOf(err) != fhir.CodeAccessDenied {
				t.Fatalf("err %v", err)
			}
			if len(*w.audit) != 1 || (*w.audit)[0].Outcome != fhir.OutcomeDenied {
				t.Fatalf("audit %+v", *w.audit)
			}
		})
		t.Run(op.name+"/failed", func(t *testing.T) {
			w := newWorld(t, withAdmin(fhir.Errorf(fhir.CodeInvalidParameter, "bad")))
			err := op.call(w.core, admin)
			if op.name == "audit export" {
				return // the export is audited before it streams
			}
			if codeOf(err) != fhir.CodeInvalidParameter || len(*w.audit) != 1 || (*w.audit)[0].Outcome != fhir.OutcomeDenied {
				t.Fatalf("err %v audit %+v", err, *w.audit)
			}
		})
		t.Run(op.name+"/not configured", func(t *testing.T) {
			w := newWorld(t)
			if err := op.call(w.core, admin); codeOf(err) != fhir.CodeNotImplemented {
				t.Fatalf("err %v", err)
			}
		})
	}
	t.Run("a patient-context token never reaches the whole log", func(t *testing.T) {
		w := newWorld(t, withAdmin(nil))
		var buf bytes.Buffer
		if _, err := w.core.ExportAudit(context.Background(), clinician, time.Time{}, &buf); codeOf(err) != fhir.CodeAccessDenied || buf.Len() > 0 {
			t.Fatalf("export with a patient token: %v, %d bytes", err, buf.Len())
		}
	})
	t.Run("no durable audit, no export", func(t *testing.T) {
		w := newWorld(t, withAdmin(nil), func(c *Config, w *world) { c.Auditor = fakeAuditor{calls: w.calls, entries: w.audit, fail: true} })
		var buf bytes.Buffer
		if _, err := w.core.ExportAudit(context.Background(), admin, time.Time{}, &buf); codeOf(err) != fhir.CodeInternal || buf.Len() > 0 {
			t.Fatalf("export with the audit failing: %v, %d bytes", err, buf.Len())
		}
	})
	t.Run("bad client id", func(t *testing.T) {
		w := newWorld(t, withAdmin(nil))
		if _, err := w.core.Clients(context.Background(), admin, "read", "bad id/..", "", nil); codeOf(err) != fhir.CodeInvalidParameter {
			t.Fatalf("err %v", err)
		}
	})
}

// recordingAuditor keeps entries, safely from the flush goroutine.
type recordingAuditor struct {
	mu      sync.Mutex
	entries []fhir.AuditEntry
	fail    bool
}

func (r *recordingAuditor) Record(_ context.Context, e *fhir.AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("disk full")
	}
	r.entries = append(r.entries, *e)
	return nil
}

func TestRefusalsAggregate(t *testing.T) {
	aud := &recordingAuditor{}
	r := NewRefusals(RefusalOptions{Auditor: aud, Window: time.Hour, MaxKeys: 3})
	for i := 0; i < 100; i++ {
		r.Refused(RefusedBearer, "", "10.0.0.1", "no-token")
	}
	r.Refused(RefusedBearer, "", "10.0.0.2", "invalid-token")
	r.Refused(RefusedToken, "ehr", "10.0.0.1", "client-disabled")
	for i := 0; i < 50; i++ { // past MaxKeys: one overflow entry
		r.Refused(RefusedBearer, "", "10.9.9."+strings.Repeat("9", i%3+1), "no-token")
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := 0
	byDesc := map[string]fhir.AuditEntry{}
	for _, e := range aud.entries {
		total += e.Count
		byDesc[e.Action+" "+e.SourceAddress+" "+strings.SplitN(e.Rule, ":", 2)[0]] = e
		if e.Outcome != fhir.OutcomeDenied {
			t.Errorf("a refusal entry with outcome %s", e.Outcome)
		}
	}
	if len(aud.entries) != 4 || total != 152 {
		t.Fatalf("%d entries counting %d refusals: %+v", len(aud.entries), total, aud.entries)
	}
	if e := byDesc["auth-refused 10.0.0.1 auth-refused no-token"]; e.Count != 100 || e.Code != fhir.CodeUnauthorized {
		t.Errorf("no-token aggregate %+v", e)
	}
	if e := byDesc["token-refused 10.0.0.1 token-refused client-disabled"]; e.ClientID != "ehr" || e.Interaction != "token" {
		t.Errorf("token refusal aggregate %+v", e)
	}
	if e := byDesc["auth-refused  auth-refused overflow"]; e.Count != 50 {
		t.Errorf("overflow aggregate %+v (%v)", e, byDesc)
	}
	if r.Pending() != 0 {
		t.Errorf("%d keys left after Close", r.Pending())
	}
}
