package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/gpgate/gpgate/conformance"
)

// runConformance runs the black-box conformance suite against a deployment.
func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o conformance.RunOptions
	var nhs, report string
	fs := newFlags("conformance --base URL --client ID --key FILE [flags]",
		"Runs gpgate's black-box conformance suite against a deployment: metadata, SMART discovery and\n"+
			"token flow, every declared search parameter and operation, paging, references, error shapes,\n"+
			"coded-only and UK Core rules on every resource seen. Prints a line per check; exits non-zero on failure.", stderr)
	fs.StringVar(&o.Base, "base", "", "the deployment's base URL")
	fs.StringVar(&o.ClientID, "client", "", "a registered SMART Backend Services client id")
	fs.StringVar(&o.KeyFile, "key", "", "the client's private key (JWK or PEM)")
	fs.StringVar(&o.Scope, "scope", "system/*.rs", "system scopes to ask for (demographics)")
	fs.StringVar(&o.Clinician, "clinician", "555000111222", "SDS user id the suite's consents to view are recorded for")
	fs.StringVar(&o.AuditClientID, "audit-client", "", "optional client holding system/AuditEvent.rs (exercises the AuditEvent search parameters)")
	fs.StringVar(&o.AuditKeyFile, "audit-key", "", "the audit client's private key")
	fs.StringVar(&nhs, "nhs", "", "comma-separated NHS numbers of patients the deployment holds")
	fs.IntVar(&o.Discover, "discover", 0, "also discover up to N demo patients by probing the demo region's 999-prefixed NHS numbers (default 3 when --nhs is not given)")
	fs.BoolVar(&o.Walk, "walk", false, "fetch everything gpgate emits for every patient (with --dump, for an external validator)")
	fs.IntVar(&o.StructuredEvery, "structured-every", 10, "with --walk: $getstructuredrecord for every Nth patient")
	fs.StringVar(&o.Dump, "dump", "", "write every FHIR JSON response body to this directory")
	fs.StringVar(&report, "report", "", "write the JSON report to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.Base == "" || o.ClientID == "" || o.KeyFile == "" {
		fmt.Fprintln(stderr, "--base, --client and --key are required")
		fs.Usage()
		return errUsage
	}
	for _, n := range strings.Split(nhs, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.NHS = append(o.NHS, n)
		}
	}
	o.Out = stdout
	rep, err := conformance.Run(ctx, o)
	if err != nil {
		return err
	}
	if report != "" {
		f, err := os.Create(report)
		if err != nil {
			return err
		}
		if err := rep.Write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if !rep.OK {
		return fmt.Errorf("%d of %d checks failed: %s", rep.Failed, len(rep.Checks), strings.Join(rep.Failures(), ", "))
	}
	return nil
}
