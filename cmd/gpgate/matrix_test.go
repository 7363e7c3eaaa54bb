package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gpgate/gpgate/adapters/embedded/demo"
	"github.com/gpgate/gpgate/fhir"
	"github.com/gpgate/gpgate/fhir/rest"
)

// The access-control matrix: every authenticated route of the FHIR API
// (rest.Routes, the one table routes are registered from) against every
// kind of caller, over HTTP against the real server. A route added without
// its row here fails TestAccessMatrixCoversEveryRoute.

// Kinds of caller.
const (
	kNone    = "no token"
	kForged  = "forged token"
	kSystem  = "system token (system/*.rs Consent.cd)"
	kPatient = "patient token, own patient"
	kOther   = "patient token, another patient"
	kAuditor = "auditor (system/AuditEvent.rs)"
	kAdmin   = "admin (system/Agreement.crus Client.crus SigningKey.u)"
)

var callerKinds = []string{kNone, kForged, kSystem, kPatient, kOther, kAuditor, kAdmin}

// probe is one request and the status each kind of caller gets.
type probe struct {
	name   string
	method string
	path   string
	body   string
	ctype  string // Content-Type of body (default application/fhir+json)
	want   map[string]int
}

// matrixRow names a route and its probes.
type matrixRow struct {
	method, route string
	probes        func(m *matrixEnv) []probe
}

type matrixEnv struct {
	patient   string            // the patient of kPatient
	nhs       string            // its NHS number
	ids       map[string]string // a resource id per type in its record
	consentID string            // a consent recorded by the system token
}

// statuses builds a want map: every kind gets def unless overridden.
func statuses(def int, kv ...any) map[string]int {
	m := map[string]int{kNone: 401, kForged: 401}
	for _, k := range callerKinds[2:] {
		m[k] = def
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(int)
	}
	return m
}

var matrix = []matrixRow{
	{"GET", "/admin/agreements", func(*matrixEnv) []probe {
		return []probe{{name: "list", path: "/admin/agreements", want: statuses(403, kAdmin, 200)}}
	}},
	{"POST", "/admin/agreements", func(*matrixEnv) []probe {
		return []probe{{name: "add (invalid)", path: "/admin/agreements", body: `{}`, want: statuses(403, kAdmin, 422)}}
	}},
	{"GET", "/admin/agreements/:id", func(*matrixEnv) []probe {
		return []probe{{name: "get", path: "/admin/agreements/demo-y99001-rxx01", want: statuses(403, kAdmin, 200)}}
	}},
	{"POST", "/admin/agreements/:id/:action", func(*matrixEnv) []probe {
		return []probe{{name: "bad action", path: "/admin/agreements/demo-y99001-rxx01/explode", body: `{}`, want: statuses(403, kAdmin, 422)}}
	}},
	{"GET", "/admin/clients", func(*matrixEnv) []probe {
		return []probe{{name: "clients list", path: "/admin/clients", want: statuses(403, kAdmin, 200)}}
	}},
	{"POST", "/admin/clients", func(*matrixEnv) []probe {
		return []probe{{name: "client add (invalid)", path: "/admin/clients", body: `{}`, want: statuses(403, kAdmin, 422)}}
	}},
	{"GET", "/admin/clients/:id", func(*matrixEnv) []probe {
		return []probe{{name: "client get", path: "/admin/clients/demo-ehr", want: statuses(403, kAdmin, 200)}}
	}},
	{"POST", "/admin/clients/:id/:action", func(*matrixEnv) []probe {
		return []probe{{name: "disable unknown client", path: "/admin/clients/no-such-client/disable", body: `{}`, want: statuses(403, kAdmin, 404)}}
	}},
	{"POST", "/admin/signing-keys/rotate", func(*matrixEnv) []probe {
		return []probe{{name: "rotate (bad alg)", path: "/admin/signing-keys/rotate", body: `{"alg":"HS256"}`, want: statuses(403, kAdmin, 422)}}
	}},
	{"GET", "/admin/audit/verify", func(*matrixEnv) []probe {
		return []probe{{name: "audit verify", path: "/admin/audit/verify", want: statuses(403, kAuditor, 200)}}
	}},
	{"GET", "/admin/audit/export", func(*matrixEnv) []probe {
		return []probe{{name: "audit export (none since)", path: "/admin/audit/export?since=2999-01-01", want: statuses(403, kAuditor, 200)}}
	}},
	{"DELETE", "/admin/consents/:id", func(*matrixEnv) []probe {
		return []probe{{name: "admin revoke unknown", path: "/admin/consents/no-such-consent", want: statuses(403, kAdmin, 404)}}
	}},
	{"POST", "/Consent", func(m *matrixEnv) []probe {
		body := `{"resourceType":"Consent","patient":{"reference":"Patient/` + m.patient + `"},"performer":[{"identifier":{"system":"https://fhir.nhs.uk/Id/sds-user-id","value":"` + demoClinician + `"}}]}`
		return []probe{{name: "record", path: "/Consent", body: body, want: statuses(403, kSystem, 201)}}
	}},
	{"GET", "/Consent/:id", func(m *matrixEnv) []probe {
		return []probe{{name: "read back", path: "/Consent/" + m.consentID, want: statuses(403, kSystem, 200)}}
	}},
	{"DELETE", "/Consent/:id", func(m *matrixEnv) []probe {
		// Revoked by the system token last of all (probes run in kind order).
		return []probe{{name: "revoke unknown", path: "/Consent/no-such-consent", want: statuses(403, kSystem, 404)}}
	}},
	{"GET", "/AuditEvent", func(*matrixEnv) []probe {
		return []probe{{name: "search", path: "/AuditEvent?_count=1", want: statuses(403, kAuditor, 200)}}
	}},
	{"GET", "/AuditEvent/:id", func(*matrixEnv) []probe {
		return []probe{{name: "read", path: "/AuditEvent/audit-000000000001", want: statuses(403, kAuditor, 200)}}
	}},
	{"POST", "/Patient/$getstructuredrecord", func(m *matrixEnv) []probe {
		body := `{"resourceType":"Parameters","parameter":[{"name":"patientNHSNumber","valueIdentifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"` + m.nhs + `"}},{"name":"includeProblems"}]}`
		return []probe{{name: "problems", path: "/Patient/$getstructuredrecord", body: body, want: statuses(403, kPatient, 200)}}
	}},
	{"GET", "/Patient/:id/$everything", func(m *matrixEnv) []probe {
		return []probe{{name: "everything", path: "/Patient/" + m.patient + "/$everything?_count=5", want: statuses(403, kPatient, 200)}}
	}},
	{"POST", "/Patient/:id/$everything", func(m *matrixEnv) []probe {
		return []probe{{name: "everything by POST", path: "/Patient/" + m.patient + "/$everything",
			body: `{"resourceType":"Parameters","parameter":[{"name":"_count","valueInteger":5}]}`, want: statuses(403, kPatient, 200)}}
	}},
	{"GET", "/Patient/:id/:type", func(m *matrixEnv) []probe {
		return []probe{{name: "compartment search", path: "/Patient/" + m.patient + "/Condition?_count=5", want: statuses(403, kPatient, 200)}}
	}},
	{"POST", "/Patient/:id/:type/_search", func(m *matrixEnv) []probe {
		return []probe{{name: "compartment search by POST", path: "/Patient/" + m.patient + "/Observation/_search", body: "_count=5", ctype: formCT, want: statuses(403, kPatient, 200)}}
	}},
	{"POST", "/:type/_search", func(m *matrixEnv) []probe {
		return []probe{
			{name: "Condition search by POST", path: "/Condition/_search", body: "patient=" + m.patient + "&_count=5", ctype: formCT, want: statuses(403, kPatient, 200)},
			{name: "Patient search by POST", path: "/Patient/_search", body: "identifier=https://fhir.nhs.uk/Id/nhs-number|" + m.nhs, ctype: formCT, want: statuses(403, kSystem, 200, kPatient, 200)},
		}
	}},
	{"GET", "/:type", func(m *matrixEnv) []probe {
		ps := []probe{{name: "Patient by NHS number", path: "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|" + m.nhs, want: statuses(403, kSystem, 200, kPatient, 200)}}
		for _, typ := range fhir.ReadableTypes {
			if _, ok := fhir.SearchParams[typ]; !ok || typ == "Patient" {
				continue
			}
			ps = append(ps, probe{name: typ + " search", path: "/" + typ + "?patient=" + m.patient, want: statuses(403, kPatient, 200)})
		}
		return ps
	}},
	{"GET", "/:type/:id", func(m *matrixEnv) []probe {
		var ps []probe
		for _, typ := range fhir.ReadableTypes {
			id, ok := m.ids[typ]
			if !ok {
				continue
			}
			want := statuses(403, kPatient, 200)
			if fhir.AreasOfType(typ) == fhir.AreaDemographics {
				want[kSystem] = 200 // demographics (patient, practice, GP): how a clinician finds the patient
			}
			ps = append(ps, probe{name: typ + " read", path: "/" + typ + "/" + id, want: want})
		}
		return ps
	}},
}

func TestAccessMatrixCoversEveryRoute(t *testing.T) {
	rows := map[string]bool{}
	for _, r := range matrix {
		key := r.method + " " + r.route
		if rows[key] {
			t.Errorf("two matrix rows for %s", key)
		}
		rows[key] = true
	}
	for _, r := range rest.Routes {
		key := r.Method + " " + r.Path
		if !rows[key] {
			t.Errorf("route %s has no row in the access-control matrix", key)
		}
		delete(rows, key)
	}
	for key := range rows {
		t.Errorf("matrix row %s names no route", key)
	}
}

func TestAccessMatrix(t *testing.T) {
	s := startServer(t)
	p := s.notable(t, demo.NotableLargest)
	other := s.notable(t, demo.NotableSmall)
	m := &matrixEnv{patient: p.PatientID, nhs: p.NHS, ids: map[string]string{}}
	// One id of each type in the patient's record, and a consent recorded
	// by the system token.
	next := "/Patient/" + p.PatientID + "/$everything?_count=1000"
	for next != "" {
		b := decodeBundle(t, s.get(t, next))
		for _, e := range b.Entry {
			var h resourceHead
			_ = json.Unmarshal(e.Resource, &h)
			if _, ok := m.ids[h.ResourceType]; !ok && h.ResourceType != "OperationOutcome" {
				m.ids[h.ResourceType] = h.ID
			}
		}
		next = b.link("next")
	}
	m.consentID = s.recordConsent(t, p.PatientID)

	bearer := map[string]string{
		kNone:    "",
		kForged:  "Bearer eyJhbGciOiJFUzM4NCIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJkZW1vLWVociJ9.c2lnbmF0dXJl",
		kSystem:  "Bearer " + s.tokenFor(t, demoClientID, demoKeyFile, "system/*.rs system/Consent.cd"),
		kPatient: "Bearer " + s.patientToken(t, p.PatientID),
		kOther:   "Bearer " + s.patientToken(t, other.PatientID),
		kAuditor: "Bearer " + s.tokenFor(t, "demo-auditor", "demo-auditor.jwk", "system/AuditEvent.rs"),
		kAdmin:   "Bearer " + s.tokenFor(t, "demo-admin", "demo-admin.jwk", demoAdminScopes),
	}
	for _, row := range matrix {
		for _, pr := range row.probes(m) {
			for _, kind := range callerKinds {
				want, ok := pr.want[kind]
				if !ok {
					t.Fatalf("%s %s: no expectation for %s", row.method, pr.name, kind)
				}
				t.Run(row.method+" "+pr.name+"/"+kind, func(t *testing.T) {
					var body []byte
					if pr.body != "" {
						body = []byte(pr.body)
					}
					// Authorization "" removes the header: s.do would add a token.
					hdr := []string{"Authorization", bearer[kind]}
					if pr.ctype != "" {
						hdr = append(hdr, "Content-Type", pr.ctype)
					}
					r := s.do(t, row.method, pr.path, body, hdr...)
					if r.status != want {
						t.Fatalf("status %d, want %d: %s", r.status, want, truncateBody(r.body))
					}
					if want == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Error("a 401 without a Bearer challenge")
					}
					if want >= 400 && !strings.Contains(string(r.body), `"OperationOutcome"`) && r.status != http.StatusNotModified {
						t.Errorf("refusal is not an OperationOutcome: %s", truncateBody(r.body))
					}
				})
			}
		}
	}
}

const formCT = "application/x-www-form-urlencoded"
