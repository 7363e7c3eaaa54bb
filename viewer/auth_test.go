package viewer_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gpgate/gpgate/viewer/users"
)

func TestSignIn(t *testing.T) {
	h := newHarness(t)
	h.users.Add(users.User{Username: "bob", Org: org, Role: "Nurse", SDSID: "555000000002", Disabled: true}, password, usersFast(), h.clock.Now())
	cases := []struct {
		name     string
		user, pw string
		status   int
		want     string
	}{
		{"right password", "alice", password, http.StatusSeeOther, ""},
		{"username in capitals", "ALICE", password, http.StatusSeeOther, ""},
		{"wrong password", "alice", "wrong horse battery staple", http.StatusUnauthorized, "We could not sign you in"},
		{"unknown user", "mallory", password, http.StatusUnauthorized, "We could not sign you in"},
		{"disabled account", "bob", password, http.StatusUnauthorized, "We could not sign you in"},
		{"no password", "alice", "", http.StatusBadRequest, "Enter your username and password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := h.browser()
			r := b.signIn(c.user, c.pw)
			if r.status != c.status {
				t.Fatalf("status %d, want %d\n%s", r.status, c.status, r.body)
			}
			if c.want != "" && !strings.Contains(r.body, c.want) {
				t.Fatalf("page does not say %q", c.want)
			}
			if c.status == http.StatusSeeOther {
				if r.loc != "/viewer/find" {
					t.Fatalf("redirect to %q", r.loc)
				}
				if got := b.get("/viewer/find"); got.status != http.StatusOK {
					t.Fatalf("find page after sign-in: %d", got.status)
				}
			} else if got := b.get("/viewer/find"); got.status != http.StatusSeeOther {
				t.Fatalf("signed in after a failed sign-in: %d", got.status)
			}
		})
	}
}

func usersFast() users.Params {
	return users.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// A wrong username and a wrong password read the same: no account oracle.
func TestSignInSameAnswerForUnknownUser(t *testing.T) {
	h := newHarness(t)
	a := h.browser().signIn("alice", "wrong horse battery staple")
	b := h.browser().signIn("nosuchuser", "wrong horse battery staple")
	strip := func(s string) string {
		s = csrfRE.ReplaceAllString(s, "")
		return strings.NewReplacer("alice", "", "nosuchuser", "").Replace(s)
	}
	if a.status != b.status || strip(a.body) != strip(b.body) {
		t.Fatalf("unknown user answered differently: %d vs %d", a.status, b.status)
	}
}

func TestSessionCookie(t *testing.T) {
	h := newHarness(t)
	b := h.browser()
	b.get("/viewer/signin")
	r := b.post("/viewer/signin", url.Values{"username": {"alice"}, "password": {password}})
	var found bool
	for _, line := range r.header.Values("Set-Cookie") {
		if !strings.HasPrefix(line, "__Host-gpgate-viewer=") {
			continue
		}
		found = true
		for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
			if !strings.Contains(line, attr) {
				t.Errorf("session cookie lacks %s: %s", attr, line)
			}
		}
		if strings.Contains(line, "Domain=") {
			t.Errorf("session cookie names a domain: %s", line)
		}
	}
	if !found {
		t.Fatalf("no __Host- session cookie set: %v", r.header.Values("Set-Cookie"))
	}
}

func TestInsecureCookiesForLoopback(t *testing.T) {
	h := newHarness(t, func(c *viewerConfig, _ *fakeCore) { c.InsecureCookies = true })
	b := h.browser()
	b.get("/viewer/signin")
	r := b.post("/viewer/signin", url.Values{"username": {"alice"}, "password": {password}})
	for _, line := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(line, "gpgate-viewer=") {
			if strings.Contains(line, "Secure") || !strings.Contains(line, "HttpOnly") || !strings.Contains(line, "SameSite=Strict") {
				t.Fatalf("loopback cookie attributes: %s", line)
			}
			return
		}
	}
	t.Fatal("no plain session cookie")
}

func TestSignInRateLimits(t *testing.T) {
	t.Run("per username, even with the right password, for a while", func(t *testing.T) {
		h := newHarness(t)
		for i := 0; i < 5; i++ {
			if r := h.browser().signIn("alice", "wrong password here"); r.status != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i, r.status)
			}
		}
		r := h.browser().signIn("alice", password)
		if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many failed sign-in attempts") {
			t.Fatalf("locked account signed in: %d", r.status)
		}
		h.clock.Add(5*time.Minute + time.Second)
		if r := h.browser().signIn("alice", password); r.status != http.StatusSeeOther {
			t.Fatalf("after the wait: %d", r.status)
		}
	})
	t.Run("unknown usernames are limited the same way", func(t *testing.T) {
		h := newHarness(t)
		for i := 0; i < 5; i++ {
			h.browser().signIn("ghost", "wrong password here")
		}
		if r := h.browser().signIn("ghost", "wrong password here"); r.status != http.StatusTooManyRequests {
			t.Fatalf("unknown username not limited: %d", r.status)
		}
	})
	t.Run("per address, across usernames", func(t *testing.T) {
		h := newHarness(t)
		for i := 0; i < 20; i++ {
			h.browser().signIn("user"+string(rune('a'+i)), "wrong password here")
		}
		if r := h.browser().signIn("alice", password); r.status != http.StatusTooManyRequests {
			t.Fatalf("address not limited: %d", r.status)
		}
	})
	t.Run("a success clears the username's count", func(t *testing.T) {
		h := newHarness(t)
		for i := 0; i < 4; i++ {
			h.browser().signIn("alice", "wrong password here")
		}
		h.browser().signIn("alice", password)
		for i := 0; i < 4; i++ {
			h.browser().signIn("alice", "wrong password here")
		}
		if r := h.browser().signIn("alice", password); r.status != http.StatusSeeOther {
			t.Fatalf("count not reset by success: %d", r.status)
		}
	})
}

func TestSessionExpiry(t *testing.T) {
	cases := []struct {
		name  string
		steps []time.Duration // activity at each step
		ok    bool
	}{
		{"active within the idle limit", []time.Duration{10 * time.Minute, 10 * time.Minute}, true},
		{"idle too long", []time.Duration{15 * time.Minute}, false},
		{"active but past the absolute limit", func() []time.Duration {
			var s []time.Duration
			for i := 0; i < 49; i++ { // 49 x 10 min > 8 h
				s = append(s, 10*time.Minute)
			}
			return s
		}(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.signedIn()
			var r resp
			for _, d := range c.steps {
				h.clock.Add(d)
				r = b.get("/viewer/find")
				if r.status != http.StatusOK {
					break
				}
			}
			if c.ok != (r.status == http.StatusOK) {
				t.Fatalf("status %d, want ok=%v", r.status, c.ok)
			}
			if !c.ok {
				if r.loc != "/viewer/signin?m=expired" {
					t.Fatalf("expired session sent to %q", r.loc)
				}
				if p := b.get(r.loc); !strings.Contains(p.body, "Your session has ended") {
					t.Fatal("sign-in page does not say the session ended")
				}
			}
		})
	}
}

func TestExpiredSessionPostIsRefused(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	tok := b.token()
	h.clock.Add(time.Hour)
	r := b.post("/viewer/find", url.Values{"nhs": {string(h.patients["full"])}, "csrf": {tok}})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Your session has ended") {
		t.Fatalf("post on an expired session: %d", r.status)
	}
	if n := len(h.calls("FindPatient")); n != 0 {
		t.Fatalf("core called %d times for an expired session", n)
	}
}

func TestSignOut(t *testing.T) {
	h := newHarness(t)
	b := h.signedIn()
	b.open("full")
	b.get("/viewer/record/summary")
	r := b.post("/viewer/signout", url.Values{})
	if r.status != http.StatusSeeOther || r.loc != "/viewer/signin?m=signedout" {
		t.Fatalf("sign out: %d %s", r.status, r.loc)
	}
	if p := b.get(r.loc); !strings.Contains(p.body, "You have signed out") {
		t.Fatal("no signed-out message")
	}
	if r := b.get("/viewer/record/summary"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.loc, "/viewer/signin") {
		t.Fatalf("record after sign-out: %d %s", r.status, r.loc)
	}
}

func TestAccountChangesEndSessions(t *testing.T) {
	cases := []struct {
		name   string
		change func(*users.User)
	}{
		{"disabled", func(u *users.User) { u.Disabled = true }},
		{"password reset", func(u *users.User) { u.PasswordSet = u.PasswordSet.Add(time.Hour) }},
		{"moved organisation", func(u *users.User) { u.Org = "RZZ99" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			b := h.signedIn()
			h.clock.Add(time.Minute)
			h.users.Update("alice", c.change)
			if r := b.get("/viewer/find"); r.status != http.StatusSeeOther || r.loc != "/viewer/signin?m=ended" {
				t.Fatalf("session survived: %d %s", r.status, r.loc)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t)
	other := h.signedIn()
	otherToken := other.token()
	cases := []struct {
		name   string
		token  string
		origin string
		site   string
	}{
		{"no token", "-", "", ""},
		{"forged token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", ""},
		{"another session's token", otherToken, "", ""},
		{"right token, foreign origin", "", "https://evil.example", ""},
		{"right token, cross-site fetch", "", "", "cross-site"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := h.signedIn()
			form := url.Values{"nhs": {string(h.patients["full"])}}
			switch c.token {
			case "":
			case "-":
				form.Set("csrf", "")
			default:
				form.Set("csrf", c.token)
			}
			if c.origin != "" {
				b.origin = c.origin
			}
			if c.site != "" {
				b.origin = ""
				form.Set("csrf", b.token())
				req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/viewer/find", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", c.site)
				r := b.do(req)
				if r.status != http.StatusForbidden {
					t.Fatalf("status %d", r.status)
				}
				return
			}
			before := len(h.calls("FindPatient"))
			r := b.post("/viewer/find", form)
			if r.status != http.StatusForbidden || !strings.Contains(r.body, "could not be verified") {
				t.Fatalf("status %d\n%s", r.status, r.body)
			}
			if len(h.calls("FindPatient")) != before {
				t.Fatal("the core was called on a refused form")
			}
		})
	}
	t.Run("sign-in form", func(t *testing.T) {
		b := h.browser()
		b.get("/viewer/signin")
		r := b.post("/viewer/signin", url.Values{"username": {"alice"}, "password": {password}, "csrf": {"forged"}})
		if r.status != http.StatusForbidden {
			t.Fatalf("forged sign-in token: %d", r.status)
		}
		fresh := h.browser() // no nonce cookie at all
		r = fresh.post("/viewer/signin", url.Values{"username": {"alice"}, "password": {password}, "csrf": {b.token()}})
		if r.status != http.StatusForbidden {
			t.Fatalf("token without its cookie: %d", r.status)
		}
	})
}
