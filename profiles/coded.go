package profiles

import (
	"strconv"
	"strings"
	"sync"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	bpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gpgate/gpgate/fhir"
)

// Rules of the coded-only check.
const (
	// RuleCodedOnly: a string that is free text (by its R4 type and
	// position), or a CodeableConcept that is text without a coding.
	RuleCodedOnly = "gpgate-coded-only"
	// RuleUnknownElement: an element (or resource type) R4 does not define,
	// whose content therefore cannot be shown to be coded.
	RuleUnknownElement = "gpgate-coded-only-unknown"
)

// CodedOnly checks that a resource (or a Bundle and every resource in it,
// contained resources included) carries only coded and structural data.
//
// It walks every string in the JSON and decides by the element's R4
// datatype, which it takes from the R4 type system itself (the google/fhir
// R4 protos: JSON names of fields, choice types value[x] as oneofs), not
// from any list of element names kept elsewhere in gpgate. A string is
// allowed iff it is not a document (documentPositions) and
//   - its type is in codedTypes, or
//   - it is inside a demographicDatatypes value of a demographicTypes
//     resource, or
//   - its position is in codedPositions and that row's condition holds.
//
// Everything else that is a string is free text (RuleCodedOnly), and an
// element R4 does not define is RuleUnknownElement. A CodeableConcept with
// text but no coding is an uncoded entry (RuleCodedOnly at the concept).
// The resource types in notRecord are gpgate's own, not record content,
// and are not walked.
//
// Input that is not a JSON object with a resourceType is one "json"
// problem with an empty path; every other problem has a path.
func CodedOnly(raw []byte) []Problem {
	root, p := decode(raw)
	if p != nil {
		return []Problem{*p}
	}
	c := &checker{}
	c.codedOnly(root, "")
	return sortProblems(c.problems)
}

// ---------------------------------------------------------------------------
// The decision table. Everything the check allows is here; a string
// anywhere else is free text.

// codedTypes are the R4 primitive types whose values are symbols,
// identifiers, numbers, instants or bytes, never prose. A string leaf of
// one of these types is allowed wherever it is.
var codedTypes = map[string]string{
	"code":         "a symbol from a code system or value set",
	"id":           "a logical id, [A-Za-z0-9-.]{1,64}",
	"uri":          "an identifier of a system, profile or resource",
	"url":          "a location",
	"canonical":    "a reference to a profile, value set or code system",
	"oid":          "an OID, digits and dots",
	"uuid":         "a UUID",
	"date":         "a date",
	"dateTime":     "a date and time",
	"instant":      "an instant",
	"time":         "a time of day",
	"decimal":      "a number",
	"integer":      "a number",
	"positiveInt":  "a number",
	"unsignedInt":  "a number",
	"boolean":      "true or false",
	"base64Binary": "bytes (a hash, a signature), not text",
	// not here, so free text wherever no position below allows them:
	// string, markdown, xhtml (narrative).
}

// documentPositions are elements whose R4 type is in codedTypes but whose
// value is a document: base64 of whatever text it holds. They are free text
// whatever their type.
var documentPositions = map[string]string{
	"Attachment.data": "the attached document itself (a letter, a scanned note), base64-encoded",
}

// position is a row of codedPositions: why a string there is not free
// text, and the condition under which it is allowed (nil: always).
type position struct {
	why  string
	when func(w *codedWalker, s string, parent obj) bool
}

// codedPositions are the string (and markdown) elements allowed by where
// they are: "<datatype>.<element>" for an element of a datatype,
// "<Resource>.<path>" for an element of a resource or backbone element,
// "Element.id" for the id of any element.
var codedPositions = map[string]position{
	"Element.id": {"an element's internal id, the target of #id references", nil},

	"Coding.version": {"the code system's version", nil},
	"Coding.display": {"the code system's display of the code, not the author's words", nil},

	"Quantity.unit":       {"the unit's display (UCUM), beside its coded unit", nil},
	"SimpleQuantity.unit": {"the unit's display (UCUM), beside its coded unit", nil},
	"Age.unit":            {"the unit's display (UCUM), beside its coded unit", nil},
	"Duration.unit":       {"the unit's display (UCUM), beside its coded unit", nil},
	"Distance.unit":       {"the unit's display (UCUM), beside its coded unit", nil},
	"Count.unit":          {"the unit's display (UCUM), beside its coded unit", nil},

	"Identifier.value":    {"an identifier (NHS number, ODS code, a source's record id)", nil},
	"Reference.reference": {"a literal reference: Type/id, an absolute URL, urn:uuid or #id", nil},

	"Immunization.lotNumber":     {"the manufacturer's batch number: an identifier (recalls)", nil},
	"Medication.batch.lotNumber": {"the manufacturer's batch number: an identifier (recalls)", nil},

	"Dosage.text": {"the prescription's instruction, which stays with the dose (DESIGN.md)", nil},

	"CodeableConcept.text": {"only a label UK Core fixes (fhir.IsProfileFixedText), beside codings", fixedLabel},
	"List.title":           {"a section title that repeats the display of one of List.code's codings", titleOfCode},

	"Bundle.link.relation":         {"a link relation (self, next)", nil},
	"Bundle.entry.link.relation":   {"a link relation", nil},
	"Bundle.entry.response.status": {"an HTTP status line", nil},
	"Bundle.entry.response.etag":   {"an HTTP ETag", nil},

	"Organization.name": {"the organisation's name", nil},
}

// demographicTypes are the resources whose names, addresses and contact
// points are demographics: who the patient is and who cares for them is
// the purpose of the demographics area.
var demographicTypes = map[string]string{
	"Patient":          "the patient, their next of kin",
	"Practitioner":     "the usual GP and other clinicians named in the record",
	"Organization":     "the registered practice and other organisations",
	"PractitionerRole": "a clinician's role at an organisation",
}

// demographicDatatypes are allowed whole, every string in them (their own
// extensions included: the UK Core address key is a PAF or UPRN number in a
// valueString), but only inside a demographicTypes resource; the same
// datatypes elsewhere (a contact named in a ServiceRequest) are text.
var demographicDatatypes = map[string]string{
	"HumanName":    "a person's name",
	"Address":      "a postal address",
	"ContactPoint": "a telephone number or email address",
}

// notRecord are the resource types gpgate writes about its own work, not
// content of a GP record: the rule does not apply to them.
var notRecord = map[string]string{
	"OperationOutcome":    "the server's error text for the caller",
	"AuditEvent":          "gpgate's own access log (break-glass reasons by design), admin scopes only",
	"Consent":             "gpgate's record of a consent to view, returned to the client that recorded it",
	"CapabilityStatement": "the server's conformance statement",
	"OperationDefinition": "the server's operation definitions",
}

func fixedLabel(_ *codedWalker, s string, parent obj) bool {
	return fhir.IsProfileFixedText(s) && len(asList(parent["coding"])) > 0
}

func titleOfCode(_ *codedWalker, s string, parent obj) bool {
	code, _ := parent["code"].(obj)
	for _, c := range asList(code["coding"]) {
		if co, _ := c.(obj); co != nil {
			if d, _ := co["display"].(string); d != "" && d == s {
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The R4 type system, from the google/fhir R4 protos.

type typeKind uint8

const (
	kindPrimitive   typeKind = iota // string, code, date, ...
	kindComplex                     // a datatype: Coding, HumanName, Dosage, ...
	kindBackbone                    // an element of a resource: Observation.component
	kindResource                    // a resource type
	kindAnyResource                 // contained, Bundle.entry.resource: any resource
)

// r4type is one R4 type: a primitive, a datatype, a backbone element or a
// resource.
type r4type struct {
	name   string // "string", "Coding", "Observation"; "" for a backbone element
	kind   typeKind
	fields map[string]*r4field // by JSON property name; choices expanded (valueQuantity)
}

// r4field is one JSON property of a type.
type r4field struct {
	name string // the element's name: "value" for valueQuantity
	typ  *r4type
	// under is the "_name" sibling of a primitive element: its id and
	// extensions, never a value.
	under bool
}

var r4 struct {
	once      sync.Once
	resources map[string]*r4type
	datatypes map[string]*r4type // primitives and complex datatypes by name
}

func r4types() map[string]*r4type {
	r4.once.Do(func() {
		b := &typeBuilder{seen: map[protoreflect.FullName]*r4type{}}
		r4.resources = map[string]*r4type{}
		cr := (&bpb.ContainedResource{}).ProtoReflect().Descriptor()
		fs := cr.Fields()
		for i := 0; i < fs.Len(); i++ {
			if md := fs.Get(i).Message(); md != nil {
				t := b.build(md)
				r4.resources[t.name] = t
			}
		}
		r4.datatypes = map[string]*r4type{}
		for _, t := range b.seen {
			if t.kind == kindPrimitive || t.kind == kindComplex {
				if old := r4.datatypes[t.name]; old == nil || len(t.fields) > len(old.fields) {
					r4.datatypes[t.name] = t // a bound code and code share "code"
				}
			}
		}
	})
	return r4.resources
}

type typeBuilder struct {
	seen map[protoreflect.FullName]*r4type
}

// sdName is the last segment of a StructureDefinition URL.
func sdName(u string) string { return u[strings.LastIndex(u, "/")+1:] }

func (b *typeBuilder) build(md protoreflect.MessageDescriptor) *r4type {
	if t := b.seen[md.FullName()]; t != nil {
		return t
	}
	t := &r4type{fields: map[string]*r4field{}}
	b.seen[md.FullName()] = t
	opts := md.Options()
	kind, _ := proto.GetExtension(opts, apb.E_StructureDefinitionKind).(apb.StructureDefinitionKindValue)
	url, _ := proto.GetExtension(opts, apb.E_FhirStructureDefinitionUrl).(string)
	switch {
	case md.FullName() == "google.protobuf.Any" || md.FullName() == "google.fhir.r4.core.ContainedResource":
		t.kind = kindAnyResource
		return t
	case kind == apb.StructureDefinitionKindValue_KIND_PRIMITIVE_TYPE:
		t.kind = kindPrimitive
		if url == "" {
			// a code bound to a value set (Patient.GenderCode) is a
			// profile of code
			if bases, _ := proto.GetExtension(opts, apb.E_FhirProfileBase).([]string); len(bases) > 0 {
				url = bases[0]
			}
		}
		t.name = sdName(url)
	case kind == apb.StructureDefinitionKindValue_KIND_RESOURCE:
		t.kind = kindResource
		t.name = sdName(url)
	case kind == apb.StructureDefinitionKindValue_KIND_COMPLEX_TYPE:
		t.kind = kindComplex
		t.name = sdName(url)
	default:
		t.kind = kindBackbone
	}
	fs := md.Fields()
	for i := 0; i < fs.Len(); i++ {
		f := fs.Get(i)
		if f.Message() == nil {
			continue // a primitive's value: the JSON value itself
		}
		if f.ContainingOneof() != nil && md.FullName() == "google.fhir.r4.core.Reference" && f.Name() != "uri" {
			// the proto's parsed forms of Reference.reference (patient_id,
			// fragment, ...) are not JSON elements; uri is "reference".
			continue
		}
		name := f.JSONName()
		if proto.HasExtension(f.Message().Options(), apb.E_IsChoiceType) {
			cs := f.Message().Fields()
			for j := 0; j < cs.Len(); j++ {
				c := cs.Get(j)
				ct := b.build(c.Message())
				key := name + strings.ToUpper(c.JSONName()[:1]) + c.JSONName()[1:]
				t.fields[key] = &r4field{name: name, typ: ct}
				if ct.kind == kindPrimitive {
					t.fields["_"+key] = &r4field{name: name, typ: ct, under: true}
				}
			}
			continue
		}
		ft := b.build(f.Message())
		t.fields[name] = &r4field{name: name, typ: ft}
		if ft.kind == kindPrimitive {
			t.fields["_"+name] = &r4field{name: name, typ: ft, under: true}
		}
	}
	return t
}

// ---------------------------------------------------------------------------
// The walk.

// codedWalker walks one resource tree. The path of the element in hand is
// kept as pieces and joined only when a problem is reported.
type codedWalker struct {
	c    *checker
	res  string // the resource type being walked
	path []pathSeg
	// demo is set inside a demographic datatype of a demographic resource
	demo bool
}

// codedOnly checks one resource object (a Bundle with its entries);
// prefix is its path inside a Bundle, or "" at the top.
func (c *checker) codedOnly(res obj, prefix string) {
	w := &codedWalker{c: c, path: make([]pathSeg, 0, 16)}
	if prefix == "" {
		typ, _ := res["resourceType"].(string)
		prefix = typ
	}
	w.path = append(w.path, pathSeg{key: prefix, idx: -1})
	w.resource(res)
}

// pathSeg is a property (idx < 0; the first segment is the resource's
// path as given) or an index.
type pathSeg struct {
	key string
	idx int
}

func (w *codedWalker) at() string {
	var b strings.Builder
	for i, s := range w.path {
		switch {
		case s.idx >= 0:
			b.WriteString("[" + strconv.Itoa(s.idx) + "]")
		case i > 0:
			b.WriteString("." + s.key)
		default:
			b.WriteString(s.key)
		}
	}
	return b.String()
}

func (w *codedWalker) problem(rule, format string, args ...any) {
	w.c.add(w.at(), rule, Error, "", format, args...)
}

func (w *codedWalker) resource(o obj) {
	typ, _ := o["resourceType"].(string)
	t := r4types()[typ]
	if t == nil {
		w.problem(RuleUnknownElement, "resourceType %s is not an R4 resource type, so its content cannot be shown to be coded", show(o["resourceType"]))
		return
	}
	if _, skip := notRecord[typ]; skip {
		return
	}
	res, demo := w.res, w.demo
	w.res, w.demo = typ, false
	w.object(o, t, typ)
	w.res, w.demo = res, demo
}

// object walks the properties of one JSON object of type t; def names the
// type for the decision table (a datatype, or a backbone element's path).
func (w *codedWalker) object(o obj, t *r4type, def string) {
	if t.name == "CodeableConcept" {
		if s, ok := o["text"].(string); ok && s != "" && len(asList(o["coding"])) == 0 {
			w.problem(RuleCodedOnly, "a CodeableConcept with text but no coding is an uncoded entry")
		}
	}
	for k, v := range o {
		if t.kind == kindResource && k == "resourceType" {
			continue
		}
		w.path = append(w.path, pathSeg{key: k, idx: -1})
		if f := t.fields[k]; f == nil {
			w.problem(RuleUnknownElement, "%s is not an element of %s in R4, so it cannot be shown to be coded", k, defName(t, def))
		} else {
			w.value(v, f, t, def, o)
		}
		w.path = w.path[:len(w.path)-1]
	}
}

func defName(t *r4type, def string) string {
	if t.kind == kindBackbone {
		return def
	}
	return t.name
}

// value walks the JSON value of field f of an object of type parent.
func (w *codedWalker) value(v any, f *r4field, parent *r4type, def string, siblings obj) {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			w.path = append(w.path, pathSeg{idx: i})
			w.value(e, f, parent, def, siblings)
			w.path = w.path[:len(w.path)-1]
		}
	case obj:
		switch f.typ.kind {
		case kindAnyResource:
			w.resource(x)
		case kindBackbone:
			w.object(x, f.typ, def+"."+f.name)
		default: // a datatype, or a primitive's id and extensions
			_, demoType := demographicDatatypes[f.typ.name]
			_, demoRes := demographicTypes[w.res]
			if demoType && demoRes && !w.demo {
				w.demo = true
				w.object(x, f.typ, f.typ.name)
				w.demo = false
				break
			}
			w.object(x, f.typ, f.typ.name)
		}
	case string:
		w.leaf(x, f, parent, def, siblings)
	}
	// numbers, booleans and null carry no text
}

// leaf decides one string by the decision table.
func (w *codedWalker) leaf(s string, f *r4field, parent *r4type, def string, siblings obj) {
	t := f.typ
	if f.under {
		w.problem(RuleCodedOnly, "_%s holds the id and extensions of a primitive, not a string", f.name)
		return
	}
	if t.kind != kindPrimitive {
		w.problem(RuleCodedOnly, "a string where R4 has a %s is not coded data", typeLabel(t))
		return
	}
	pos := defName(parent, def) + "." + f.name
	if f.name == "id" && parent.kind != kindResource {
		pos = "Element.id"
	}
	if _, doc := documentPositions[pos]; doc {
		w.problem(RuleCodedOnly, "%s is a document, free text whatever its type; gpgate shares coded data only", pos)
		return
	}
	if _, ok := codedTypes[t.name]; ok {
		return
	}
	if w.demo {
		return // demographicDatatypes
	}
	if p, ok := codedPositions[pos]; ok && (p.when == nil || p.when(w, s, siblings)) {
		return
	}
	w.problem(RuleCodedOnly, "%s is %s, free text; gpgate shares coded data only", pos, t.name)
}

func typeLabel(t *r4type) string {
	switch t.kind {
	case kindBackbone:
		return "backbone element"
	case kindAnyResource:
		return "resource"
	}
	return t.name
}
