package gp2gp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// hl7NS is the HL7 v3 namespace every element of an EHR Extract lives in.
const hl7NS = "urn:hl7-org:v3"

// Parser limits. An EHR Extract is deeply nested but never this deep; the
// attribute and text limits keep a hostile file from making one giant
// allocation stay in memory per node.
const (
	DefaultMaxExtractBytes = 32 << 20 // 32 MiB: the largest GP2GP extracts are a few MB
	maxDepth               = 256
	maxAttrBytes           = 64 << 10
	maxTextBytes           = 1 << 20
	maxNodes               = 2_000_000
)

// Sentinel causes of a rejected extract; the *fhir.Error returned to callers
// wraps one of them (errors.Is works) with the decoder detail.
var (
	ErrTooLarge    = errors.New("gp2gp: extract exceeds the size limit")
	ErrHostile     = errors.New("gp2gp: extract carries a DOCTYPE or entity declaration")
	ErrMalformed   = errors.New("gp2gp: extract is not well-formed XML")
	ErrNamespace   = errors.New("gp2gp: extract is not in the HL7 v3 namespace")
	ErrNotExtract  = errors.New("gp2gp: document is not an RCMR_IN030000UK06/UK07 message or EhrExtract")
	ErrNoNHSNumber = errors.New("gp2gp: extract has no valid NHS number and no manifest binding")
	ErrNHSMismatch = errors.New("gp2gp: extract NHS number disagrees with the manifest")
	ErrAmbiguous   = errors.New("gp2gp: more than one extract is bound to the same NHS number")
	ErrLimits      = errors.New("gp2gp: extract exceeds a structural limit")
)

// node is one element of the parsed document: a small DOM, so the mappers can
// walk the extract the way the message model is written (parent/child paths)
// without one Go struct per HL7 variant.
type node struct {
	Name  string // local name
	Space string
	Attr  []xml.Attr
	Kids  []*node
	Text  string // character data directly inside the element, trimmed
}

// attr returns the value of the attribute with the local name n.
func (x *node) attr(n string) string {
	if x == nil {
		return ""
	}
	for _, a := range x.Attr {
		if a.Name.Local == n {
			return a.Value
		}
	}
	return ""
}

// child returns the first child element named n (case-insensitive: the
// schema spells Participant2/participant2 both ways across suppliers).
func (x *node) child(n string) *node {
	if x == nil {
		return nil
	}
	for _, k := range x.Kids {
		if strings.EqualFold(k.Name, n) {
			return k
		}
	}
	return nil
}

// children returns every child element named n.
func (x *node) children(n string) []*node {
	if x == nil {
		return nil
	}
	var out []*node
	for _, k := range x.Kids {
		if strings.EqualFold(k.Name, n) {
			out = append(out, k)
		}
	}
	return out
}

// path follows child names.
func (x *node) path(names ...string) *node {
	for _, n := range names {
		x = x.child(n)
		if x == nil {
			return nil
		}
	}
	return x
}

// id returns the @root of the first id child (the statement's identity).
func (x *node) id() string { return x.child("id").attr("root") }

// walk visits x and its descendants depth first; f returns false to skip a
// subtree.
func (x *node) walk(f func(*node) bool) {
	if x == nil || !f(x) {
		return
	}
	for _, k := range x.Kids {
		k.walk(f)
	}
}

// parseXML decodes b into a node tree with encoding/xml, rejecting DOCTYPE and
// entity declarations, non-UTF-8 encodings, over-deep nesting and oversized
// attributes or text. Only the element structure and the text directly inside
// elements is kept; comments and processing instructions are dropped.
func parseXML(b []byte, maxBytes int64) (*node, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxExtractBytes
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, len(b), maxBytes)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	// No CharsetReader: anything but UTF-8 (or US-ASCII) is an error.
	var root *node
	var stack []*node
	var text []byte
	nodes := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, ErrHostile
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("%w: nesting deeper than %d", ErrLimits, maxDepth)
			}
			if nodes++; nodes > maxNodes {
				return nil, fmt.Errorf("%w: more than %d elements", ErrLimits, maxNodes)
			}
			n := &node{Name: canonicalName(t.Name.Local), Space: t.Name.Space}
			for _, a := range t.Attr {
				if len(a.Value) > maxAttrBytes {
					return nil, fmt.Errorf("%w: attribute %s longer than %d bytes", ErrLimits, a.Name.Local, maxAttrBytes)
				}
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				n.Attr = append(n.Attr, xml.Attr{Name: xml.Name{Local: a.Name.Local}, Value: a.Value})
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("%w: more than one root element", ErrMalformed)
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.Kids = append(p.Kids, n)
			}
			stack = append(stack, n)
			text = text[:0]
		case xml.CharData:
			if len(stack) > 0 {
				if len(text)+len(t) > maxTextBytes {
					return nil, fmt.Errorf("%w: text longer than %d bytes", ErrLimits, maxTextBytes)
				}
				text = append(text, t...)
			}
		case xml.EndElement:
			n := stack[len(stack)-1]
			if s := bytes.TrimSpace(text); len(s) > 0 && len(n.Kids) == 0 {
				n.Text = string(s)
			}
			text = text[:0]
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrMalformed)
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("%w: truncated document", ErrMalformed)
	}
	return root, nil
}

// canonicalNames spells the statement elements as the message model does,
// whatever case a supplier used, so every rule matches them.
var canonicalNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"ObservationStatement", "CompoundStatement", "LinkSet", "MedicationStatement",
		"RequestStatement", "PlanStatement", "NarrativeStatement", "RegistrationStatement", "EhrEmpty",
		"ehrComposition", "ehrFolder", "ehrSupplyAuthorise", "ehrSupplyPrescribe", "ehrSupplyDiscontinue"} {
		m[strings.ToLower(n)] = n
	}
	return m
}()

func canonicalName(local string) string {
	if c, ok := canonicalNames[strings.ToLower(local)]; ok {
		return c
	}
	return local
}

// hasDoctype reports whether b declares a DOCTYPE or an entity anywhere; the
// decoder would surface the DOCTYPE as a Directive, but only once it reaches
// it, so the raw check fails fast before any work.
func hasDoctype(b []byte) bool {
	return indexFold(b, "<!DOCTYPE") >= 0 || indexFold(b, "<!ENTITY") >= 0
}

func indexFold(b []byte, s string) int {
	n := len(s)
	for i := 0; i+n <= len(b); i++ {
		if b[i] == '<' && i+1 < len(b) && b[i+1] == '!' && bytes.EqualFold(b[i:i+n], []byte(s)) {
			return i
		}
	}
	return -1
}

// findExtract locates the EhrExtract element in a parsed message: the root
// itself, or ControlActEvent/subject/EhrExtract under an RCMR_IN030000UK06 or
// UK07 interaction. Every element must be in the HL7 v3 namespace.
func findExtract(root *node) (*node, error) {
	if root.Space != hl7NS {
		return nil, fmt.Errorf("%w: root element <%s> in namespace %q", ErrNamespace, root.Name, root.Space)
	}
	var bad *node
	root.walk(func(n *node) bool {
		if bad != nil {
			return false
		}
		if n.Space != hl7NS {
			bad = n
			return false
		}
		return true
	})
	if bad != nil {
		return nil, fmt.Errorf("%w: element <%s> in namespace %q", ErrNamespace, bad.Name, bad.Space)
	}
	switch root.Name {
	case "EhrExtract":
		return root, nil
	case "RCMR_IN030000UK06", "RCMR_IN030000UK07":
		if x := root.path("ControlActEvent", "subject", "EhrExtract"); x != nil {
			return x, nil
		}
		return nil, fmt.Errorf("%w: no ControlActEvent/subject/EhrExtract", ErrNotExtract)
	}
	return nil, fmt.Errorf("%w: root element <%s>", ErrNotExtract, root.Name)
}
