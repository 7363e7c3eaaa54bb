package fhir

import (
	"context"
	"sync"
)

// A request memo holds what one request works out once and reads again:
// the record-access core opens one per request, and a collaborator asked
// twice in that request (the consent to view the token names, read by the
// decision before the fetch and by the one after) reads its store once.
// Nothing outlives the request, so nothing can go stale.
type memo struct {
	mu sync.Mutex
	m  map[any]memoized
}

type memoized struct {
	v   any
	err error
}

type memoKey struct{}

// WithMemo returns ctx carrying a new, empty request memo (a memo already
// there is kept: one per request).
func WithMemo(ctx context.Context) context.Context {
	if _, ok := ctx.Value(memoKey{}).(*memo); ok {
		return ctx
	}
	return context.WithValue(ctx, memoKey{}, &memo{m: map[any]memoized{}})
}

// Memoize returns what f returned the first time it was asked for key in
// this request; without a memo in ctx it calls f every time. key must be
// comparable and distinct from other packages' keys (a type of the
// caller's own).
func Memoize[T any](ctx context.Context, key any, f func() (T, error)) (T, error) {
	m, ok := ctx.Value(memoKey{}).(*memo)
	if !ok {
		return f()
	}
	m.mu.Lock()
	got, done := m.m[key]
	m.mu.Unlock()
	if done {
		v, _ := got.v.(T)
		return v, got.err
	}
	v, err := f()
	m.mu.Lock()
	m.m[key] = memoized{v, err}
	m.mu.Unlock()
	return v, err
}
