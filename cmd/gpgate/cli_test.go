package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded"
)

func TestHelpVerb(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout (stderr for errors)
	}{
		{[]string{"help", "token"}, 0, "Usage: gpgate token --base URL"},
		{[]string{"help", "consent"}, 0, "-clinician"},
		{[]string{"help", "clients"}, 0, "gpgate clients add --id ID"},
		{[]string{"help", "clients", "add"}, 0, "-scopes"},
		{[]string{"help", "agreements"}, 0, "gpgate agreements add --provider ODS"},
		{[]string{"help", "serve"}, 0, "-cors-origins"},
		{[]string{"help", "nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"help"}, 0, "gpgate help <command>"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			got := out.String()
			if tc.code != 0 {
				got = errb.String()
			}
			if code != tc.code || !strings.Contains(got, tc.want) {
				t.Fatalf("exit %d (want %d)\nstdout %s\nstderr %s", code, tc.code, out.String(), errb.String())
			}
		})
	}
}

// A second gpgate on a data directory another one serves says so, naming
// the directory and the locked file.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	if err := loadPatientIDKey(dir, true); err != nil { // as gpgate demo leaves a region
		t.Fatal(err)
	}
	st, err := embedded.Open(filepath.Join(dir, recordsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = serve(context.Background(), serveOpts{data: dir, listen: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "another gpgate is serving "+dir+" (records.db is locked)") {
		t.Fatalf("serve on a locked directory: %v", err)
	}
	state, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"agreements", "list", "--data", dir}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "another gpgate is serving "+dir+" (gpgate.db is locked)") || !strings.Contains(errb.String(), "/admin/agreements") {
		t.Fatalf("agreements list on a locked directory: %d %s", code, errb.String())
	}
}
