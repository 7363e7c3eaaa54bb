package pds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// ConfidentialitySystem is the code system of Patient.meta.security labels.
const ConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"

// Patient is what PDS says about one NHS number.
type Patient struct {
	// NHS is the number PDS answered for. It differs from the number asked
	// when that number was superseded (merged into this one).
	NHS        fhir.NHSNumber
	Superseded bool
	// Restricted is true for a patient labelled restricted (R) or very
	// restricted (V): PDS withholds where they live and who their practice
	// is, and so does gpgate.
	Restricted bool
	// ODS is the practice the patient is registered with now, or "" when PDS
	// names none: a restricted patient, no registration, or a registration
	// whose period has ended or not yet begun.
	ODS string
	// JSON is the Patient resource as PDS gave it, except that for a
	// restricted patient every location-sensitive element is removed even if
	// the source left it in (address, telecom, contact, generalPractitioner,
	// managingOrganization, and every extension but the death notification
	// status; names too when very restricted).
	JSON []byte
}

type pdsPatient struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Identifier   []struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
	Meta struct {
		Security []fhir.Coding `json:"security"`
	} `json:"meta"`
	GeneralPractitioner []gpRef `json:"generalPractitioner"`
}

type gpRef struct {
	Type       string `json:"type"`
	Reference  string `json:"reference"`
	Identifier *struct {
		System string `json:"system"`
		Value  string `json:"value"`
		Period *struct {
			Start string `json:"start"`
			End   string `json:"end"`
		} `json:"period"`
	} `json:"identifier"`
}

// ParsePatient reads a PDS Patient (FHIR R4 JSON) returned for the NHS
// number asked ("" when not known, as for a recorded file without a number in
// its name), judging the registration's period at now.
func ParsePatient(raw []byte, asked fhir.NHSNumber, now time.Time) (*Patient, error) {
	var p pdsPatient
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("pds: patient: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("pds: patient: trailing data")
	}
	if p.ResourceType != "Patient" {
		return nil, fmt.Errorf("pds: not a Patient resource")
	}
	out := &Patient{}
	// PDS uses the NHS number as the resource id; the identifier says so too.
	if fhir.ValidNHSNumber(p.ID) {
		out.NHS = fhir.NHSNumber(p.ID)
	} else {
		for _, id := range p.Identifier {
			if id.System == fhir.NHSNumberSystem && fhir.ValidNHSNumber(id.Value) {
				out.NHS = fhir.NHSNumber(id.Value)
				break
			}
		}
	}
	if out.NHS == "" {
		return nil, fmt.Errorf("pds: patient carries no valid NHS number")
	}
	if asked == "" {
		asked = out.NHS
	}
	out.Superseded = out.NHS != asked
	for _, s := range p.Meta.Security {
		if (s.System == ConfidentialitySystem || s.System == "") && (s.Code == "R" || s.Code == "V") {
			out.Restricted = true
		}
	}
	veryRestricted := fhir.HasCoding(p.Meta.Security, "", "V")
	if !out.Restricted {
		out.ODS = currentPractice(p.GeneralPractitioner, now)
		out.JSON = raw
		return out, nil
	}
	js, err := withhold(raw, veryRestricted)
	if err != nil {
		return nil, err
	}
	out.JSON = js
	return out, nil
}

// currentPractice returns the ODS code of the registration current at now:
// PDS gives at most one general practice, with the period it "was, is, or
// will be" valid; a period that has ended or has not begun is not current.
func currentPractice(gps []gpRef, now time.Time) string {
	for _, g := range gps {
		if g.Type != "" && g.Type != "Organization" {
			continue
		}
		code := ""
		if g.Identifier != nil {
			if g.Identifier.System != fhir.ODSSystem {
				continue
			}
			code = g.Identifier.Value
			if p := g.Identifier.Period; p != nil && !current(p.Start, p.End, now) {
				continue
			}
		} else if i := strings.LastIndex(g.Reference, "/Organization/"); i >= 0 {
			code = g.Reference[i+len("/Organization/"):]
		}
		if validODS(code) {
			return code
		}
	}
	return ""
}

// current reports whether now lies in the period [start, end], both dates
// inclusive and either open. An unreadable bound makes it not current.
func current(start, end string, now time.Time) bool {
	if start != "" {
		d, err := fhir.ParseDate(start)
		if err != nil || now.Before(d.Start) {
			return false
		}
	}
	if end != "" {
		d, err := fhir.ParseDate(end)
		if err != nil || !now.Before(d.End) {
			return false
		}
	}
	return true
}

// validODS accepts an ODS organisation code (fhir.ValidODS).
func validODS(s string) bool { return fhir.ValidODS(s) }

// withhold removes the location-sensitive elements of a restricted patient.
func withhold(raw []byte, very bool) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("pds: patient: %w", err)
	}
	for _, k := range []string{"address", "telecom", "contact", "generalPractitioner", "managingOrganization", "_address", "_telecom"} {
		delete(m, k)
	}
	if very {
		delete(m, "name")
	}
	if ext, ok := m["extension"]; ok {
		var exts []json.RawMessage
		if err := json.Unmarshal(ext, &exts); err != nil {
			delete(m, "extension")
		} else {
			kept := exts[:0]
			for _, e := range exts {
				var u struct {
					URL string `json:"url"`
				}
				if json.Unmarshal(e, &u) == nil && strings.HasSuffix(u.URL, "Extension-UKCore-DeathNotificationStatus") {
					kept = append(kept, e)
				}
			}
			if len(kept) == 0 {
				delete(m, "extension")
			} else {
				m["extension"], _ = json.Marshal(kept)
			}
		}
	}
	return json.Marshal(m)
}
