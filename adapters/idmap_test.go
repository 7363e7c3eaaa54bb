package adapters

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// countingIDMap is a durable id map double that counts writes (each Put or
// PutBatch stands for one transaction, one fsync) and can be made to fail.
type countingIDMap struct {
	mu      sync.Mutex
	m       map[string]fhir.NHSNumber
	writes  int
	entries int
	fail    bool
}

func newCountingIDMap() *countingIDMap { return &countingIDMap{m: map[string]fhir.NHSNumber{}} }

func (c *countingIDMap) Put(ctx context.Context, id string, nhs fhir.NHSNumber) error {
	return c.PutBatch(ctx, map[string]fhir.NHSNumber{id: nhs})
}

func (c *countingIDMap) PutBatch(_ context.Context, es map[string]fhir.NHSNumber) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return errors.New("disk full")
	}
	c.writes++
	for id, n := range es {
		c.m[id] = n
		c.entries++
	}
	return nil
}

func (c *countingIDMap) Get(_ context.Context, id string) (fhir.NHSNumber, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id], nil
}

func (c *countingIDMap) counts() (writes, entries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.entries
}

func TestWriteBehind(t *testing.T) {
	ctx := context.Background()
	nhs := []fhir.NHSNumber{nhsA, nhsB, nhsC}
	t.Run("puts are seen at once and written in one batch", func(t *testing.T) {
		d := newCountingIDMap()
		w := NewWriteBehind(d, WriteBehindOptions{Every: time.Hour})
		defer w.Close()
		for _, n := range nhs {
			if err := w.Put(ctx, fhir.PatientID(n), n); err != nil {
				t.Fatal(err)
			}
			if got, _ := w.Get(ctx, fhir.PatientID(n)); got != n {
				t.Fatalf("Get before the write = %q", got)
			}
		}
		if wr, _ := d.counts(); wr != 0 {
			t.Fatalf("writes before flush = %d, want 0 (Put must not touch storage)", wr)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if wr, en := d.counts(); wr != 1 || en != 3 {
			t.Fatalf("writes, entries = %d, %d; want 1, 3", wr, en)
		}
	})
	t.Run("a known entry is not written again", func(t *testing.T) {
		d := newCountingIDMap()
		_ = d.Put(ctx, fhir.PatientID(nhsA), nhsA)
		w := NewWriteBehind(d, WriteBehindOptions{Every: time.Hour})
		defer w.Close()
		if got, _ := w.Get(ctx, fhir.PatientID(nhsA)); got != nhsA {
			t.Fatalf("durable entry not found: %q", got)
		}
		for range 5 {
			_ = w.Put(ctx, fhir.PatientID(nhsA), nhsA)
		}
		_ = w.Flush(ctx)
		if wr, _ := d.counts(); wr != 1 {
			t.Fatalf("writes = %d, want 1 (the setup's only)", wr)
		}
	})
	t.Run("a failed write is retried", func(t *testing.T) {
		d := newCountingIDMap()
		d.fail = true
		w := NewWriteBehind(d, WriteBehindOptions{Every: time.Hour})
		_ = w.Put(ctx, fhir.PatientID(nhsA), nhsA)
		if err := w.Flush(ctx); err == nil {
			t.Fatal("flush over a failing store succeeded")
		}
		if w.Pending() != 1 {
			t.Fatalf("pending after failure = %d", w.Pending())
		}
		d.mu.Lock()
		d.fail = false
		d.mu.Unlock()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := d.Get(ctx, fhir.PatientID(nhsA)); got != nhsA {
			t.Fatal("entry lost after a failed write")
		}
	})
	t.Run("the background writer writes without a flush", func(t *testing.T) {
		d := newCountingIDMap()
		w := NewWriteBehind(d, WriteBehindOptions{Every: time.Millisecond})
		defer w.Close()
		_ = w.Put(ctx, fhir.PatientID(nhsB), nhsB)
		for w.Pending() > 0 {
			time.Sleep(time.Millisecond)
		}
		if got, _ := d.Get(ctx, fhir.PatientID(nhsB)); got != nhsB {
			t.Fatal("not written")
		}
	})
	t.Run("invalid entries are refused at once", func(t *testing.T) {
		w := NewWriteBehind(newCountingIDMap(), WriteBehindOptions{})
		defer w.Close()
		if err := w.Put(ctx, "", nhsA); err == nil {
			t.Fatal("empty id accepted")
		}
		if err := w.Put(ctx, "p1", "9000000000"); err == nil {
			t.Fatal("invalid NHS number accepted")
		}
	})
}

// TestRefusalWritesNothing: locating a patient (what the core does before
// the sharing decision) writes nothing to the id map, whether the locator
// places the patient or not, so a refused request costs the same either
// way. Only a fetched record (after the decision permitted it) is written,
// once, and off the request path.
func TestRefusalWritesNothing(t *testing.T) {
	ctx := context.Background()
	d := newCountingIDMap()
	w := NewWriteBehind(d, WriteBehindOptions{Every: time.Hour})
	defer w.Close()
	reg := NewRegistryWith(RegistryOptions{Locator: mapLocator{nhsB: "LIVE1"}, IDMap: w})
	if err := reg.Register(ctx, Practice{ODS: "LIVE1", Kind: "gpconnect", Source: &fakeSource{fn: answer("v1")}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		nhs  fhir.NHSNumber
	}{
		{"placed by the locator", nhsB},
		{"unknown to the locator", nhsC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 10 {
				_, _ = reg.Locate(ctx, tc.nhs)
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if wr, en := d.counts(); wr != 0 || en != 0 {
				t.Fatalf("id map writes = %d (%d entries) after locating only, want 0", wr, en)
			}
			if w.Pending() != 0 {
				t.Fatalf("queued for writing: %d", w.Pending())
			}
		})
	}
	t.Run("a located patient resolves by id in this process", func(t *testing.T) {
		if n, err := reg.Resolve(ctx, fhir.PatientID(nhsB)); err != nil || n != nhsB {
			t.Fatalf("Resolve = %q, %v", n, err)
		}
	})
	t.Run("a fetched record is written once", func(t *testing.T) {
		for range 3 {
			if _, err := reg.Record(ctx, nhsB, fhir.AreaProblems); err != nil {
				t.Fatal(err)
			}
		}
		if wr, _ := d.counts(); wr != 0 {
			t.Fatalf("writes on the request path: %d", wr)
		}
		_ = w.Flush(ctx)
		if wr, en := d.counts(); wr != 1 || en != 1 {
			t.Fatalf("writes, entries = %d, %d; want 1, 1", wr, en)
		}
	})
}
