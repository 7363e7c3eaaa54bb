package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
)

// anchoredAuditLog writes n entries into DIR/audit.db with the default key
// and head beside DIR, as serve does.
func anchoredAuditLog(t *testing.T, n int) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(data, 0o700))
	st, err := audit.Open(filepath.Join(data, auditFile), audit.Options{KeyFile: auditKeyDefault(data), HeadFile: auditHeadDefault(data), CheckpointEvery: 4})
	must(err)
	for i := range n {
		must(st.Record(context.Background(), &fhir.AuditEntry{RequestID: "r" + string(rune('a'+i)), Action: "PatientRead",
			Interaction: "read", Outcome: fhir.OutcomeGranted, ClientID: "c", NHS: "9000000009"}))
	}
	must(st.Close())
	return data
}

func runAuditCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"audit"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditVerifyCLI(t *testing.T) {
	data := anchoredAuditLog(t, 10)
	pubFile := filepath.Join(t.TempDir(), "audit.pub")
	code, pem, _ := runAuditCLI("pubkey", "--data", data)
	if code != 0 || !strings.Contains(pem, "BEGIN PUBLIC KEY") {
		t.Fatalf("pubkey: %d %q", code, pem)
	}
	if err := os.WriteFile(pubFile, []byte(pem), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"defaults", nil, 0, "audit chain OK: 10 entries (4 signed checkpoints verified; exported head at entry 10; 0 entries after the newest anchor)"},
		{"strict", []string{"--strict"}, 0, "audit chain OK: 10 entries"},
		{"auditor with the public key", []string{"--key", pubFile}, 0, "4 signed checkpoints verified"},
		{"wrong key", []string{"--key", writeOtherKey(t)}, 1, "audit chain BROKEN at entry 1 (0 entries verified before it)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runAuditCLI(append([]string{"verify", "--data", data}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d, out %q err %q; want %d and %q", code, out, errs, tc.code, tc.out)
			}
		})
	}
}

func writeOtherKey(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "other.key")
	if _, err := audit.LoadOrCreateKey(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuditVerifyCLITampered: the verb names what happened.
func TestAuditVerifyCLITampered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, data string)
		out    string
	}{
		{"truncated tail", func(t *testing.T, data string) {
			db, err := bbolt.Open(filepath.Join(data, auditFile), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(tx *bbolt.Tx) error {
				k := make([]byte, 8)
				binary.BigEndian.PutUint64(k, 10)
				return tx.Bucket([]byte("audit_log")).Delete(k)
			})
			if err != nil {
				t.Fatal(err)
			}
		}, "audit chain BROKEN at entry 10 (9 entries verified before it): audit log broken at entry 10: log truncated"},
		{"head removed", func(t *testing.T, data string) {
			if err := os.Remove(auditHeadDefault(data)); err != nil {
				t.Fatal(err)
			}
		}, "audit log check FAILED (10 entries, chain intact): the exported head "},
		{"head removed, key elsewhere", func(t *testing.T, data string) {
			if err := os.Remove(auditHeadDefault(data)); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(auditKeyDefault(data), auditKeyDefault(data)+".moved"); err != nil {
				t.Fatal(err)
			}
		}, "warning: no exported head"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := anchoredAuditLog(t, 10)
			tc.mutate(t, data)
			code, out, _ := runAuditCLI("verify", "--data", data)
			if !strings.Contains(out, tc.out) {
				t.Fatalf("exit %d, out %q; want %q", code, out, tc.out)
			}
			if tc.name == "head removed, key elsewhere" {
				if code != 0 {
					t.Fatalf("exit %d without --strict", code)
				}
				if code, _, _ := runAuditCLI("verify", "--data", data, "--strict"); code == 0 {
					t.Fatal("--strict passed without a key or head")
				}
				// named explicitly, a missing head is a failure
				if code, out, _ := runAuditCLI("verify", "--data", data, "--head", auditHeadDefault(data)); code == 0 || !strings.Contains(out, "is missing") {
					t.Fatalf("--head missing: exit %d %q", code, out)
				}
				return
			}
			if code == 0 {
				t.Fatal("exit 0")
			}
		})
	}
}

func TestAuditCLIUsage(t *testing.T) {
	if code, out, _ := runAuditCLI(); code != 2 || !strings.Contains(out, "gpgate audit verify") {
		t.Fatalf("bare: %d %q", code, out)
	}
	if code, _, errs := runAuditCLI("rotate"); code != 2 || !strings.Contains(errs, `unknown subcommand "rotate"`) {
		t.Fatalf("unknown: %d %q", code, errs)
	}
	if code, _, errs := runAuditCLI("verify", "-h"); code != 0 || !strings.Contains(errs, "-strict") {
		t.Fatalf("verify -h: %d %q", code, errs)
	}
}
