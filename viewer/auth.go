package viewer

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gpgate/gpgate/viewer/users"
)

// sign-in page messages, by the fixed code in ?m=
var signInMessages = map[string]*message{
	"signedout": {Kind: "info", Heading: "You have signed out", Body: "Close the browser if you are on a shared computer."},
	"expired":   {Kind: "warning", Heading: "Your session has ended", Body: "Sessions end after a period without activity, and after a working day. Sign in again to continue."},
	"ended":     {Kind: "warning", Heading: "Your session has ended", Body: "Your account was changed or disabled. Sign in again, or ask your administrator."},
	"signin":    {Kind: "info", Heading: "Sign in to continue", Body: "You need to sign in to use the Shared Record Viewer."},
	"oidc":      {Kind: "error", Heading: "Sign-in with your organisation's identity service did not complete", Body: "Try again. If it keeps failing, your account may not carry an organisation, SDS user id and role; ask your administrator."},
}

type signInData struct {
	Local     bool
	OIDC      bool
	OIDCLabel string
	Username  string
	Token     string
}

func (v *Viewer) signInData(w http.ResponseWriter, r *http.Request, msg string, username string) *page {
	p := &page{Title: "Sign in", Message: signInMessages[msg]}
	p.SignIn = &signInData{Local: v.cfg.Users != nil, OIDC: v.oidc != nil, Username: username, Token: v.signInToken(w, r)}
	if v.oidc != nil {
		p.SignIn.OIDCLabel = v.oidc.label
	}
	return p
}

func (v *Viewer) signInPage(w http.ResponseWriter, r *http.Request) {
	if s := v.sessions.get(v.sessionID(r)); s != nil {
		http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
		return
	}
	v.render(w, r, http.StatusOK, "signin", v.signInData(w, r, r.URL.Query().Get("m"), ""))
}

var (
	msgBadCredentials = &message{Kind: "error", Heading: "We could not sign you in",
		Body: "The username or password is not right, or the account is disabled. Check them and try again."}
	msgTooMany = &message{Kind: "error", Heading: "Too many failed sign-in attempts",
		Body: "Sign-in is paused for this account or this computer. Wait a few minutes and try again, or ask your administrator."}
	msgMissing = &message{Kind: "error", Heading: "Enter your username and password", Body: "Both are needed to sign in."}
)

func (v *Viewer) signIn(w http.ResponseWriter, r *http.Request) {
	if v.cfg.Users == nil {
		v.notFound(w, r)
		return
	}
	if !v.checkSignInCSRF(r) {
		p := v.signInData(w, r, "", "")
		p.Message = &message{Kind: "error", Heading: "This sign-in could not be verified",
			Body: "The form was out of date or did not come from this viewer. Try again."}
		v.render(w, r, http.StatusForbidden, "signin", p)
		return
	}
	name := users.Normalise(r.PostFormValue("username"))
	pw := r.PostFormValue("password")
	shown := name
	if users.ValidUsername(name) != nil {
		shown = "" // never echo what is not a username
	}
	fail := func(status int, m *message) {
		p := v.signInData(w, r, "", shown)
		p.Message = m
		v.render(w, r, status, "signin", p)
	}
	if name == "" || pw == "" {
		fail(http.StatusBadRequest, msgMissing)
		return
	}
	addr := v.cfg.ClientIP(r)
	if v.limits.blocked(name, addr) {
		v.log.Warn("viewer sign-in refused", "reason", "rate-limited")
		fail(http.StatusTooManyRequests, msgTooMany)
		return
	}
	u, ok, err := v.checkPassword(r, name, pw)
	if err != nil {
		v.fail(w, r, nil, err)
		return
	}
	if !ok {
		v.limits.failed(name, addr)
		v.log.Info("viewer sign-in failed")
		fail(http.StatusUnauthorized, msgBadCredentials)
		return
	}
	v.limits.succeeded(name)
	v.startSession(w, r, account{Username: u.Username, Name: u.Name, Org: u.Org, Role: u.Role, SDSID: u.SDSID, Local: true})
	v.log.Info("viewer sign-in", "method", "local", "org", u.Org)
	http.Redirect(w, r, Base+"/find", http.StatusSeeOther)
}

// checkPassword verifies a password with bounded concurrency (Argon2id
// memory); an unknown username costs what a wrong password costs.
func (v *Viewer) checkPassword(r *http.Request, name, pw string) (*users.User, bool, error) {
	select {
	case v.hashSem <- struct{}{}:
		defer func() { <-v.hashSem }()
	case <-r.Context().Done():
		return nil, false, r.Context().Err()
	}
	u, err := v.cfg.Users.User(r.Context(), name)
	if errors.Is(err, users.ErrNotFound) {
		return nil, users.VerifyDummy(pw, v.cfg.PasswordParams), nil
	}
	if err != nil {
		return nil, false, err
	}
	if !users.Verify(pw, u.Hash) || u.Disabled {
		return nil, false, nil
	}
	return u, true, nil
}

func (v *Viewer) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	_ = v.dropConsent(r, s) // logged
	v.sessions.delete(s)
	v.cookie.clear(w, v.cookie.session)
	v.log.Info("viewer sign-out", "org", s.Account.Org)
	http.Redirect(w, r, Base+"/signin?m=signedout", http.StatusSeeOther)
}

// trimField trims a form value and bounds its length.
func trimField(s string, max int) string {
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = s[:max]
	}
	return s
}
