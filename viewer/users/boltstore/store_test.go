package boltstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/gpgate/gpgate/viewer/users"
)

func open(t *testing.T) *Store {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "gpgate.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	return s
}

func TestStoreLifecycle(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	u := &users.User{Username: "Alice.Smith", Name: "Dr Alice Smith", Org: "RXX01", Role: "Doctor", SDSID: "555000000001", Hash: "$argon2id$placeholder"}
	if err := s.Add(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, &users.User{Username: "alice.smith", Org: "RXX01", Role: "Doctor", SDSID: "555000000001", Hash: "x"}); !errors.Is(err, users.ErrExists) {
		t.Fatalf("duplicate (case-insensitive) add: got %v, want ErrExists", err)
	}
	got, err := s.User(ctx, "ALICE.SMITH")
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice.smith" || got.Org != "RXX01" || got.SDSID != "555000000001" || got.Disabled || got.PasswordSet.IsZero() {
		t.Fatalf("stored account: %+v", got)
	}
	set := got.PasswordSet
	if err := s.SetPassword(ctx, "alice.smith", "$argon2id$new"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.User(ctx, "alice.smith")
	if got.Hash != "$argon2id$new" || !got.PasswordSet.After(set) {
		t.Fatalf("after reset: %+v", got)
	}
	if err := s.SetDisabled(ctx, "alice.smith", true); err != nil {
		t.Fatal(err)
	}
	got, _ = s.User(ctx, "alice.smith")
	if !got.Disabled {
		t.Fatal("not disabled")
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].Username != "alice.smith" {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	cases := []struct {
		name string
		err  error
	}{
		{"unknown user", func() error { _, err := s.User(ctx, "nobody"); return err }()},
		{"disable unknown", s.SetDisabled(ctx, "nobody", true)},
		{"reset unknown", s.SetPassword(ctx, "nobody", "h")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, users.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", c.err)
			}
		})
	}
	invalid := []*users.User{
		{Username: "ab", Org: "RXX01", Role: "Doctor", SDSID: "555000000001", Hash: "h"},
		{Username: "bob", Org: "rxx01", Role: "Doctor", SDSID: "555000000001", Hash: "h"},
		{Username: "bob", Org: "RXX01", Role: "", SDSID: "555000000001", Hash: "h"},
		{Username: "bob", Org: "RXX01", Role: "Doctor", SDSID: "12ab", Hash: "h"},
		{Username: "bob", Org: "RXX01", Role: "Doctor", SDSID: "555000000001"},
		{Username: "bob smith", Org: "RXX01", Role: "Doctor", SDSID: "555000000001", Hash: "h"},
	}
	for i, u := range invalid {
		if err := s.Add(ctx, u); err == nil {
			t.Errorf("invalid account %d accepted: %+v", i, u)
		}
	}
}
