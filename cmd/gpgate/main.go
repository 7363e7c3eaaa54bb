// Command gpgate is the GP record gateway: a FHIR R4 facade over GP practice
// systems. Verbs: serve, demo (and admin verbs as they land). Run
// `gpgate help` for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type verb struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var verbs map[string]verb

func init() {
	verbs = map[string]verb{
		"serve":             {"run the FHIR server over the configured practices", runServe},
		"demo":              {"generate a deterministic synthetic region into the embedded store", runDemo},
		"audit":             {"verify the audit hash chain, or export AuditEvents as NDJSON", runAudit},
		"clients":           {"register and manage consumer systems (SMART Backend Services clients)", runClients},
		"token":             {"obtain an access token as a registered client (for curl and scripts)", runToken},
		"agreements":        {"manage Information Sharing Agreements between practices and consumers", runAgreements},
		"consent":           {"record a clinician's consent to view (or a break-glass) and print its id", runConsent},
		"conformance":       {"run the black-box conformance suite against a deployment", runConformance},
		"provider-emulator": {"serve a GP Connect provider emulator over recorded structured records", runProviderEmulator},
		"practices":         {"configure practices (GP Connect, FHIR API, GP2GP folders, PDS) and probe them", runPractices},
		"users":             {"manage the Shared Record Viewer's local clinician accounts", runUsers},
		"migrate":           {"create or upgrade gpgate's tables in a PostgreSQL database (multi-node deployments)", runMigrate},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks an error already explained to the user by a flag set.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && args[0] == "help" {
		// gpgate help VERB [SUB]: the verb's own usage, on stdout.
		v, ok := verbs[args[1]]
		if !ok {
			fmt.Fprintf(stderr, "gpgate help: unknown command %q\n\n", args[1])
			usage(stderr)
			return 2
		}
		if err := v.run(ctx, append(append([]string(nil), args[2:]...), "-h"), stdout, stdout); err != nil && !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "gpgate help %s: %v\n", args[1], err)
			return 1
		}
		return 0
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "gpgate", version)
		return 0
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "gpgate: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := v.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		fmt.Fprintf(stderr, "gpgate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "gpgate %s — a FHIR R4 gateway to GP records (UK Core), view-only and coded-only.\n\nUsage:\n  gpgate <command> [flags]\n\nCommands:\n", version)
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintf(w, "\nRun `gpgate help <command>` (or `gpgate <command> -h`) for a command's flags.\n")
}

// newFlags builds a flag set that prints its usage on -h and on errors.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gpgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gpgate %s\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func newLogger(w io.Writer, level string, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// helpRequested handles a verb with subcommands called bare or for help:
// the usage goes to stdout, and a bare call is a usage error.
func helpRequested(args []string, usage func(io.Writer), stdout io.Writer) (bool, error) {
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" && args[0] != "help" {
		return false, nil
	}
	usage(stdout)
	if len(args) == 0 {
		return true, errUsage
	}
	return true, nil
}
