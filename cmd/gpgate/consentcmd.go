package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/fhir"
)

func runConsent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "revoke" {
		return runConsentRevoke(ctx, args[1:], stdout, stderr)
	}
	var o struct {
		base, client, key, nhs, clinician, breakGlass string
		hours                                         int
	}
	fs := newFlags("consent --base URL --client ID --key FILE --nhs N --clinician SDS [--break-glass REASON]",
		"Records a clinician's consent to view a patient's GP record (the patient agreed, now), or a\nbreak-glass with its reason, and prints the Consent id to use as `gpgate token --consent ID`.", stderr)
	fs.StringVar(&o.base, "base", "http://127.0.0.1:8080", "gpgate's base URL, as `gpgate serve` prints it")
	fs.StringVar(&o.client, "client", "", "client id (required)")
	fs.StringVar(&o.key, "key", "", "the client's private key file (required)")
	fs.StringVar(&o.nhs, "nhs", "", "the patient's NHS number (required)")
	fs.StringVar(&o.clinician, "clinician", "", "the clinician's SDS user id: the consent is bound to this clinician and --client, and a patient-context token needs the same as --subject-id (required)")
	fs.StringVar(&o.breakGlass, "break-glass", "", "record a break-glass (purpose ETREAT) with this reason (kept only in the audit)")
	fs.IntVar(&o.hours, "hours", 8, "how long the consent lasts (1 to 24)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := missingFlags(fs, "client", "key", "nhs", "clinician"); err != nil {
		return err
	}
	if o.hours < 1 || o.hours > 24 {
		return fmt.Errorf("--hours %d: a consent to view lasts 1 to 24 hours", o.hours)
	}
	nhs, err := fhir.ParseNHSNumber(o.nhs)
	if err != nil {
		return fmt.Errorf("--nhs %s: %s", o.nhs, fhir.AsError(err).Diagnostics)
	}
	key, err := os.ReadFile(o.key)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	ep, err := discover(ctx, o.base)
	if err != nil {
		return err
	}
	base := ep.base
	tok, err := requestToken(ctx, ep, o.client, o.key, key, []string{"system/Consent.c"}, nil)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	c := map[string]any{
		"resourceType": "Consent",
		"status":       "active",
		"patient":      map[string]any{"identifier": map[string]string{"system": fhir.NHSNumberSystem, "value": string(nhs)}},
		"performer":    []any{map[string]any{"identifier": map[string]string{"system": consent.SDSUserSystem, "value": o.clinician}}},
		"provision": map[string]any{
			"type":   "permit",
			"period": map[string]string{"start": now.Format(time.RFC3339), "end": now.Add(time.Duration(o.hours) * time.Hour).Format(time.RFC3339)},
		},
	}
	if o.breakGlass != "" {
		c["provision"].(map[string]any)["purpose"] = []any{map[string]string{"system": consent.ActReasonSystem, "code": consent.PurposeEmergency}}
		c["extension"] = []any{map[string]string{"url": consent.ExtBreakGlassReason, "valueString": o.breakGlass}}
	}
	body, _ := json.Marshal(c)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/Consent", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /Consent: HTTP %s: %s", res.Status, outcomeText(rb))
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(rb, &out); err != nil || out.ID == "" {
		return fmt.Errorf("POST /Consent: unexpected answer")
	}
	fmt.Fprintln(stdout, out.ID)
	return nil
}

// outcomeText summarises an OperationOutcome for a CLI error.
func outcomeText(b []byte) string {
	var oo struct {
		Issue []struct {
			Details struct {
				Coding []struct {
					Code string `json:"code"`
				} `json:"coding"`
			} `json:"details"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(b, &oo) != nil || len(oo.Issue) == 0 {
		return strings.TrimSpace(string(b))
	}
	code := ""
	if len(oo.Issue[0].Details.Coding) > 0 {
		code = oo.Issue[0].Details.Coding[0].Code
	}
	return code + ": " + oo.Issue[0].Diagnostics
}

// runConsentRevoke is `gpgate consent revoke --id ID`: a sharing
// administrator revokes any consent to view (tokens bound to it stop
// working at once), through the admin API of a running server
// (system/Agreement.u) or on the data directory.
func runConsentRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var data, id string
	var api apiFlags
	fs := newFlags("consent revoke --id ID [--base URL --client ID --key FILE | --data DIR]",
		"Revokes a consent to view, whoever recorded it (an administrator's act; the recording system\nrevokes its own with DELETE /Consent/{id}).", stderr)
	fs.StringVar(&data, "data", "./gpgate-data", "data directory (when no server runs)")
	fs.StringVar(&id, "id", "", "the Consent id (required)")
	api.register(fs, "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if id == "" {
		fs.Usage()
		return errUsage
	}
	if api.remote() {
		a, err := api.open()
		if err != nil {
			return err
		}
		if _, err := a.call(ctx, "DELETE", "/admin/consents/"+id, "system/Agreement.u", nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "consent %s revoked\n", id)
		return nil
	}
	if err := localOnly(data, "consent revoke"); err != nil {
		return err
	}
	st, err := openState(data)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := loadPatientIDKey(data, false); err != nil {
		return err
	}
	none := func(context.Context, fhir.NHSNumber) (string, error) {
		return "", fhir.Errorf(fhir.CodePatientNotFound, "offline")
	}
	svc, err := consent.NewService(consent.ServiceOptions{Agreements: st.consent, Consents: st.consent, PracticeOf: none,
		ResolveNHS: func(context.Context, string) (fhir.NHSNumber, error) {
			return "", fhir.Errorf(fhir.CodePatientNotFound, "offline")
		}})
	if err != nil {
		return err
	}
	if _, err := svc.AdminRevokeConsent(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "consent %s revoked\n", id)
	return nil
}
