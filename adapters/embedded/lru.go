package embedded

import (
	"container/list"
	"sync"

	"github.com/gpgate/gpgate/fhir"
)

// lru is a byte-bounded least-recently-used cache of decoded records, keyed
// by NHS number and record version. Records are immutable once decoded, so
// a hit is shared by every caller.
type lru struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key  string
	rec  *fhir.Record
	cost int64
}

func newLRU(max int64) *lru {
	return &lru{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) get(key string) *fhir.Record {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*lruEntry).rec
	}
	return nil
}

// add stores rec unless the key is already cached (a concurrent decode won
// the race), and returns the record the cache holds for key.
func (c *lru) add(key string, rec *fhir.Record, cost int64) *fhir.Record {
	if c.max <= 0 || cost > c.max {
		return rec
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*lruEntry).rec
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key: key, rec: rec, cost: cost})
	c.size += cost
	for c.size > c.max {
		el := c.ll.Back()
		e := el.Value.(*lruEntry)
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.size -= e.cost
	}
	return rec
}

// len reports the number of cached records.
func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
