package rest

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/gpgate/gpgate/fhir"
)

// Limits are the rate limits: token buckets per source address (every
// request, the token endpoint included, before authentication) and per
// client (the FHIR API, after authentication), and a bound on a client's
// concurrent requests. A refused request is a 429 OperationOutcome
// (TOO_MANY_REQUESTS) with Retry-After. Zero rates disable a limit.
type Limits struct {
	PerAddress   rate.Limit // requests per second per source address
	AddressBurst int
	PerClient    rate.Limit // requests per second per client
	ClientBurst  int
	// ClientConcurrent bounds a client's requests in flight (0: none).
	ClientConcurrent int
	// MaxKeys bounds each map of buckets (least recently used out);
	// default 10 000.
	MaxKeys int
	// Refused, when set, is told of every refusal: kind "address",
	// "client" or "concurrency", with the client (if known) and address.
	Refused func(ctx context.Context, kind, client, addr string)
	Now     func() time.Time
	// Probes are paths outside every limit: a balancer's health checks
	// (/healthz, /readyz) come from the balancer's own address, and a
	// node refusing them would be taken out of service for being busy.
	Probes []string
}

type limiters struct {
	cfg    Limits
	addr   *lru.Cache[string, *rate.Limiter]
	client *lru.Cache[string, *rate.Limiter]

	mu       sync.Mutex
	inflight map[string]int // by client; an entry lives while it is > 0
}

func newLimiters(l Limits) *limiters {
	if l.MaxKeys <= 0 {
		l.MaxKeys = 10_000
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.AddressBurst <= 0 {
		l.AddressBurst = int(math.Max(1, float64(l.PerAddress)))
	}
	if l.ClientBurst <= 0 {
		l.ClientBurst = int(math.Max(1, float64(l.PerClient)))
	}
	ls := &limiters{cfg: l, inflight: map[string]int{}}
	ls.addr, _ = lru.New[string, *rate.Limiter](l.MaxKeys)   // size > 0: cannot fail
	ls.client, _ = lru.New[string, *rate.Limiter](l.MaxKeys) // size > 0: cannot fail
	return ls
}

// take spends one token of key's bucket; when empty it answers how long
// until one is there.
func (ls *limiters) take(c *lru.Cache[string, *rate.Limiter], key string, r rate.Limit, burst int) (bool, time.Duration) {
	lim, ok := c.Get(key)
	if !ok {
		lim = rate.NewLimiter(r, burst)
		if prev, ok, _ := c.PeekOrAdd(key, lim); ok {
			lim = prev
		}
	}
	now := ls.cfg.Now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

func tooMany(c echo.Context, wait time.Duration, what string) error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return fhir.Errorf(fhir.CodeTooManyRequests, "%s; retry after %d s", what, secs)
}

func (s *Server) refused(c echo.Context, kind, client string) {
	if s.lim.cfg.Refused != nil {
		ctx := c.Request().Context()
		s.lim.cfg.Refused(ctx, kind, client, fhir.ClientAddrFrom(ctx))
	}
}

// limitAddress is the per-address bucket, on every request.
func (s *Server) limitAddress(next echo.HandlerFunc) echo.HandlerFunc {
	if s.lim == nil || s.lim.cfg.PerAddress <= 0 {
		return next
	}
	probes := map[string]bool{}
	for _, p := range s.lim.cfg.Probes {
		probes[p] = true
	}
	return func(c echo.Context) error {
		if probes[c.Request().URL.Path] {
			return next(c)
		}
		addr := fhir.ClientAddrFrom(c.Request().Context())
		if addr == "" {
			addr = peerIP(c.Request().RemoteAddr)
		}
		if ok, wait := s.lim.take(s.lim.addr, addr, s.lim.cfg.PerAddress, s.lim.cfg.AddressBurst); !ok {
			s.refused(c, "address", "")
			return tooMany(c, wait, "too many requests from this address")
		}
		return next(c)
	}
}

// limitClient is the per-client bucket and concurrency bound, after
// authentication.
func (s *Server) limitClient(next echo.HandlerFunc) echo.HandlerFunc {
	if s.lim == nil || (s.lim.cfg.PerClient <= 0 && s.lim.cfg.ClientConcurrent <= 0) {
		return next
	}
	return func(c echo.Context) error {
		p := fhir.PrincipalFrom(c.Request().Context())
		if p == nil {
			return next(c)
		}
		if s.lim.cfg.PerClient > 0 {
			if ok, wait := s.lim.take(s.lim.client, p.ClientID, s.lim.cfg.PerClient, s.lim.cfg.ClientBurst); !ok {
				s.refused(c, "client", p.ClientID)
				return tooMany(c, wait, "too many requests from this client")
			}
		}
		if n := s.lim.cfg.ClientConcurrent; n > 0 {
			if !s.lim.enter(p.ClientID, n) {
				s.refused(c, "concurrency", p.ClientID)
				return tooMany(c, time.Second, "too many concurrent requests from this client")
			}
			defer s.lim.leave(p.ClientID)
		}
		return next(c)
	}
}

func (ls *limiters) enter(client string, max int) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.inflight[client] >= max {
		return false
	}
	ls.inflight[client]++
	return true
}

func (ls *limiters) leave(client string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.inflight[client] <= 1 {
		delete(ls.inflight, client)
		return
	}
	ls.inflight[client]--
}
