package smart

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestTwoNodesShareKeys(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	b, err := NewServer(ctx, Options{Clients: f.st, Keys: f.st, BaseURL: testBase, Now: f.clock.Now, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if b.ring.Load().active.kid != f.srv.ring.Load().active.kid {
		t.Fatal("second node made its own key")
	}
	f.clock.Advance(11 * time.Second)
	if _, err := f.srv.RotateSigningKey(ctx, ""); err != nil {
		t.Fatal(err)
	}
	tok := f.token("system/Patient.rs", nil).AccessToken
	if _, err := b.Verifier().Verify(ctx, tok); err != nil {
		t.Fatalf("node B does not verify node A's token after A rotated: %v", err)
	}
	if b.ring.Load().active.kid != f.srv.ring.Load().active.kid {
		t.Fatal("node B did not take up the new active key")
	}
}

func TestConcurrentIssueAndVerify(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.VerifierCacheSize = 8 })
	ctx := context.Background()
	bodies := make([]string, 32)
	for i := range bodies {
		bodies[i] = tokenForm(f.sign(f.claims(), nil), "system/Patient.rs").Encode()
	}
	// each assertion is sent twice at once: exactly one of the two gets a
	// token (the other is a replay), and every token verifies
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := make([]int, len(bodies))
	errs := make(chan string, 4*len(bodies))
	for i, body := range bodies {
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func(i int, body string) {
				defer wg.Done()
				w := f.post(f.srv.TokenHandler(), body)
				if w.Code != 200 {
					if w.Code != 401 {
						errs <- w.Body.String()
					}
					return
				}
				mu.Lock()
				wins[i]++
				mu.Unlock()
				a := decodeAnswer(t, w)
				for k := 0; k < 3; k++ {
					if _, err := f.srv.Verifier().Verify(ctx, a.AccessToken); err != nil {
						errs <- err.Error()
					}
				}
			}(i, body)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i, n := range wins {
		if n != 1 {
			t.Errorf("assertion %d got %d tokens, want 1", i, n)
		}
	}
}
