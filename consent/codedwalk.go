package consent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"github.com/gpgate/gpgate/fhir"
)

// This file applies the allowlist of coded.go to a resource's JSON: one pass
// over the bytes, driven by the table, writing the kept members to a pooled
// buffer. A resource with nothing to drop comes back as the same pointer
// without being decoded into maps or re-encoded; one with something to drop
// is re-rendered from the buffer (members in the order of the source,
// compact, numbers and strings byte for byte as they were: deterministic).

// kind is what an element of the table holds.
type kind uint8

const (
	kObject     kind = iota // a data type or backbone element: kids
	kExtension              // an extension: its definition is looked up by url
	kString                 // any text (the few string elements listed)
	kFixedLabel             // a string that is a label UK Core fixes
	kReference              // Reference.reference, not into contained resources
	kResourceType
	kCode
	kID
	kURI
	kDate
	kDateTime
	kInstant
	kTime
	kBool
	kDecimal
	kInteger
	kPositiveInt
	kUnsignedInt
	kNever // known, never kept
)

var primitiveKinds = map[string]kind{
	"string": kString, "fixedLabel": kFixedLabel, "reference": kReference,
	"code": kCode, "id": kID, "uri": kURI, "url": kURI, "canonical": kURI, "oid": kURI,
	"date": kDate, "dateTime": kDateTime, "instant": kInstant, "time": kTime,
	"boolean": kBool, "decimal": kDecimal, "integer": kInteger,
	"positiveInt": kPositiveInt, "unsignedInt": kUnsignedInt, "-": kNever,
}

// quantityProfiles are the R4 profiles of Quantity: same elements.
var quantityProfiles = map[string]bool{"SimpleQuantity": true, "Duration": true, "Age": true,
	"Count": true, "Distance": true, "MoneyQuantity": true}

// node is a compiled element definition.
type node struct {
	name string
	kind kind
	kids map[string]*child
	// needs: for each group, at least one of these kids must be kept.
	needs []uint64
	req   uint64 // kids that, present, must be kept
	// ext is the "extension" element of an object: nil where extensions
	// are not allowed (a simple extension's own extensions).
	ext *node
	// exts is the table an extension node looks its url up in.
	exts map[string]*extNode
	// probe is an open-addressing table over kids (see lookup).
	probe []*child
}

// probeIndex hashes a key for the probe table (mask: table size - 1).
func probeIndex(key []byte, mask int) int {
	h := len(key) * 0x9e37
	for _, c := range key {
		h = h*31 + int(c)
	}
	return h & mask
}

// index builds the probe table of n's kids.
func (n *node) index() {
	size := 8
	for size < 4*len(n.kids) {
		size *= 2
	}
	n.probe = make([]*child, size)
	for k, c := range n.kids {
		i := probeIndex([]byte(k), size-1)
		for n.probe[i] != nil {
			i = (i + 1) & (size - 1)
		}
		n.probe[i] = c
	}
}

// lookup finds the kid named key (no allocation, no map hashing).
func (n *node) lookup(key []byte) *child {
	if len(n.probe) == 0 {
		return nil
	}
	mask := len(n.probe) - 1
	for i := probeIndex(key, mask); ; i = (i + 1) & mask {
		c := n.probe[i]
		if c == nil || c.name == string(key) {
			return c
		}
	}
}

type child struct {
	name string
	n    *node
	bit  uint64
}

type extNode struct {
	def  *ExtensionDef
	node *node
	in   map[string]bool // nil: any resource type
}

// codedTables is the compiled allowlist.
type codedTables struct {
	types     map[string]*node // data types and backbone paths
	resources map[string]*node
	exts      map[string]*extNode
	// absent is what a primitive element's "_element" may hold: only the
	// data-absent-reason extension, with its code (how R4 says why a
	// required value is missing, e.g. an immunisation without a date).
	absent *node
}

// dataAbsentReason is R4's extension for why a value is missing; its
// value is a code of the data-absent-reason value set.
const dataAbsentReason = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

// primitive reports whether an element of kind k holds a JSON primitive
// (and so may have an "_element" beside it).
func (k kind) primitive() bool { return k >= kString && k < kNever && k != kResourceType }

var coded = mustBuildCoded()

func mustBuildCoded() *codedTables {
	t, err := buildCoded(datatypeRows, resourceRows, needRows, extensionTable)
	if err != nil {
		panic(err)
	}
	return t
}

// buildCoded compiles the rows into nodes.
func buildCoded(dtRows, resRows, needs []row, exts []ExtensionDef) (*codedTables, error) {
	t := &codedTables{types: map[string]*node{}, resources: map[string]*node{}, exts: map[string]*extNode{}}
	global := &node{name: "Extension", kind: kExtension, exts: t.exts}
	newObj := func(name string) *node {
		return &node{name: name, kind: kObject, kids: map[string]*child{}, ext: global}
	}
	prims := map[kind]*node{}
	prim := func(k kind) *node {
		if prims[k] == nil {
			prims[k] = &node{kind: k}
		}
		return prims[k]
	}
	type pending struct {
		owner *node
		key   string
		typ   string
		req   bool
		path  string
	}
	var todo []pending
	add := func(rows []row, top map[string]*node) error {
		for _, r := range rows {
			i := strings.LastIndexByte(r.Path, '.')
			if i < 0 {
				return fmt.Errorf("coded table: %q has no element", r.Path)
			}
			parent, key := r.Path[:i], r.Path[i+1:]
			owner := t.types[parent]
			if owner == nil {
				if strings.Contains(parent, ".") {
					return fmt.Errorf("coded table: %s before its backbone %s", r.Path, parent)
				}
				owner = newObj(parent)
				t.types[parent] = owner
				if top != nil {
					top[parent] = owner
				}
			}
			if _, dup := owner.kids[key]; dup {
				return fmt.Errorf("coded table: %s listed twice", r.Path)
			}
			if len(owner.kids) == 64 {
				return fmt.Errorf("coded table: %s has more than 64 elements", parent)
			}
			typ, req := strings.CutSuffix(r.Type, "!")
			c := &child{name: key, bit: 1 << len(owner.kids)}
			owner.kids[key] = c
			if req {
				owner.req |= c.bit
			}
			if typ == "BackboneElement" {
				if t.types[r.Path] != nil {
					return fmt.Errorf("coded table: backbone %s listed twice", r.Path)
				}
				c.n = newObj(r.Path)
				t.types[r.Path] = c.n
				continue
			}
			todo = append(todo, pending{owner, key, typ, req, r.Path})
		}
		return nil
	}
	if err := add(dtRows, nil); err != nil {
		return nil, err
	}
	if err := add(resRows, t.resources); err != nil {
		return nil, err
	}
	resolve := func(typ string) *node {
		if k, ok := primitiveKinds[typ]; ok {
			return prim(k)
		}
		if quantityProfiles[typ] {
			typ = "Quantity"
		}
		if p, ok := strings.CutPrefix(typ, "@"); ok {
			typ = p
		}
		return t.types[typ]
	}
	for _, p := range todo {
		n := resolve(p.typ)
		if n == nil {
			return nil, fmt.Errorf("coded table: %s: unknown type %q", p.path, p.typ)
		}
		if n.kind == kNever && !p.req {
			return nil, fmt.Errorf("coded table: %s: a never-kept element is listed only to be required (-!)", p.path)
		}
		p.owner.kids[p.key].n = n
	}
	for _, nr := range needs {
		n := t.types[nr.Path]
		if n == nil {
			n = t.resources[nr.Path]
		}
		if n == nil {
			return nil, fmt.Errorf("coded table: needs of unknown %s", nr.Path)
		}
		var mask uint64
		for _, k := range strings.Split(nr.Type, "|") {
			c := n.kids[k]
			if c == nil {
				return nil, fmt.Errorf("coded table: %s needs unknown %s", nr.Path, k)
			}
			mask |= c.bit
		}
		n.needs = append(n.needs, mask)
	}
	// Every resource: resourceType and id (needed), meta, language.
	for typ, n := range t.resources {
		for _, k := range []string{"resourceType", "id", "meta", "language"} {
			if _, dup := n.kids[k]; dup {
				return nil, fmt.Errorf("coded table: %s.%s is common to every resource", typ, k)
			}
		}
		if len(n.kids) > 60 {
			return nil, fmt.Errorf("coded table: %s has more than 60 elements", typ)
		}
		common := []struct {
			k string
			n *node
		}{{"resourceType", prim(kResourceType)}, {"id", prim(kID)}, {"meta", t.types["Meta"]}, {"language", prim(kCode)}}
		for _, c := range common {
			ch := &child{name: c.k, n: c.n, bit: 1 << len(n.kids)}
			n.kids[c.k] = ch
			if c.k == "resourceType" || c.k == "id" {
				n.needs = append(n.needs, ch.bit)
			}
		}
	}
	// Extensions.
	var compile func(d *ExtensionDef, table map[string]*extNode) error
	compile = func(d *ExtensionDef, table map[string]*extNode) error {
		if d.URL == "" || table[d.URL] != nil {
			return fmt.Errorf("coded table: extension %q empty or listed twice", d.URL)
		}
		if (len(d.Value) == 0) == (len(d.Sub) == 0) {
			return fmt.Errorf("coded table: extension %s must have either value types or sub-extensions", d.URL)
		}
		en := &extNode{def: d, node: &node{name: "Extension(" + d.URL + ")", kind: kObject, kids: map[string]*child{}}}
		if len(d.In) > 0 {
			en.in = map[string]bool{}
			for _, typ := range d.In {
				en.in[typ] = true
			}
		}
		url := &child{name: "url", n: prim(kURI), bit: 1}
		en.node.kids["url"] = url
		en.node.needs = append(en.node.needs, url.bit)
		var values uint64
		for _, v := range append(append([]string(nil), d.Value...), d.Also...) {
			vn := resolve(v)
			if vn == nil || vn.kind == kNever || vn.kind == kFixedLabel || vn.kind == kReference {
				return fmt.Errorf("coded table: extension %s: unknown value type %q", d.URL, v)
			}
			k := "value" + strings.ToUpper(v[:1]) + v[1:]
			c := &child{name: k, n: vn, bit: 1 << len(en.node.kids)}
			en.node.kids[k] = c
			values |= c.bit
		}
		if len(d.Sub) > 0 {
			sub := &node{name: "Extension", kind: kExtension, exts: map[string]*extNode{}}
			for i := range d.Sub {
				if len(d.Sub[i].In) > 0 {
					return fmt.Errorf("coded table: sub-extension %s of %s cannot restrict resource types", d.Sub[i].URL, d.URL)
				}
				if err := compile(&d.Sub[i], sub.exts); err != nil {
					return err
				}
			}
			// The sub-extensions' slot takes the bit after the values.
			c := &child{name: "extension", n: sub, bit: 1 << len(en.node.kids)}
			en.node.kids["extension"] = c
			values |= c.bit
		}
		en.node.needs = append(en.node.needs, values)
		table[d.URL] = en
		return nil
	}
	for i := range exts {
		if err := compile(&exts[i], t.exts); err != nil {
			return nil, err
		}
	}
	dar := map[string]*extNode{}
	if err := compile(&ExtensionDef{URL: dataAbsentReason, Value: []string{"code"}}, dar); err != nil {
		return nil, err
	}
	t.absent = &node{name: "Element", kind: kObject, kids: map[string]*child{},
		ext: &node{name: "Extension", kind: kExtension, exts: dar}}
	seen := map[*node]bool{}
	var index func(n *node)
	index = func(n *node) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		n.index()
		for _, c := range n.kids {
			index(c.n)
		}
		index(n.ext)
		for _, e := range n.exts {
			index(e.node)
		}
	}
	for _, n := range t.types {
		index(n)
	}
	for _, e := range t.exts {
		index(e.node)
	}
	index(t.absent)
	return t, nil
}

// errCodedJSON is malformed JSON met by the walk.
var errCodedJSON = errors.New("redact: malformed JSON")

// errChanged ends a check pass at the first element that would go.
var errChanged = errors.New("redact: something to drop")

// maxCodedDepth bounds nesting (R4 resources nest far less).
const maxCodedDepth = 64

type walker struct {
	in       []byte
	i        int
	out      []byte
	typ      string
	t        *codedTables
	changed  bool
	withhold bool
	depth    int
	report   *[]string // FreeTextPaths: the dropped paths
	path     []byte
	// check: write nothing and stop with errChanged at the first change
	// (the common case, a resource with nothing to drop, costs one scan).
	check bool
}

var walkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// codedResult is the outcome of the walk over one resource.
type codedResult struct {
	out      []byte // valid only until the buffer is returned
	changed  bool
	withhold bool
}

// walkCoded applies the allowlist to raw, the JSON of a resource of type
// typ. buf is reused for the output.
func walkCoded(t *codedTables, typ string, raw []byte, buf []byte, report *[]string, check bool) (codedResult, []byte, error) {
	w := walker{in: raw, out: buf[:0], typ: typ, t: t, report: report, check: check}
	root := t.resources[typ]
	if report != nil {
		w.path = append(w.path, typ...)
	}
	if root == nil {
		// Not a type gpgate serves: nothing of it is on the allowlist.
		w.check = false
		w.drop()
		return codedResult{withhold: true, changed: true}, w.out, nil
	}
	w.ws()
	if w.i >= len(w.in) || w.in[w.i] != '{' {
		return codedResult{}, w.out, errCodedJSON
	}
	kept, err := w.object(root)
	if err != nil {
		return codedResult{}, w.out, err
	}
	if !kept {
		if err := w.lose(); err != nil {
			return codedResult{}, w.out, err
		}
	}
	w.ws()
	if w.i != len(w.in) {
		return codedResult{}, w.out, errCodedJSON
	}
	return codedResult{out: w.out, changed: w.changed, withhold: w.withhold || !kept}, w.out, nil
}

// keepCoded returns r when everything in it is on the allowlist, or a
// re-rendered copy holding only what is; withhold reports an entry that must
// not leave at all: its primary code or another element that must survive
// held free text only, it carries a modifier (modifierExtension,
// implicitRules), or its type is not one gpgate serves. It replaces the
// blocklist stripFreeText of earlier versions with the same contract.
func keepCoded(r *fhir.Resource) (nr *fhir.Resource, withhold bool, err error) {
	// First a check pass that writes nothing; only a resource with
	// something to drop is walked again, writing what is kept.
	res, _, err := walkCoded(coded, r.Type, r.JSON, nil, nil, true)
	if err == nil && !res.changed && !res.withhold {
		return r, false, nil
	}
	bp := walkBufs.Get().(*[]byte)
	res, buf, err := walkCoded(coded, r.Type, r.JSON, *bp, nil, false)
	defer func() {
		if cap(buf) <= 1<<20 {
			*bp = buf[:0]
			walkBufs.Put(bp)
		}
	}()
	switch {
	case err != nil:
		return nil, false, err
	case res.withhold:
		return nil, true, nil
	case !res.changed:
		return r, false, nil
	}
	out := append(make([]byte, 0, len(res.out)), res.out...)
	nr, err = fhir.NewResource(out)
	if err != nil {
		return nil, false, fmt.Errorf("redact: %w", err)
	}
	if nr.Type != r.Type || nr.ID != r.ID {
		return nil, false, fmt.Errorf("redact: resource identity changed")
	}
	// What the record's assembly added to the index stays: the area it was
	// placed in and the codes of a referenced Medication.
	nr.Ix.Area = r.Ix.Area
	if len(nr.Ix.Code) == 0 && nr.Ix.MedicationRef == r.Ix.MedicationRef {
		nr.Ix.Code = r.Ix.Code
	}
	return nr, false, nil
}

// FreeTextPaths lists the elements of a resource's JSON that are not on the
// coded-only allowlist (paths like "Condition.note", "Observation.code.text",
// "Patient.extension(URL)"): what Redact drops, or, for a modifier or a type
// gpgate does not serve, why it withholds the whole resource. None for a
// resource Redact lets out as it is.
func FreeTextPaths(r *fhir.Resource) ([]string, error) {
	var out []string
	_, _, err := walkCoded(coded, r.Type, r.JSON, nil, &out, false)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// drop records a dropped element (the current path) in report mode; in a
// check pass it ends the walk.
func (w *walker) drop() error {
	w.changed = true
	if w.report != nil {
		*w.report = append(*w.report, string(w.path))
	}
	if w.check {
		return errChanged
	}
	return nil
}

// lose records that a present value is not kept (emptied, or its needs
// not met).
func (w *walker) lose() error {
	w.changed = true
	if w.check {
		return errChanged
	}
	return nil
}

func (w *walker) ws() {
	for w.i < len(w.in) {
		switch w.in[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

// object walks the object at w.i ('{') under n, writing what is kept. It
// reports whether the object was kept: not empty, its needs met and nothing
// it requires lost.
func (w *walker) object(n *node) (bool, error) {
	// Depth is restored on every normal return; after an error the walk
	// is over.
	w.depth++
	if w.depth > maxCodedDepth {
		return false, errCodedJSON
	}
	w.i++ // '{'
	start := len(w.out)
	if !w.check {
		w.out = append(w.out, '{')
	}
	var present, kept uint64
	count := 0
	extSeen := false
	var absentSeen uint64 // primitives whose "_element" was taken
	var absent uint64     // ... and kept: the element is there, its value absent for a reason
	w.ws()
	if w.i < len(w.in) && w.in[w.i] == '}' {
		w.i++
		w.out = w.out[:start]
		w.depth--
		return false, nil
	}
	for {
		w.ws()
		if w.i >= len(w.in) || w.in[w.i] != '"' {
			return false, errCodedJSON
		}
		ks, ke, esc, err := w.str()
		if err != nil {
			return false, err
		}
		key := w.in[ks:ke]
		w.ws()
		if w.i >= len(w.in) || w.in[w.i] != ':' {
			return false, errCodedJSON
		}
		w.i++
		w.ws()
		var c *child
		if !esc {
			c = n.lookup(key)
		}
		pathMark := len(w.path)
		if w.report != nil {
			w.path = append(append(w.path, '.'), key...)
		}
		var ext *node
		var absentBit uint64
		if c == nil && !esc && n.ext != nil && !extSeen && string(key) == "extension" {
			ext, extSeen = n.ext, true
		} else if c == nil && !esc && len(key) > 1 && key[0] == '_' {
			// "_element" of a listed primitive: a data-absent-reason only
			// (once per element).
			if pc := n.lookup(key[1:]); pc != nil && pc.n.kind.primitive() && absentSeen&pc.bit == 0 {
				ext, absentSeen, absentBit = w.t.absent, absentSeen|pc.bit, pc.bit
			}
		}
		switch {
		case c != nil && present&c.bit == 0, ext != nil:
			mark := len(w.out)
			if !w.check {
				if count > 0 {
					w.out = append(w.out, ',')
				}
				w.out = append(w.out, '"')
				w.out = append(w.out, key...)
				w.out = append(w.out, '"', ':')
			}
			var ok bool
			if ext != nil {
				ok, err = w.value(ext)
			} else {
				present |= c.bit
				ok, err = w.value(c.n)
			}
			if err != nil {
				return false, err
			}
			if ok {
				count++
				if c != nil {
					kept |= c.bit
				}
				absent |= absentBit
			} else {
				w.out = w.out[:mark]
				if err := w.lose(); err != nil {
					return false, err
				}
			}
		default:
			// Not on the allowlist (or a repeated key): dropped. A
			// modifier withholds the whole resource.
			if !esc && (string(key) == "modifierExtension" || string(key) == "implicitRules") {
				w.withhold = true
			}
			if err := w.drop(); err != nil {
				return false, err
			}
			if err := w.skip(); err != nil {
				return false, err
			}
		}
		w.path = w.path[:pathMark]
		w.ws()
		if w.i >= len(w.in) {
			return false, errCodedJSON
		}
		if w.in[w.i] == ',' {
			w.i++
			continue
		}
		if w.in[w.i] != '}' {
			return false, errCodedJSON
		}
		w.i++
		break
	}
	lost := n.req&present&^kept != 0
	for _, need := range n.needs {
		// An element R4 requires may stand as its data-absent-reason.
		lost = lost || (kept|absent)&need == 0
	}
	w.depth--
	if count == 0 || lost {
		w.out = w.out[:start]
		return false, nil
	}
	if !w.check {
		w.out = append(w.out, '}')
	}
	return true, nil
}

// value walks one element's JSON value: an array of items or one item.
func (w *walker) value(n *node) (bool, error) {
	if w.i < len(w.in) && w.in[w.i] == '[' {
		w.depth++
		if w.depth > maxCodedDepth {
			return false, errCodedJSON
		}
		w.i++
		start := len(w.out)
		if !w.check {
			w.out = append(w.out, '[')
		}
		count := 0
		w.ws()
		if w.i < len(w.in) && w.in[w.i] == ']' {
			w.i++
			w.out = w.out[:start]
			w.depth--
			return false, nil
		}
		for {
			w.ws()
			mark := len(w.out)
			if count > 0 && !w.check {
				w.out = append(w.out, ',')
			}
			ok, err := w.item(n)
			if err != nil {
				return false, err
			}
			if ok {
				count++
			} else {
				w.out = w.out[:mark]
				if err := w.lose(); err != nil {
					return false, err
				}
			}
			w.ws()
			if w.i >= len(w.in) {
				return false, errCodedJSON
			}
			if w.in[w.i] == ',' {
				w.i++
				continue
			}
			if w.in[w.i] != ']' {
				return false, errCodedJSON
			}
			w.i++
			break
		}
		w.depth--
		if count == 0 {
			w.out = w.out[:start]
			return false, nil
		}
		if !w.check {
			w.out = append(w.out, ']')
		}
		return true, nil
	}
	return w.item(n)
}

// item walks one value under n; a value of the wrong JSON type or format
// is dropped.
func (w *walker) item(n *node) (bool, error) {
	if w.i >= len(w.in) {
		return false, errCodedJSON
	}
	c := w.in[w.i]
	switch n.kind {
	case kObject:
		if c == '{' {
			return w.object(n)
		}
	case kExtension:
		if c == '{' {
			return w.extension(n)
		}
	case kBool:
		if c == 't' || c == 'f' {
			s := w.i
			if err := w.skip(); err != nil {
				return false, err
			}
			if !w.check {
				w.out = append(w.out, w.in[s:w.i]...)
			}
			return true, nil
		}
	case kDecimal, kInteger, kPositiveInt, kUnsignedInt:
		if c == '-' || (c >= '0' && c <= '9') {
			s := w.i
			if err := w.number(); err != nil {
				return false, err
			}
			if !numberFits(n.kind, w.in[s:w.i]) {
				return false, w.drop()
			}
			if !w.check {
				w.out = append(w.out, w.in[s:w.i]...)
			}
			return true, nil
		}
	case kNever:
	default: // string kinds
		if c == '"' {
			s := w.i
			ks, ke, esc, err := w.str()
			if err != nil {
				return false, err
			}
			if !w.stringFits(n.kind, w.in[ks:ke], esc) {
				return false, w.drop()
			}
			if !w.check {
				w.out = append(w.out, w.in[s:w.i]...)
			}
			return true, nil
		}
	}
	if err := w.drop(); err != nil {
		return false, err
	}
	return false, w.skip()
}

// extension walks one extension object: kept only when its url is in the
// table of n and it may appear in this resource type.
func (w *walker) extension(n *node) (bool, error) {
	url, err := w.peekURL()
	if err != nil {
		return false, err
	}
	en := n.exts[url]
	if w.report != nil {
		mark := len(w.path)
		w.path = append(append(append(w.path, '('), url...), ')')
		defer func() { w.path = w.path[:mark] }()
	}
	if en == nil || (en.in != nil && !en.in[w.typ]) {
		if err := w.drop(); err != nil {
			return false, err
		}
		return false, w.skip()
	}
	return w.object(en.node)
}

// peekURL returns the url of the extension object at w.i without moving,
// or "" when it has none.
func (w *walker) peekURL() (string, error) {
	save, saveDepth := w.i, w.depth
	defer func() { w.i, w.depth = save, saveDepth }()
	w.i++
	for {
		w.ws()
		if w.i >= len(w.in) {
			return "", errCodedJSON
		}
		if w.in[w.i] == '}' {
			return "", nil
		}
		if w.in[w.i] != '"' {
			return "", errCodedJSON
		}
		ks, ke, esc, err := w.str()
		if err != nil {
			return "", err
		}
		w.ws()
		if w.i >= len(w.in) || w.in[w.i] != ':' {
			return "", errCodedJSON
		}
		w.i++
		w.ws()
		if !esc && string(w.in[ks:ke]) == "url" && w.i < len(w.in) && w.in[w.i] == '"' {
			vs, ve, vesc, err := w.str()
			if err != nil || vesc {
				return "", err
			}
			return string(w.in[vs:ve]), nil
		}
		if err := w.skip(); err != nil {
			return "", err
		}
		w.ws()
		if w.i < len(w.in) && w.in[w.i] == ',' {
			w.i++
		}
	}
}

// str reads the string at w.i ('"'): the bounds of its raw content and
// whether it has escapes. Control characters and bad escapes are errors.
func (w *walker) str() (int, int, bool, error) {
	w.i++
	s := w.i
	esc := false
	for {
		// Eight bytes at a time up to the first '"', '\\' or control
		// character.
		for w.i+8 <= len(w.in) {
			if m := specialMask(binary.LittleEndian.Uint64(w.in[w.i:])); m != 0 {
				w.i += bits.TrailingZeros64(m) >> 3
				break
			}
			w.i += 8
		}
		if w.i >= len(w.in) {
			return 0, 0, false, errCodedJSON
		}
		switch c := w.in[w.i]; {
		case c == '"':
			e := w.i
			w.i++
			return s, e, esc, nil
		case c == '\\':
			esc = true
			if w.i+1 >= len(w.in) {
				return 0, 0, false, errCodedJSON
			}
			switch w.in[w.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				w.i += 2
			case 'u':
				if w.i+6 > len(w.in) {
					return 0, 0, false, errCodedJSON
				}
				for _, h := range w.in[w.i+2 : w.i+6] {
					if !isHex(h) {
						return 0, 0, false, errCodedJSON
					}
				}
				w.i += 6
			default:
				return 0, 0, false, errCodedJSON
			}
		case c < 0x20:
			return 0, 0, false, errCodedJSON
		default:
			w.i++
		}
	}
}

// specialMask flags the bytes of x (eight bytes of a string, little
// endian) that are '"', a backslash or a control character (the SWAR
// zero-byte test); its lowest set bit is exactly the first such byte.
func specialMask(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, b := x^(lo*'"'), x^(lo*'\\')
	return ((q - lo) &^ q & hi) | ((b - lo) &^ b & hi) | ((x - lo*0x20) &^ x & hi)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number reads a JSON number at w.i.
func (w *walker) number() error {
	digits := func() int {
		n := 0
		for w.i < len(w.in) && w.in[w.i] >= '0' && w.in[w.i] <= '9' {
			w.i++
			n++
		}
		return n
	}
	if w.in[w.i] == '-' {
		w.i++
	}
	if w.i < len(w.in) && w.in[w.i] == '0' {
		w.i++
	} else if digits() == 0 {
		return errCodedJSON
	}
	if w.i < len(w.in) && w.in[w.i] == '.' {
		w.i++
		if digits() == 0 {
			return errCodedJSON
		}
	}
	if w.i < len(w.in) && (w.in[w.i] == 'e' || w.in[w.i] == 'E') {
		w.i++
		if w.i < len(w.in) && (w.in[w.i] == '+' || w.in[w.i] == '-') {
			w.i++
		}
		if digits() == 0 {
			return errCodedJSON
		}
	}
	return nil
}

// skip moves past one JSON value, checking its syntax.
func (w *walker) skip() error {
	w.ws()
	if w.i >= len(w.in) {
		return errCodedJSON
	}
	switch c := w.in[w.i]; {
	case c == '"':
		_, _, _, err := w.str()
		return err
	case c == '{' || c == '[':
		w.depth++
		defer func() { w.depth-- }()
		if w.depth > maxCodedDepth {
			return errCodedJSON
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		w.i++
		w.ws()
		if w.i < len(w.in) && w.in[w.i] == closing {
			w.i++
			return nil
		}
		for {
			w.ws()
			if c == '{' {
				if w.i >= len(w.in) || w.in[w.i] != '"' {
					return errCodedJSON
				}
				if _, _, _, err := w.str(); err != nil {
					return err
				}
				w.ws()
				if w.i >= len(w.in) || w.in[w.i] != ':' {
					return errCodedJSON
				}
				w.i++
			}
			if err := w.skip(); err != nil {
				return err
			}
			w.ws()
			if w.i >= len(w.in) {
				return errCodedJSON
			}
			if w.in[w.i] == ',' {
				w.i++
				continue
			}
			if w.in[w.i] != closing {
				return errCodedJSON
			}
			w.i++
			return nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return w.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(w.in)-w.i >= len(lit) && string(w.in[w.i:w.i+len(lit)]) == lit {
				w.i += len(lit)
				return nil
			}
		}
		return errCodedJSON
	}
}

// numberFits checks a JSON number against the R4 primitive.
func numberFits(k kind, b []byte) bool {
	if k == kDecimal {
		return true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return false // fraction or exponent
		}
		v = v*10 + int64(c-'0')
		if v > 1<<31 {
			return false
		}
	}
	if neg {
		v = -v
	}
	switch k {
	case kPositiveInt:
		return v >= 1 && v <= 1<<31-1
	case kUnsignedInt:
		return !neg && v <= 1<<31-1
	}
	return v >= -(1<<31) && v <= 1<<31-1
}

// stringFits checks a string (raw JSON content) against the R4 primitive.
func (w *walker) stringFits(k kind, raw []byte, esc bool) bool {
	if len(raw) == 0 {
		return false // R4: a string value is never empty
	}
	if k == kString {
		return true
	}
	s := raw
	space := func() bool { return bytes.IndexByte(s, ' ') >= 0 } // raw JSON strings hold no other whitespace
	if esc {
		// Rare: decode to check the value itself.
		var v string
		if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &v) != nil || v == "" {
			return false
		}
		s = []byte(v)
		space = func() bool { return hasSpace(s) }
	}
	switch k {
	case kResourceType:
		return string(s) == w.typ
	case kFixedLabel:
		return fhir.IsProfileFixedText(string(s))
	case kReference:
		return s[0] != '#' && !space()
	case kURI:
		return !space()
	case kID:
		if len(s) > 64 {
			return false
		}
		for _, c := range s {
			if !(c == '-' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
				return false
			}
		}
		return true
	case kCode:
		// [^\s]+(\s[^\s]+)*
		if isSpace(s[0]) || isSpace(s[len(s)-1]) {
			return false
		}
		for i := 1; i < len(s); i++ {
			if isSpace(s[i]) && isSpace(s[i-1]) {
				return false
			}
		}
		return true
	case kDate:
		return dateTimeFits(s, true, false)
	case kDateTime:
		return dateTimeFits(s, true, true)
	case kInstant:
		return dateTimeFits(s, false, true)
	case kTime:
		return timeFits(s) == len(s)
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func hasSpace(s []byte) bool {
	for _, c := range s {
		if isSpace(c) {
			return true
		}
	}
	return false
}

// digitsIn reports n digits at s[i:] within [lo, hi].
func digitsIn(s []byte, i, n, lo, hi int) bool {
	if i+n > len(s) {
		return false
	}
	v := 0
	for _, c := range s[i : i+n] {
		if c < '0' || c > '9' {
			return false
		}
		v = v*10 + int(c-'0')
	}
	return v >= lo && v <= hi
}

// dateTimeFits checks the R4 date / dateTime / instant forms: YYYY,
// YYYY-MM, YYYY-MM-DD (when partial is allowed), and
// YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm|-hh:mm) (when time is allowed; the
// only form of an instant).
func dateTimeFits(s []byte, partial, withTime bool) bool {
	if !digitsIn(s, 0, 4, 1, 9999) {
		return false
	}
	if len(s) == 4 {
		return partial
	}
	if len(s) < 7 || s[4] != '-' || !digitsIn(s, 5, 2, 1, 12) {
		return false
	}
	if len(s) == 7 {
		return partial
	}
	if len(s) < 10 || s[7] != '-' || !digitsIn(s, 8, 2, 1, 31) {
		return false
	}
	if len(s) == 10 {
		return partial
	}
	if !withTime || s[10] != 'T' {
		return false
	}
	n := timeFits(s[11:])
	if n < 0 {
		return false
	}
	z := s[11+n:]
	switch {
	case len(z) == 1 && z[0] == 'Z':
		return true
	case len(z) == 6 && (z[0] == '+' || z[0] == '-') && z[3] == ':':
		return digitsIn(z, 1, 2, 0, 14) && digitsIn(z, 4, 2, 0, 59)
	}
	return false
}

// timeFits reads hh:mm:ss[.f+] at the start of s: its length, or -1.
func timeFits(s []byte) int {
	if len(s) < 8 || !digitsIn(s, 0, 2, 0, 23) || s[2] != ':' || !digitsIn(s, 3, 2, 0, 59) || s[5] != ':' || !digitsIn(s, 6, 2, 0, 60) {
		return -1
	}
	n := 8
	if n < len(s) && s[n] == '.' {
		n++
		d := n
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == d {
			return -1
		}
	}
	return n
}
