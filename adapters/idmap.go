package adapters

import (
	"context"
	"sync"

	"github.com/gpgate/gpgate/fhir"
)

// MemIDMap is an in-memory IDMap: for tests and a single node whose id map
// may be forgotten at restart (the Patient?identifier= search fills it again).
type MemIDMap struct {
	mu sync.RWMutex
	m  map[string]fhir.NHSNumber
}

// NewMemIDMap returns an empty in-memory id map.
func NewMemIDMap() *MemIDMap { return &MemIDMap{m: map[string]fhir.NHSNumber{}} }

// Put records that id stands for nhs.
func (m *MemIDMap) Put(_ context.Context, id string, nhs fhir.NHSNumber) error {
	m.mu.Lock()
	m.m[id] = nhs
	m.mu.Unlock()
	return nil
}

// Get returns the NHS number of id, or "" when id is unknown.
func (m *MemIDMap) Get(_ context.Context, id string) (fhir.NHSNumber, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.m[id], nil
}
