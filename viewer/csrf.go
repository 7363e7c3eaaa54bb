package viewer

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// CSRF protection, two layers on every POST:
//   - a token in a hidden form field: the session's own random token
//     (synchronizer) once signed in; before sign-in, an HMAC of a random
//     nonce held in a cookie (signed double submit), so a login form cannot
//     be forged either;
//   - the browser's own word: a cross-site Sec-Fetch-Site or a foreign
//     Origin is refused whatever the token says.
// Session cookies are SameSite=Strict besides.

const csrfField = "csrf"

func (v *Viewer) checkCSRF(r *http.Request, s *session) bool {
	if !sameOrigin(r) {
		return false
	}
	got := r.PostFormValue(csrfField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) == 1
}

// sameOrigin refuses requests the browser says come from another site.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// signInToken returns the form token for the sign-in page, setting the
// nonce cookie when the browser has none.
func (v *Viewer) signInToken(w http.ResponseWriter, r *http.Request) string {
	nonce := ""
	if c, err := r.Cookie(v.cookie.signin); err == nil && len(c.Value) == 43 {
		nonce = c.Value
	} else {
		nonce = randomToken()
		v.cookie.set(w, v.cookie.signin, nonce, 3600, http.SameSiteStrictMode)
	}
	return v.mac("signin", nonce)
}

func (v *Viewer) checkSignInCSRF(r *http.Request) bool {
	if !sameOrigin(r) {
		return false
	}
	c, err := r.Cookie(v.cookie.signin)
	if err != nil || c.Value == "" {
		return false
	}
	got := r.PostFormValue(csrfField)
	want := v.mac("signin", c.Value)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (v *Viewer) mac(purpose, value string) string {
	m := hmac.New(sha256.New, v.csrfKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
