package conformance

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// politeTransport is how a well-behaved client meets a server's rate
// limits: a 429 with Retry-After (RFC 9110 §10.2.3; RFC 6585 §4) is waited
// out and the request sent again, a few times, with the body replayed.
// The suite checks what the server answers, not how fast it lets one
// client go; the report says how often it was asked to wait.
type politeTransport struct {
	next      http.RoundTripper
	attempts  int           // sends of one request, the first included
	maxWait   time.Duration // a longer Retry-After is not waited out
	sleep     func(time.Duration)
	throttled atomic.Int64
}

func (t *politeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for i := 1; ; i++ {
		res, err := t.next.RoundTrip(req)
		if err != nil || res.StatusCode != http.StatusTooManyRequests || i >= t.attempts {
			return res, err
		}
		wait, ok := retryAfter(res.Header.Get("Retry-After"))
		if !ok || wait > t.maxWait || (req.Body != nil && req.GetBody == nil) {
			return res, nil
		}
		t.throttled.Add(1)
		res.Body.Close()
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		default:
		}
		t.sleep(wait)
	}
}

// retryAfter reads Retry-After in seconds (the HTTP-date form is not
// waited for).
func retryAfter(v string) (time.Duration, bool) {
	s, err := strconv.Atoi(v)
	if err != nil || s < 0 {
		return 0, false
	}
	return time.Duration(s) * time.Second, true
}
