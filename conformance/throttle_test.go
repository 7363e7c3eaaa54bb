package conformance

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoliteTransport(t *testing.T) {
	for _, tc := range []struct {
		name       string
		throttle   int    // 429s before a 200
		retryAfter string // the 429s' Retry-After
		method     string
		want       int   // final status
		sends      int64 // requests the server saw
		waits      int64
	}{
		{"no limit", 0, "1", "GET", 200, 1, 0},
		{"waited out", 2, "1", "GET", 200, 3, 2},
		{"a body is sent again", 1, "1", "POST", 200, 2, 1},
		{"gives up after six sends", 10, "1", "GET", 429, 6, 5},
		{"a long wait is not waited", 1, "3600", "GET", 429, 1, 0},
		{"no Retry-After: not retried", 1, "", "GET", 429, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := seen.Add(1)
				if r.Method == "POST" {
					if b, _ := io.ReadAll(r.Body); string(b) != "payload" {
						t.Errorf("send %d carried %q", n, b)
					}
				}
				if n <= int64(tc.throttle) {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(429)
					return
				}
				w.WriteHeader(200)
			}))
			defer srv.Close()
			var slept []time.Duration
			pt := &politeTransport{next: http.DefaultTransport, attempts: 6, maxWait: 10 * time.Second,
				sleep: func(d time.Duration) { slept = append(slept, d) }}
			req, _ := http.NewRequest(tc.method, srv.URL, strings.NewReader("payload"))
			res, err := (&http.Client{Transport: pt}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want || seen.Load() != tc.sends || pt.throttled.Load() != tc.waits {
				t.Fatalf("status %d after %d sends and %d waits, want %d after %d and %d", res.StatusCode, seen.Load(), pt.throttled.Load(), tc.want, tc.sends, tc.waits)
			}
			for _, d := range slept {
				if d != time.Second {
					t.Fatalf("waited %v, want the Retry-After of 1 s", d)
				}
			}
		})
	}
}
