package consent

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Status is the lifecycle state of a sharing agreement.
type Status string

// Agreement states. Only an active agreement, inside its period, shares data.
// draft -> active <-> suspended; any -> ended (terminal).
const (
	StatusDraft     Status = "draft"
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusEnded     Status = "ended"
)

// Purposes of use (HL7 v3-ActReason,
// http://terminology.hl7.org/CodeSystem/v3-ActReason). TREAT is direct care,
// the default; ETREAT is emergency treatment, the purpose of a break-glass.
const (
	PurposeTreat     = fhir.PurposeTreat
	PurposeEmergency = fhir.PurposeEmergency
	// ActReasonSystem is the code system of purposes of use.
	ActReasonSystem = fhir.ActReasonSystem
)

// knownPurposes are the v3-ActReason purpose-of-use codes an agreement may
// name (the HL7 PurposeOfUse value set, restricted to what a GP record
// facade could plausibly be asked for).
var knownPurposes = map[string]bool{
	"TREAT": true, "ETREAT": true, "CAREMGT": true, "PATRQT": true, "FAMRQT": true,
	"PUBHLTH": true, "HRESCH": true, "HOPERAT": true, "HPAYMT": true, "HSYSADMIN": true,
	"COC": true, "POPHLTH": true, "PWATRNY": true, "SYSDEV": true, "HQUALIMP": true,
}

// Default sharing for patients without a coded consent-to-share entry.
const (
	DefaultImplied = "implied" // implied consent: shared unless the patient dissented
	DefaultDissent = "dissent" // opt-in region: not shared without a coded consent
)

// DefaultRules are the RIG-style default cohorts, evaluated against the
// record of a patient who has no coded consent-to-share entry. Each enabled
// rule names a cohort for whom implied consent applies even where the
// agreement's DefaultSharing is "dissent" (where it is "implied" every
// patient without an entry is shared anyway and the rules change nothing):
//
//   - Under16: the patient is under 16 on the day of the request (Patient.birthDate).
//   - Over75WithCarePlan: 75 or over and the record holds a CarePlan resource
//     or an entry coded from CarePlanCodes.
//   - LongTermConditions: the record holds an active problem-list Condition
//     (a GP "problem" is the source systems' marker of a long-term condition).
//
// A coded dissent always wins over every default.
type DefaultRules struct {
	Under16            bool `json:"under16,omitempty"`
	Over75WithCarePlan bool `json:"over75WithCarePlan,omitempty"`
	LongTermConditions bool `json:"longTermConditions,omitempty"`
}

// Agreement is an Information Sharing Agreement: provider practice x
// consumer organisations x dataset areas x purposes x period, and whether a
// consumer may break the glass.
type Agreement struct {
	ID       string
	Provider string // provider practice ODS code
	// Consumers are the consumer organisations' ODS codes. ConsumerGroup
	// names a stored group of ODS codes instead (or as well); the store
	// expands it into Consumers when it returns agreements for a decision
	// (ForProvider), never in Get/List.
	Consumers     []string
	ConsumerGroup string
	// Areas shared. Demographics are always shared with a consumer that
	// has any active agreement (the clinician must identify the patient).
	Areas          fhir.Areas
	Purposes       []string // v3-ActReason; default [TREAT]
	Start, End     time.Time
	Status         Status
	BreakGlass     bool
	DefaultSharing string // DefaultImplied (default) or DefaultDissent
	DefaultRules   DefaultRules
	Created        time.Time
	Updated        time.Time
}

// shares is what the agreement shares: full lists the areas shared whole
// (with demographics, always shared), summary the areas shared as the
// summary view only (fhir.SummaryAreas when the agreement names
// "summary", minus those it shares whole).
func (a *Agreement) shares() (full, summary fhir.Areas) {
	full = a.Areas&fhir.AllAreas | fhir.AreaDemographics
	if a.Areas&fhir.AreaSummary != 0 {
		summary = fhir.SummaryAreas &^ full
	}
	return full, summary
}

// covers reports whether the agreement names consumer.
func (a *Agreement) covers(consumer string) bool {
	for _, c := range a.Consumers {
		if c == consumer {
			return true
		}
	}
	return false
}

func (a *Agreement) allowsPurpose(p string) bool {
	for _, x := range a.Purposes {
		if x == p {
			return true
		}
	}
	return false
}

// inPeriod reports whether now is inside [Start, End); a zero End is open.
func (a *Agreement) inPeriod(now time.Time) bool {
	if !a.Start.IsZero() && now.Before(a.Start) {
		return false
	}
	return a.End.IsZero() || now.Before(a.End)
}

// ValidODS reports whether s looks like an ODS organisation code.
func ValidODS(s string) bool { return fhir.ValidODS(s) }

func validGroupName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// NormalizePurpose maps a purpose of use as tokens carry it ("TREAT",
// "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT",
// "urn:oid:2.16.840.1.113883.5.8#TREAT") to its bare code; "" is TREAT.
// BTG (HL7 break-the-glass, as consent/smart flags it) maps to ETREAT.
func NormalizePurpose(p string) string {
	if i := strings.LastIndexAny(p, "|#"); i >= 0 {
		p = p[i+1:]
	}
	p = strings.ToUpper(strings.TrimSpace(p))
	switch p {
	case "":
		return PurposeTreat
	case "BTG":
		return PurposeEmergency
	}
	return p
}

// Validate checks an agreement and fills its defaults (purposes [TREAT],
// status draft, default sharing implied). Errors are INVALID_PARAMETER with
// the offending field as expression.
func (a *Agreement) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fhir.Errorf(fhir.CodeInvalidParameter, format, args...).At(field)
	}
	if a.ID != "" && !fhir.ValidID(a.ID) {
		return bad("id", "id must be a FHIR logical id ([A-Za-z0-9.-], at most 64)")
	}
	if !ValidODS(a.Provider) {
		return bad("provider", "provider must be an ODS code")
	}
	if len(a.Consumers) == 0 && a.ConsumerGroup == "" {
		return bad("consumers", "an agreement needs consumers or a consumerGroup")
	}
	if len(a.Consumers) > 1000 {
		return bad("consumers", "at most 1000 consumers; use a consumerGroup")
	}
	seen := map[string]bool{}
	cs := a.Consumers[:0:0]
	for _, c := range a.Consumers {
		if !ValidODS(c) {
			return bad("consumers", "consumers must be ODS codes")
		}
		if !seen[c] {
			seen[c] = true
			cs = append(cs, c)
		}
	}
	a.Consumers = cs
	if a.ConsumerGroup != "" && !validGroupName(a.ConsumerGroup) {
		return bad("consumerGroup", "consumerGroup must be 1..64 of [A-Za-z0-9._-]")
	}
	if a.Areas == 0 || a.Areas&^(fhir.AllAreas|fhir.AreaSummary) != 0 {
		return bad("areas", "areas must name at least one dataset area")
	}
	if len(a.Purposes) == 0 {
		a.Purposes = []string{PurposeTreat}
	}
	ps := a.Purposes[:0:0]
	pseen := map[string]bool{}
	for _, p := range a.Purposes {
		n := NormalizePurpose(p)
		if !knownPurposes[n] {
			return bad("purposes", "purposes must be v3-ActReason purpose-of-use codes (TREAT, ETREAT, ...)")
		}
		if !pseen[n] {
			pseen[n] = true
			ps = append(ps, n)
		}
	}
	a.Purposes = ps
	if !a.End.IsZero() && !a.Start.IsZero() && !a.End.After(a.Start) {
		return bad("end", "end must be after start")
	}
	switch a.Status {
	case "":
		a.Status = StatusDraft
	case StatusDraft, StatusActive, StatusSuspended, StatusEnded:
	default:
		return bad("status", "status must be draft, active, suspended or ended")
	}
	switch a.DefaultSharing {
	case "":
		a.DefaultSharing = DefaultImplied
	case DefaultImplied, DefaultDissent:
	default:
		return bad("defaultSharing", "defaultSharing must be implied or dissent")
	}
	return nil
}

// agreementWire is the JSON form of an agreement (admin API and store).
type agreementWire struct {
	ID             string       `json:"id,omitempty"`
	Provider       string       `json:"provider"`
	Consumers      []string     `json:"consumers,omitempty"`
	ConsumerGroup  string       `json:"consumerGroup,omitempty"`
	Areas          []string     `json:"areas"`
	Purposes       []string     `json:"purposes,omitempty"`
	Start          string       `json:"start,omitempty"`
	End            string       `json:"end,omitempty"`
	Status         Status       `json:"status,omitempty"`
	BreakGlass     bool         `json:"breakGlass"`
	DefaultSharing string       `json:"defaultSharing,omitempty"`
	DefaultRules   DefaultRules `json:"defaultRules"`
	Created        string       `json:"created,omitempty"`
	Updated        string       `json:"updated,omitempty"`
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (a Agreement) wire() agreementWire {
	w := agreementWire{ID: a.ID, Provider: a.Provider, Consumers: a.Consumers, ConsumerGroup: a.ConsumerGroup,
		Purposes: a.Purposes, Start: fmtTime(a.Start), End: fmtTime(a.End), Status: a.Status, BreakGlass: a.BreakGlass,
		DefaultSharing: a.DefaultSharing, DefaultRules: a.DefaultRules, Created: fmtTime(a.Created), Updated: fmtTime(a.Updated)}
	w.Areas = []string{}
	for _, ar := range a.Areas.List() {
		w.Areas = append(w.Areas, ar.String())
	}
	return w
}

// AgreementJSON renders an agreement as the admin API shows it:
//
//	{"id":"...","provider":"Y99001","consumers":["RXX01"],"consumerGroup":"",
//	 "areas":["problems","medication"],"purposes":["TREAT"],
//	 "start":"2026-01-01T00:00:00Z","end":"","status":"active","breakGlass":true,
//	 "defaultSharing":"implied","defaultRules":{"under16":true},
//	 "created":"...","updated":"..."}
func AgreementJSON(a Agreement) []byte {
	b, _ := json.Marshal(a.wire()) // strings, bools and slices: cannot fail
	return b
}

// AgreementListJSON renders agreements as {"agreements":[...]}, ordered by id.
func AgreementListJSON(as []Agreement) []byte {
	ws := make([]agreementWire, len(as))
	for i, a := range as {
		ws[i] = a.wire()
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].ID < ws[j].ID })
	b, _ := json.Marshal(struct {
		Agreements []agreementWire `json:"agreements"`
	}{ws})
	return b
}

const maxAgreementBody = 256 << 10

// ParseAgreement reads an agreement from the admin API's JSON (the shape
// AgreementJSON writes; created/updated are ignored and set by the store)
// and validates it. Malformed JSON or unknown fields are INVALID_RESOURCE;
// a bad value is INVALID_PARAMETER naming the field.
func ParseAgreement(body []byte) (Agreement, error) {
	if len(body) > maxAgreementBody {
		return Agreement{}, fhir.Errorf(fhir.CodeInvalidResource, "agreement body too large")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var w agreementWire
	if err := dec.Decode(&w); err != nil {
		return Agreement{}, fhir.Errorf(fhir.CodeInvalidResource, "agreement is not valid JSON of the agreement shape: %s", jsonErr(err))
	}
	if dec.More() {
		return Agreement{}, fhir.Errorf(fhir.CodeInvalidResource, "trailing data after the agreement")
	}
	a := Agreement{ID: w.ID, Provider: w.Provider, Consumers: w.Consumers, ConsumerGroup: w.ConsumerGroup,
		Purposes: w.Purposes, Status: w.Status, BreakGlass: w.BreakGlass, DefaultSharing: w.DefaultSharing, DefaultRules: w.DefaultRules}
	for _, n := range w.Areas {
		ar, err := fhir.ParseAreas(n)
		if err != nil || strings.Contains(n, ",") {
			return Agreement{}, fhir.Errorf(fhir.CodeInvalidParameter, "areas must be dataset area names").At("areas")
		}
		a.Areas |= ar
	}
	var err error
	if a.Start, err = parseTime(w.Start); err != nil {
		return Agreement{}, fhir.Errorf(fhir.CodeInvalidParameter, "start must be a date or dateTime").At("start")
	}
	if a.End, err = parseEnd(w.End); err != nil {
		return Agreement{}, fhir.Errorf(fhir.CodeInvalidParameter, "end must be a date or dateTime").At("end")
	}
	if err := a.Validate(); err != nil {
		return Agreement{}, err
	}
	return a, nil
}

// parseTime reads a FHIR date or dateTime as its start instant; "" is zero.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := fhir.ParseDate(s)
	if err != nil {
		return time.Time{}, err
	}
	return d.Start.UTC(), nil
}

// parseEnd reads an agreement's end: a date (or year, or year-month)
// includes the whole of it — "end": "2026-12-31" shares through the last
// day of 2026 — so the exclusive end is the start of the next one; a
// dateTime is the instant given. "" is zero (open-ended).
func parseEnd(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	d, err := fhir.ParseDate(s)
	if err != nil {
		return time.Time{}, err
	}
	if strings.Contains(s, "T") {
		return d.Start.UTC(), nil
	}
	return d.End.UTC(), nil
}

// jsonErr describes a decoding error without echoing input values.
func jsonErr(err error) string { return fhir.JSONError(err) }
