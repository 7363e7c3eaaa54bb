package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// consumer is the load tool acting as a consumer system: a registered SMART
// Backend Services client with its private key, a clinician, and the
// tokens it holds. It obtains tokens with private_key_jwt as an EPR does
// (consent/smart.RequestToken), records consents to view with a system
// token, and keeps each patient-context token renewed before it expires.
type consumer struct {
	base      string
	tokenURL  string
	clientID  string
	key       []byte
	clinician string
	hc        *http.Client

	system  *token // system/Patient.rs system/Consent.c
	mu      sync.Mutex
	patient map[string]*token // patient id -> patient-context token
}

// token is a bearer token renewed in the background at half its life.
type token struct {
	v       atomic.Pointer[string]
	expires atomic.Int64 // unix nanoseconds
	renew   func(ctx context.Context) (string, time.Duration, error)
}

// get returns the current token ("" for none).
func (t *token) get() string {
	if t == nil {
		return ""
	}
	if v := t.v.Load(); v != nil {
		return *v
	}
	return ""
}

func (t *token) set(v string, ttl time.Duration) {
	t.v.Store(&v)
	t.expires.Store(time.Now().Add(ttl).UnixNano())
}

func newConsumer(ctx context.Context, base, dataDir, clientID, keyPath, clinician string, hc *http.Client) (*consumer, error) {
	if keyPath == "" {
		keyPath = filepath.Join(dataDir, "demo-client.jwk")
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	c := &consumer{base: strings.TrimRight(base, "/"), clientID: clientID, key: key, clinician: clinician, hc: hc, patient: map[string]*token{}}
	var sc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := c.getJSON(ctx, "/.well-known/smart-configuration", &sc); err != nil {
		return nil, fmt.Errorf("smart-configuration: %w", err)
	}
	if sc.TokenEndpoint == "" {
		return nil, fmt.Errorf("smart-configuration names no token_endpoint")
	}
	c.tokenURL = sc.TokenEndpoint
	c.system = &token{renew: func(ctx context.Context) (string, time.Duration, error) {
		return c.request(ctx, []string{"system/Patient.rs", "system/Consent.c"}, &smart.B2B{SubjectID: clinician})
	}}
	if err := c.refresh(ctx, c.system); err != nil {
		return nil, fmt.Errorf("system token: %w", err)
	}
	return c, nil
}

func (c *consumer) request(ctx context.Context, scopes []string, b2b *smart.B2B) (string, time.Duration, error) {
	tok, exp, err := smart.RequestToken(ctx, c.tokenURL, c.clientID, c.key, scopes, b2b)
	if err != nil {
		return "", 0, err
	}
	return tok, time.Duration(exp) * time.Second, nil
}

func (c *consumer) refresh(ctx context.Context, t *token) error {
	v, ttl, err := t.renew(ctx)
	if err != nil {
		return err
	}
	t.set(v, ttl)
	return nil
}

// keepFresh renews every token at half its life until ctx ends.
func (c *consumer) keepFresh(ctx context.Context, errs func(error)) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c.mu.Lock()
		all := []*token{c.system}
		for _, t := range c.patient {
			all = append(all, t)
		}
		c.mu.Unlock()
		now := time.Now().UnixNano()
		for _, t := range all {
			// Renew when less than half of a 5-minute life is left (tokens
			// live at most 5 minutes).
			if t.expires.Load()-now < int64(150*time.Second) {
				if err := c.refresh(ctx, t); err != nil && ctx.Err() == nil {
					errs(fmt.Errorf("token renewal: %w", err))
				}
			}
		}
	}
}

// patientToken records a consent to view for the patient (POST /Consent
// with the system token, the clinician as performer) and returns a
// patient-context token bound to it and to the clinician.
func (c *consumer) patientToken(ctx context.Context, patientID string) (*token, error) {
	c.mu.Lock()
	t, ok := c.patient[patientID]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	body, _ := json.Marshal(map[string]any{
		"resourceType": "Consent", "status": "active",
		"patient":   map[string]string{"reference": "Patient/" + patientID},
		"performer": []any{map[string]any{"identifier": map[string]string{"system": fhir.SDSUserSystem, "value": c.clinician}}},
	})
	st, b, err := c.do(ctx, http.MethodPost, "/Consent", body, c.system.get())
	if err != nil {
		return nil, err
	}
	if st != http.StatusCreated {
		return nil, fmt.Errorf("POST /Consent: HTTP %d: %.200s", st, b)
	}
	var cr struct{ ID string }
	if err := json.Unmarshal(b, &cr); err != nil || cr.ID == "" {
		return nil, fmt.Errorf("POST /Consent answered no id")
	}
	t = &token{renew: func(ctx context.Context) (string, time.Duration, error) {
		return c.request(ctx, []string{"patient/*.rs"}, &smart.B2B{SubjectID: c.clinician, ConsentReference: smart.StringList{cr.ID}})
	}}
	if err := c.refresh(ctx, t); err != nil {
		return nil, fmt.Errorf("patient token: %w", err)
	}
	c.mu.Lock()
	c.patient[patientID] = t
	c.mu.Unlock()
	return t, nil
}

func (c *consumer) getJSON(ctx context.Context, path string, v any) error {
	st, b, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", path, st)
	}
	return json.Unmarshal(b, v)
}

// do sends one request to gpgate and reads the whole answer.
func (c *consumer) do(ctx context.Context, method, path string, body []byte, bearer string) (int, []byte, error) {
	req, err := newRequest(ctx, c.base, method, path, body, bearer)
	if err != nil {
		return 0, nil, err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

func newRequest(ctx context.Context, base, method, path string, body []byte, bearer string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req, nil
}

// relative turns a link gpgate printed (absolute, at its base URL) into a
// path and query.
func relative(base, link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", err
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if u.IsAbs() && u.Host != b.Host {
		return "", fmt.Errorf("link %q is not at %s", link, base)
	}
	p := strings.TrimPrefix(u.EscapedPath(), strings.TrimRight(b.EscapedPath(), "/"))
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p, nil
}
