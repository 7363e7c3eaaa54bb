// Package smarttest is the contract of consent/smart's stores — ClientStore,
// KeyStore and ReplayCache — run against every implementation (bbolt and
// in-memory in consent/smart, PostgreSQL in consent/smart/pgstore).
package smarttest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// Stores is one fresh, empty store under test.
type Stores struct {
	Clients smart.ClientStore
	Keys    smart.KeyStore
}

// NewStores makes fresh stores whose Created/Updated stamps come from now.
type NewStores func(t *testing.T, now func() time.Time) Stores

// T0 is the contract's clock (microsecond precision: what every store keeps).
var T0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func codeOf(err error) fhir.Code {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

func jwks(t *testing.T) []byte {
	t.Helper()
	_, pub, _, err := smart.GenerateClientKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// RunClients runs the ClientStore contract.
func RunClients(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	now := T0
	s := newStores(t, func() time.Time { return now }).Clients
	pub := jwks(t)
	c := &smart.Client{ID: "epr-1", ODS: "RXX01", Name: "EPR", JWKS: pub, Scopes: []string{"system/*.rs"}, Enabled: true}
	t.Run("add", func(t *testing.T) {
		if err := s.AddClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetClient(ctx, "epr-1")
		if err != nil || got.ODS != "RXX01" || got.Name != "EPR" || !got.Enabled || !got.Created.Equal(T0) || !got.Updated.Equal(T0) ||
			!slices.Equal(got.Scopes, c.Scopes) || !jsonEqual(got.JWKS, pub) {
			t.Fatalf("%+v %v", got, err)
		}
	})
	for _, tc := range []struct {
		name string
		c    *smart.Client
	}{
		{"duplicate", &smart.Client{ID: "epr-1", ODS: "RXX01", JWKS: pub, Scopes: []string{"system/*.rs"}}},
		{"bad id", &smart.Client{ID: "a b", ODS: "RXX01", JWKS: pub, Scopes: []string{"system/*.rs"}}},
		{"bad ods", &smart.Client{ID: "x", ODS: "rxx", JWKS: pub, Scopes: []string{"system/*.rs"}}},
		{"no keys", &smart.Client{ID: "x", ODS: "RXX01", Scopes: []string{"system/*.rs"}}},
		{"bad scope", &smart.Client{ID: "x", ODS: "RXX01", JWKS: pub, Scopes: []string{"everything"}}},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			if err := s.AddClient(ctx, tc.c); codeOf(err) != fhir.CodeBadRequest {
				t.Fatalf("err %v, want BAD_REQUEST", err)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := s.GetClient(ctx, "nobody")
		if !errors.Is(err, smart.ErrClientNotFound) || codeOf(err) != fhir.CodeReferenceNotFound {
			t.Fatalf("err %v", err)
		}
		for name, op := range map[string]func() error{
			"disable": func() error { return s.DisableClient(ctx, "nobody") },
			"enable":  func() error { return s.EnableClient(ctx, "nobody") },
			"rotate":  func() error { return s.RotateClientKey(ctx, "nobody", pub) },
		} {
			if err := op(); !errors.Is(err, smart.ErrClientNotFound) {
				t.Fatalf("%s: %v", name, err)
			}
		}
	})
	later := T0.Add(time.Minute)
	t.Run("disable and enable", func(t *testing.T) {
		now = later
		if err := s.DisableClient(ctx, "epr-1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetClient(ctx, "epr-1"); got.Enabled || !got.Updated.Equal(later) || !got.Created.Equal(T0) {
			t.Fatalf("after disable %+v", got)
		}
		if err := s.EnableClient(ctx, "epr-1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetClient(ctx, "epr-1"); !got.Enabled {
			t.Fatalf("after enable %+v", got)
		}
	})
	t.Run("rotate", func(t *testing.T) {
		if err := s.RotateClientKey(ctx, "epr-1", []byte(`{"keys":[]}`)); codeOf(err) != fhir.CodeBadRequest {
			t.Fatalf("empty set: %v", err)
		}
		url := &smart.Client{ID: "by-url", ODS: "RXX02", JWKSURL: "https://epr.example/jwks", Scopes: []string{"system/*.rs"}, Enabled: true}
		if err := s.AddClient(ctx, url); err != nil {
			t.Fatal(err)
		}
		next := jwks(t)
		if err := s.RotateClientKey(ctx, "by-url", next); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetClient(ctx, "by-url")
		if got.JWKSURL != "" || !jsonEqual(got.JWKS, next) {
			t.Fatalf("after rotate %+v", got)
		}
	})
	t.Run("list by id", func(t *testing.T) {
		if err := s.AddClient(ctx, &smart.Client{ID: "a-first", ODS: "RXX03", JWKS: pub, Scopes: []string{"system/*.rs"}}); err != nil {
			t.Fatal(err)
		}
		l, err := s.ListClients(ctx)
		if err != nil || len(l) != 3 || l[0].ID != "a-first" || l[1].ID != "by-url" || l[2].ID != "epr-1" {
			t.Fatalf("%v %v", l, err)
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// RunKeys runs the KeyStore contract.
func RunKeys(t *testing.T, newStores NewStores) {
	ctx := context.Background()
	ks := newStores(t, func() time.Time { return T0 }).Keys
	k := func(kid string, retired time.Time) smart.SigningKey {
		return smart.SigningKey{KID: kid, Alg: "ES384", JWK: json.RawMessage(`{"kty":"EC","kid":"` + kid + `"}`), Created: T0, Retired: retired}
	}
	kids := func(keys []smart.SigningKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.KID)
		}
		return out
	}
	if got, err := ks.SigningKeys(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	steps := []struct {
		name string
		set  []smart.SigningKey
		err  error
		want []string
	}{
		{"first key", []smart.SigningKey{k("a", time.Time{})}, nil, []string{"a"}},
		{"rotate: a retired, b active", []smart.SigningKey{k("a", T0), k("b", time.Time{})}, nil, []string{"a", "b"}},
		{"prune retired a", []smart.SigningKey{k("b", time.Time{})}, nil, []string{"b"}},
		{"a racing node's key", []smart.SigningKey{k("c", time.Time{})}, smart.ErrSigningKeysChanged, []string{"b"}},
		{"rotate b to c", []smart.SigningKey{k("b", T0), k("c", time.Time{})}, nil, []string{"b", "c"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := ks.SetSigningKeys(ctx, st.set)
			if !errors.Is(err, st.err) || (st.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, st.err)
			}
			got, err := ks.SigningKeys(ctx)
			if err != nil || !slices.Equal(kids(got), st.want) {
				t.Fatalf("stored %v %v, want %v", kids(got), err, st.want)
			}
		})
	}
	got, _ := ks.SigningKeys(ctx)
	if !got[0].Retired.Equal(T0) || !got[1].Retired.IsZero() || !got[1].Created.Equal(T0) || !jsonEqual(got[1].JWK, k("c", time.Time{}).JWK) {
		t.Fatalf("round trip %+v", got)
	}
}

// NewReplay makes a fresh replay cache with clock now.
type NewReplay func(t *testing.T, now func() time.Time) smart.ReplayCache

// RunReplay runs the ReplayCache contract.
func RunReplay(t *testing.T, newReplay NewReplay) {
	ctx := context.Background()
	var mu sync.Mutex
	now := T0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rc := newReplay(t, clock)
	exp := T0.Add(5 * time.Minute)
	steps := []struct {
		name, client, jti string
		exp               time.Time
		advance           time.Duration
		fresh             bool
	}{
		{"first use", "c1", "j1", exp, 0, true},
		{"replay", "c1", "j1", exp, 0, false},
		{"same jti, other client", "c2", "j1", exp, 0, true},
		{"other jti", "c1", "j2", exp, 0, true},
		{"replay just before exp", "c1", "j1", exp, 5*time.Minute - time.Second, false},
		{"after exp it is forgotten", "c1", "j1", T0.Add(20 * time.Minute), 2 * time.Second, true},
		{"and remembered again", "c1", "j1", T0.Add(20 * time.Minute), 0, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			mu.Lock()
			now = now.Add(st.advance)
			mu.Unlock()
			fresh, err := rc.Use(ctx, st.client, st.jti, st.exp)
			if err != nil || fresh != st.fresh {
				t.Fatalf("fresh %v %v, want %v", fresh, err, st.fresh)
			}
		})
	}
	t.Run("concurrent uses: exactly one is fresh", func(t *testing.T) {
		var wg sync.WaitGroup
		var wins sync.Map
		n := 0
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				fresh, err := rc.Use(ctx, "c3", "race", T0.Add(time.Hour))
				if err != nil {
					t.Error(err)
				}
				if fresh {
					wins.Store(i, true)
				}
			}(i)
		}
		wg.Wait()
		wins.Range(func(_, _ any) bool { n++; return true })
		if n != 1 {
			t.Fatalf("%d fresh uses of one jti", n)
		}
	})
}
