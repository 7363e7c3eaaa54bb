package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
)

const stateFile = "gpgate.db" // clients, signing keys (and later agreements, consents)

// clientsOf opens the state file for the client registry.
func clientsOf(data string) (clientStore, func() error, error) {
	return clientsAt(context.Background(), data, "")
}

// clientsAt is clientsOf, or the PostgreSQL registry when database is set.
func clientsAt(ctx context.Context, data, database string) (clientStore, func() error, error) {
	st, err := openStateAt(ctx, data, database)
	if err != nil {
		return nil, nil, err
	}
	return st.clients, st.Close, nil
}

func runClients(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `Usage:
  gpgate clients keygen --out FILE [--alg ES384|ES256|RS384|RS256]
        write a new private key (JWK) to FILE and print the public JWKS to register
  gpgate clients add --id ID --ods ODS --name NAME (--jwks FILE | --jwks-url URL) --scopes 'SCOPES' [--data DIR]
        register a consumer system (a SMART Backend Services client)
  gpgate clients list [--data DIR]
  gpgate clients disable --id ID [--data DIR]
  gpgate clients enable --id ID [--data DIR]
  gpgate clients rotate-key --id ID --jwks FILE [--data DIR]
        replace the client's public keys (include old and new keys for a rollover)
  gpgate clients rotate-signing-key [--alg ES384|RS384] [--data DIR]
        make a new token-signing key for gpgate; tokens of the old one verify until they expire

The client registry lives in DIR/gpgate.db. While gpgate serve runs, give
--base URL --client ID --key FILE to use its admin API instead (the client
needs system/Client scopes, system/SigningKey.u to rotate signing keys);
changes apply to the next request.
`)
	}
	if done, err := helpRequested(args, usage, stdout); done {
		return err
	}
	sub := args[0]
	var o struct{ data, database, id, ods, name, jwks, jwksURL, scopes, out, alg string }
	var api apiFlags
	fs := newFlags("clients "+sub+" [flags]", "Manage registered consumer systems.", stderr)
	fs.StringVar(&o.data, "data", "./gpgate-data", "data directory")
	fs.StringVar(&o.database, "database", os.Getenv(databaseEnv), databaseUsage)
	if sub != "keygen" {
		api.register(fs, "")
	}
	switch sub {
	case "keygen":
		fs.StringVar(&o.out, "out", "", "file to write the private key to (required)")
		fs.StringVar(&o.alg, "alg", "ES384", "ES384, ES256, RS384 or RS256")
	case "add":
		fs.StringVar(&o.id, "id", "", "client id (required)")
		fs.StringVar(&o.ods, "ods", "", "consumer organisation ODS code (required)")
		fs.StringVar(&o.name, "name", "", "display name")
		fs.StringVar(&o.jwks, "jwks", "", "file holding the client's public JWK Set")
		fs.StringVar(&o.jwksURL, "jwks-url", "", "URL of the client's public JWK Set")
		fs.StringVar(&o.scopes, "scopes", "", "allowed scopes, space separated (required)")
	case "disable", "enable":
		fs.StringVar(&o.id, "id", "", "client id (required)")
	case "rotate-key":
		fs.StringVar(&o.id, "id", "", "client id (required)")
		fs.StringVar(&o.jwks, "jwks", "", "file holding the new public JWK Set (required)")
	case "rotate-signing-key":
		fs.StringVar(&o.alg, "alg", "", "ES384 or RS384 (default: the server's)")
	case "list":
	default:
		fmt.Fprintf(stderr, "gpgate clients: unknown subcommand %q\n", sub)
		usage(stderr)
		return errUsage
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if sub == "keygen" {
		if err := missingFlags(fs, "out"); err != nil {
			return err
		}
		priv, pub, kid, err := smart.GenerateClientKey(o.alg)
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, priv, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "private key (kid %s) written to %s; register this public JWKS:\n", kid, o.out)
		fmt.Fprintln(stdout, string(pub))
		return nil
	}
	switch sub {
	case "add":
		if err := missingFlags(fs, "id", "ods", "scopes"); err != nil {
			return err
		}
		if (o.jwks == "") == (o.jwksURL == "") {
			return fmt.Errorf("give exactly one of --jwks FILE (the public JWKS `gpgate clients keygen` prints) or --jwks-url URL")
		}
	case "disable", "enable":
		if err := missingFlags(fs, "id"); err != nil {
			return err
		}
	case "rotate-key":
		if err := missingFlags(fs, "id", "jwks"); err != nil {
			return err
		}
	}
	c := &smart.Client{ID: o.id, ODS: o.ods, Name: o.name, JWKSURL: o.jwksURL, Scopes: strings.Fields(o.scopes), Enabled: true}
	if o.jwks != "" {
		b, err := os.ReadFile(o.jwks)
		if err != nil {
			return err
		}
		c.JWKS = json.RawMessage(b)
	}
	if api.remote() {
		return clientsAPI(ctx, &api, sub, c, o.alg, stdout)
	}
	if o.database == "" {
		if err := localOnly(o.data, "clients "+sub); err != nil {
			return err
		}
	}
	st, closeState, err := clientsAt(ctx, o.data, o.database)
	if err != nil {
		return err
	}
	defer closeState()
	switch sub {
	case "rotate-signing-key":
		srv, err := smart.NewServer(ctx, smart.Options{Clients: st, Keys: st, BaseURL: "http://offline.invalid"})
		if err != nil {
			return err
		}
		kid, err := srv.RotateSigningKey(ctx, o.alg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "signing key %s is now active; tokens of the previous key verify until they expire\n", kid)
	case "add":
		if err := st.AddClient(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s registered for %s\n", o.id, o.ods)
	case "list":
		cs, err := st.ListClients(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tODS\tNAME\tENABLED\tSCOPES\tUPDATED")
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", c.ID, c.ODS, c.Name, c.Enabled, strings.Join(c.Scopes, " "), c.Updated.Format(time.RFC3339))
		}
		tw.Flush()
	case "disable", "enable":
		f := st.DisableClient
		if sub == "enable" {
			f = st.EnableClient
		}
		if err := f(ctx, o.id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s %sd\n", o.id, sub)
	case "rotate-key":
		if err := st.RotateClientKey(ctx, o.id, c.JWKS); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s keys replaced\n", o.id)
	}
	return nil
}

// clientsAPI runs a clients verb through a running server's admin API.
func clientsAPI(ctx context.Context, f *apiFlags, sub string, c *smart.Client, alg string, stdout io.Writer) error {
	api, err := f.open()
	if err != nil {
		return err
	}
	var out []byte
	switch sub {
	case "list":
		if out, err = api.call(ctx, "GET", "/admin/clients", "system/Client.rs", nil, nil); err != nil {
			return err
		}
		var l struct {
			Clients []struct {
				ID, ODS, Name, Updated string
				Enabled                bool
				Scopes                 []string
			} `json:"clients"`
		}
		if err := json.Unmarshal(out, &l); err != nil {
			return fmt.Errorf("GET /admin/clients: unexpected answer")
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tODS\tNAME\tENABLED\tSCOPES\tUPDATED")
		for _, c := range l.Clients {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", c.ID, c.ODS, c.Name, c.Enabled, strings.Join(c.Scopes, " "), c.Updated)
		}
		return tw.Flush()
	case "add":
		body, _ := json.Marshal(map[string]any{"id": c.ID, "ods": c.ODS, "name": c.Name, "jwks": c.JWKS, "jwks_url": c.JWKSURL, "scopes": c.Scopes})
		if len(c.JWKS) == 0 {
			body, _ = json.Marshal(map[string]any{"id": c.ID, "ods": c.ODS, "name": c.Name, "jwks_url": c.JWKSURL, "scopes": c.Scopes})
		}
		if _, err = api.call(ctx, "POST", "/admin/clients", "system/Client.c", body, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s registered for %s\n", c.ID, c.ODS)
	case "disable", "enable":
		if _, err = api.call(ctx, "POST", "/admin/clients/"+c.ID+"/"+sub, "system/Client.u", []byte("{}"), nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s %sd\n", c.ID, sub)
	case "rotate-key":
		if _, err = api.call(ctx, "POST", "/admin/clients/"+c.ID+"/rotate-key", "system/Client.u", c.JWKS, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s keys replaced\n", c.ID)
	case "rotate-signing-key":
		body, _ := json.Marshal(map[string]string{"alg": alg})
		if alg == "" {
			body = []byte("{}")
		}
		if out, err = api.call(ctx, "POST", "/admin/signing-keys/rotate", "system/SigningKey.u", body, nil); err != nil {
			return err
		}
		var r map[string]string
		_ = json.Unmarshal(out, &r)
		fmt.Fprintf(stdout, "signing key %s is now active; tokens of the previous key verify until %s\n", r["kid"], r["previous_keys_verify_until"])
	}
	return nil
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o struct{ base, client, key, scope, org, purpose, subjectID, subjectName, subjectRole, consent string }
	fs := newFlags("token --base URL --client ID --key FILE --scope 'SCOPES' [flags]",
		"Obtains an access token with SMART Backend Services (client_credentials + private_key_jwt)\nand prints it, for curl and scripts: curl -H \"Authorization: Bearer $(gpgate token ...)\" ...", stderr)
	fs.StringVar(&o.base, "base", "http://127.0.0.1:8080", "gpgate's base URL, as `gpgate serve` prints it (the token endpoint is <base>/auth/token)")
	fs.StringVar(&o.client, "client", "", "client id (required)")
	fs.StringVar(&o.key, "key", "", "the client's private key file, JWK or PEM (required)")
	fs.StringVar(&o.scope, "scope", "", "scopes to request, space separated, e.g. 'system/*.rs' or 'patient/*.rs' with --consent (required)")
	fs.StringVar(&o.org, "org", "", "hl7-b2b organization_id: the caller's ODS code (must be the client's)")
	fs.StringVar(&o.purpose, "purpose", "", "hl7-b2b purpose_of_use: TREAT (direct care, the default) or ETREAT (emergency treatment, a break-glass; BTG is read as ETREAT)")
	fs.StringVar(&o.subjectID, "subject-id", "", "hl7-b2b subject_id: the clinician's SDS user id")
	fs.StringVar(&o.subjectName, "subject-name", "", "hl7-b2b subject_name: the clinician's name")
	fs.StringVar(&o.subjectRole, "subject-role", "", "hl7-b2b subject_role: the clinician's role")
	fs.StringVar(&o.consent, "consent", "", "hl7-b2b consent_reference: a recorded Consent id, for a patient-context token")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := missingFlags(fs, "client", "key", "scope"); err != nil {
		return err
	}
	key, err := os.ReadFile(o.key)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	var b2b *smart.B2B
	if o.org != "" || o.purpose != "" || o.subjectID != "" || o.subjectName != "" || o.subjectRole != "" || o.consent != "" {
		b2b = &smart.B2B{Version: "1", OrganizationID: o.org, SubjectID: o.subjectID, SubjectName: o.subjectName, SubjectRole: o.subjectRole}
		if o.purpose != "" {
			b2b.PurposeOfUse = smart.StringList{o.purpose}
		}
		if o.consent != "" {
			b2b.ConsentReference = smart.StringList{o.consent}
		}
	}
	ep, err := discover(ctx, o.base)
	if err != nil {
		return err
	}
	tok, err := requestToken(ctx, ep, o.client, o.key, key, strings.Fields(o.scope), b2b)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
