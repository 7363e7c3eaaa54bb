package smart

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Scope is one parsed SMART clinical scope, v1 (patient/Observation.read) or
// v2 (patient/Observation.rs?category=...). Only clinical scopes exist here:
// gpgate is a backend-services server, so openid, launch and the like are
// not scopes it knows.
type Scope struct {
	Context string   // "patient" | "user" | "system"
	Type    string   // resource type, or "*"
	Perms   Perm     // what the scope permits; v1 .read = r|s, .write = c|u|d
	Filters []Filter // v2 granular constraints, all of which must hold
	V1      bool     // written in v1 syntax (rendered back that way)
}

// Filter is one granular constraint of a v2 scope: Param=v1,v2 means the
// resource has a coding matching one of the values. Param is "category" or
// "code". A value with an empty System matches that code in any system.
type Filter struct {
	Param  string
	Values []fhir.Coding
}

// Perm is a set of SMART v2 permissions.
type Perm uint8

// The v2 permissions, in their canonical order c r u d s.
const (
	PermCreate Perm = 1 << iota
	PermRead
	PermUpdate
	PermDelete
	PermSearch
)

const permLetters = "cruds"

// v1 equivalents.
const (
	permV1Read  = PermRead | PermSearch
	permV1Write = PermCreate | PermUpdate | PermDelete
	permAll     = permV1Read | permV1Write
)

// Scope contexts.
const (
	ContextPatient = "patient"
	ContextUser    = "user"
	ContextSystem  = "system"
)

const (
	maxScopeLen = 512
	maxScopes   = 64
)

// ParseScope parses one SMART v1 or v2 clinical scope. Granular v2 scopes may
// constrain category and code only (each a comma-separated list of token
// values system|code or code); any other search parameter is rejected, so a
// constraint gpgate could not enforce is never issued.
func ParseScope(s string) (Scope, error) {
	if s == "" || len(s) > maxScopeLen {
		return Scope{}, fmt.Errorf("scope must be 1..%d characters", maxScopeLen)
	}
	ctxName, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Scope{}, fmt.Errorf("scope %q is not context/Type.permissions", trunc(s))
	}
	var sc Scope
	switch ctxName {
	case ContextPatient, ContextUser, ContextSystem:
		sc.Context = ctxName
	default:
		return Scope{}, fmt.Errorf("scope %q has an unknown context (want patient, user or system)", trunc(s))
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return Scope{}, fmt.Errorf("scope %q has no permissions", trunc(s))
	}
	if !validType(typ) {
		return Scope{}, fmt.Errorf("scope %q has an invalid resource type", trunc(s))
	}
	sc.Type = typ
	switch perms {
	case "read":
		sc.Perms, sc.V1 = permV1Read, true
	case "write":
		sc.Perms, sc.V1 = permV1Write, true
	case "*":
		sc.Perms, sc.V1 = permAll, true
	default:
		p, err := parsePerms(perms)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %v", trunc(s), err)
		}
		sc.Perms = p
	}
	if hasQuery {
		if sc.V1 {
			return Scope{}, fmt.Errorf("scope %q: a v1 scope cannot be granular", trunc(s))
		}
		fs, err := parseFilters(query)
		if err != nil {
			return Scope{}, fmt.Errorf("scope %q: %v", trunc(s), err)
		}
		sc.Filters = fs
	}
	return sc, nil
}

// ParseScopes parses a space-separated scope list (runs of spaces allowed).
// Duplicates are kept once, in first-seen order.
func ParseScopes(s string) ([]Scope, error) {
	fields := strings.Fields(s)
	if len(fields) > maxScopes {
		return nil, fmt.Errorf("at most %d scopes", maxScopes)
	}
	out := make([]Scope, 0, len(fields))
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		sc, err := ParseScope(f)
		if err != nil {
			return nil, err
		}
		k := sc.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, sc)
	}
	return out, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func validType(t string) bool {
	if t == "*" {
		return true
	}
	if t == "" || len(t) > 64 || t[0] < 'A' || t[0] > 'Z' {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func parsePerms(p string) (Perm, error) {
	if p == "" {
		return 0, fmt.Errorf("empty permissions")
	}
	var out Perm
	last := -1
	for i := 0; i < len(p); i++ {
		j := strings.IndexByte(permLetters, p[i])
		if j < 0 {
			return 0, fmt.Errorf("permissions must be an ordered subset of %q or read, write, *", permLetters)
		}
		if j <= last {
			return 0, fmt.Errorf("permissions must be in the order c r u d s, each once")
		}
		last = j
		out |= 1 << j
	}
	return out, nil
}

func parseFilters(q string) ([]Filter, error) {
	if q == "" {
		return nil, fmt.Errorf("empty granular query")
	}
	var fs []Filter
	for _, part := range strings.Split(q, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("granular query parameter without a value")
		}
		k, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("bad escape in granular query")
		}
		if k != "category" && k != "code" {
			return nil, fmt.Errorf("granular parameter %q not supported (category, code)", trunc(k))
		}
		f := Filter{Param: k}
		for _, tv := range strings.Split(v, ",") {
			sys, code, bar := strings.Cut(tv, "|")
			if !bar {
				sys, code = "", tv
			}
			var err1, err2 error
			sys, err1 = url.QueryUnescape(sys)
			code, err2 = url.QueryUnescape(code)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad escape in granular query")
			}
			if code == "" || (bar && sys == "") || hasControl(sys) || hasControl(code) {
				return nil, fmt.Errorf("granular value must be system|code or code")
			}
			f.Values = append(f.Values, fhir.Coding{System: sys, Code: code})
		}
		fs = append(fs, f)
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Param < fs[j].Param })
	return fs, nil
}

// String renders the scope canonically: v1 scopes as .read/.write/.*,
// v2 with permissions in c r u d s order and filters sorted by parameter.
func (s Scope) String() string {
	var b strings.Builder
	b.WriteString(s.Context)
	b.WriteByte('/')
	b.WriteString(s.Type)
	b.WriteByte('.')
	if s.V1 {
		switch s.Perms {
		case permV1Read:
			b.WriteString("read")
		case permV1Write:
			b.WriteString("write")
		default:
			b.WriteString("*")
		}
		return b.String()
	}
	for i := 0; i < len(permLetters); i++ {
		if s.Perms&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	for i, f := range s.Filters {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(f.Param)
		b.WriteByte('=')
		for j, v := range f.Values {
			if j > 0 {
				b.WriteByte(',')
			}
			if v.System != "" {
				b.WriteString(escapeValue(v.System))
				b.WriteByte('|')
			}
			b.WriteString(escapeValue(v.Code))
		}
	}
	return b.String()
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func escapeValue(v string) string {
	if !strings.ContainsAny(v, "%&,|=?+ #") {
		return v
	}
	return url.QueryEscape(v)
}

// FormatScopes joins scopes into the space-separated form of a token's scope.
func FormatScopes(ss []Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

// interactionPerm maps a FHIR interaction to the permission it needs.
func interactionPerm(interaction string) Perm {
	switch interaction {
	case "read", "vread", "history", "history-instance":
		return PermRead
	case "search", "search-type", "search-system", "history-type":
		return PermSearch
	case "create":
		return PermCreate
	case "update", "patch":
		return PermUpdate
	case "delete":
		return PermDelete
	}
	return 0
}

// Allows reports whether the scope, ignoring its patient/user/system context,
// allows interaction ("read", "search", "create", "update", "delete"; also
// vread, search-type, patch) on a resource of resourceType whose category and
// code codings are given. A granular scope allows only a resource that
// matches every one of its filters.
func (s Scope) Allows(resourceType, interaction string, categories, codes []fhir.Coding) bool {
	if !s.allowsType(resourceType, interaction) {
		return false
	}
	for _, f := range s.Filters {
		have := categories
		if f.Param == "code" {
			have = codes
		}
		if !f.matches(have) {
			return false
		}
	}
	return true
}

func (s Scope) allowsType(resourceType, interaction string) bool {
	p := interactionPerm(interaction)
	return p != 0 && s.Perms&p == p && reaches(s.Type, resourceType)
}

func (f Filter) matches(have []fhir.Coding) bool {
	for _, w := range f.Values {
		for _, h := range have {
			if h.Code == w.Code && (w.System == "" || w.System == h.System) {
				return true
			}
		}
	}
	return false
}

// Context is what a request asks, for Permits.
type Context struct {
	Type        string // resource type
	Interaction string // "read" | "search" (and the others Allows knows)
	// PatientContext is the token's patient (fhir.Principal.PatientID), ""
	// for system tokens. RequestPatient is the patient the request or the
	// resource belongs to; patient/ scopes permit only when both are set and
	// equal.
	PatientContext string
	RequestPatient string
	// Categories and Codes are the codings of the resource being returned;
	// granular scopes match against them.
	Categories []fhir.Coding
	Codes      []fhir.Coding
}

func contextOK(s Scope, c Context) bool {
	if s.Context == ContextPatient {
		return c.PatientContext != "" && c.RequestPatient == c.PatientContext
	}
	return true // system/ and user/: the sharing rules decide (consent)
}

// Permits reports whether any scope permits the request c, including the
// granular filters against c.Categories and c.Codes. patient/ scopes are
// limited to the token's patient context; system/ and user/ scopes are not
// limited here (sharing agreements and consent decide later).
func Permits(scopes []Scope, c Context) bool {
	for _, s := range scopes {
		if contextOK(s, c) && s.Allows(c.Type, c.Interaction, c.Categories, c.Codes) {
			return true
		}
	}
	return false
}

// PermitsType is the pre-check before the resources are known: ok reports
// whether some scope permits the type and interaction for this patient when
// granular filters are ignored; filtered reports that every such scope is
// granular, so each resource must then be checked with Permits (with its
// codings) before it is returned.
func PermitsType(scopes []Scope, c Context) (ok, filtered bool) {
	for _, s := range scopes {
		if !contextOK(s, c) || !s.allowsType(c.Type, c.Interaction) {
			continue
		}
		if len(s.Filters) == 0 {
			return true, false
		}
		ok = true
	}
	return ok, ok
}

// AdministrativeTypes are the resources of gpgate's own administration:
// the audit log, the sharing-agreement register, the client registry and
// gpgate's own signing keys. A wildcard scope
// ("system/*.rs") never reaches them, in issuance or in verification: a
// client is granted one only when its registration names the type
// literally, and a request for one is checked against literal scopes only.
var AdministrativeTypes = map[string]bool{"AuditEvent": true, "Agreement": true, "Client": true, "SigningKey": true}

// reaches reports whether a scope of type st reaches resource type rt.
func reaches(st, rt string) bool {
	if st == rt {
		return rt != ""
	}
	return st == "*" && rt != "" && !AdministrativeTypes[rt]
}

// Covers reports whether s covers r: same context, same type (or s is "*"
// and r is not an administrative type), r's permissions a subset of s's,
// and r at least as narrow as every filter of s. An ungranular scope covers
// a granular one; never the reverse.
func (s Scope) Covers(r Scope) bool {
	if s.Context != r.Context || r.Perms&^s.Perms != 0 || r.Perms == 0 {
		return false
	}
	if s.Type != r.Type && !(s.Type == "*" && r.Type != "*" && !AdministrativeTypes[r.Type]) {
		return false
	}
	for _, sf := range s.Filters {
		covered := false
		for _, rf := range r.Filters {
			if rf.Param == sf.Param && valuesCovered(sf.Values, rf.Values) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// valuesCovered: every requested value is matched by an allowed value (an
// allowed value without a system covers that code in any system).
func valuesCovered(allowed, requested []fhir.Coding) bool {
	for _, rv := range requested {
		ok := false
		for _, av := range allowed {
			if av.Code == rv.Code && (av.System == "" || av.System == rv.System) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Narrow returns the requested scopes when every one is covered by an
// allowed scope; otherwise an invalid_scope *OAuthError naming the first one
// that is not. It never widens: what is granted is exactly what was asked.
func Narrow(requested, allowed []Scope) ([]Scope, error) {
	out := make([]Scope, 0, len(requested))
	for _, r := range requested {
		ok := false
		for _, a := range allowed {
			if a.Covers(r) {
				ok = true
				break
			}
		}
		if !ok {
			return nil, &OAuthError{Status: 400, Code: ErrInvalidScope,
				Description: "scope " + trunc(r.String()) + " is not allowed for this client"}
		}
		out = append(out, r)
	}
	return out, nil
}
