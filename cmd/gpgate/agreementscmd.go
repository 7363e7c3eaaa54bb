package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

func runAgreements(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage:
  gpgate agreements add --provider ODS --consumers ODS[,ODS...] [--areas all|summary|problems,medication,...]
        [--purposes TREAT[,ETREAT]] [--break-glass] [--start 2026-01-01] [--end 2027-01-01]
        [--status active|draft] [--default-sharing implied|dissent] [--id ID] [--data DIR]
        add an Information Sharing Agreement between a practice and consumer organisations
  gpgate agreements list [--provider ODS] [--data DIR]
  gpgate agreements show --id ID [--data DIR]
  gpgate agreements suspend|end|activate --id ID [--data DIR]

Agreements live in DIR/gpgate.db. While gpgate serve runs, give --base URL
--client ID --key FILE to use its admin API (/admin/agreements; the client
needs system/Agreement scopes); changes apply to the next request.
`)
	}
	if done, err := helpRequested(args, usage, stdout); done {
		return err
	}
	sub := args[0]
	var o struct {
		data, database, id, provider, consumers, areas, purposes, start, end, status, defSharing string
		breakGlass                                                                               bool
	}
	var api apiFlags
	fs := newFlags("agreements "+sub+" [flags]", "Manage Information Sharing Agreements.", stderr)
	fs.StringVar(&o.data, "data", "./gpgate-data", "data directory")
	fs.StringVar(&o.database, "database", os.Getenv(databaseEnv), databaseUsage)
	api.register(fs, "")
	switch sub {
	case "add":
		fs.StringVar(&o.id, "id", "", "agreement id (default: random)")
		fs.StringVar(&o.provider, "provider", "", "provider practice ODS code (required)")
		fs.StringVar(&o.consumers, "consumers", "", "consumer organisation ODS codes, comma separated (required)")
		fs.StringVar(&o.areas, "areas", "all", "dataset areas shared: all, summary, or a list of "+strings.ReplaceAll(allAreaNames(), ",", ", "))
		fs.StringVar(&o.purposes, "purposes", "TREAT", "purposes of use allowed (v3-ActReason codes), comma separated")
		fs.BoolVar(&o.breakGlass, "break-glass", false, "allow break-glass (emergency access without the patient's consent to view)")
		fs.StringVar(&o.start, "start", "", "start date (default now)")
		fs.StringVar(&o.end, "end", "", "end date (default open-ended)")
		fs.StringVar(&o.status, "status", "active", "draft or active")
		fs.StringVar(&o.defSharing, "default-sharing", "implied", "for patients with no coded sharing entry: implied or dissent")
	case "list":
		fs.StringVar(&o.provider, "provider", "", "only agreements of this practice")
	case "show", "suspend", "end", "activate":
		fs.StringVar(&o.id, "id", "", "agreement id (required)")
	default:
		fmt.Fprintf(stderr, "gpgate agreements: unknown subcommand %q\n", sub)
		usage(stderr)
		return errUsage
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if sub == "show" || sub == "suspend" || sub == "end" || sub == "activate" {
		if err := missingFlags(fs, "id"); err != nil {
			return err
		}
	}
	var body []byte
	if sub == "add" {
		if err := missingFlags(fs, "provider", "consumers"); err != nil {
			return err
		}
		set, err := fhir.ParseAreas(o.areas)
		if err != nil {
			return fmt.Errorf("--areas: %s (one of %s)", fhir.AsError(err).Diagnostics, strings.Join(fhir.AreaNames(), ", "))
		}
		areas := strings.Split(set.String(), ",")
		body, _ = json.Marshal(map[string]any{
			"id": o.id, "provider": o.provider, "consumers": splitList(o.consumers), "areas": areas,
			"purposes": splitList(o.purposes), "start": o.start, "end": o.end, "status": o.status,
			"breakGlass": o.breakGlass, "defaultSharing": o.defSharing,
		})
	}
	if api.remote() {
		return agreementsAPI(ctx, &api, sub, o.id, o.provider, body, stdout)
	}
	if o.database == "" {
		if err := localOnly(o.data, "agreements "+sub); err != nil {
			return err
		}
	}
	st, err := openStateAt(ctx, o.data, o.database)
	if err != nil {
		return err
	}
	defer st.Close()
	ags := st.consent
	switch sub {
	case "add":
		a, err := consent.ParseAgreement(body)
		if err != nil {
			return flagError(err)
		}
		if a, err = ags.Add(ctx, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agreement %s added (%s -> %s, %s)\n", a.ID, a.Provider, strings.Join(a.Consumers, ","), a.Status)
	case "list":
		list, err := ags.List(ctx)
		if err != nil {
			return err
		}
		printAgreements(stdout, list, o.provider)
	case "show":
		a, err := ags.Get(ctx, o.id)
		if err != nil {
			return err
		}
		printJSON(stdout, consent.AgreementJSON(a))
	case "suspend", "end", "activate":
		f := map[string]func(context.Context, string) (consent.Agreement, error){"suspend": ags.Suspend, "end": ags.End, "activate": ags.Activate}[sub]
		a, err := f(ctx, o.id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agreement %s is now %s\n", a.ID, a.Status)
	}
	return nil
}

func printAgreements(w io.Writer, list []consent.Agreement, provider string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROVIDER\tCONSUMERS\tSTATUS\tAREAS\tPURPOSES\tBREAK-GLASS")
	for _, a := range list {
		if provider != "" && a.Provider != provider {
			continue
		}
		consumers := strings.Join(a.Consumers, ",")
		if a.ConsumerGroup != "" {
			consumers = "group:" + a.ConsumerGroup
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", a.ID, a.Provider, consumers, a.Status, a.Areas, strings.Join(a.Purposes, ","), a.BreakGlass)
	}
	tw.Flush()
}

func printJSON(w io.Writer, b []byte) {
	var v any
	_ = json.Unmarshal(b, &v)
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(w, string(out))
}

// agreementsAPI runs an agreements verb through a running server's admin API.
func agreementsAPI(ctx context.Context, f *apiFlags, sub, id, provider string, body []byte, stdout io.Writer) error {
	api, err := f.open()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		out, err := api.call(ctx, "GET", "/admin/agreements", "system/Agreement.rs", nil, nil)
		if err != nil {
			return err
		}
		var l struct {
			Agreements []json.RawMessage `json:"agreements"`
		}
		if err := json.Unmarshal(out, &l); err != nil {
			return fmt.Errorf("GET /admin/agreements: unexpected answer")
		}
		var list []consent.Agreement
		for _, raw := range l.Agreements {
			a, err := consent.ParseAgreement(raw)
			if err != nil {
				return err
			}
			list = append(list, a)
		}
		printAgreements(stdout, list, provider)
	case "show":
		out, err := api.call(ctx, "GET", "/admin/agreements/"+id, "system/Agreement.rs", nil, nil)
		if err != nil {
			return err
		}
		printJSON(stdout, out)
	case "add":
		out, err := api.call(ctx, "POST", "/admin/agreements", "system/Agreement.c", body, nil)
		if err != nil {
			return err
		}
		a, err := consent.ParseAgreement(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "agreement %s added (%s -> %s, %s)\n", a.ID, a.Provider, strings.Join(a.Consumers, ","), a.Status)
	case "suspend", "end", "activate":
		out, err := api.call(ctx, "POST", "/admin/agreements/"+id+"/"+sub, "system/Agreement.u", []byte("{}"), nil)
		if err != nil {
			return err
		}
		var a struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		_ = json.Unmarshal(out, &a)
		fmt.Fprintf(stdout, "agreement %s is now %s\n", a.ID, a.Status)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func allAreaNames() string { return fhir.AllAreas.String() }

// agreementFlags maps the agreement JSON's element names to the flags of
// agreements add.
var agreementFlags = map[string]string{"provider": "--provider", "consumers": "--consumers", "areas": "--areas",
	"purposes": "--purposes", "start": "--start", "end": "--end", "status": "--status",
	"defaultSharing": "--default-sharing", "id": "--id", "breakGlass": "--break-glass"}

// flagError names the flag behind a coded error about an agreement element.
func flagError(err error) error {
	fe := fhir.AsError(err)
	if fe.Code == fhir.CodeInternal {
		return err
	}
	for elem, flag := range agreementFlags {
		if fe.Expression == elem || strings.HasPrefix(fe.Expression, elem+".") || strings.HasPrefix(fe.Expression, elem+"[") {
			return fmt.Errorf("%s: %s", flag, fe.Diagnostics)
		}
	}
	return fmt.Errorf("%s", fe.Diagnostics)
}
