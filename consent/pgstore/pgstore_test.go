package pgstore_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent"
	"github.com/gpgate/gpgate/consent/consenttest"
	"github.com/gpgate/gpgate/consent/pgstore"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/postgres"
	"github.com/gpgate/gpgate/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestContract(t *testing.T) {
	consenttest.Run(t, func(t *testing.T, now func() time.Time) (consent.AgreementStore, consent.ConsentStore) {
		s := pgstore.New(pgtest.Pool(t, pgstore.Migrations), now)
		return s, s
	})
}

// Two nodes on one database: a suspension made on one is seen by the
// other's cached policy as soon as it commits (NOTIFY), not after the TTL.
func TestSuspensionReachesOtherNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := pgtest.URL(t)
	a := pgstore.New(pgtest.PoolAt(t, url, pgstore.Migrations), nil)
	b := pgstore.New(pgtest.PoolAt(t, url), nil)
	if _, err := a.Add(ctx, consent.Agreement{ID: "ag", Provider: "Y99001", Consumers: []string{"RXX01"}, Areas: fhir.AllAreas, Status: consent.StatusActive}); err != nil {
		t.Fatal(err)
	}
	// node B's cache with a TTL far longer than the test
	cache := consent.NewAgreementCache(b, time.Hour, nil)
	hub := postgres.NewHub(url, nil)
	seen := make(chan string, 8)
	hub.Subscribe(pgstore.Channel, func(p string) { cache.Invalidate(); seen <- p })
	go hub.Run(ctx)
	<-seen // connected
	ags, err := cache.ForProvider(ctx, "Y99001")
	if err != nil || len(ags) != 1 || ags[0].Status != consent.StatusActive {
		t.Fatalf("%v %v", ags, err)
	}
	if _, err := a.Suspend(ctx, "ag"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-seen:
		if p != "ag" {
			t.Fatalf("payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	ags, err = cache.ForProvider(ctx, "Y99001")
	if err != nil || len(ags) != 1 || ags[0].Status != consent.StatusSuspended {
		t.Fatalf("node B still sees %v %v", ags, err)
	}
}

func TestUnreachableFailsClosed(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t, pgstore.Migrations)
	s := pgstore.New(pool, nil)
	pool.Close()
	for name, op := range map[string]func() error{
		"ForProvider": func() error { _, err := s.ForProvider(ctx, "Y99001"); return err },
		"GetConsent":  func() error { _, err := s.GetConsent(ctx, "c"); return err },
		"Add": func() error {
			_, err := s.Add(ctx, consent.Agreement{Provider: "Y99001", Consumers: []string{"RXX01"}, Areas: fhir.AllAreas})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := op()
			if fe := fhir.AsError(err); err == nil || fe.Code != fhir.CodeInternal {
				t.Fatalf("err %v, want an internal error", err)
			}
		})
	}
}
