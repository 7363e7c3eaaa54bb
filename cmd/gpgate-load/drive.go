package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// target is one server the scenarios are driven against.
type target struct {
	name string
	base string
	hc   *http.Client
	// ops picks the operations of a scenario this target is asked (the
	// peer has its own); nil ops: the target sits the scenario out.
	ops func(s *scenario) []*op
	// auth: send the consumer's bearer token (gpgate and the baseline, so
	// the baseline carries the same request bytes).
	auth bool
}

// result is one closed-loop run: conc workers, each issuing one operation
// after another for the duration.
type result struct {
	Target      string  `json:"target"`
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	Throughput  float64 `json:"opsPerSecond"`
	MBps        float64 `json:"mbPerSecond"`
	P50, P95    float64 // milliseconds
	P99, Max    float64
	FirstError  string `json:"firstError,omitempty"`
}

func newClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conc * 2,
		MaxIdleConnsPerHost: conc * 2,
		MaxConnsPerHost:     0,
		DisableCompression:  true,
		IdleConnTimeout:     90 * time.Second,
	}, Timeout: 60 * time.Second}
}

// drive runs the scenario against t with conc workers for warm (not
// measured) and then dur (measured). Each worker picks operations at random
// (seeded) and records each operation's whole latency, every page included.
func drive(ctx context.Context, t target, s *scenario, conc int, warm, dur time.Duration, seed uint64) result {
	ops := t.ops(s)
	res := result{Target: t.name, Scenario: s.name, Concurrency: conc}
	if len(ops) == 0 {
		return res
	}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		nops      atomic.Int64
		nerr      atomic.Int64
		nbytes    atomic.Int64
		errOnce   sync.Once
		wg        sync.WaitGroup
		mu        sync.Mutex
	)
	total := hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			h := hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for !stop.Load() && ctx.Err() == nil {
				o := ops[r.IntN(len(ops))]
				start := time.Now()
				n, err := runOp(ctx, t, o)
				lat := time.Since(start)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					nerr.Add(1)
					errOnce.Do(func() { res.FirstError = err.Error() })
					continue
				}
				nops.Add(1)
				nbytes.Add(n)
				_ = h.RecordValue(max(1, lat.Microseconds()))
			}
			mu.Lock()
			total.Merge(h)
			mu.Unlock()
		}(w)
	}
	sleep(ctx, warm)
	measuring.Store(true)
	start := time.Now()
	sleep(ctx, dur)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	res.Ops, res.Errors = nops.Load(), nerr.Load()
	res.Seconds = elapsed.Seconds()
	res.Throughput = float64(res.Ops) / res.Seconds
	res.MBps = float64(nbytes.Load()) / res.Seconds / 1e6
	ms := func(us int64) float64 { return float64(us) / 1000 }
	res.P50, res.P95, res.P99, res.Max = ms(total.ValueAtQuantile(50)), ms(total.ValueAtQuantile(95)), ms(total.ValueAtQuantile(99)), ms(total.Max())
	return res
}

// runOp issues the operation's calls in order; any answer but 200 is an
// error. It returns the bytes read.
func runOp(ctx context.Context, t target, o *op) (int64, error) {
	var n int64
	for _, c := range o.calls {
		bearer := ""
		if t.auth && c.tok != nil {
			bearer = c.tok.get()
		}
		req, err := newRequest(ctx, t.base, c.method, c.path, c.body, bearer)
		if err != nil {
			return n, err
		}
		res, err := t.hc.Do(req)
		if err != nil {
			return n, err
		}
		k, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		n += k
		if err != nil {
			return n, err
		}
		if res.StatusCode != http.StatusOK {
			return n, fmt.Errorf("%s: HTTP %d", c.method, res.StatusCode)
		}
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
