package demo

import (
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Immunisations: the UK routine childhood schedule by age, seasonal flu for
// eligible adults, COVID-19 doses and shingles, as UK Core Immunization
// resources. vaccineCode is the dm+d product (an AMP, also a SNOMED CT
// concept of the UK drug extension) where one was in use at the time, the
// null flavour UNK otherwise (as UK Core's VaccineCode value set allows);
// the procedure is a SNOMED CT vaccination procedure in the UK Core
// VaccinationProcedure extension.
//
// Sources (public material, read 2026; codes are data):
//
//	[SCHED]  UKHSA, "Complete routine immunisation schedule" (from 1
//	         September 2023), as reproduced by NHS pages (e.g. Hampshire and
//	         Isle of Wight "immunisations", Oxford Vaccine Knowledge Project
//	         "The UK Immunisation Schedule"): 8, 12 and 16 weeks, one year,
//	         3 years 4 months, 12-13 and 14 years; flu from 65 and for risk
//	         groups; shingles at 70.
//	[IMMS]   NHSDigital/immunisation-fhir-api, test vaccine and procedure
//	         code maps (dm+d AMPs and SNOMED CT procedures).
//	[GMSDE]  UoM-Data-Science-Platforms/gm-sde clinical code sets (flu,
//	         covid, pneumococcal, mmr, hpv vaccination: SNOMED CT lists).
//	[UKCORE] UK Core ValueSets UKCore-VaccineCode (dm+d, or NullFlavor UNK
//	         when no product is recorded) and UKCore-VaccinationProcedure.
type vaccine struct {
	procedure code   // SNOMED CT procedure (sct/sctDisplay; no Read code)
	products  []prod // dm+d AMPs in use, newest era last
}

// prod is a dm+d product and the date from which the demo uses it.
type prod struct {
	dmd, name string
	from      time.Time
}

func since(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

var (
	// Infant primary course and boosters [SCHED].
	vSixInOne = vaccine{code{sct: "1162640003", sctDisplay: "Administration of vaccine product containing only acellular Bordetella pertussis, Clostridium tetani, Corynebacterium diphtheriae, Haemophilus influenzae type b, Hepatitis B virus and inactivated Human poliovirus antigens"}, // [IMMS]
		[]prod{{"34765811000001105", "Infanrix hexa vaccine powder and suspension for suspension for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)", since(2017, 8)}}} // [IMMS]
	// Before the 6-in-1 (August 2017) infants had the 5-in-1 DTaP/IPV/Hib:
	// one procedure concept per dose [GP2GP EMIS mappings, Endeavour IM].
	vFiveInOne = []code{
		{sct: "414259000", sctDisplay: "First diphtheria, tetanus, acellular pertussis, Haemophilus influenzae type b and inactivated polio vaccination"},
		{sct: "415507003", sctDisplay: "Second diphtheria, tetanus, acellular pertussis, Haemophilus influenzae type b and inactivated polio vaccination"},
		{sct: "415712004", sctDisplay: "Third diphtheria, tetanus, acellular pertussis, Haemophilus influenzae type b and inactivated polio vaccination"},
	}
	vRotavirus = vaccine{code{sct: "415354003", sctDisplay: "Administration of vaccine product containing only Rotavirus antigen"}, // [IMMS]
		[]prod{{"34609911000001106", "Rotarix vaccine live oral suspension 1.5ml tube (GlaxoSmithKline UK Ltd)", since(2013, 7)}}} // [IMMS]
	vMenB = vaccine{code{sct: "516301000000101", sctDisplay: "Recombinant meningococcal group B and outer membrane vesicle vaccination"}, // [IMMS]
		[]prod{{"23584211000001109", "Bexsero vaccine suspension for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)", since(2015, 9)}}} // [IMMS]
	vPCVFirst = vaccine{code{sct: "247631000000101", sctDisplay: "First pneumococcal conjugated vaccination"}, // [GMSDE] [IMMS]
		[]prod{{"16649411000001104", "Prevenar 13 vaccine suspension for injection 0.5ml pre-filled syringes (Pfizer Ltd)", since(2010, 4)}}} // [IMMS]
	vPCVBooster = vaccine{code{sct: "394678003", sctDisplay: "Booster pneumococcal vaccination"}, vPCVFirst.products}       // [GMSDE]
	vHibMenC    = vaccine{code{sct: "428975001", sctDisplay: "Haemophilus influenzae type B and meningitis C vaccination"}, // [IMMS]
		[]prod{{"9903711000001109", "Menitorix powder and solvent for solution for injection 0.5ml vials (GlaxoSmithKline)", since(2006, 9)}}} // [IMMS]
	mmrProducts = []prod{
		{"13968211000001108", "M-M-RVAXPRO vaccine powder and solvent for suspension for injection 0.5ml pre-filled syringes (Merck Sharp & Dohme (UK) Ltd)", since(2008, 1)}, // [GMSDE] [IMMS]
		{"34925111000001104", "Priorix vaccine powder and solvent for solution for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)", since(2019, 1)},             // [GMSDE] [IMMS]
	}
	vMMR1      = vaccine{code{sct: "38598009", sctDisplay: "Administration of vaccine product containing only Measles morbillivirus and Mumps orthorubulavirus and Rubella virus antigens"}, mmrProducts}                 // [IMMS]
	vMMR2      = vaccine{code{sct: "170433008", sctDisplay: "Administration of second dose of vaccine product containing only Measles morbillivirus and Mumps orthorubulavirus and Rubella virus antigens"}, mmrProducts} // [IMMS]
	vPreschool = vaccine{code{sct: "247821000000102", sctDisplay: "Booster diphtheria, tetanus, acellular pertussis and inactivated polio vaccination"},                                                                  // [IMMS]
		[]prod{{"26267211000001100", "Boostrix-IPV suspension for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)", since(2004, 9)}}} // [IMMS]
	vHPV = vaccine{code{sct: "761841000", sctDisplay: "Administration of vaccine product containing only Human papillomavirus antigen"}, // [UKCORE] [IMMS]
		[]prod{
			{"12238911000001100", "Cervarix vaccine suspension for injection 0.5ml pre-filled syringes (GlaxoSmithKline)", since(2008, 9)},                // [GMSDE] [IMMS]
			{"10880211000001104", "Gardasil vaccine suspension for injection 0.5ml pre-filled syringes (Merck Sharp & Dohme (UK) Ltd)", since(2012, 9)},   // [GMSDE] [IMMS]
			{"33493111000001108", "Gardasil 9 vaccine suspension for injection 0.5ml pre-filled syringes (Merck Sharp & Dohme (UK) Ltd)", since(2022, 9)}, // [GMSDE] [IMMS]
		}}
	vTeenBooster = vaccine{code{sct: "866227002", sctDisplay: "Administration of booster dose of vaccine product containing only Clostridium tetani and Corynebacterium diphtheriae and Human poliovirus antigens"}, // [IMMS]
		[]prod{{"7374511000001107", "Revaxis vaccine suspension for injection 0.5ml pre-filled syringes (Sanofi)", since(2004, 9)}}} // [IMMS]
	vMenACWY = vaccine{code{sct: "871874000", sctDisplay: "Administration of vaccine product containing only Neisseria meningitidis serogroup A, C, W135 and Y antigens"}, // [IMMS]
		[]prod{{"20517811000001104", "Nimenrix vaccine powder and solvent for solution for injection 0.5ml pre-filled syringes (GlaxoSmithKline UK Ltd)", since(2015, 8)}}} // [IMMS]

	// Adults.
	vFlu = vaccine{code{sct: "822851000000102", sctDisplay: "Seasonal influenza vaccination"}, // [GMSDE]
		[]prod{{"34680411000001107", "Quadrivalent influenza vaccine (split virion, inactivated) suspension for injection 0.5ml pre-filled syringes (Sanofi Pasteur)", since(2018, 9)}}} // [IMMS]
	covidDoses = []code{ // [GMSDE]
		{sct: "1324681000000101", sctDisplay: "Administration of first dose of severe acute respiratory syndrome coronavirus 2 vaccine"},
		{sct: "1324691000000104", sctDisplay: "Administration of second dose of severe acute respiratory syndrome coronavirus 2 vaccine"},
		{sct: "1363861000000103", sctDisplay: "Administration of third dose of severe acute respiratory syndrome coronavirus 2 vaccine"},
		{sct: "1363791000000101", sctDisplay: "Administration of fourth dose of severe acute respiratory syndrome coronavirus 2 vaccine"},
		{sct: "1363831000000108", sctDisplay: "Administration of fifth dose of severe acute respiratory syndrome coronavirus 2 vaccine"},
	}
	covidLater    = code{sct: "840534001", sctDisplay: "Severe acute respiratory syndrome coronavirus 2 vaccination"} // [GMSDE]
	covidProducts = []prod{
		{"39115611000001103", "COVID-19 mRNA Vaccine BNT162b2 30micrograms/0.3ml dose concentrate for suspension for injection multidose vials (Pfizer-BioNTech) (Pfizer Ltd)", since(2020, 12)}, // [GMSDE]
		{"39326911000001101", "COVID-19 mRNA (nucleoside modified) Vaccine Moderna 0.1mg/0.5mL dose dispersion for injection multidose vials (Moderna, Inc)", since(2021, 4)},                    // [GMSDE]
		{"43111411000001101", "Comirnaty JN.1 COVID-19 mRNA Vaccine 30micrograms/0.3ml dose dispersion for injection multidose vials (Pfizer Ltd)", since(2024, 9)},                              // [IMMS]
	}
	vShingles = vaccine{code{sct: "722215002", sctDisplay: "Administration of vaccine product containing only Human alphaherpesvirus 3 antigen for shingles"}, // [IMMS]
		[]prod{{"39655511000001105", "Shingrix (Herpes Zoster) adjuvanted recombinant vaccine powder and suspension for suspension for injection 0.5ml vials (GlaxoSmithKline UK Ltd)", since(2021, 9)}}} // [IMMS]
)

// childhoodDose is one dose of the routine schedule: given at a visit
// (age in days), from the date its programme began.
type childhoodDose struct {
	v      vaccine
	dose   int
	visit  int // age in days of the appointment
	from   time.Time
	sex    string // "" for both; HPV was offered to girls before boys
	boysOn time.Time
}

// The schedule's appointments [SCHED]: 8, 12 and 16 weeks, one year,
// 3 years 4 months, 12 years 7 months (school year 8), 14 years.
const (
	at8w, at12w, at16w, at1y, at3y4m, at12y, at14y = 56, 84, 112, 366, 1218, 4600, 5150
)

// childhood is the routine schedule [SCHED]; programme start dates bound
// the doses a child born earlier had.
var childhood = []childhoodDose{
	{v: vSixInOne, dose: 1, visit: at8w}, {v: vSixInOne, dose: 2, visit: at12w}, {v: vSixInOne, dose: 3, visit: at16w},
	{v: vRotavirus, dose: 1, visit: at8w, from: since(2013, 7)}, {v: vRotavirus, dose: 2, visit: at12w, from: since(2013, 7)},
	{v: vMenB, dose: 1, visit: at8w, from: since(2015, 9)}, {v: vMenB, dose: 2, visit: at16w, from: since(2015, 9)},
	{v: vPCVFirst, dose: 1, visit: at12w, from: since(2006, 9)},
	{v: vHibMenC, dose: 1, visit: at1y, from: since(2006, 9)},
	{v: vPCVBooster, dose: 2, visit: at1y, from: since(2006, 9)},
	{v: vMMR1, dose: 1, visit: at1y, from: since(1988, 10)},
	{v: vMenB, dose: 3, visit: at1y, from: since(2015, 9)},
	{v: vMMR2, dose: 2, visit: at3y4m, from: since(1996, 10)},
	{v: vPreschool, dose: 1, visit: at3y4m, from: since(2001, 11)},
	{v: vHPV, dose: 1, visit: at12y, from: since(2008, 9), sex: "female", boysOn: since(2019, 9)},
	{v: vTeenBooster, dose: 1, visit: at14y, from: since(1994, 1)},
	{v: vMenACWY, dose: 1, visit: at14y, from: since(2015, 8)},
}

// sixInOneFrom is when the 6-in-1 replaced the 5-in-1.
var sixInOneFrom = since(2017, 8)

// immunisations adds the patient's immunisations: the childhood schedule
// (most children have every dose; a few miss a vaccine), flu every autumn
// from 65 or with a chronic condition that makes them eligible, COVID-19
// doses from December 2020 by age and the shingles vaccine at 70.
func (g *pgen) immunisations() {
	earliest := since(electronicRecords, 1)
	inRecord := func(t time.Time) bool { return !t.Before(earliest) && !t.Before(g.birth) && t.Before(g.end) }
	// Childhood.
	missed := map[string]bool{}
	visits := map[int]time.Time{}
	for _, d := range childhood {
		key := d.v.procedure.sct
		if d.dose == 1 && g.r.Float64() < 0.04 {
			missed[key] = true
		}
		at, ok := visits[d.visit]
		if !ok {
			at = g.birth.Add(time.Duration(d.visit+g.r.IntN(21)) * day)
			if inRecord(at) {
				at = g.at(at, at.Add(day))
			} else {
				at = time.Time{} // before the records or not yet due
			}
			visits[d.visit] = at
		}
		from := d.from
		if d.sex != "" && g.sex != d.sex {
			from = d.boysOn
		}
		if missed[key] || at.IsZero() || at.Before(from) {
			continue
		}
		if d.v.procedure.sct == vSixInOne.procedure.sct && at.Before(sixInOneFrom) {
			g.immunization(vaccine{procedure: vFiveInOne[d.dose-1]}, d.dose, at)
			continue
		}
		g.immunization(d.v, d.dose, at)
	}
	// Seasonal flu: October or November, from 65 or in a risk group
	// (asthma, COPD, diabetes, heart or kidney disease).
	risk := g.has["asthma"] || g.has["copd"] || g.has["t2dm"] || g.has["ihd"] || g.has["hf"] || g.has["ckd3"]
	for y := 2000; y <= g.now.Year(); y++ {
		autumn := time.Date(y, time.October, 1, 0, 0, 0, 0, time.UTC)
		age := yearsBetween(g.birth, autumn)
		if age < 18 || (age < 65 && !risk) || !inRecord(autumn) {
			continue
		}
		uptake := 0.75
		if age < 65 {
			uptake = 0.5
		}
		if g.r.Float64() >= uptake {
			continue
		}
		at := g.at(autumn, autumn.Add(60*day))
		if inRecord(at) {
			g.immunization(vFlu, 0, at)
		}
	}
	// COVID-19: two primary doses in the first half of 2021 (older people
	// first), then boosters in the autumn (and spring for the oldest).
	covidAge := yearsBetween(g.birth, since(2021, 1))
	if covidAge >= 16 && g.r.Float64() < 0.6+covidAge/250 {
		first := since(2021, 1).Add(time.Duration(max(0, 100-covidAge)*1.6) * day)
		doses := []time.Time{first, first.Add(time.Duration(56+g.r.IntN(28)) * day)}
		for y := 2021; y <= g.now.Year(); y++ {
			age := yearsBetween(g.birth, since(y, 9))
			if age >= 50 && (y == 2021 || age >= 65) && g.r.Float64() < 0.8 {
				doses = append(doses, since(y, 9).Add(time.Duration(g.r.IntN(60))*day))
			}
			if age >= 75 && y >= 2022 && g.r.Float64() < 0.7 {
				doses = append(doses, since(y, 4).Add(time.Duration(g.r.IntN(50))*day))
			}
		}
		sortTimes(doses)
		for i, d := range doses {
			if !inRecord(d) || d.After(g.now) {
				continue
			}
			c := covidLater
			if i < len(covidDoses) {
				c = covidDoses[i]
			}
			g.immunization(vaccine{procedure: c, products: covidProducts}, i+1, g.at(d, d.Add(day)))
		}
	}
	// Shingles: two doses of Shingrix for those turning 70 since it replaced
	// Zostavax.
	at70 := g.birth.AddDate(70, 0, 0)
	if at70.After(vShingles.products[0].from) && g.r.Float64() < 0.6 {
		d1 := at70.Add(time.Duration(30+g.r.IntN(200)) * day)
		d2 := d1.Add(time.Duration(60+g.r.IntN(120)) * day)
		for i, d := range []time.Time{d1, d2} {
			if inRecord(d) {
				g.immunization(vShingles, i+1, g.at(d, d.Add(day)))
			}
		}
	}
}

func sortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// immunization adds one completed Immunization given at the practice by
// the patient's GP team; dose 0 is a seasonal dose with no number.
func (g *pgen) immunization(v vaccine, dose int, at time.Time) {
	vc := cc(coding(systemNullFlavor, "UNK", "unknown"))
	var usable []prod
	for _, p := range v.products {
		if !at.Before(p.from) {
			usable = append(usable, p)
		}
	}
	if len(usable) > 0 {
		p := usable[len(usable)-1]
		if len(usable) > 1 && g.r.IntN(3) == 0 {
			p = usable[len(usable)-2]
		}
		vc = cc(coding(fhir.DMD, p.dmd, p.name), coding(fhir.SNOMED, p.dmd, p.name))
	}
	m := M{
		"extension": []M{{"url": extVaccinationProcedure,
			"valueCodeableConcept": cc(coding(fhir.SNOMED, v.procedure.sct, v.procedure.sctDisplay))}},
		"status":             "completed",
		"vaccineCode":        vc,
		"patient":            ref(g.patRef),
		"occurrenceDateTime": ts(at),
		"recorded":           ts(at),
		"primarySource":      true,
		"performer":          []M{{"actor": ref(g.prf)}},
	}
	if dose > 0 {
		m["protocolApplied"] = []M{{"doseNumberPositiveInt": dose}}
	}
	g.add("Immunization", "imm", at, m)
}

const (
	extVaccinationProcedure = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-VaccinationProcedure"
	systemNullFlavor        = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
)
