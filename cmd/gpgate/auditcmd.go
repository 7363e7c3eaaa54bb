package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gpgate/gpgate/audit"
)

const auditFile = "audit.db"

// auditKeyDefault and auditHeadDefault are where the audit key and the
// exported signed head live unless flags say otherwise: beside the data
// directory, never in it (whoever can rewrite audit.db must not find the key
// next to it). Production should put the key on other storage, owned by the
// service, mode 0600 (--audit-key), and ship heads off the host.
func auditKeyDefault(data string) string  { return dataSibling(data, ".audit-key") }
func auditHeadDefault(data string) string { return dataSibling(data, ".audit-head") }

func dataSibling(data, suffix string) string {
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	return filepath.Clean(data) + suffix
}

const auditUsage = `Usage:
  gpgate audit verify [--data DIR] [--key FILE] [--pub FILE]... [--head FILE] [--strict]
      walk the whole log: the hash chain (edited, deleted, swapped entries), the
      signed checkpoints (re-chained ranges) and the exported head (truncation);
      name the first broken entry
  gpgate audit export [--data DIR] [--since T]
      write AuditEvents as NDJSON (T: RFC 3339 or YYYY-MM-DD)
  gpgate audit pubkey [--data DIR] [--key FILE]
      print the audit key's public half (PEM), for auditors: verify --pub FILE

The audit key defaults to DIR.audit-key and the exported head to
DIR.audit-head (beside the data directory, not in it), as for serve.
The log must not be open by a running server. With --database URL (or
$GPGATE_DATABASE) verify and export read a multi-node deployment's
PostgreSQL log instead, from one snapshot, while the nodes keep serving;
give each node's exported head with --head to check it.
`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) { fmt.Fprint(w, auditUsage) }
	if done, err := helpRequested(args, usage, stdout); done {
		return err
	}
	sub := args[0]
	var data, database, since, key, head string
	var pubs []string
	var strict bool
	synopsis := map[string]string{
		"verify": "Walks the audit log and checks it against its signed checkpoints and exported head.",
		"export": "Writes AuditEvents as NDJSON, oldest first.",
		"pubkey": "Prints the audit key's public half (PEM \"PUBLIC KEY\").",
	}[sub]
	if synopsis == "" {
		fmt.Fprintf(stderr, "gpgate audit: unknown subcommand %q\n", sub)
		usage(stderr)
		return errUsage
	}
	fs := newFlags("audit "+sub+" [flags]", synopsis+" The log must not be open by a running server.", stderr)
	fs.StringVar(&data, "data", "./gpgate-data", "data directory")
	if sub != "pubkey" {
		fs.StringVar(&database, "database", os.Getenv(databaseEnv), "PostgreSQL URL of a multi-node deployment's audit log (instead of the data directory's; nodes may keep running)")
	}
	switch sub {
	case "verify":
		fs.StringVar(&key, "key", "", "the audit key (private or public PEM) `FILE` (default DIR.audit-key when it exists)")
		fs.Func("pub", "a further trusted public key `FILE` (a key used before a rotation); repeatable", func(s string) error {
			pubs = append(pubs, s)
			return nil
		})
		fs.StringVar(&head, "head", "", "the exported signed head `FILE` (default DIR.audit-head when it exists); a copy from syslog or a SIEM catches a log and head rolled back together")
		fs.BoolVar(&strict, "strict", false, "fail unless a key and an exported head were checked")
	case "export":
		fs.StringVar(&since, "since", "", "only entries recorded at or after this time")
	case "pubkey":
		fs.StringVar(&key, "key", "", "the audit key `FILE` (default DIR.audit-key)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	switch sub {
	case "pubkey":
		if key == "" {
			key = auditKeyDefault(data)
		}
		pub, err := audit.LoadPublicKey(key)
		if err != nil {
			return err
		}
		b, err := audit.MarshalPublicKeyPEM(pub)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		fmt.Fprintf(stderr, "audit key id %s\n", audit.KeyID(pub))
		return err
	case "verify":
		return auditVerify(ctx, data, database, key, pubs, head, strict, stdout)
	}
	var t time.Time
	if since != "" {
		var err error
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err = time.Parse(layout, since); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("--since %q: want RFC 3339 or YYYY-MM-DD", since)
		}
	}
	st, done, err := openAuditReadOnly(ctx, data, database)
	if err != nil {
		return err
	}
	defer done()
	n, err := st.Export(ctx, stdout, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d AuditEvents\n", n)
	return nil
}

func auditVerify(ctx context.Context, data, database, key string, pubs []string, head string, strict bool, stdout io.Writer) error {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if key == "" && exists(auditKeyDefault(data)) {
		key = auditKeyDefault(data)
		if head == "" {
			head = auditHeadDefault(data) // the default layout: a missing head is a finding
		}
	}
	if head == "" && exists(auditHeadDefault(data)) {
		head = auditHeadDefault(data)
	}
	var keys []ed25519.PublicKey
	for _, p := range append([]string{key}, pubs...) {
		if p == "" {
			continue
		}
		k, err := audit.LoadPublicKey(p)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	st, done, err := openAuditReadOnly(ctx, data, database)
	if err != nil {
		return err
	}
	defer done()
	vo := audit.VerifyOptions{Keys: keys}
	if head != "" {
		h, err := audit.ReadHeadFile(head)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// reported by Verify as a missing head
			vo.HeadFile = head
		case err != nil:
			return err
		default:
			vo.Head = &h
		}
	}
	rep, err := st.VerifyWith(ctx, vo)
	if err != nil {
		return err
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if !rep.OK() {
		if rep.FirstBroken > 0 {
			fmt.Fprintf(stdout, "audit chain BROKEN at entry %d (%d entries verified before it): %v\n", rep.FirstBroken, rep.Entries, rep.Err)
		} else {
			fmt.Fprintf(stdout, "audit log check FAILED (%d entries, chain intact): %v\n", rep.Entries, rep.Err)
		}
		return errors.New("audit log does not verify")
	}
	var anchor []string
	if len(keys) > 0 {
		anchor = append(anchor, fmt.Sprintf("%d signed checkpoints verified", rep.Checkpoints))
	}
	if rep.HeadChecked || head != "" {
		anchor = append(anchor, fmt.Sprintf("exported head at entry %d", rep.Head))
	}
	if len(keys) > 0 {
		anchor = append(anchor, fmt.Sprintf("%d entries after the newest anchor", rep.Unanchored))
	}
	fmt.Fprintf(stdout, "audit chain OK: %d entries", rep.Entries)
	if len(anchor) > 0 {
		fmt.Fprintf(stdout, " (%s)", strings.Join(anchor, "; "))
	}
	fmt.Fprintln(stdout)
	if strict && (len(keys) == 0 || head == "") {
		return errors.New("--strict: the log was not checked against both a key and an exported head")
	}
	return nil
}
