package fhirapi

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Page is one searchset Bundle page from the upstream server.
type Page struct {
	Entries []Entry
	Next    string // link[relation=next].url, "" on the last page
}

// Entry is one Bundle entry: the resource as raw JSON, its type and id, and
// how the search found it.
type Entry struct {
	FullURL string
	Type    string
	ID      string
	Mode    string // match | include | outcome | "" (unstated)
	JSON    json.RawMessage
}

type rawBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Search   *struct {
			Mode string `json:"mode"`
		} `json:"search"`
	} `json:"entry"`
}

// ParsePage reads a searchset Bundle. Entries without a resource, or whose
// resource has no resourceType or id, are skipped; anything that is not a
// searchset Bundle is an error.
func ParsePage(raw []byte) (*Page, error) {
	var b rawBundle
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("fhirapi: bundle: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("fhirapi: bundle: trailing data")
	}
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		return nil, fmt.Errorf("fhirapi: not a searchset Bundle")
	}
	p := &Page{}
	for _, l := range b.Link {
		if l.Relation == "next" && l.URL != "" {
			p.Next = l.URL
			break
		}
	}
	for _, e := range b.Entry {
		if len(e.Resource) == 0 || e.Resource[0] != '{' {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType == "" {
			continue
		}
		if head.ID == "" && head.ResourceType != "OperationOutcome" {
			continue
		}
		en := Entry{FullURL: e.FullURL, Type: head.ResourceType, ID: head.ID, JSON: e.Resource}
		if e.Search != nil {
			en.Mode = e.Search.Mode
		}
		p.Entries = append(p.Entries, en)
	}
	return p, nil
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
