package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Code systems and identifier systems the AuditEvents use.
const (
	AuditEventTypeSystem = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	DICOMSystem          = "http://dicom.nema.org/resources/ontology/DCM"
	IHEEventTypeSystem   = "urn:ihe:event-type-code"
	restfulInteraction   = "http://hl7.org/fhir/restful-interaction"
	ActReasonSystem      = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	participationSystem  = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	roleClassSystem      = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
	sourceTypeSystem     = "http://terminology.hl7.org/CodeSystem/security-source-type"
	entityTypeSystem     = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRoleSystem     = "http://terminology.hl7.org/CodeSystem/object-role"
	balpEntityTypeSystem = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"

	// ClientIDSystem identifies a registered SMART client by its client id.
	ClientIDSystem = "https://gpgate.dev/Id/client-id"
	// CorrelationIDSystem identifies a caller's own X-Request-ID (gpgate's
	// request id has no system).
	CorrelationIDSystem = "https://gpgate.dev/Id/correlation-id"
	// SDSUserIDSystem identifies a clinician by SDS user id.
	SDSUserIDSystem = "https://fhir.nhs.uk/Id/sds-user-id"
	// SDSJobRoleSystem codes the clinician's national RBAC job role.
	SDSJobRoleSystem = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode"
	// ExtOutcomeDetail carries the coded denial or error (Spine error code);
	// it is the R5 AuditEvent.outcome.detail element as a cross-version
	// extension.
	ExtOutcomeDetail = "http://hl7.org/fhir/5.0/StructureDefinition/extension-AuditEvent.outcome.detail"
)

// entity.detail types (R4 detail.type is a plain string).
const (
	DetailResourceTypes    = "resource-types"
	DetailAreas            = "areas"
	DetailProviderODS      = "provider-ods"
	DetailResultCount      = "result-count"
	DetailBreakGlassReason = "break-glass-reason"
)

type coding struct {
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
	System  string `json:"system"`
}

type codeable struct {
	Coding []coding `json:"coding"`
}

type identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type reference struct {
	Display    string      `json:"display,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Reference  string      `json:"reference,omitempty"`
}

// The element structs list fields in alphabetical JSON-name order: that is
// jsonformat's canonical order, so Render's output is already canonical.
type aeAgent struct {
	Network      *aeNetwork `json:"network,omitempty"`
	Policy       []string   `json:"policy,omitempty"`
	PurposeOfUse []codeable `json:"purposeOfUse,omitempty"`
	Requestor    bool       `json:"requestor"`
	Role         []codeable `json:"role,omitempty"`
	Type         *codeable  `json:"type,omitempty"`
	Who          *reference `json:"who,omitempty"`
}

type aeNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"` // 2: IP address
}

type aeDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

type aeEntity struct {
	Detail []aeDetail `json:"detail,omitempty"`
	Query  string     `json:"query,omitempty"`
	Role   *coding    `json:"role,omitempty"`
	Type   *coding    `json:"type,omitempty"`
	What   *reference `json:"what,omitempty"`
}

type aeSource struct {
	Observer reference `json:"observer"`
	Site     string    `json:"site,omitempty"`
	Type     []coding  `json:"type"`
}

type aeExtension struct {
	URL                  string    `json:"url"`
	ValueCodeableConcept *codeable `json:"valueCodeableConcept,omitempty"`
}

type aePeriod struct {
	End   string `json:"end"`
	Start string `json:"start"`
}

type auditEvent struct {
	Action    string        `json:"action,omitempty"`
	Agent     []aeAgent     `json:"agent"`
	Entity    []aeEntity    `json:"entity,omitempty"`
	Extension []aeExtension `json:"extension,omitempty"`
	ID        string        `json:"id"`
	Meta      struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Outcome        string     `json:"outcome"`
	OutcomeDesc    string     `json:"outcomeDesc,omitempty"`
	Period         *aePeriod  `json:"period,omitempty"`
	PurposeOfEvent []codeable `json:"purposeOfEvent,omitempty"`
	Recorded       string     `json:"recorded"`
	ResourceType   string     `json:"resourceType"`
	Source         aeSource   `json:"source"`
	Subtype        []coding   `json:"subtype,omitempty"`
	Type           coding     `json:"type"`
}

const instantFormat = "2006-01-02T15:04:05.000Z07:00"

func instant(t time.Time) string { return t.UTC().Format(instantFormat) }

// Outcome codes (AuditEvent.outcome).
func outcomeCode(o string) string {
	switch o {
	case fhir.OutcomeGranted:
		return "0"
	case fhir.OutcomeDenied:
		return "4"
	}
	return "8" // error, and anything unknown: never claim success
}

var purposeDisplay = map[string]string{
	"TREAT":   "treatment",
	"ETREAT":  "Emergency Treatment",
	"HOPERAT": "healthcare operations",
	"PATRQT":  "patient requested",
}

// eventType maps the entry to the BALP-style type, subtype and action.
func eventType(e *Entry) (coding, *coding, string) {
	rest := coding{System: AuditEventTypeSystem, Code: "rest", Display: "Restful Operation"}
	sub := func(code string) *coding { return &coding{System: restfulInteraction, Code: code, Display: code} }
	switch {
	case e.Action == "token-issue" || e.Interaction == "token":
		return coding{System: DICOMSystem, Code: "110114", Display: "User Authentication"},
			&coding{System: IHEEventTypeSystem, Code: "ITI-71", Display: "Get Access Token"}, "E"
	case e.Interaction == "read" || e.Interaction == "vread":
		return rest, sub(e.Interaction), "R"
	case e.Interaction == "search-type" || e.Interaction == "search-system" || e.Interaction == "search":
		code := e.Interaction
		if code == "search" {
			code = "search-type"
		}
		return rest, sub(code), "E"
	case e.Interaction == "operation":
		return rest, sub("operation"), "E"
	case e.Interaction == "create" || (e.Interaction == "" && e.Action == "consent-record"):
		return rest, sub("create"), "C"
	case e.Interaction == "update":
		return rest, sub("update"), "U"
	case e.Interaction == "delete":
		return rest, sub("delete"), "D"
	}
	return coding{System: DICOMSystem, Code: "110100", Display: "Application Activity"}, nil, "E"
}

func purpose(e *Entry) []codeable {
	if e.BreakGlass {
		return []codeable{{Coding: []coding{{System: ActReasonSystem, Code: "ETREAT", Display: purposeDisplay["ETREAT"]}}}}
	}
	if e.PurposeOfUse == "" {
		return nil
	}
	sys, code, ok := strings.Cut(e.PurposeOfUse, "|")
	if !ok {
		sys, code = ActReasonSystem, e.PurposeOfUse
	}
	c := coding{System: sys, Code: code}
	if sys == ActReasonSystem {
		c.Display = purposeDisplay[code]
	}
	return []codeable{{Coding: []coding{c}}}
}

// Resource wraps Render's bytes as a fhir.Resource, for Bundle splicing.
func Resource(e Entry) *fhir.Resource {
	return &fhir.Resource{Type: "AuditEvent", ID: e.ID(), JSON: Render(e), Ix: fhir.Index{LastUpdated: e.Recorded}}
}

// Render renders an entry as an R4 AuditEvent (UK Core AuditEvent profile,
// shaped after IHE BALP) in canonical JSON, with id EventID(e.Seq). The
// break-glass reason appears only here, in entity.detail.
func Render(e Entry) []byte {
	typ, sub, action := eventType(&e)
	ae := auditEvent{
		ResourceType: "AuditEvent",
		ID:           EventID(e.Seq),
		Type:         typ,
		Action:       action,
		Recorded:     instant(e.Recorded),
		Outcome:      outcomeCode(e.Outcome),
		OutcomeDesc:  e.Rule,
	}
	ae.Meta.Profile = []string{fhir.ProfileAuditEvent}
	if sub != nil {
		ae.Subtype = []coding{*sub}
	}
	if !e.Time.IsZero() {
		t := instant(e.Time)
		ae.Period = &aePeriod{Start: t, End: t}
	}
	if e.Code != "" {
		ae.Extension = []aeExtension{{URL: ExtOutcomeDetail, ValueCodeableConcept: &codeable{
			Coding: []coding{{System: fhir.SpineErrorSystem, Code: string(e.Code)}}}}}
	}
	pou := purpose(&e)
	ae.PurposeOfEvent = pou

	// agents: the client system, the consumer organisation, the clinician,
	// and gpgate as the server (BALP: client is Source Role, server Destination).
	var policy []string
	if e.TokenID != "" {
		policy = []string{e.TokenID}
	}
	if e.ClientID != "" {
		a := aeAgent{
			Type: &codeable{Coding: []coding{{System: DICOMSystem, Code: "110153", Display: "Source Role ID"}}},
			Who:  &reference{Identifier: &identifier{System: ClientIDSystem, Value: e.ClientID}},
		}
		if e.Practitioner == "" {
			a.Requestor, a.Policy, a.PurposeOfUse = true, policy, pou
		}
		if e.SourceAddress != "" {
			a.Network = &aeNetwork{Address: e.SourceAddress, Type: "2"}
		}
		ae.Agent = append(ae.Agent, a)
	} else if e.SourceAddress != "" {
		// a caller that never identified itself (a refused authentication)
		ae.Agent = append(ae.Agent, aeAgent{
			Type:      &codeable{Coding: []coding{{System: DICOMSystem, Code: "110153", Display: "Source Role ID"}}},
			Who:       &reference{Display: "unidentified caller"},
			Requestor: true,
			Network:   &aeNetwork{Address: e.SourceAddress, Type: "2"},
		})
	}
	if e.ConsumerODS != "" {
		ae.Agent = append(ae.Agent, aeAgent{
			Type: &codeable{Coding: []coding{{System: roleClassSystem, Code: "PROV", Display: "healthcare provider"}}},
			Who:  &reference{Identifier: &identifier{System: fhir.ODSSystem, Value: e.ConsumerODS}},
		})
	}
	if e.Practitioner != "" {
		a := aeAgent{
			Type:         &codeable{Coding: []coding{{System: participationSystem, Code: "IRCP", Display: "information recipient"}}},
			Who:          &reference{Identifier: &identifier{System: SDSUserIDSystem, Value: e.Practitioner}},
			Requestor:    true,
			Policy:       policy,
			PurposeOfUse: pou,
		}
		if e.Role != "" {
			a.Role = []codeable{{Coding: []coding{{System: SDSJobRoleSystem, Code: e.Role}}}}
		}
		ae.Agent = append(ae.Agent, a)
	}
	ae.Agent = append(ae.Agent, aeAgent{
		Type: &codeable{Coding: []coding{{System: DICOMSystem, Code: "110152", Display: "Destination Role ID"}}},
		Who:  &reference{Display: "gpgate"},
	})
	ae.Source = aeSource{
		Observer: reference{Display: "gpgate"},
		Site:     e.Node,
		Type:     []coding{{System: sourceTypeSystem, Code: "4", Display: "Application Server"}},
	}

	// entities: the patient, the query or data, the request id.
	if e.PatientID != "" || e.NHS != "" {
		w := &reference{}
		if e.PatientID != "" {
			w.Reference = "Patient/" + e.PatientID
		}
		if e.NHS != "" {
			w.Identifier = &identifier{System: fhir.NHSNumberSystem, Value: string(e.NHS)}
		}
		ae.Entity = append(ae.Entity, aeEntity{
			What: w,
			Type: &coding{System: entityTypeSystem, Code: "1", Display: "Person"},
			Role: &coding{System: objectRoleSystem, Code: "1", Display: "Patient"},
		})
	}
	var details []aeDetail
	if len(e.Types) > 0 {
		details = append(details, aeDetail{DetailResourceTypes, strings.Join(e.Types, ",")})
	}
	if e.Areas != 0 {
		details = append(details, aeDetail{DetailAreas, e.Areas.String()})
	}
	if e.Practice != "" {
		details = append(details, aeDetail{DetailProviderODS, e.Practice})
	}
	if e.Count > 0 {
		details = append(details, aeDetail{DetailResultCount, strconv.Itoa(e.Count)})
	}
	if e.Reason != "" {
		details = append(details, aeDetail{DetailBreakGlassReason, e.Reason})
	}
	switch {
	case e.Query != "":
		ae.Entity = append(ae.Entity, aeEntity{
			Type:   &coding{System: entityTypeSystem, Code: "2", Display: "System Object"},
			Role:   &coding{System: objectRoleSystem, Code: "24", Display: "Query"},
			Query:  base64.StdEncoding.EncodeToString([]byte(e.Query)),
			Detail: details,
		})
	case len(details) > 0:
		ae.Entity = append(ae.Entity, aeEntity{
			Type:   &coding{System: entityTypeSystem, Code: "2", Display: "System Object"},
			Role:   &coding{System: objectRoleSystem, Code: "4", Display: "Domain Resource"},
			Detail: details,
		})
	}
	if e.RequestID != "" {
		ae.Entity = append(ae.Entity, aeEntity{
			What: &reference{Identifier: &identifier{Value: e.RequestID}},
			Type: &coding{System: balpEntityTypeSystem, Code: "XrequestId", Display: "X-Request-Id"},
		})
	}
	if e.CorrelationID != "" {
		// the caller's own X-Request-ID, beside gpgate's request id
		ae.Entity = append(ae.Entity, aeEntity{
			What: &reference{Identifier: &identifier{System: CorrelationIDSystem, Value: e.CorrelationID}},
			Type: &coding{System: balpEntityTypeSystem, Code: "XrequestId", Display: "X-Request-Id"},
		})
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ae) // plain structs of strings and bools: cannot fail
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
