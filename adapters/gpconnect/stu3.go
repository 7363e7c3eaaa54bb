package gpconnect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Errors a structured record can fail with. They are the Cause of the
// fhir.Error a source returns (errors.Is works through it), for the log and
// for callers that count failures (a circuit breaker).
var (
	// ErrMalformed: the body is not a GP Connect structured record Bundle
	// (not JSON, not a Bundle, no or several Patients, too large, too deep).
	ErrMalformed = errors.New("gpconnect: not a GP Connect structured record")
	// ErrWrongPatient: the record is for another patient than the one asked for.
	ErrWrongPatient = errors.New("gpconnect: the record is for another patient")
	// ErrUnavailable: the provider could not be reached or answered with a
	// server error (transport failure, timeout, 5xx, 429).
	ErrUnavailable = errors.New("gpconnect: provider unavailable")
	// ErrRejected: the provider refused gpgate's request (4xx other than
	// the patient-level answers): a configuration or protocol fault of gpgate.
	ErrRejected = errors.New("gpconnect: provider rejected the request")
)

// DefaultMaxBytes bounds a structured record body (the largest real EMIS
// records are about 1.3 MB).
const DefaultMaxBytes = 64 << 20

// maxDepth bounds JSON nesting (a structured record is at most ~10 deep).
const maxDepth = 64

type obj = map[string]any

// Bundle is a parsed GP Connect STU3 structured record.
type Bundle struct {
	entries []obj          // resources, in Bundle order
	byKey   map[string]obj // "Type/id" and fullUrl -> resource
	patient obj
	issues  []obj          // OperationOutcome resources inside the Bundle (warnings)
	owner   map[string]obj // "Type/id" of a lifted contained resource -> its container
}

// Parse reads a structured record response body: a STU3 Bundle holding
// exactly one Patient. An OperationOutcome body is returned as the coded
// error it carries (see OutcomeError); anything else fails with ErrMalformed.
func Parse(body []byte) (*Bundle, error) {
	if len(body) > DefaultMaxBytes {
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrMalformed, DefaultMaxBytes)
	}
	if err := checkDepth(body); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var root obj
	if err := d.Decode(&root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	switch str(root["resourceType"]) {
	case "Bundle":
	case "OperationOutcome":
		return nil, OutcomeError(root, 0)
	default:
		return nil, fmt.Errorf("%w: resourceType is not Bundle", ErrMalformed)
	}
	b := &Bundle{byKey: map[string]obj{}, owner: map[string]obj{}}
	seen := map[string]int{} // "Type/id" -> occurrences, for renaming clashes
	for _, e := range list(root["entry"]) {
		eo, _ := e.(obj)
		r, _ := eo["resource"].(obj)
		t := str(r["resourceType"])
		if r == nil || t == "" {
			continue
		}
		switch t {
		case "OperationOutcome":
			b.issues = append(b.issues, r)
			continue
		case "Patient":
			if b.patient != nil {
				return nil, fmt.Errorf("%w: more than one Patient", ErrMalformed)
			}
			b.patient = r
		}
		r = b.add(r, seen)
		if fu := str(eo["fullUrl"]); fu != "" {
			if _, dup := b.byKey[fu]; !dup {
				b.byKey[fu] = r
			}
		}
		b.lift(r, str(eo["fullUrl"]))
	}
	if b.patient == nil {
		return nil, fmt.Errorf("%w: no Patient", ErrMalformed)
	}
	return b, nil
}

// add appends a resource to the Bundle's entries and keys it by
// "Type/id". A second resource with the id of an earlier one of its type
// and other content (a supplier reusing an id) is kept under a derived id
// (references by that id lead to the first), so no entry is lost; an
// identical repeat is the same resource and is keyed once.
func (b *Bundle) add(r obj, seen map[string]int) obj {
	t, id := str(r["resourceType"]), str(r["id"])
	if id != "" && t != "Patient" && b.byKey[t+"/"+id] != nil {
		// The same resource again (the first or a renamed variant) is
		// not a new entry.
		if sameJSON(b.byKey[t+"/"+id], r) {
			return b.byKey[t+"/"+id]
		}
		for i := 1; i <= seen[t+"/"+id]; i++ {
			nid := fmt.Sprintf("%s.dup%d", id, i)
			if v := b.byKey[t+"/"+nid]; v != nil && sameJSON(v, withID(r, nid)) {
				return v
			}
		}
		for {
			seen[t+"/"+id]++
			nid := fmt.Sprintf("%s.dup%d", id, seen[t+"/"+id])
			if b.byKey[t+"/"+nid] == nil {
				r = withID(r, nid)
				id = nid
				break
			}
		}
	}
	b.entries = append(b.entries, r)
	if id != "" {
		if _, dup := b.byKey[t+"/"+id]; !dup {
			b.byKey[t+"/"+id] = r
		}
	}
	return r
}

// lift makes the resources contained in r (GP Connect providers put
// ended allergies, and sometimes other entries, inside their section List)
// entries of the Bundle: each keyed by "Type/id" (or a derived id when that
// is taken), by "#id" when no other container uses that id, and by
// "<container>#id" (the forms a reference to a contained resource takes).
// They carry their container's security labels.
func (b *Bundle) lift(r obj, fullURL string) {
	cont := list(r["contained"])
	if len(cont) == 0 {
		return
	}
	host := key(r)
	sec := list(child(r, "meta")["security"])
	for _, c := range cont {
		co, _ := c.(obj)
		t, cid := str(co["resourceType"]), str(co["id"])
		if co == nil || t == "" || cid == "" || t == "Patient" || t == "OperationOutcome" {
			continue
		}
		id := cid
		if b.byKey[t+"/"+id] != nil {
			id = str(r["id"]) + "." + cid
			for n := 1; b.byKey[t+"/"+id] != nil; n++ {
				id = fmt.Sprintf("%s.%s.%d", str(r["id"]), cid, n)
			}
		}
		lc := withID(co, id)
		delete(lc, "contained")
		if len(sec) > 0 {
			meta := obj{}
			for k, v := range child(lc, "meta") {
				meta[k] = v
			}
			meta["security"] = append(append([]any{}, list(meta["security"])...), sec...)
			lc["meta"] = meta
		}
		b.entries = append(b.entries, lc)
		b.byKey[t+"/"+id] = lc
		b.owner[t+"/"+id] = r
		for _, k := range []string{host + "#" + cid, fullURL + "#" + cid} {
			if !strings.HasPrefix(k, "#") {
				b.byKey[k] = lc
			}
		}
		switch prev, taken := b.byKey["#"+cid]; {
		case !taken:
			b.byKey["#"+cid] = lc
		case prev != nil && !sameJSON(prev, lc):
			b.byKey["#"+cid] = nil // two containers use the id: ambiguous
		}
	}
}

func withID(r obj, id string) obj {
	c := make(obj, len(r))
	for k, v := range r {
		c[k] = v
	}
	c["id"] = id
	return c
}

func sameJSON(a, b obj) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// checkDepth refuses JSON nested deeper than maxDepth without decoding it.
func checkDepth(body []byte) error {
	depth, inStr, esc := 0, false, false
	for _, c := range body {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// PatientNHS returns the NHS number identifier value of the record's
// Patient as written (it may be a placeholder that fails Modulus 11).
func (b *Bundle) PatientNHS() string {
	for _, id := range list(b.patient["identifier"]) {
		io, _ := id.(obj)
		if s := str(io["system"]); s == fhir.NHSNumberSystem || s == "http://fhir.nhs.net/Id/nhs-number" {
			return strings.TrimSpace(str(io["value"]))
		}
	}
	return ""
}

// PatientFamilies lists the family names the record's Patient carries
// (official and old), for cross-checking a recorded file's name.
func (b *Bundle) PatientFamilies() []string {
	var out []string
	for _, n := range list(b.patient["name"]) {
		no, _ := n.(obj)
		switch f := no["family"].(type) {
		case string:
			out = append(out, f)
		case []any: // DSTU2-style list
			for _, x := range f {
				out = append(out, str(x))
			}
		}
	}
	return out
}

// resolve finds the resource a Reference points at: by fullUrl, by
// "Type/id", or by the "Type/id" tail of an absolute or versioned URL.
func (b *Bundle) resolve(ref any) (obj, string) {
	ro, _ := ref.(obj)
	s := strings.TrimSpace(str(ro["reference"]))
	if s == "" {
		return nil, ""
	}
	if r := b.byKey[s]; r != nil {
		return r, key(r)
	}
	if i := strings.Index(s, "/_history/"); i > 0 {
		s = s[:i]
	}
	parts := strings.Split(s, "/")
	if len(parts) >= 2 {
		k := parts[len(parts)-2] + "/" + parts[len(parts)-1]
		if r := b.byKey[k]; r != nil {
			return r, key(r)
		}
	}
	return nil, ""
}

func key(r obj) string { return str(r["resourceType"]) + "/" + str(r["id"]) }

// --- generic JSON accessors -------------------------------------------------

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	default:
		return []any{x}
	}
}

func child(o obj, k string) obj { c, _ := o[k].(obj); return c }

func boolean(v any) (bool, bool) { b, ok := v.(bool); return b, ok }
