package rest

import (
	"container/list"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gpgate/gpgate/fhir"
)

// entryCache keeps the rendered entries of the lists of resources recently
// answered, so a record asked for again goes out from bytes rendered once:
// each Bundle's head (id, timestamp, total, links) is new, its entries are
// the kept bytes, written where they lie.
//
// A rendering is a function of the list (the identities of its resources:
// a resource is immutable once made, and a changed record brings new
// ones), the base URL and the search mode, so a hit is exactly the bytes a
// fresh rendering would be. An entry holds the list it was made from: that
// keeps those resources alive, so their addresses stay theirs while the
// entry lives. The cache is bounded by bytes, counting both the rendering
// and the resources it keeps alive.
type entryCache struct {
	max  int // bytes kept at most
	min  int // renderings shorter than this are not kept: splicing them is as cheap as looking
	seed maphash.Seed

	mu    sync.Mutex
	ll    *list.List // of *rendering, most recently used first
	m     map[listKey]*list.Element
	bytes int
	// seen are the keys of lists asked for once and not kept: a list is
	// kept the second time it is asked for, so lists answered once (a
	// record read once, a list with a resource made per request) neither
	// cost a rendering nor push out what is asked for again.
	seen map[uint64]struct{}

	hits, misses atomic.Int64
}

// listKey finds a kept list in constant time; the whole list is compared
// before its rendering is used.
type listKey struct {
	first, last *fhir.Resource
	n           int
	base, mode  string
}

type rendering struct {
	key  listKey
	list []*fhir.Resource
	json []byte
	size int
}

// Defaults of the render cache.
const (
	DefaultEntryCacheBytes = 16 << 20
	minRendering           = 32 << 10
	maxSeen                = 4096 // keys remembered before the set starts afresh
)

func newEntryCache(maxBytes int) *entryCache {
	if maxBytes <= 0 {
		return nil
	}
	return &entryCache{max: maxBytes, min: minRendering, seed: maphash.MakeSeed(), ll: list.New(), m: map[listKey]*list.Element{}, seen: map[uint64]struct{}{}}
}

// entries returns the rendered entries of rs (fhir.AppendEntries of base
// and mode), kept or made now; nil when rs is not kept: asked for the first
// time, or too short to be worth keeping (the caller splices it as it
// goes). A nil cache keeps nothing.
func (c *entryCache) entries(base, mode string, rs []*fhir.Resource) []byte {
	if c == nil || len(rs) == 0 {
		return nil
	}
	held := 8 * len(rs) // what a kept list keeps alive: the list and its resources
	for _, r := range rs {
		held += len(r.JSON)
	}
	if held < c.min || 2*held > c.max/4 {
		return nil
	}
	k := listKey{first: rs[0], last: rs[len(rs)-1], n: len(rs), base: base, mode: mode}
	c.mu.Lock()
	if el, ok := c.m[k]; ok {
		if r := el.Value.(*rendering); slices.Equal(r.list, rs) {
			c.ll.MoveToFront(el)
			c.mu.Unlock()
			c.hits.Add(1)
			return r.json
		}
	}
	// The set of lists seen once holds hashes, not pointers: it keeps
	// nothing alive.
	h := maphash.Comparable(c.seed, k)
	_, again := c.seen[h]
	if !again {
		if len(c.seen) >= maxSeen {
			clear(c.seen)
		}
		c.seen[h] = struct{}{}
	}
	c.mu.Unlock()
	c.misses.Add(1)
	if !again {
		return nil
	}
	n := fhir.EntriesSize(base, mode, rs)
	r := &rendering{key: k, list: slices.Clone(rs), json: fhir.AppendEntries(make([]byte, 0, n), base, mode, rs), size: held + n}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, h)
	if el, ok := c.m[k]; ok {
		c.drop(el)
	}
	c.m[k] = c.ll.PushFront(r)
	c.bytes += r.size
	for c.bytes > c.max {
		c.drop(c.ll.Back())
	}
	return r.json
}

func (c *entryCache) drop(el *list.Element) {
	r := el.Value.(*rendering)
	c.ll.Remove(el)
	delete(c.m, r.key)
	c.bytes -= r.size
}

// size is the bytes the cache accounts for and the renderings it keeps.
func (c *entryCache) size() (bytes, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.ll.Len()
}
