package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
)

const nhsSystem = "https://fhir.nhs.uk/Id/nhs-number"

// actor is one consumer system (or the operator): it holds its key and
// tokens and counts every answer it gets.
type actor struct {
	base, id string
	key      []byte
	h        *http.Client
	t        *tally

	mu     sync.Mutex
	tokens map[string]tokenAt // by scope
}

type tokenAt struct {
	tok string
	at  time.Time
}

// token returns a token for scope, refreshed after a minute (so the run
// refreshes tokens all the time). A refusal is counted: a 401 is a refused
// client authentication (audited in aggregate), anything else was audited
// on its own.
func (a *actor) token(ctx context.Context, scope string, b2b *smart.B2B) (string, error) {
	a.mu.Lock()
	if a.tokens == nil {
		a.tokens = map[string]tokenAt{}
	}
	cached, ok := a.tokens[scope]
	a.mu.Unlock()
	if b2b == nil && ok && time.Since(cached.at) < time.Minute {
		return cached.tok, nil
	}
	tok, _, err := smart.RequestTokenWith(context.WithoutCancel(ctx), a.h, a.base+smart.PathToken, a.id, a.key, []string{scope}, b2b)
	var te *smart.TokenError
	switch {
	case err == nil:
		a.t.add("POST /auth/token", 200, true)
	case errors.As(err, &te):
		if te.Status == 401 {
			a.t.add("refused (aggregated)", te.Status, false)
			a.t.add("POST /auth/token (refused client)", te.Status, false)
		} else {
			a.t.add("POST /auth/token", te.Status, true)
		}
		return "", err
	default:
		if ctx.Err() == nil {
			a.t.mu.Lock()
			a.t.netErrs++
			a.t.mu.Unlock()
		}
		return "", err
	}
	if b2b == nil {
		a.mu.Lock()
		a.tokens[scope] = tokenAt{tok, time.Now()}
		a.mu.Unlock()
	}
	return tok, nil
}

func (a *actor) forget(scope string) {
	a.mu.Lock()
	delete(a.tokens, scope)
	a.mu.Unlock()
}

// do makes one API request and counts its answer under route.
func (a *actor) do(ctx context.Context, method, path, route, tok string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	// the request runs to its answer whatever the run's deadline: an answer
	// the soak abandoned would be audited and not counted
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	res, err := a.h.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			a.t.mu.Lock()
			a.t.netErrs++
			a.t.mu.Unlock()
		}
		return 0, nil, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	switch res.StatusCode {
	case 401, 429:
		a.t.add("refused (aggregated)", res.StatusCode, false)
		a.t.add(route+" (refused)", res.StatusCode, false)
	default:
		a.t.add(route, res.StatusCode, true)
	}
	return res.StatusCode, b, nil
}

// call is do with a fresh token for scope (the operator's calls).
func (a *actor) call(ctx context.Context, method, path, scope string, body []byte) (int, []byte, error) {
	tok, err := a.token(ctx, scope, nil)
	if err != nil {
		return 0, nil, err
	}
	route := method + " " + routeOf(path)
	return a.do(ctx, method, path, route, tok, body)
}

func routeOf(path string) string {
	p := path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if i >= 2 && !strings.HasPrefix(s, "$") && s != "disable" && s != "enable" && s != "suspend" && s != "activate" && s != "rotate" {
			parts[i] = ":x"
		}
	}
	return strings.Join(parts, "/")
}

// work is a consumer system's loop: find a patient, record a consent to
// view, read the record with a patient-context token.
func (a *actor) work(ctx context.Context, r *rand.Rand, nhs []string, disabled interface{ Load(any) (any, bool) }) {
	const sys = "system/Patient.rs"
	for i := 0; ctx.Err() == nil; i++ {
		tok, err := a.token(ctx, sys, nil)
		if err != nil {
			sleep(ctx, 300*time.Millisecond) // disabled for now
			continue
		}
		n := nhs[r.IntN(len(nhs))]
		st, body, err := a.do(ctx, "GET", "/Patient?identifier="+url.QueryEscape(nhsSystem+"|"+n), "GET /Patient?identifier", tok, nil)
		if err != nil {
			continue
		}
		if st == 401 {
			a.forget(sys)
			continue
		}
		pid := patientID(body)
		if st != 200 || pid == "" || i%2 == 1 {
			continue
		}
		// record a consent to view and read with it
		ctok, err := a.token(ctx, "system/Consent.c", nil)
		if err != nil {
			continue
		}
		cbody := `{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/` + pid + `"},` +
			`"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"555000111222"}}]}`
		st, body, err = a.do(ctx, "POST", "/Consent", "POST /Consent", ctok, []byte(cbody))
		if err != nil || st != 201 {
			if st == 401 {
				a.forget("system/Consent.c")
			}
			continue
		}
		var c struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &c)
		ptok, err := a.token(ctx, "patient/*.rs", &smart.B2B{SubjectID: "555000111222", ConsentReference: smart.StringList{c.ID}})
		if err != nil {
			continue
		}
		for _, q := range []struct{ path, route string }{
			{"/Condition?patient=" + pid + "&clinical-status=active", "GET /:type"},
			{"/Observation?patient=" + pid + "&_count=20", "GET /:type"},
			{"/MedicationRequest?patient=" + pid + "&intent=plan", "GET /:type"},
			{"/Patient/" + pid + "/$everything?_count=50", "GET /Patient/:id/$everything"},
			{"/Patient/" + pid, "GET /:type/:id"},
		} {
			if ctx.Err() != nil {
				return
			}
			if st, _, err := a.do(ctx, "GET", q.path, q.route, ptok, nil); err != nil || st == 401 {
				break
			}
		}
	}
}

func patientID(bundle []byte) string {
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(bundle, &b) != nil {
		return ""
	}
	for _, e := range b.Entry {
		if e.Resource.ResourceType == "Patient" {
			return e.Resource.ID
		}
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// operate is the operator during the run: a client disabled for a few
// seconds and re-enabled, agreements added, suspended and re-activated,
// the main agreement suspended for a moment — all through the admin API.
func operate(ctx context.Context, admin *actor, clients []*actor, practice string, disabled *sync.Map, say func(string, ...any)) {
	main := "demo-" + strings.ToLower(practice) + "-rxx01"
	for round := 0; ctx.Err() == nil; round++ {
		sleep(ctx, 10*time.Second)
		if ctx.Err() != nil {
			return
		}
		c := clients[round%len(clients)]
		if st, _, err := admin.call(ctx, "POST", "/admin/clients/"+c.id+"/disable", "system/Client.u", []byte("{}")); err == nil && st == 200 {
			disabled.Store(c.id, true)
		}
		sleep(ctx, 3*time.Second)
		// re-enable even when the run is ending, so nothing is left disabled
		ectx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if st, _, err := admin.call(ectx, "POST", "/admin/clients/"+c.id+"/enable", "system/Client.u", []byte("{}")); err == nil && st == 200 {
			disabled.Delete(c.id)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		// a new agreement for another consumer, suspended and re-activated
		id := fmt.Sprintf("soak-%s-%d", strings.ToLower(practice), round)
		body, _ := json.Marshal(map[string]any{"id": id, "provider": practice, "consumers": []string{fmt.Sprintf("RXX%d", 10+round%80)},
			"areas": []string{"problems", "medication"}, "status": "active", "end": time.Now().AddDate(0, 0, 30).Format("2006-01-02")})
		admin.call(ctx, "POST", "/admin/agreements", "system/Agreement.c", body)
		admin.call(ctx, "POST", "/admin/agreements/"+id+"/suspend", "system/Agreement.u", []byte("{}"))
		admin.call(ctx, "POST", "/admin/agreements/"+id+"/activate", "system/Agreement.u", []byte("{}"))
		admin.call(ctx, "GET", "/admin/agreements", "system/Agreement.rs", nil)
		if round%4 == 3 {
			admin.call(ctx, "POST", "/admin/agreements/"+main+"/suspend", "system/Agreement.u", []byte("{}"))
			sleep(ctx, time.Second)
			actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			admin.call(actx, "POST", "/admin/agreements/"+main+"/activate", "system/Agreement.u", []byte("{}"))
			cancel()
		}
		if round%6 == 5 {
			admin.call(ctx, "GET", "/admin/clients", "system/Client.rs", nil)
		}
	}
}
