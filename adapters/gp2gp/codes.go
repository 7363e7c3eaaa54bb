package gp2gp

import (
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Transfer-degraded SNOMED CT concepts: the generic concept of a kind of
// entry, added beside an original coding that carries no SNOMED CT (a
// local EMIS code, a Read code without translation) or standing alone for
// an entry whose own code is missing, so that a consumer that reads SNOMED
// CT understands what kind of entry it is. Source: GP Connect Access Record
// Structured guidance, "degraded" codes table (NHS Digital; GP2GP
// degradation rules), the codes NHS Digital's GP2GP translator also uses.
var (
	degradedRecordEntry    = coding{System: fhir.SNOMED, Code: "196411000000103", Display: "Transfer-degraded record entry"}
	degradedMedication     = coding{System: fhir.SNOMED, Code: "196421000000109", Display: "Transfer-degraded medication entry"}
	degradedReferral       = coding{System: fhir.SNOMED, Code: "196431000000106", Display: "Transfer-degraded referral"}
	degradedPlan           = coding{System: fhir.SNOMED, Code: "196451000000104", Display: "Transfer-degraded plan"}
	degradedDrugAllergy    = coding{System: fhir.SNOMED, Code: "196461000000101", Display: "Transfer-degraded drug allergy"}
	degradedNonDrugAllergy = coding{System: fhir.SNOMED, Code: "196471000000108", Display: "Transfer-degraded non-drug allergy"}
	// immunisationProcedure is the root of the SNOMED CT procedures that
	// produce immunity (127785005, one of the roots NHS Digital's GP2GP
	// translator recognises immunisations under).
	immunisationProcedure = coding{System: fhir.SNOMED, Code: "127785005", Display: "Administration of substance to produce immunity, either active or passive"}
)

// withSNOMED returns cs, plus the generic concept when no coding of cs is
// SNOMED CT (or cs is empty: then the generic concept alone).
func withSNOMED(cs []coding, generic coding) []coding {
	for _, c := range cs {
		if c.System == fhir.SNOMED {
			return cs
		}
	}
	out := make([]coding, 0, len(cs)+1)
	return append(append(out, cs...), generic)
}

// conceptWith is conceptOf(cd) with the generic SNOMED CT concept added
// where the extract gives none; nil when cd has no coding at all.
func conceptWith(cd *node, generic coding) *concept {
	cs := codings(cd)
	if len(cs) == 0 {
		return nil
	}
	return &concept{Coding: withSNOMED(cs, generic)}
}

// The HL7 v3 ObservationInterpretation codes (OID 2.16.840.1.113883.5.83),
// as FHIR R4 has them (http://terminology.hl7.org/CodeSystem/v3-
// ObservationInterpretation, the R4 observation-interpretation value set),
// plus the retired v3 codes, mapped to their R4 successor.
const oidInterpretation = "2.16.840.1.113883.5.83"

// oidPMIPInterpretation is the vocabulary GP2GP extracts carry laboratory
// flags in: the PMIP EDIFACT (NHS003) deviating result indicator (HI above
// high reference limit, LO below low reference limit, OR outside reference
// range, PA potentially abnormal).
const oidPMIPInterpretation = "2.16.840.1.113883.2.1.6.5"

// systemUKCoreInterpretation holds the PMIP codes v3 has no concept for
// (UK Core CodeSystem UKCore-ObservationInterpretationCode: PA).
const systemUKCoreInterpretation = "https://fhir.hl7.org.uk/CodeSystem/ObservationInterpretationCode"

var interpretationDisplay = map[string]string{
	"CAR": "Carrier", "B": "Better", "D": "Significant change down", "U": "Significant change up", "W": "Worse",
	"<": "Off scale low", ">": "Off scale high", "IE": "Insufficient evidence",
	"A": "Abnormal", "AA": "Critical abnormal", "HH": "Critical high", "LL": "Critical low",
	"H": "High", "HU": "Significantly high", "L": "Low", "LU": "Significantly low", "N": "Normal",
	"I": "Intermediate", "NCL": "No CLSI defined breakpoint", "NS": "Non-susceptible", "R": "Resistant",
	"SYN-R": "Synergy - resistant", "S": "Susceptible", "SDD": "Susceptible-dose dependent", "SYN-S": "Synergy - susceptible",
	"EX": "outside threshold", "HX": "above high threshold", "LX": "below low threshold",
	"IND": "Indeterminate", "E": "Equivocal", "NEG": "Negative", "ND": "Not detected", "POS": "Positive", "DET": "Detected",
	"EXP": "Expected", "UNE": "Unexpected", "NR": "Non-reactive", "RR": "Reactive", "WR": "Weakly reactive",
}

// interpretationAlias maps retired v3 codes and the PMIP codes v3 has a
// concept for to R4.
var interpretationAlias = map[string]string{
	"H>": "HU", "L<": "LU", // retired: significantly high / low
	"MS": "I", "VS": "S", // retired: moderately / very susceptible
	"HI": "H", "LO": "L", // PMIP: above high / below low reference limit
	"OR": "A", // PMIP: outside reference range = v3 A (outside the reference range)
}

// interpretation maps an interpretationCode to R4: a v3 or PMIP code (case
// as the vocabulary spells it, or upper-cased) to v3-ObservationInterpretation,
// PMIP "potentially abnormal" to UK Core's code for it. A code of any other
// vocabulary, a null flavour or a code the table does not know gives nil:
// the value and reference range still say what the result is.
func interpretation(ic *node) []coding {
	if ic == nil || ic.attr("nullFlavor") != "" {
		return nil
	}
	code := strings.TrimSpace(ic.attr("code"))
	sys := strings.TrimSpace(ic.attr("codeSystem"))
	if code == "" || (sys != "" && sys != oidInterpretation && sys != oidPMIPInterpretation) {
		return nil
	}
	for _, k := range []string{code, strings.ToUpper(code)} {
		if k == "PA" {
			return []coding{{System: systemUKCoreInterpretation, Code: "PA", Display: "Potentially abnormal"}}
		}
		if a, ok := interpretationAlias[k]; ok {
			k = a
		}
		if d, ok := interpretationDisplay[k]; ok {
			return []coding{{System: systemInterpretation, Code: k, Display: d}}
		}
	}
	return nil
}
