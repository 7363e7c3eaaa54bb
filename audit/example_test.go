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
