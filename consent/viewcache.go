package consent

import "sync"

// viewCacheBytes bounds the decoded consents a BoltStore keeps (about
// 2 KB each: 4,000 consents).
const viewCacheBytes = 8 << 20

// viewCache keeps decoded consents to view by id, bounded by bytes: when
// full it starts again empty (consents are re-read as they are used).
// Every write of a consent invalidates its entry and moves the generation
// on; a reader puts what it read only if no write happened since it began
// reading (generation unchanged), so a consent revoked while a request read
// it is never cached as it was before.
type viewCache struct {
	mu    sync.Mutex
	max   int
	gen   uint64
	bytes int
	m     map[string]*ViewConsent
}

func viewSize(c *ViewConsent) int {
	return 256 + len(c.ID) + len(c.PatientID) + len(c.NHS) + len(c.Clinician) + len(c.Organisation) +
		len(c.ClientID) + len(c.Status) + len(c.Resource)
}

// get returns a copy of the cached consent: callers change what they get
// (RevokeConsent), never what is cached.
func (v *viewCache) get(id string) (*ViewConsent, bool) {
	v.mu.Lock()
	c, ok := v.m[id]
	v.mu.Unlock()
	if !ok {
		return nil, false
	}
	cp := *c
	return &cp, true
}

func (v *viewCache) generation() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.gen
}

// put caches c, read when the generation was gen, unless a write happened
// since. c is kept as it is: the caller must not change it afterwards.
func (v *viewCache) put(gen uint64, c *ViewConsent) {
	n := viewSize(c)
	v.mu.Lock()
	defer v.mu.Unlock()
	if gen != v.gen || n > v.max {
		return
	}
	if v.m == nil || v.bytes+n > v.max {
		v.m, v.bytes = map[string]*ViewConsent{}, 0
	}
	if old, ok := v.m[c.ID]; ok {
		v.bytes -= viewSize(old)
	}
	cp := *c
	v.m[c.ID] = &cp
	v.bytes += n
}

func (v *viewCache) invalidate(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	if old, ok := v.m[id]; ok {
		v.bytes -= viewSize(old)
		delete(v.m, id)
	}
}
