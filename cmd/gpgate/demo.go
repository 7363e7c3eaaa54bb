package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpgate/gpgate/adapters/embedded"
	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

const summaryFile = "demo-summary.json"

type demoOpts struct {
	data      string
	seed      uint64
	practices int
	patients  int
	force     bool
	fast      bool
	gpconnect string
	database  string
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o demoOpts
	fs := newFlags("demo [flags]", "Generates a deterministic synthetic region (practices, patients, full GP records)\ninto the embedded store in --data, and prints notable patients to try.\nAn existing region is kept unless --force is given.", stderr)
	fs.StringVar(&o.data, "data", "./gpgate-data", "data directory")
	fs.StringVar(&o.database, "database", os.Getenv(databaseEnv), "PostgreSQL URL: register the demo clients and agreements there (a multi-node deployment) instead of in the data directory")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed: the same seed gives the same region")
	fs.IntVar(&o.practices, "practices", 3, "number of practices")
	fs.IntVar(&o.patients, "patients", 1000, "number of patients (scales to 100000)")
	fs.BoolVar(&o.force, "force", false, "regenerate even if the data directory already has a region")
	fs.BoolVar(&o.fast, "fast", false, "skip the jsonformat R4 round trip per resource (~10x faster; for very large regions)")
	fs.StringVar(&o.gpconnect, "gpconnect", "auto", "recorded GP Connect structured records for the demo's live GP Connect practice\n(auto: ../shared/testdata/gpconnect-stu3 when present; none: no such practice)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.patients < 1 || o.patients > 200000 || o.practices < 1 || o.practices > 999 {
		return fmt.Errorf("--patients must be 1..200000 and --practices 1..999")
	}
	sum, err := demoRegion(ctx, o, stderr)
	if err != nil {
		return err
	}
	gpc, err := demoGPConnect(ctx, o.data, o.gpconnect, stderr)
	if err != nil {
		return err
	}
	if err := demoClientAt(ctx, o.data, o.database); err != nil {
		return err
	}
	var extra []string
	if gpc.ODS != "" {
		extra = append(extra, gpc.ODS)
	}
	if err := demoAgreementsAt(ctx, o.data, o.database, sum, extra...); err != nil {
		return err
	}
	printSummary(stdout, sum, o.data)
	printGPConnect(stdout, gpc, o.data)
	fmt.Fprintln(stdout, "\nDemo clients (SMART Backend Services; `gpgate token --client ID --key FILE --scope ...`):")
	for _, c := range demoClients {
		fmt.Fprintf(stdout, "  %-13s organisation %s, key %s, scopes %q\n", c.id, c.ods, filepath.Join(o.data, c.key), c.scopes)
	}
	return nil
}

// The demo consumer systems, registered as SMART Backend Services clients so
// the README's curl examples work as printed: a hospital EPR and an auditor.
const (
	demoClientID  = "demo-ehr"
	demoClientODS = consent.DemoConsumerActive
	demoKeyFile   = "demo-client.jwk"
)

// Each consumer organisation has a demo agreement of its own kind with every
// demo practice (consent.DemoAgreements): RXX01 active with break-glass,
// RXX02 suspended, RXX03 blood pressure only, RXX04 without break-glass.
var demoClients = []struct{ id, ods, name, key, scopes string }{
	{demoClientID, demoClientODS, "Demo hospital EPR (active agreement)", demoKeyFile, demoClinicalScopes},
	{"demo-111", consent.DemoConsumerSuspended, "Demo 111 service (suspended agreement)", "demo-111.jwk", demoClinicalScopes},
	{"demo-ambulance", consent.DemoConsumerBPOnly, "Demo ambulance trust (blood pressure only)", "demo-ambulance.jwk", demoClinicalScopes},
	{"demo-ooh", consent.DemoConsumerNoBreakGls, "Demo out-of-hours (no break-glass)", "demo-ooh.jwk", demoClinicalScopes},
	{"demo-auditor", "Y99000", "Demo regional auditor", "demo-auditor.jwk", "system/AuditEvent.rs"},
	{"demo-admin", "Y99000", "Demo regional administrator (agreements, clients, signing keys)", "demo-admin.jwk", demoAdminScopes},
}

const demoClinicalScopes = "system/*.rs patient/*.rs system/Consent.cd"

// demoAdminScopes are the demo administrator's: the agreements register
// (and revoking any consent to view), the client registry, gpgate's
// signing keys.
const demoAdminScopes = "system/Agreement.crus system/Client.crus system/SigningKey.u"

// demoClient registers the demo clients, each with a fresh key unless it is
// already registered and its key file is there.
func demoClient(ctx context.Context, data string) error {
	return demoClientAt(ctx, data, os.Getenv(databaseEnv))
}

// demoClientAt is demoClient, registering in the database when one is
// given (the key files are still written into data).
func demoClientAt(ctx context.Context, data, database string) error {
	st, closeState, err := clientsAt(ctx, data, database)
	if err != nil {
		return err
	}
	defer closeState()
	for _, dc := range demoClients {
		keyPath := filepath.Join(data, dc.key)
		_, gerr := st.GetClient(ctx, dc.id)
		if gerr == nil {
			if _, err := os.Stat(keyPath); err == nil {
				continue
			}
		}
		priv, pub, _, err := smart.GenerateClientKey("ES384")
		if err != nil {
			return err
		}
		if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
			return err
		}
		if gerr == nil { // registered, but its key file is gone: new key
			if err := st.RotateClientKey(ctx, dc.id, pub); err != nil {
				return err
			}
			if err := st.EnableClient(ctx, dc.id); err != nil {
				return err
			}
			continue
		}
		c := &smart.Client{ID: dc.id, ODS: dc.ods, Name: dc.name, JWKS: pub, Scopes: strings.Fields(dc.scopes), Enabled: true}
		if err := st.AddClient(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// demoRegion generates the region unless one is already there.
func demoRegion(ctx context.Context, o demoOpts, progress io.Writer) (*demo.Summary, error) {
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(o.data, recordsFile)
	sumPath := filepath.Join(o.data, summaryFile)
	_, keyErr := os.Stat(filepath.Join(o.data, patientKeyFile))
	if !o.force && keyErr == nil {
		if b, err := os.ReadFile(sumPath); err == nil {
			var s demo.Summary
			if json.Unmarshal(b, &s) == nil {
				if _, err := os.Stat(dbPath); err == nil {
					if err := loadPatientIDKey(o.data, false); err != nil {
						return nil, err
					}
					fmt.Fprintf(progress, "gpgate demo: keeping the existing region in %s (use --force to regenerate)\n", o.data)
					return &s, nil
				}
			}
		}
	}
	if keyErr != nil {
		if _, err := os.Stat(dbPath); err == nil {
			fmt.Fprintf(progress, "gpgate demo: the region in %s predates keyed patient ids: regenerating it\n", o.data)
		}
	}
	for _, f := range []string{dbPath, sumPath} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	// The region's patient ids are made with the deployment's patient-id
	// key (created here on first use), the one serve will use.
	if err := loadPatientIDKey(o.data, true); err != nil {
		return nil, err
	}
	start := time.Now()
	// The store records each patient's consent to share with the record
	// (the policy's own rule), so demographics-only requests need not read
	// the whole record.
	store, err := embedded.Open(dbPath, embedded.WithSharing(consent.SharingFromRecord))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	opts := demo.Options{Seed: o.seed, Practices: o.practices, Patients: o.patients, SkipValidation: o.fast}
	for _, p := range demo.Practices(opts) {
		if err := store.PutPractice(p.ODS, p.Name); err != nil {
			return nil, err
		}
	}
	bulk := store.NewBulk(200)
	prog := newProgress(progress, "gpgate demo", "patients", o.patients)
	sum, err := demo.Generate(opts, func(p demo.Practice, rec *fhir.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		prog.Add(1)
		return bulk.PutRecord(p.ODS, rec)
	})
	if cerr := bulk.Close(); err == nil {
		err = cerr
	}
	prog.Finish()
	if err != nil {
		return nil, fmt.Errorf("generate region: %w", err)
	}
	b, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(sumPath, b, 0o600); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "gpgate demo: generated %d patients (%d resources) in %s\n", sum.Patients, sum.Resources, time.Since(start).Round(time.Millisecond))
	return sum, nil
}

func printSummary(w io.Writer, s *demo.Summary, data string) {
	fmt.Fprintf(w, "Demo region in %s: seed %d, %d practices, %d patients, %d resources (records of %d to %d resources, median %d).\n\n",
		data, s.Seed, len(s.Practices), s.Patients, s.Resources, s.MinResources, s.MaxResources, s.MedianResources)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRACTICE\tNAME\tPATIENTS")
	for _, p := range s.Practices {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", p.ODS, p.Name, p.Patients)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NHS NUMBER\tPATIENT ID\tRESOURCES\tWHY")
	for _, n := range s.Notable {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", n.NHS, n.PatientID, n.Resources, n.Description)
	}
	tw.Flush()
}

// demoAgreements stores the demo sharing agreements for every practice of
// the region (and the extra practices: the GP Connect one), unless they are
// there already.
func demoAgreements(ctx context.Context, data string, sum *demo.Summary, extra ...string) error {
	return demoAgreementsAt(ctx, data, os.Getenv(databaseEnv), sum, extra...)
}

// demoAgreementsAt is demoAgreements, into the database when one is given.
func demoAgreementsAt(ctx context.Context, data, database string, sum *demo.Summary, extra ...string) error {
	st, err := openStateAt(ctx, data, database)
	if err != nil {
		return err
	}
	defer st.Close()
	var ods []string
	for _, p := range sum.Practices {
		ods = append(ods, p.ODS)
	}
	ods = append(ods, extra...)
	for _, a := range consent.DemoAgreements(ods, time.Now()) {
		if _, err := st.consent.Get(ctx, a.ID); err == nil {
			continue
		}
		if _, err := st.consent.Add(ctx, a); err != nil {
			return fmt.Errorf("demo agreement %s: %w", a.ID, err)
		}
	}
	return nil
}

// printGPConnect tells what the demo's GP Connect practice serves.
func printGPConnect(w io.Writer, g *demoGPC, data string) {
	if g.ODS == "" {
		return
	}
	fmt.Fprintf(w, "\nGP Connect practice %s: read live at every request over mutual TLS (certificates in %s) from the\n"+
		"provider emulator `gpgate serve` starts on a loopback port, over %s;\n"+
		"its patients are found through the recorded PDS in %s. %d patients:",
		g.ODS, filepath.Join(data, demoPKIDir), g.Recorded, filepath.Join(data, demoPDSDir), len(g.Patients))
	for i, n := range g.Patients {
		if i%6 == 0 {
			fmt.Fprint(w, "\n ")
		}
		fmt.Fprintf(w, " %s", n)
	}
	fmt.Fprintln(w)
}
