package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/viewer/users"
	"github.com/gpgate/gpgate/viewer/users/boltstore"
)

func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cli := func(stdin string, args ...string) (int, string, string) {
		usersStdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		code := run(ctx, append(args, "--data", dir), &out, &errb)
		return code, out.String(), errb.String()
	}
	steps := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string
	}{
		{"add", "a long enough passphrase\n", []string{"users", "add", "--username", "Alice", "--org", "rxx01", "--role", "Doctor", "--sds-id", "555000000001", "--name", "Dr Alice", "--password-stdin"}, 0, "user alice added for RXX01"},
		{"add again", "a long enough passphrase\n", []string{"users", "add", "--username", "alice", "--org", "RXX01", "--role", "Doctor", "--sds-id", "555000000001", "--password-stdin"}, 1, ""},
		{"short password", "short\n", []string{"users", "add", "--username", "bob", "--org", "RXX01", "--role", "Nurse", "--sds-id", "555000000002", "--password-stdin"}, 1, ""},
		{"no password flag", "", []string{"users", "add", "--username", "bob", "--org", "RXX01", "--role", "Nurse", "--sds-id", "555000000002"}, 1, ""},
		{"bad SDS id", "a long enough passphrase\n", []string{"users", "add", "--username", "bob", "--org", "RXX01", "--role", "Nurse", "--sds-id", "12x", "--password-stdin"}, 1, ""},
		{"list", "", []string{"users", "list"}, 0, "alice"},
		{"disable", "", []string{"users", "disable", "--username", "alice"}, 0, "user alice disabled"},
		{"reset", "another long passphrase\r\n", []string{"users", "reset", "--username", "alice", "--password-stdin"}, 0, "password reset"},
		{"reset unknown", "another long passphrase\n", []string{"users", "reset", "--username", "nobody", "--password-stdin"}, 1, ""},
		{"unknown subcommand", "", []string{"users", "frobnicate"}, 2, ""},
	}
	for _, s := range steps {
		code, out, errs := cli(s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.out) {
			t.Fatalf("%s: exit %d (want %d), stdout %q, stderr %q", s.name, code, s.code, out, errs)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, stateFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := boltstore.New(db)
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Disabled || u.Org != "RXX01" || u.SDSID != "555000000001" || u.Name != "Dr Alice" {
		t.Fatalf("stored account %+v", u)
	}
	if !users.Verify("another long passphrase", u.Hash) || users.Verify("a long enough passphrase", u.Hash) {
		t.Fatal("reset password not stored as its Argon2id hash")
	}
	if strings.Contains(u.Hash, "passphrase") {
		t.Fatal("password stored in clear")
	}
}
