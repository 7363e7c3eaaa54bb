package smart

import (
	"strings"
	"sync"

	"github.com/gpgate/gpgate/fhir"
)

// parsedScopes keeps the scopes of the tokens seen, parsed, keyed by the
// scope string: a token's scopes are read on every request it makes (twice:
// the request's own decision and the patient's whole view), and a region's
// tokens share a handful of scope strings. Bounded by bytes (each entry
// counted with its most decisions): when full it starts again empty. The
// cached slices are shared and never changed.
var parsedScopes = scopeCache{max: 1 << 20}

type scopeCache struct {
	mu    sync.RWMutex
	max   int
	bytes int
	m     map[string]*scopeEntry
}

// scopeEntry is one scope string, parsed, with the decisions Authorize has
// made on it: for the clinical areas a decision depends only on the scopes
// and decisionKey, so a token's second request (and every other token
// with the same scopes) is a map lookup.
type scopeEntry struct {
	scopes    []Scope
	mu        sync.RWMutex
	decisions map[decisionKey]fhir.Decision
}

// decisionKey is what an area decision depends on besides the scopes.
type decisionKey struct {
	samePatient bool // the token has a patient context and the request is for that patient
	interaction string
	typ         string
	areas       fhir.Areas
}

const maxDecisionsPerScopes = 256

func (e *scopeEntry) decision(k decisionKey) (fhir.Decision, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d, ok := e.decisions[k]
	return d, ok
}

func (e *scopeEntry) remember(k decisionKey, d fhir.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.decisions == nil {
		e.decisions = map[decisionKey]fhir.Decision{}
	}
	if len(e.decisions) < maxDecisionsPerScopes {
		e.decisions[k] = d
	}
}

// scopesOf parses a principal's scopes (the token's scope claim, split).
func scopesOf(list []string) (*scopeEntry, error) {
	key := strings.Join(list, " ")
	c := &parsedScopes
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return e, nil
	}
	s, err := ParseScopes(key)
	if err != nil {
		return nil, err // refusals are not cached
	}
	e = &scopeEntry{scopes: s}
	n := len(key) + 96*len(s) + maxDecisionsPerScopes*96
	c.mu.Lock()
	if n <= c.max {
		if c.m == nil || c.bytes+n > c.max {
			c.m, c.bytes = map[string]*scopeEntry{}, 0
		}
		if _, dup := c.m[key]; !dup {
			c.m[key] = e
			c.bytes += n
		}
	}
	c.mu.Unlock()
	return e, nil
}
