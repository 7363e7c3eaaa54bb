package adapters

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryOptions configures RetryTransport. Zero fields take the defaults.
type RetryOptions struct {
	Attempts  int           // total tries of one request, first included (default 3)
	BaseDelay time.Duration // backoff before the second try (default 100ms)
	MaxDelay  time.Duration // cap of one backoff (default 2s)
	// Jitter returns a number in [0, 1) (default math/rand/v2); tests pin it.
	Jitter func() float64
	// Sleep waits d or until ctx ends (default a timer); tests count instead.
	Sleep func(ctx context.Context, d time.Duration) error
}

// RetryTransport retries idempotent requests — GET, HEAD, OPTIONS, or any
// method carrying an Idempotency-Key header (as net/http itself treats them)
// — after a transport error or a 429, 502, 503 or 504 answer, with
// exponential backoff and full jitter, never past the request context's
// deadline. Anything else is sent once: a POST that is not marked idempotent
// is never repeated.
type RetryTransport struct {
	Base http.RoundTripper // default http.DefaultTransport
	Opt  RetryOptions
}

// NewRetryTransport returns a RetryTransport over base.
func NewRetryTransport(base http.RoundTripper, opt RetryOptions) *RetryTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 3
	}
	if opt.BaseDelay <= 0 {
		opt.BaseDelay = 100 * time.Millisecond
	}
	if opt.MaxDelay <= 0 {
		opt.MaxDelay = 2 * time.Second
	}
	if opt.Jitter == nil {
		opt.Jitter = rand.Float64
	}
	if opt.Sleep == nil {
		opt.Sleep = sleepCtx
	}
	return &RetryTransport{Base: base, Opt: opt}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Idempotent reports whether a request may be sent again.
func Idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
	}
	_, k1 := r.Header["Idempotency-Key"]
	_, k2 := r.Header["X-Idempotency-Key"]
	return (k1 || k2) && (r.Body == nil || r.Body == http.NoBody || r.GetBody != nil)
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// RoundTrip implements http.RoundTripper.
func (t *RetryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !Idempotent(r) {
		return t.Base.RoundTrip(r)
	}
	ctx := r.Context()
	for attempt := 1; ; attempt++ {
		req := r
		if attempt > 1 && r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			req = r.Clone(ctx)
			req.Body = body
		}
		resp, err := t.Base.RoundTrip(req)
		if ctx.Err() != nil || attempt >= t.Opt.Attempts {
			return resp, err
		}
		if err == nil && !retryableStatus(resp.StatusCode) {
			return resp, nil
		}
		d := t.backoff(attempt)
		if resp != nil {
			if ra := retryAfter(resp); ra > d {
				d = ra
			}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
			return resp, err // no time left for another try: give the last answer
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if serr := t.Opt.Sleep(ctx, d); serr != nil {
			if err == nil {
				err = serr
			}
			return nil, err
		}
	}
}

// backoff is full jitter over an exponential ceiling: [0, min(max, base*2^(n-1))).
func (t *RetryTransport) backoff(attempt int) time.Duration {
	ceil := t.Opt.BaseDelay << (attempt - 1)
	if ceil <= 0 || ceil > t.Opt.MaxDelay {
		ceil = t.Opt.MaxDelay
	}
	return time.Duration(t.Opt.Jitter() * float64(ceil))
}

// retryAfter reads a Retry-After header in seconds (the HTTP-date form is
// ignored), capped at one minute.
func retryAfter(resp *http.Response) time.Duration {
	s := resp.Header.Get("Retry-After")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	if n > 60 {
		n = 60
	}
	return time.Duration(n) * time.Second
}
