package gp2gp

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

//go:embed data/immunisations.tsv
var immunisationTSV []byte

// immunisationCodes recognises immunisation procedures by code: exact
// SNOMED CT concepts and Read v2 / CTV3 codes under immunisation headings.
type immunisationCodes struct {
	exact    map[string]bool     // system|code
	prefixes map[string][]string // system -> Read code prefixes
}

var immunisations = mustImmunisationCodes(immunisationTSV)

func mustImmunisationCodes(b []byte) *immunisationCodes {
	ic, err := parseImmunisationCodes(b)
	if err != nil {
		panic(err)
	}
	return ic
}

// parseImmunisationCodes reads the code table (see data/immunisations.tsv).
func parseImmunisationCodes(b []byte) (*immunisationCodes, error) {
	systems := map[string]string{"snomed": fhir.SNOMED, "readv2": fhir.ReadV2, "ctv3": fhir.CTV3}
	ic := &immunisationCodes{exact: map[string]bool{}, prefixes: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 4 {
			return nil, fmt.Errorf("gp2gp: immunisations.tsv line %d: want system, code, match, display, source", n)
		}
		sys, ok := systems[f[0]]
		if !ok || f[1] == "" {
			return nil, fmt.Errorf("gp2gp: immunisations.tsv line %d: bad system or code", n)
		}
		switch f[2] {
		case "exact":
			ic.exact[sys+"|"+f[1]] = true
		case "prefix":
			ic.prefixes[sys] = append(ic.prefixes[sys], f[1])
		default:
			return nil, fmt.Errorf("gp2gp: immunisations.tsv line %d: match must be exact or prefix", n)
		}
	}
	return ic, sc.Err()
}

// is reports whether any coding is an immunisation procedure.
func (ic *immunisationCodes) is(cs []coding) bool {
	for _, c := range cs {
		if ic.exact[c.System+"|"+c.Code] {
			return true
		}
		for _, p := range ic.prefixes[c.System] {
			if strings.HasPrefix(c.Code, p) {
				return true
			}
		}
	}
	return false
}

const (
	extVaccinationProcedure = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-VaccinationProcedure"
	systemNullFlavor        = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
)

// immunization maps an ObservationStatement whose code is an immunisation
// procedure to a UK Core Immunization: the procedure (original coding and
// translations, plus the generic SNOMED CT immunisation procedure when the
// extract gives no SNOMED CT) in the VaccinationProcedure extension, and
// vaccineCode the null flavour UNK, as UK Core's VaccineCode value set
// provides when no dm+d product is recorded (GP2GP records the product only
// in free text). The date is the statement's effective time, else its
// availability time, else the composition's. It reports whether the
// statement was mapped (false: no date at all, left for the Observation).
func (m *mapper) immunization(s *node, sc scope, cs []coding) bool {
	id := s.id()
	if id == "" {
		return false
	}
	eff := ivlOf(s.child("effectiveTime"))
	when := eff.start()
	if !when.ok() {
		when = eff.High
	}
	if !when.ok() {
		when = tsOf(s.child("availabilityTime"))
	}
	if !when.ok() {
		when = m.recorded(sc.comp)
	}
	if !when.ok() {
		return false
	}
	local := localID(id)
	status := "completed"
	if strings.EqualFold(s.child("statusCode").attr("code"), "NULLIFIED") {
		status = "entered-in-error"
	}
	r := obj{
		"extension": []obj{{"url": extVaccinationProcedure,
			"valueCodeableConcept": concept{Coding: withSNOMED(cs, immunisationProcedure)}}},
		"status":             status,
		"vaccineCode":        concept{Coding: []coding{{System: systemNullFlavor, Code: "UNK", Display: "unknown"}}},
		"patient":            m.subject(),
		"occurrenceDateTime": when.Date,
	}
	if e := m.encounterRef(sc.comp); e != nil {
		r["encounter"] = e
	}
	if rec := m.recorded(sc.comp); rec.ok() {
		r["recorded"] = rec.Date
	}
	if p := m.performer(s, sc.comp); p != nil {
		r["performer"] = []obj{{"actor": p}}
	}
	if !m.emit("Immunization", local, r, "", sc.conf) {
		return true // a duplicate id: the first statement with it was mapped
	}
	m.refs[id] = "Immunization/" + m.fullID(local)
	return true
}
