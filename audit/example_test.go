package audit_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/gpgate/gpgate/audit"
	"github.com/gpgate/gpgate/fhir"
)

// The request path records every decision before any data goes out, and
// GET /AuditEvent answers from Query and Render.
func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	clock := func() time.Time { return time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC) }
	store, err := audit.Open(filepath.Join(dir, "audit.db"), audit.Options{Now: clock, Node: "gpgate-1"})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	ctx := context.Background()

	// in the handler, after consent.Decide and before the adapter is called:
	err = store.Record(ctx, &fhir.AuditEntry{
		Time: clock(), RequestID: "req-1", Action: "PatientQuery", Interaction: "search-type",
		Outcome: fhir.OutcomeDenied, Code: fhir.CodeNoOrganisationConsent, Rule: "no-agreement",
		ClientID: "ed-system-01", ConsumerODS: "RRK", NHS: "9000000009", Types: []string{"Condition"},
	})
	if err != nil {
		fmt.Println("fail closed with 500:", err)
		return
	}

	// GET /AuditEvent?patient=...&outcome=4
	f, err := audit.ParseFilter(url.Values{"patient": {fhir.PatientID("9000000009")}, "outcome": {"4"}})
	if err != nil {
		panic(err) // a *fhir.Error: answer with its OperationOutcome
	}
	entries, total, err := store.Query(ctx, f)
	if err != nil {
		panic(err)
	}
	b := fhir.Bundle{Type: "searchset", Total: total}
	for _, e := range entries {
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: audit.Resource(e), Mode: "match"})
	}
	fmt.Println(total, entries[0].ID(), len(b.AppendJSON(nil)) > 0)

	rep, _ := store.Verify(ctx)
	fmt.Println("chain ok:", rep.OK(), rep.Entries)
	// Output:
	// 1 audit-000000000001 true
	// chain ok: true 1
}

// serve anchors the log with a key kept outside the data directory,
// exports the signed head beside it and to the log stream, and tells each
// patient's practice of granted accesses through a forwarder, off the
// request path.
func ExampleStore_Forward() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	store, err := audit.Open(filepath.Join(data, "audit.db"), audit.Options{
		KeyFile:  data + ".audit-key",  // created 0600 on first run
		HeadFile: data + ".audit-head", // the newest signed head, outside the log
	})
	if err != nil {
		panic(err) // a log that does not verify, or is behind its head, is refused
	}
	var told []string
	trail, err := store.Forward(audit.ForwardOptions{
		Name:  "practice-trail",
		Match: audit.PatientAccessGranted,
		To: audit.DelivererFunc(func(ctx context.Context, e audit.Entry) error {
			told = append(told, e.Practice+" "+e.RequestID) // e.g. registry.RecordAccess(ctx, e.NHS, &e.AuditEntry)
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i, outcome := range []string{fhir.OutcomeGranted, fhir.OutcomeDenied} {
		store.Record(ctx, &fhir.AuditEntry{RequestID: fmt.Sprint("req-", i), Action: "PatientRead", Interaction: "read",
			Outcome: outcome, ClientID: "ed-system-01", NHS: "9000000009", Practice: "A20047"})
	}
	trail.Drain(ctx) // on shutdown: let the trail catch up, then Close
	store.Close()
	fmt.Println(told)
	head, _ := audit.ReadHeadFile(data + ".audit-head")
	fmt.Println("head at entry", head.Seq)
	// Output:
	// [A20047 req-0]
	// head at entry 2
}
