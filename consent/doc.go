// Package consent is gpgate's policy decision: sharing agreements, consent
// to share (from the GP record), consent to view (recorded by the consumer
// clinician, or a break-glass), sensitive-code exclusion (sensitive.go; the
// code sets are data in codesets/, sources and licences in
// codesets/README.md) and coded-only redaction. It imports only fhir,
// bbolt and the standard library; cmd wires it.
//
// Wiring, per request (fhir/rest):
//
//	ags, _ := store.ForProvider(ctx, practice)                 // re-read every request
//	in := consent.Input{Principal: p, Request: req, Practice: practice, Agreements: ags, Now: now}
//	if p.ConsentRef != "" { in.Consent, _ = store.GetConsent(ctx, p.ConsentRef) } // nil when not found
//	d := consent.DecideOrganisation(in)                        // pre-fetch: never depends on the patient
//	... deny with fhir.Errorf(d.Code, "%s", d.Rule) unless d.Permit; fetch rec for d.Areas ...
//	in.Record = rec
//	d = consent.DecidePatient(in)                              // dissent, defaults, consent to view, break-glass
//	out, _ := redactor.Redact(rec, d.Areas)                    // NewRedactor(consent.DefaultExclusions(), 0)
//	... build the Bundle from out.Resources and out.Warnings ...
//
// POST /Consent (system token): consent.ParseConsentBody(body), then
// Consents.RecordConsent(ctx, p, req); audit with Reason = req.Reason (the
// break-glass reason, which is never stored nor returned).
//
// Patient-context tokens (consent/smart Narrower): Consents.NarrowAreas(ctx,
// client ODS, consent_reference, now) -> patient id, areas, break-glass;
// ScopesForAreas(areas) are the scopes the token may carry.
//
// Admin API /admin/agreements: ParseAgreement(body) -> AgreementStore.Add;
// AgreementJSON / AgreementListJSON to answer; Activate, Suspend, End.
//
// References to withheld resources are left dangling, as GP Connect does:
// they reveal an id, never content.
package consent
