package viewer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// account is who a session belongs to.
type account struct {
	Username string // local accounts; the OIDC subject for OpenID Connect
	Name     string
	Org      string // consumer ODS code
	Role     string
	SDSID    string
	Local    bool // a local account (re-checked against the store on every request)
}

// found is the patient a clinician has found and not yet opened.
type found struct {
	PatientID string
	NHS       fhir.NHSNumber
	Demo      *demographics
}

// viewing is the patient whose record the session has consent to view.
type viewing struct {
	PatientID  string
	NHS        fhir.NHSNumber
	ConsentID  string
	BreakGlass bool
	Since      time.Time
	Demo       *demographics
}

// session is server-side state behind an opaque random cookie.
type session struct {
	key     string // sha256 of the cookie value: the cookie itself is not kept
	Account account
	CSRF    string
	Created time.Time

	mu      sync.Mutex
	seen    time.Time
	found   *found
	viewing *viewing
}

func (s *session) state() (*found, *viewing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.found, s.viewing
}

func (s *session) setFound(f *found) {
	s.mu.Lock()
	s.found, s.viewing = f, nil
	s.mu.Unlock()
}

func (s *session) setViewing(x *viewing) {
	s.mu.Lock()
	s.viewing = x
	s.mu.Unlock()
}

// principal is the caller before consent: the viewer as a client, acting
// for the clinician of an organisation, with system-equivalent scopes.
func (v *Viewer) principal(s *session) *fhir.Principal {
	a := s.Account
	return &fhir.Principal{
		ClientID:     ClientID,
		ConsumerODS:  a.Org,
		Practitioner: a.SDSID,
		Role:         a.Role,
		Name:         a.Name,
		PurposeOfUse: "TREAT",
		Scopes:       append([]string(nil), v.cfg.SystemScopes...),
	}
}

// sessions is the in-memory session table. Sessions do not survive a
// restart (clinicians sign in again); a multi-node deployment routes a
// client to one node (sticky sessions).
type sessions struct {
	mu       sync.Mutex
	m        map[string]*session
	idle     time.Duration
	absolute time.Duration
	now      func() time.Time
	sweptAt  time.Time
}

// maxSessions bounds the table; the oldest idle sessions go first.
const maxSessions = 50000

func newSessions(idle, absolute time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, idle: idle, absolute: absolute, now: now}
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return string(sum[:])
}

// create starts a session and returns the cookie value.
func (ss *sessions) create(a account) (string, *session) {
	id := randomToken()
	now := ss.now()
	s := &session{key: hashKey(id), Account: a, CSRF: randomToken(), Created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if now.Sub(ss.sweptAt) > time.Minute || len(ss.m) >= maxSessions {
		ss.sweepLocked(now)
	}
	ss.m[s.key] = s
	return id, s
}

// get returns the live session for a cookie value, or nil; it ends sessions
// idle or older than allowed, and marks the session seen.
func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	key := hashKey(id)
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[key]
	if s == nil {
		return nil
	}
	s.mu.Lock()
	expired := ss.expired(s, now)
	if !expired {
		s.seen = now
	}
	s.mu.Unlock()
	if expired {
		delete(ss.m, key)
		return nil
	}
	return s
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) >= ss.idle || now.Sub(s.Created) >= ss.absolute
}

func (ss *sessions) delete(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.key)
	ss.mu.Unlock()
}

// sweepLocked drops expired sessions, then the least recently seen while
// the table is full.
func (ss *sessions) sweepLocked(now time.Time) {
	ss.sweptAt = now
	var oldest *session
	for k, s := range ss.m {
		s.mu.Lock()
		exp := ss.expired(s, now)
		s.mu.Unlock()
		if exp {
			delete(ss.m, k)
		}
	}
	for len(ss.m) >= maxSessions {
		oldest = nil
		for _, s := range ss.m {
			if oldest == nil || s.seen.Before(oldest.seen) {
				oldest = s
			}
		}
		delete(ss.m, oldest.key)
	}
}

func (ss *sessions) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// cookieNames: the __Host- prefix binds a Secure cookie to this host and
// path / (no Domain): a sibling subdomain cannot set or shadow it.
type cookieNames struct {
	secure          bool
	session, signin string
	oidc            string
}

func newCookieNames(secure bool) cookieNames {
	if secure {
		return cookieNames{true, "__Host-gpgate-viewer", "__Host-gpgate-viewer-signin", "__Host-gpgate-viewer-oidc"}
	}
	return cookieNames{false, "gpgate-viewer", "gpgate-viewer-signin", "gpgate-viewer-oidc"}
}

func (c cookieNames) set(w http.ResponseWriter, name, value string, maxAge int, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: c.secure, HttpOnly: true, SameSite: sameSite})
}

func (c cookieNames) clear(w http.ResponseWriter, name string) {
	c.set(w, name, "", -1, http.SameSiteStrictMode)
}

func (v *Viewer) sessionID(r *http.Request) string {
	ck, err := r.Cookie(v.cookie.session)
	if err != nil {
		return ""
	}
	return ck.Value
}

// startSession signs a clinician in: always a new session id (no fixation),
// ending the one the browser had.
func (v *Viewer) startSession(w http.ResponseWriter, r *http.Request, a account) *session {
	if old := v.sessions.get(v.sessionID(r)); old != nil {
		v.sessions.delete(old)
	}
	id, s := v.sessions.create(a)
	v.cookie.set(w, v.cookie.session, id, 0, http.SameSiteStrictMode)
	return s
}

type sessionKey struct{}

// authed wraps a handler that needs a signed-in clinician: it loads the
// session (or sends the browser to sign in, saying why), re-checks a local
// account, and checks the CSRF token of every POST.
func (v *Viewer) authed(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := v.sessionID(r)
		s := v.sessions.get(id)
		if s == nil {
			reason := "signin"
			if id != "" {
				reason = "expired" // a session cookie that no longer names a live session
			}
			v.cookie.clear(w, v.cookie.session)
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Base+"/signin?m="+reason, http.StatusSeeOther)
				return
			}
			v.render(w, r, http.StatusUnauthorized, "signin", v.signInData(w, r, reason, ""))
			return
		}
		if s.Account.Local && !v.accountStillValid(r, s) {
			v.sessions.delete(s)
			v.cookie.clear(w, v.cookie.session)
			http.Redirect(w, r, Base+"/signin?m=ended", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !v.checkCSRF(r, s) {
			v.log.Warn("viewer csrf refused", "org", s.Account.Org)
			v.render(w, r, http.StatusForbidden, "message", &page{Title: "Request refused", Session: s,
				Message: &message{Kind: "error", Heading: "This request could not be verified",
					Body: "The form was out of date or did not come from this viewer, so nothing was done. Go back, reload the page and try again."}})
			return
		}
		h(w, r, s)
	}
}

// accountStillValid re-reads a local account: a disabled account, a reset
// password or a changed organisation ends its sessions at once.
func (v *Viewer) accountStillValid(r *http.Request, s *session) bool {
	if v.cfg.Users == nil {
		return false
	}
	u, err := v.cfg.Users.User(r.Context(), s.Account.Username)
	if err != nil || u.Disabled || u.Org != s.Account.Org || u.SDSID != s.Account.SDSID || u.Role != s.Account.Role {
		return false
	}
	return !u.PasswordSet.After(s.Created)
}
