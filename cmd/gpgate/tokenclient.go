package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
)

// The client side of gpgate's SMART Backend Services flow, for the token
// and consent verbs: errors name the flag to fix and the value expected.

// gpgateEndpoint is where a gpgate answers: the base the user gave, the
// token endpoint to post to (under that base) and the token endpoint the
// server names in its SMART configuration (the client assertion's aud:
// the URL of the server's --base-url, which may differ from the one the
// user reaches it by).
type gpgateEndpoint struct {
	base, post, aud string
}

// discover reads base/.well-known/smart-configuration.
func discover(ctx context.Context, base string) (*gpgateEndpoint, error) {
	base = strings.TrimSuffix(base, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--base %q is not an http(s) URL: give gpgate's base URL as `gpgate serve` prints it (e.g. http://127.0.0.1:8080)", base)
	}
	ep := &gpgateEndpoint{base: base, post: base + smart.PathToken, aud: base + smart.PathToken}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+smart.PathConfiguration, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach gpgate at --base %s: %v (is `gpgate serve` running there?)", base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var cfg struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &cfg) != nil || cfg.TokenEndpoint == "" {
		hint := ""
		if u, _ := url.Parse(base); u != nil && strings.Trim(u.Path, "/") != "" {
			hint = fmt.Sprintf(" (if gpgate serves at %s://%s, that is --base %s://%s, token endpoint %s://%s%s)", u.Scheme, u.Host, u.Scheme, u.Host, u.Scheme, u.Host, smart.PathToken)
		}
		return nil, fmt.Errorf("--base %s is not a gpgate base URL (GET %s answered HTTP %d): give the base URL `gpgate serve` prints; the token endpoint is at <base>%s%s",
			base, smart.PathConfiguration, res.StatusCode, smart.PathToken, hint)
	}
	ep.aud = cfg.TokenEndpoint
	return ep, nil
}

// requestToken signs a client assertion for the endpoint and exchanges it
// for an access token.
func requestToken(ctx context.Context, ep *gpgateEndpoint, clientID, keyFile string, key []byte, scopes []string, b2b *smart.B2B) (string, error) {
	a, err := smart.SignAssertion(key, smart.Assertion{ClientID: clientID, TokenURL: ep.aud, Now: time.Now(), B2B: b2b})
	if err != nil {
		return "", fmt.Errorf("--key %s: %w (a private JWK or PEM key, as `gpgate clients keygen` writes)", keyFile, err)
	}
	form := url.Values{
		"grant_type":            {smart.GrantClientCredentials},
		"client_assertion_type": {smart.AssertionTypeJWTBearer},
		"client_assertion":      {a},
		"scope":                 {strings.Join(scopes, " ")},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.post, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token endpoint %s: %w", ep.post, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		te := &smart.TokenError{Status: res.StatusCode}
		_ = json.Unmarshal(body, te)
		return "", tokenHint(te, ep, clientID, keyFile, scopes)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("token endpoint %s answered no access_token", ep.post)
	}
	return tr.AccessToken, nil
}

// tokenHint explains a refused token request in terms of the flags.
func tokenHint(te *smart.TokenError, ep *gpgateEndpoint, clientID, keyFile string, scopes []string) error {
	d := te.Description
	msg := fmt.Sprintf("token refused (HTTP %d %s): %s", te.Status, te.Code, d)
	switch {
	case te.Code == "":
		return fmt.Errorf("%s answered HTTP %d, not an OAuth answer: is --base %s gpgate's base URL? (its token endpoint is <base>%s)", ep.post, te.Status, ep.base, smart.PathToken)
	case strings.Contains(d, "aud"):
		return fmt.Errorf("%s\n  the assertion's aud was %s; the token endpoint gpgate expects is the one its --base-url makes (see %s%s)", msg, ep.aud, ep.base, smart.PathConfiguration)
	case strings.Contains(d, "signature") || strings.Contains(d, "no key") || strings.Contains(d, "does not match the key"):
		return fmt.Errorf("%s\n  is --key %s the private key registered for --client %s? (`gpgate clients list`)", msg, keyFile, clientID)
	case strings.Contains(d, "unknown client") || strings.Contains(d, "disabled"):
		return fmt.Errorf("%s\n  --client %s: see `gpgate clients list` for the registered, enabled clients", msg, clientID)
	case te.Code == "invalid_scope":
		return fmt.Errorf("%s\n  --scope %q: ask for scopes the client is registered with (`gpgate clients list`); patient/ scopes need --consent ID from `gpgate consent`", msg, strings.Join(scopes, " "))
	case strings.Contains(d, "consent"):
		return fmt.Errorf("%s\n  --consent takes the id `gpgate consent` printed, recorded by the same --client and clinician (--subject-id), still within its period", msg)
	}
	return errors.New(msg)
}

// missingFlags reports required flags left empty, naming each with its
// meaning (the usage text, without "(required)").
func missingFlags(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil || f.Value.String() != "" {
			continue
		}
		missing = append(missing, "--"+n+" ("+strings.TrimSuffix(strings.TrimSpace(f.Usage), " (required)")+")")
	}
	if len(missing) == 0 {
		return nil
	}
	word := "is"
	if len(missing) > 1 {
		word = "are"
	}
	verb := strings.Fields(fs.Name() + " x x")[1]
	fmt.Fprintf(fs.Output(), "gpgate %s: %s %s required (see `gpgate help %s`)\n", verb, strings.Join(missing, ", "), word, verb)
	return errUsage
}
