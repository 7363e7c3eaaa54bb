package fhir

import (
	"context"
	"errors"
	"testing"
)

func TestMemoize(t *testing.T) {
	type key string
	calls := 0
	f := func() (int, error) { calls++; return calls, nil }
	t.Run("without a memo: every time", func(t *testing.T) {
		calls = 0
		ctx := context.Background()
		a, _ := Memoize(ctx, key("a"), f)
		b, _ := Memoize(ctx, key("a"), f)
		if a != 1 || b != 2 {
			t.Fatalf("got %d, %d", a, b)
		}
	})
	t.Run("with a memo: once per key", func(t *testing.T) {
		calls = 0
		ctx := WithMemo(context.Background())
		a, _ := Memoize(ctx, key("a"), f)
		b, _ := Memoize(WithMemo(ctx), key("a"), f) // the same memo
		c, _ := Memoize(ctx, key("b"), f)
		if a != 1 || b != 1 || c != 2 {
			t.Fatalf("got %d, %d, %d", a, b, c)
		}
	})
	t.Run("errors are remembered too", func(t *testing.T) {
		ctx := WithMemo(context.Background())
		boom := errors.New("store down")
		n := 0
		g := func() (*int, error) { n++; return nil, boom }
		_, e1 := Memoize(ctx, key("x"), g)
		_, e2 := Memoize(ctx, key("x"), g)
		if !errors.Is(e1, boom) || !errors.Is(e2, boom) || n != 1 {
			t.Fatalf("errors %v %v after %d calls", e1, e2, n)
		}
	})
	t.Run("another request has its own", func(t *testing.T) {
		calls = 0
		a, _ := Memoize(WithMemo(context.Background()), key("a"), f)
		b, _ := Memoize(WithMemo(context.Background()), key("a"), f)
		if a != 1 || b != 2 {
			t.Fatalf("got %d, %d", a, b)
		}
	})
}
