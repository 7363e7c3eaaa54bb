package gpconnect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// InteractionID is the Spine interaction of the structured record operation.
const InteractionID = "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"

// Sections is a set of the structured record's include parameters.
type Sections uint16

// The include parameters of $gpc.getstructuredrecord (Access Record
// Structured 1.5 / 1.6).
const (
	SectionAllergies Sections = 1 << iota
	SectionMedication
	SectionConsultations
	SectionProblems
	SectionImmunisations
	SectionUncategorised
	SectionInvestigations
	SectionReferrals
	SectionDiaryEntries
)

// sectionParams names each section's parameter, in request order.
var sectionParams = []struct {
	s    Sections
	name string
}{
	{SectionAllergies, "includeAllergies"},
	{SectionMedication, "includeMedication"},
	{SectionConsultations, "includeConsultations"},
	{SectionProblems, "includeProblems"},
	{SectionImmunisations, "includeImmunisations"},
	{SectionUncategorised, "includeUncategorisedData"},
	{SectionInvestigations, "includeInvestigations"},
	{SectionReferrals, "includeReferrals"},
	{SectionDiaryEntries, "includeDiaryEntries"},
}

// Name is the parameter name of a single section.
func (s Sections) Name() string {
	for _, p := range sectionParams {
		if p.s == s {
			return p.name
		}
	}
	return ""
}

// SectionsFor maps gpgate's dataset areas to the sections that hold them.
// Investigations also asks for uncategorised data (an uncategorised
// Observation belongs to gpgate's investigations area) and examination
// for it alone (blood pressure is uncategorised data); events are
// consultations and referrals (and diary entries when the provider is
// asked for them). Diagnoses, procedures and risks have no GP Connect
// section. A request needs at least one section, so demographics alone
// asks for allergies (the smallest section) and keeps only the Patient.
func SectionsFor(areas fhir.Areas, diary bool) Sections {
	s := sectionsOf(areas, diary)
	if s == 0 {
		s = SectionAllergies
	}
	return s
}

// sectionsOf is SectionsFor without the fallback: no section for areas
// GP Connect has none for.
func sectionsOf(areas fhir.Areas, diary bool) Sections {
	var s Sections
	if areas.Any(fhir.AreaAllergies) {
		s |= SectionAllergies
	}
	if areas.Any(fhir.AreaMedication) {
		s |= SectionMedication
	}
	if areas.Any(fhir.AreaProblems) {
		s |= SectionProblems
	}
	if areas.Any(fhir.AreaInvestigations) {
		s |= SectionInvestigations | SectionUncategorised
	}
	if areas.Any(fhir.AreaExamination) {
		s |= SectionUncategorised
	}
	if areas.Any(fhir.AreaImmunisations) {
		s |= SectionImmunisations
	}
	if areas.Any(fhir.AreaEvents) {
		s |= SectionConsultations | SectionReferrals
		if diary {
			s |= SectionDiaryEntries
		}
	}
	return s
}

type param struct {
	Name            string      `json:"name"`
	ValueIdentifier *identifier `json:"valueIdentifier,omitempty"`
	ValueBoolean    *bool       `json:"valueBoolean,omitempty"`
	Part            []param     `json:"part,omitempty"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// BuildParameters builds the request body: the patient's NHS number and
// one include parameter per section, with resolved allergies and
// prescription issues included (gpgate shares the whole record the areas
// cover and filters itself).
func BuildParameters(nhs fhir.NHSNumber, s Sections) []byte {
	yes := true
	ps := []param{{Name: "patientNHSNumber", ValueIdentifier: &identifier{System: fhir.NHSNumberSystem, Value: string(nhs)}}}
	for _, sp := range sectionParams {
		if s&sp.s == 0 {
			continue
		}
		p := param{Name: sp.name}
		switch sp.s {
		case SectionAllergies:
			p.Part = []param{{Name: "includeResolvedAllergies", ValueBoolean: &yes}}
		case SectionMedication:
			p.Part = []param{{Name: "includePrescriptionIssues", ValueBoolean: &yes}}
		}
		ps = append(ps, p)
	}
	b, _ := json.Marshal(struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{"Parameters", ps})
	return b
}

// Request is a parsed $gpc.getstructuredrecord request (what a provider
// reads; the emulator uses it).
type Request struct {
	NHS                string
	Sections           Sections
	ResolvedAllergies  bool
	PrescriptionIssues bool
	Unknown            []string // parameters not recognised
}

// ParseParameters reads a request body. It fails with the coded error a
// GP Connect provider answers: INVALID_RESOURCE for a body that is not a
// Parameters resource, INVALID_PARAMETER for a missing NHS number or a
// missing mandatory part, INVALID_NHS_NUMBER for a number failing
// Modulus 11, INVALID_IDENTIFIER_SYSTEM for another identifier system.
func ParseParameters(body []byte) (*Request, error) {
	var in struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name            string      `json:"name"`
			ValueIdentifier *identifier `json:"valueIdentifier"`
			Part            []struct {
				Name         string `json:"name"`
				ValueBoolean *bool  `json:"valueBoolean"`
			} `json:"part"`
		} `json:"parameter"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&in); err != nil || in.ResourceType != "Parameters" {
		return nil, fhir.Errorf(fhir.CodeInvalidResource, "the request body is not a Parameters resource")
	}
	req := &Request{PrescriptionIssues: true}
	nhsSeen := false
	for _, p := range in.Parameter {
		if p.Name == "patientNHSNumber" {
			if nhsSeen || p.ValueIdentifier == nil {
				return nil, fhir.Errorf(fhir.CodeInvalidParameter, "patientNHSNumber must be given once, as an Identifier")
			}
			nhsSeen = true
			if p.ValueIdentifier.System != fhir.NHSNumberSystem {
				return nil, fhir.Errorf(fhir.CodeInvalidIdentifier, "patientNHSNumber must use the NHS number system")
			}
			n, err := fhir.ParseNHSNumber(p.ValueIdentifier.Value)
			if err != nil {
				return nil, err
			}
			req.NHS = string(n)
			continue
		}
		var s Sections
		for _, sp := range sectionParams {
			if sp.name == p.Name {
				s = sp.s
			}
		}
		if s == 0 {
			req.Unknown = append(req.Unknown, p.Name)
			continue
		}
		req.Sections |= s
		switch s {
		case SectionAllergies:
			found := false
			for _, pt := range p.Part {
				if pt.Name == "includeResolvedAllergies" && pt.ValueBoolean != nil {
					found, req.ResolvedAllergies = true, *pt.ValueBoolean
				}
			}
			if !found {
				return nil, fhir.Errorf(fhir.CodeInvalidParameter, "includeAllergies needs its includeResolvedAllergies part")
			}
		case SectionMedication:
			for _, pt := range p.Part {
				if pt.Name == "includePrescriptionIssues" && pt.ValueBoolean != nil {
					req.PrescriptionIssues = *pt.ValueBoolean
				}
			}
		}
	}
	if !nhsSeen {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "patientNHSNumber is required")
	}
	if req.Sections == 0 {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "no recognised parameters: %s", strings.Join(req.Unknown, ","))
	}
	return req, nil
}

// String lists the section parameter names.
func (s Sections) String() string {
	var out []string
	for _, sp := range sectionParams {
		if s&sp.s != 0 {
			out = append(out, sp.name)
		}
	}
	return fmt.Sprint(out)
}
