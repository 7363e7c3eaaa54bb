package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
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
While gpgate serve runs, verify and export go through its admin API:
  gpgate audit verify --base URL --client ID --key FILE
  gpgate audit export --base URL --client ID --key FILE [--since T]
(--key is then the client's private key; the client needs
system/AuditEvent.rs; the server checks its own audit key and head).
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
	var api apiFlags
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
	fs := newFlags("audit "+sub+" [flags]", synopsis+" With --base, through a running server's admin API.", stderr)
	fs.StringVar(&data, "data", "./gpgate-data", "data directory")
	if sub != "pubkey" {
		fs.StringVar(&database, "database", os.Getenv(databaseEnv), "PostgreSQL URL of a multi-node deployment's audit log (instead of the data directory's; nodes may keep running)")
	}
	switch sub {
	case "verify":
		fs.StringVar(&key, "key", "", "the audit key (private or public PEM) `FILE` (default DIR.audit-key when it exists); with --base, the client's private key")
		fs.StringVar(&api.base, "base", "", "verify through the admin API of the gpgate serving at this base URL (with --client and --key)")
		fs.StringVar(&api.client, "client", "", "admin API: the client id to authenticate as")
		fs.StringVar(&api.cacert, "cacert", "", "admin API: CA certificate (PEM) to trust for the server's TLS certificate")
		fs.StringVar(&api.cert, "cert", "", "admin API: client certificate (PEM) for mutual TLS")
		fs.StringVar(&api.certKey, "cert-key", "", "admin API: the client certificate's private key (PEM)")
		fs.Func("pub", "a further trusted public key `FILE` (a key used before a rotation); repeatable", func(s string) error {
			pubs = append(pubs, s)
			return nil
		})
		fs.StringVar(&head, "head", "", "the exported signed head `FILE` (default DIR.audit-head when it exists); a copy from syslog or a SIEM catches a log and head rolled back together")
		fs.BoolVar(&strict, "strict", false, "fail unless a key and an exported head were checked")
	case "export":
		fs.StringVar(&since, "since", "", "only entries recorded at or after this time")
		api.register(fs, "")
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
		if api.base != "" {
			api.key = key
			return auditVerifyAPI(ctx, &api, stdout)
		}
		if database == "" {
			if err := localOnly(data, "audit verify"); err != nil {
				return err
			}
		}
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
	if api.remote() {
		return auditExportAPI(ctx, &api, since, stdout, stderr)
	}
	if database == "" {
		if err := localOnly(data, "audit export"); err != nil {
			return err
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

// auditVerifyAPI asks a running server to verify its own log.
func auditVerifyAPI(ctx context.Context, f *apiFlags, stdout io.Writer) error {
	api, err := f.open()
	if err != nil {
		return err
	}
	out, err := api.call(ctx, "GET", "/admin/audit/verify", "system/AuditEvent.rs", nil, nil)
	if err != nil {
		return err
	}
	var r struct {
		OK          bool     `json:"ok"`
		Entries     int      `json:"entries"`
		Checkpoints int      `json:"checkpoints"`
		Head        uint64   `json:"head"`
		HeadChecked bool     `json:"headChecked"`
		Unanchored  int      `json:"unanchored"`
		FirstBroken uint64   `json:"firstBroken"`
		Error       string   `json:"error"`
		Warnings    []string `json:"warnings"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("GET /admin/audit/verify: unexpected answer")
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	if !r.OK {
		if r.FirstBroken > 0 {
			fmt.Fprintf(stdout, "audit chain BROKEN at entry %d (%d entries verified before it): %s\n", r.FirstBroken, r.Entries, r.Error)
		} else {
			fmt.Fprintf(stdout, "audit log check FAILED (%d entries, chain intact): %s\n", r.Entries, r.Error)
		}
		return errors.New("audit log does not verify")
	}
	fmt.Fprintf(stdout, "audit chain OK: %d entries (%d signed checkpoints verified; exported head at entry %d; %d entries after the newest anchor)\n",
		r.Entries, r.Checkpoints, r.Head, r.Unanchored)
	return nil
}

// auditExportAPI streams a running server's AuditEvents as NDJSON.
func auditExportAPI(ctx context.Context, f *apiFlags, since string, stdout, stderr io.Writer) error {
	api, err := f.open()
	if err != nil {
		return err
	}
	path := "/admin/audit/export"
	if since != "" {
		path += "?since=" + url.QueryEscape(since)
	}
	cw := &countingWriter{w: stdout}
	if _, err := api.call(ctx, "GET", path, "system/AuditEvent.rs", nil, cw); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d AuditEvents\n", cw.lines)
	return nil
}

type countingWriter struct {
	w     io.Writer
	lines int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte{'\n'})
	return c.w.Write(p)
}
