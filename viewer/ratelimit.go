package viewer

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound failed sign-ins. Each failure spends a token from the
// username's bucket and from the address's; while either is empty, sign-in
// is refused without checking the password (even a right one), for every
// username, known or not, so the refusal says nothing about accounts.
type Limits struct {
	UserBurst int           // failures a username may have in a row (default 5)
	UserEvery time.Duration // one more allowed every (default 5 min)
	AddrBurst int           // failures one address may have (default 20)
	AddrEvery time.Duration // one more allowed every (default 1 min)
}

func (l Limits) withDefaults() Limits {
	if l.UserBurst <= 0 {
		l.UserBurst = 5
	}
	if l.UserEvery <= 0 {
		l.UserEvery = 5 * time.Minute
	}
	if l.AddrBurst <= 0 {
		l.AddrBurst = 20
	}
	if l.AddrEvery <= 0 {
		l.AddrEvery = time.Minute
	}
	return l
}

type limiter struct {
	mu     sync.Mutex
	lim    Limits
	byUser map[string]*rate.Limiter
	byAddr map[string]*rate.Limiter
	now    func() time.Time
}

// maxLimiterKeys bounds each table; full buckets are dropped first.
const maxLimiterKeys = 100000

func newLimiter(l Limits, now func() time.Time) *limiter {
	return &limiter{lim: l.withDefaults(), byUser: map[string]*rate.Limiter{}, byAddr: map[string]*rate.Limiter{}, now: now}
}

// blocked reports whether sign-in is refused for the username or address.
func (l *limiter) blocked(user, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if b := l.byUser[user]; b != nil && b.TokensAt(now) < 1 {
		return true
	}
	if b := l.byAddr[addr]; b != nil && b.TokensAt(now) < 1 {
		return true
	}
	return false
}

// failed records a failed sign-in.
func (l *limiter) failed(user, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	spend(l.byUser, user, rate.Every(l.lim.UserEvery), l.lim.UserBurst, now)
	spend(l.byAddr, addr, rate.Every(l.lim.AddrEvery), l.lim.AddrBurst, now)
}

// succeeded forgets the username's failures (not the address's).
func (l *limiter) succeeded(user string) {
	l.mu.Lock()
	delete(l.byUser, user)
	l.mu.Unlock()
}

func spend(m map[string]*rate.Limiter, key string, every rate.Limit, burst int, now time.Time) {
	b := m[key]
	if b == nil {
		if len(m) >= maxLimiterKeys {
			prune(m, now)
		}
		b = rate.NewLimiter(every, burst)
		m[key] = b
	}
	b.AllowN(now, 1)
}

// prune drops buckets that have refilled (they hold no memory of failures).
func prune(m map[string]*rate.Limiter, now time.Time) {
	for k, b := range m {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(m, k)
		}
	}
	for k := range m { // still full: drop arbitrary ones rather than grow
		if len(m) < maxLimiterKeys {
			break
		}
		delete(m, k)
	}
}
