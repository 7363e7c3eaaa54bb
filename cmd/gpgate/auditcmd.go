package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/gpgate/gpgate/audit"
)

const auditFile = "audit.db"

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage:\n  gpgate audit verify [--data DIR]              walk the hash chain; report the first broken link\n  gpgate audit export [--data DIR] [--since T]  write AuditEvents as NDJSON (T: RFC 3339 or YYYY-MM-DD)")
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	sub := args[0]
	var data, since string
	fs := newFlags("audit "+sub+" [flags]", "Audit log administration (the log must not be open by a running server).", stderr)
	fs.StringVar(&data, "data", "./gpgate-data", "data directory")
	if sub == "export" {
		fs.StringVar(&since, "since", "", "only entries recorded at or after this time")
	}
	switch sub {
	case "verify", "export":
	case "-h", "--help", "help":
		usage()
		return nil
	default:
		fmt.Fprintf(stderr, "gpgate audit: unknown subcommand %q\n", sub)
		usage()
		return errUsage
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	st, err := audit.Open(filepath.Join(data, auditFile), audit.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if sub == "verify" {
		rep, err := st.Verify(ctx)
		if err != nil {
			return err
		}
		if !rep.OK() {
			fmt.Fprintf(stdout, "audit chain BROKEN at entry %d (%d entries verified before it): %v\n", rep.FirstBroken, rep.Entries, rep.Err)
			return fmt.Errorf("audit chain broken")
		}
		fmt.Fprintf(stdout, "audit chain OK: %d entries\n", rep.Entries)
		return nil
	}
	var t time.Time
	if since != "" {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err = time.Parse(layout, since); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("--since %q: want RFC 3339 or YYYY-MM-DD", since)
		}
	}
	n, err := st.Export(ctx, stdout, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d AuditEvents\n", n)
	return nil
}
