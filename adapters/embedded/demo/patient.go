package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

type M = map[string]any

const (
	ucum              = "http://unitsofmeasure.org"
	sdsUserSystem     = "https://fhir.nhs.uk/Id/sds-user-id"
	clinicalSystem    = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	verSystem         = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	allergyClinical   = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	allergyVer        = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	actCode           = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	interpSystem      = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	v20074            = "http://terminology.hl7.org/CodeSystem/v2-0074"
	mrCategory        = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
	msCategory        = "http://terminology.hl7.org/CodeSystem/medication-statement-category"
	courseSystem      = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
	flagCategory      = "http://terminology.hl7.org/CodeSystem/flag-category"
	orgTypeSystem     = "http://terminology.hl7.org/CodeSystem/organization-type"
	day               = 24 * time.Hour
	year              = 365 * day
	electronicRecords = 1995
)

func coding(system, c, display string) M {
	m := M{"system": system, "code": c}
	if display != "" {
		m["display"] = display
	}
	return m
}

// concept renders a code as a CodeableConcept: SNOMED first, Read v2 after.
func concept(c code) M {
	cs := []M{coding(fhir.SNOMED, c.sct, c.sctDisplay)}
	if c.read != "" {
		cs = append(cs, coding(fhir.ReadV2, c.read, c.readDisplay))
	}
	return M{"coding": cs}
}

func cc(codings ...M) M { return M{"coding": codings} }
func ref(r string) M    { return M{"reference": r} }

func ts(t time.Time) string     { return t.UTC().Format("2006-01-02T15:04:05Z") }
func dateOf(t time.Time) string { return t.UTC().Format("2006-01-02") }

// pgen builds one patient's record.
type pgen struct {
	o    *Options
	r    *rand.Rand
	now  time.Time
	pr   *practice
	gp   gp
	kind NotableKind

	nhs, pid            string
	patRef, orgRef, prf string
	sex                 string
	given, family       string
	birth               time.Time
	age                 int
	death               time.Time
	end                 time.Time // death or now
	start               time.Time // earliest date of the record's history
	issueFrom           time.Time // issues before this are not in the record
	activity            float64

	res            []M
	n              map[string]int
	meds           map[string]string // drug key -> Medication reference
	has            map[string]bool   // chronic keys
	problems       []string
	baseline       map[string]float64
	onStatin       bool
	noAllergy, nka bool
}

func generatePatient(o *Options, pr *practice, idx int, nhs string, kind NotableKind) (*fhir.Record, patientInfo, error) {
	g := &pgen{
		o: o, r: rand.New(rand.NewPCG(o.Seed, uint64(idx))), now: o.Now, pr: pr, kind: kind,
		nhs: nhs, pid: fhir.PatientID(fhir.NHSNumber(nhs)),
		n: map[string]int{}, meds: map[string]string{}, has: map[string]bool{}, baseline: map[string]float64{},
	}
	g.patRef = "Patient/" + g.pid
	g.orgRef = "Organization/" + fhir.ResourceID(g.pid, "org")
	g.prf = "Practitioner/" + fhir.ResourceID(g.pid, "prac")
	g.gp = pr.gps[g.r.IntN(len(pr.gps))]
	g.build()

	rec := &fhir.Record{NHS: fhir.NHSNumber(nhs), PatientID: g.pid, Practice: pr.ODS}
	rec.Resources = make([]*fhir.Resource, 0, len(g.res))
	for _, m := range g.res {
		r, err := render(o, m)
		if err != nil {
			return nil, patientInfo{}, fmt.Errorf("demo: patient %d: %s/%s: %w", idx, m["resourceType"], m["id"], err)
		}
		rec.Resources = append(rec.Resources, r)
	}
	info := patientInfo{idx: idx, kind: kind, nhs: nhs, id: g.pid, practice: pr.ODS, count: len(rec.Resources), desc: g.describe()}
	return rec, info, nil
}

func (g *pgen) describe() string {
	who := "man"
	if g.sex == "female" {
		who = "woman"
	}
	if g.age < 18 {
		who = "boy"
		if g.sex == "female" {
			who = "girl"
		}
	}
	s := fmt.Sprintf("%s %s, %s aged %d", g.given, g.family, who, g.age)
	if !g.death.IsZero() {
		s += fmt.Sprintf(", died %s", dateOf(g.death))
	}
	if len(g.problems) > 0 {
		s += "; " + strings.Join(g.problems, ", ")
	} else {
		s += "; no long-term problems"
	}
	return s
}

// add appends a resource with its id, profile and lastUpdated.
func (g *pgen) add(typ, prefix string, recorded time.Time, body M) string {
	g.n[prefix]++
	local := prefix + "-" + strconv.Itoa(g.n[prefix])
	if prefix == "org" || prefix == "prac" {
		local = prefix
	}
	id := fhir.ResourceID(g.pid, local)
	if typ == "Patient" {
		id = g.pid
	}
	profile := fhir.ProfileFor(typ)
	if p, ok := body["__profile"].(string); ok {
		profile = p
		delete(body, "__profile")
	}
	lu := recorded.Add(time.Duration(5+g.r.IntN(55)) * time.Minute)
	if lu.After(g.now) {
		lu = g.now
	}
	body["resourceType"] = typ
	body["id"] = id
	body["meta"] = M{"profile": []string{profile}, "lastUpdated": ts(lu)}
	g.res = append(g.res, body)
	return typ + "/" + id
}

// at returns a random consulting time on a random weekday in [a, b).
func (g *pgen) at(a, b time.Time) time.Time {
	if !b.After(a) {
		b = a.Add(day)
	}
	d := a.Add(time.Duration(g.r.Int64N(int64(b.Sub(a)))))
	d = time.Date(d.Year(), d.Month(), d.Day(), 8+g.r.IntN(10), 10*g.r.IntN(6), 0, 0, time.UTC)
	for d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
		d = d.Add(day)
	}
	if d.After(g.end) {
		d = g.end.Add(-time.Hour)
	}
	if d.Before(g.birth) {
		d = g.birth.Add(12 * time.Hour)
	}
	return d
}

func (g *pgen) norm(mean, sd float64) float64 { return mean + sd*g.r.NormFloat64() }

func yearsBetween(a, b time.Time) float64 { return b.Sub(a).Hours() / 24 / 365.25 }

// count draws a count with the given expectation.
func (g *pgen) count(mean float64) int {
	if mean <= 0 {
		return 0
	}
	n := int(mean)
	if g.r.Float64() < mean-float64(n) {
		n++
	}
	return n
}

func (g *pgen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *pgen) build() {
	r := g.r
	// Demographics.
	g.sex = "male"
	if r.IntN(100) < 51 {
		g.sex = "female"
	}
	switch g.kind {
	case NotableLargest:
		g.sex, g.age = "male", 84
	case NotableDeceased:
		g.sex, g.age = "female", 87
	case NotableSmall:
		g.sex, g.age = "female", 24
	case NotableNoAllergies, NotableInvalidNHS:
		g.age = 45 + r.IntN(25)
	default:
		u := r.Float64()
		switch {
		case u < 0.20:
			g.age = r.IntN(18)
		case u < 0.47:
			g.age = 18 + r.IntN(22)
		case u < 0.79:
			g.age = 40 + r.IntN(25)
		case u < 0.96:
			g.age = 65 + r.IntN(20)
		default:
			g.age = 85 + r.IntN(16)
		}
	}
	g.end = g.now
	if g.kind == NotableDeceased {
		g.death = time.Date(g.now.Year(), g.now.Month(), g.now.Day(), 3+r.IntN(6), 10*r.IntN(6), 0, 0, time.UTC).Add(-time.Duration(90+r.IntN(180)) * day)
		g.end = g.death
	}
	g.birth = g.end.Add(-time.Duration(float64(g.age)*365.25*24+float64(r.IntN(360*24))) * time.Hour)
	g.birth = time.Date(g.birth.Year(), g.birth.Month(), g.birth.Day(), 0, 0, 0, 0, time.UTC)
	if g.sex == "female" {
		g.given = g.pick(givenFemale)
	} else {
		g.given = g.pick(givenMale)
	}
	g.family = g.pick(family)

	// How far back the record goes and how much of it there is.
	hist := 2 + r.ExpFloat64()*9
	issueYears := 1 + r.Float64()*2.5
	g.activity = math.Exp(0.45 * r.NormFloat64())
	if r.IntN(100) < 2 { // a few patients carry a long, busy record
		hist, issueYears, g.activity = 18+r.Float64()*10, 8+r.Float64()*8, 1.5
	}
	switch g.kind {
	case NotableLargest:
		hist, issueYears, g.activity = 26, 6, 1.6
	case NotableDeceased:
		hist, issueYears, g.activity = 15, 3, 1.3
	case NotableSmall:
		hist = 0.3
	}
	g.start = g.end.Add(-time.Duration(hist * float64(year)))
	if min := time.Date(electronicRecords, 1, 1, 0, 0, 0, 0, time.UTC); g.start.Before(min) {
		g.start = min
	}
	if g.start.Before(g.birth) {
		g.start = g.birth
	}
	g.issueFrom = g.end.Add(-time.Duration(issueYears * float64(year)))

	g.patient()
	g.organization()
	g.practitioner()
	if g.kind == NotableSmall {
		g.encounter(g.at(g.end.Add(-60*day), g.end.Add(-20*day)), "AMB", encCheckUp, 20)
		return
	}
	g.allergies()
	g.chronics()
	g.consultations()
	g.screening()
	g.procedures()
	g.admissions()
	g.flags()
	g.contraception()
	g.sharingConsent()
	g.immunisations()
}

// Record-sharing consent as GP systems code it (Read v2 9Nd.. / 93C..,
// SNOMED 4164.../4175...; see consent/sharing.go for the sources): a few
// patients dissent, some have consent recorded, most have no entry.
var (
	sharingDissent = code{sct: "416409005", sctDisplay: "Refused consent for upload to local shared electronic record", read: "93C1.", readDisplay: "Refused consent for upload to local shared electronic record"}
	sharingConsent = code{sct: "417528008", sctDisplay: "Consent given for upload to local shared electronic record", read: "93C0.", readDisplay: "Consent given for upload to local shared electronic record"}
)

func (g *pgen) sharingConsent() {
	u := g.r.Float64()
	c := sharingConsent
	switch {
	case g.kind == NotableDissent || (g.kind == "" && u < 0.02):
		c = sharingDissent
	case g.kind == "" && u < 0.15:
	default:
		return
	}
	at := g.at(g.start, g.end)
	g.add("Observation", "obs", at, M{
		"status":            "final",
		"category":          []M{cc(coding(fhir.ObservationCategorySystem, "social-history", "Social History"))},
		"code":              concept(c),
		"subject":           ref(g.patRef),
		"effectiveDateTime": ts(at),
		"performer":         []M{ref(g.prf)},
	})
}

func (g *pgen) patient() {
	r := g.r
	name := M{"use": "official", "family": g.family, "given": []string{g.given}}
	if g.age >= 16 {
		prefix := "Mr"
		if g.sex == "female" {
			prefix = []string{"Mrs", "Ms", "Miss"}[r.IntN(3)]
		}
		name["prefix"] = []string{prefix}
	}
	if r.IntN(3) == 0 {
		if g.sex == "female" {
			name["given"] = []string{g.given, g.pick(givenFemale)}
		} else {
			name["given"] = []string{g.given, g.pick(givenMale)}
		}
	}
	addr := M{
		"use":        "home",
		"line":       []string{fmt.Sprintf("%d %s", 1+r.IntN(180), g.pick(streets))},
		"city":       g.pr.Town,
		"district":   g.pr.district,
		"postalCode": fmt.Sprintf("%s %d%c%c", strings.Fields(g.pr.Postcode)[0], 1+r.IntN(9), inwardChars[r.IntN(len(inwardChars))], inwardChars[r.IntN(len(inwardChars))]),
	}
	telecom := []M{{"system": "phone", "value": fmt.Sprintf("01632 960%03d", r.IntN(1000)), "use": "home"}}
	if g.age >= 16 && r.IntN(3) > 0 {
		telecom = append(telecom, M{"system": "phone", "value": fmt.Sprintf("07700 900%03d", r.IntN(1000)), "use": "mobile"})
	}
	p := M{
		"identifier": []M{{
			"extension": []M{{
				"url":                  fhir.ExtNHSNumberVerificationStatus,
				"valueCodeableConcept": cc(coding(fhir.NHSNumberVerificationSystem, "01", "Number present and verified")),
			}},
			"system": fhir.NHSNumberSystem,
			"value":  g.nhs,
		}},
		"name":                 []M{name},
		"telecom":              telecom,
		"gender":               g.sex,
		"birthDate":            dateOf(g.birth),
		"address":              []M{addr},
		"generalPractitioner":  []M{ref(g.prf)},
		"managingOrganization": ref(g.orgRef),
	}
	if !g.death.IsZero() {
		p["deceasedDateTime"] = ts(g.death)
	}
	g.add("Patient", "patient", g.start, p)
}

func (g *pgen) organization() {
	g.add("Organization", "org", g.start, M{
		"identifier": []M{{"system": fhir.ODSSystem, "value": g.pr.ODS}},
		"active":     true,
		"type":       []M{cc(coding(orgTypeSystem, "prov", "Healthcare Provider"))},
		"name":       g.pr.Name,
		"telecom":    []M{{"system": "phone", "value": g.pr.phone, "use": "work"}},
		"address": []M{{"use": "work", "line": []string{g.pr.street}, "city": g.pr.Town,
			"district": g.pr.district, "postalCode": g.pr.Postcode}},
	})
}

func (g *pgen) practitioner() {
	g.add("Practitioner", "prac", g.start, M{
		"identifier": []M{{"system": sdsUserSystem, "value": g.gp.sds}},
		"name":       []M{{"use": "official", "family": g.gp.family, "given": []string{g.gp.given}, "prefix": []string{"Dr"}}},
		"gender":     g.gp.sex,
	})
}

func (g *pgen) encounter(at time.Time, class string, typ code, mins int) string {
	classDisplay := map[string]string{"AMB": "ambulatory", "HH": "home health", "VR": "virtual", "IMP": "inpatient encounter"}[class]
	e := M{
		"status":      "finished",
		"class":       coding(actCode, class, classDisplay),
		"type":        []M{concept(typ)},
		"subject":     ref(g.patRef),
		"participant": []M{{"individual": ref(g.prf)}},
		"period":      M{"start": ts(at), "end": ts(at.Add(time.Duration(mins) * time.Minute))},
	}
	if class != "IMP" {
		e["serviceProvider"] = ref(g.orgRef)
	}
	return g.add("Encounter", "enc", at, e)
}

func (g *pgen) condition(c code, category string, onset, recorded time.Time, status string, abated time.Time, enc string) string {
	catDisplay := map[string]string{"problem-list-item": "Problem List Item", "encounter-diagnosis": "Encounter Diagnosis"}[category]
	m := M{
		"clinicalStatus":     cc(coding(clinicalSystem, status, "")),
		"verificationStatus": cc(coding(verSystem, "confirmed", "Confirmed")),
		"category":           []M{cc(coding(fhir.ConditionCategorySystem, category, catDisplay))},
		"code":               concept(c),
		"subject":            ref(g.patRef),
		"onsetDateTime":      dateOf(onset),
		"recordedDate":       ts(recorded),
		"recorder":           ref(g.prf),
	}
	m["clinicalStatus"].(M)["coding"].([]M)[0]["display"] = strings.ToUpper(status[:1]) + status[1:]
	if !abated.IsZero() {
		m["abatementDateTime"] = dateOf(abated)
	}
	if enc != "" {
		m["encounter"] = ref(enc)
	}
	return g.add("Condition", "cond", recorded, m)
}

func (g *pgen) allergies() {
	r := g.r
	n := 0
	switch u := r.Float64(); {
	case u < 0.62:
	case u < 0.85:
		n = 1
	case u < 0.96:
		n = 2
	default:
		n = 3
	}
	if g.kind == NotableNoAllergies {
		g.noAllergy = true
		return
	}
	if g.kind == NotableLargest || g.kind == NotableDeceased {
		n = 2
	}
	if n == 0 {
		if r.IntN(10) < 7 {
			g.nka = true
			at := g.at(g.start, g.end)
			g.add("AllergyIntolerance", "alg", at, M{
				"clinicalStatus":     cc(coding(allergyClinical, "active", "Active")),
				"verificationStatus": cc(coding(allergyVer, "confirmed", "Confirmed")),
				"code":               concept(noKnownAllergy),
				"patient":            ref(g.patRef),
				"recordedDate":       ts(at),
				"recorder":           ref(g.prf),
			})
		}
		return
	}
	seen := map[int]bool{}
	for i := 0; i < n; i++ {
		k := r.IntN(len(allergens))
		if seen[k] {
			continue
		}
		seen[k] = true
		a := allergens[k]
		rx := a.reaction[r.IntN(len(a.reaction))]
		sev, crit := "mild", "low"
		if rx.sct == rxAnaphylaxis.sct {
			sev, crit = "severe", "high"
		} else if r.IntN(3) == 0 {
			sev = "moderate"
		}
		onset := g.at(g.birth.Add(year), g.end)
		at := g.at(maxTime(onset, g.start), g.end)
		g.add("AllergyIntolerance", "alg", at, M{
			"clinicalStatus":     cc(coding(allergyClinical, "active", "Active")),
			"verificationStatus": cc(coding(allergyVer, "confirmed", "Confirmed")),
			"type":               "allergy",
			"category":           []string{a.category},
			"criticality":        crit,
			"code":               concept(a.c),
			"patient":            ref(g.patRef),
			"onsetDateTime":      dateOf(onset),
			"recordedDate":       ts(at),
			"recorder":           ref(g.prf),
			"reaction":           []M{{"manifestation": []M{concept(rx)}, "severity": sev}},
		})
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

var forced = map[NotableKind][]string{
	NotableLargest:  {"htn", "t2dm", "ckd3", "af", "hf", "copd", "oa", "ihd", "gout", "bph", "gord"},
	NotableDeceased: {"htn", "hf", "ckd3", "oa", "af"},
}

func (g *pgen) chronics() {
	force := map[string]bool{}
	for _, k := range forced[g.kind] {
		force[k] = true
	}
	for i := range chronics {
		c := &chronics[i]
		if !force[c.key] {
			if len(forced[g.kind]) > 0 || g.age < c.minAge || (c.sex != "" && c.sex != g.sex) {
				continue
			}
			p := c.max / (1 + math.Exp(-float64(g.age-c.mid)/8))
			if g.sex == "female" && c.femaleX > 0 {
				p *= c.femaleX
			}
			if g.r.Float64() >= p {
				continue
			}
		}
		g.chronic(c)
	}
}

func (g *pgen) chronic(c *chronic) {
	r := g.r
	g.has[c.key] = true
	lo := float64(c.minAge)
	if a := float64(g.age) - 25; a > lo {
		lo = a
	}
	onsetAge := lo + r.Float64()*(float64(g.age)-lo)
	onset := g.birth.Add(time.Duration(onsetAge * float64(year)))
	if onset.After(g.end.Add(-30 * day)) {
		onset = g.end.Add(-30 * day)
	}
	recorded := g.at(maxTime(onset, g.start), minTime(maxTime(onset, g.start).Add(60*day), g.end))
	status := "active"
	var abated time.Time
	stop := g.end
	if c.resolve > 0 && r.Float64() < c.resolve && g.kind == "" {
		abated = g.at(recorded.Add(90*day), recorded.Add(3*year))
		if abated.Before(g.end.Add(-30 * day)) {
			status = "resolved"
			if c.key == "backpain" || c.key == "gord" || c.key == "migraine" {
				status = "inactive"
			}
			stop = abated
		} else {
			abated = time.Time{}
		}
	}
	enc := g.encounter(recorded, "AMB", encProblem, 10+5*r.IntN(3))
	g.condition(c.c, "problem-list-item", onset, recorded, status, abated, enc)
	label := strings.ToLower(c.c.sctDisplay[:1]) + c.c.sctDisplay[1:]
	if status != "active" {
		label += " (" + status + ")"
	}
	g.problems = append(g.problems, label)

	from := maxTime(recorded, g.start)
	// Repeat medication, one drug per line of treatment.
	for _, line := range c.drugs {
		dk := line[r.IntN(len(line))]
		if dk == "" {
			continue
		}
		if (dk == "atorvastatin20" || dk == "rosuvastatin20") && g.onStatin {
			continue
		}
		if dk == "atorvastatin20" || dk == "rosuvastatin20" {
			g.onStatin = true
		}
		begin := g.at(from, minTime(from.Add(120*day), stop))
		end := stop
		if r.IntN(8) == 0 && stop.Sub(begin) > 2*year { // switched or stopped along the way
			end = g.at(begin.Add(year), stop)
		}
		g.repeat(dk, begin, end)
	}
	// Monitoring.
	years := yearsBetween(from, stop)
	for _, pk := range c.labs {
		for i, n := 0, g.count(c.labRate*years*g.activity*0.8); i < n; i++ {
			g.lab(pk, g.at(from, stop))
		}
	}
	for i, n := 0, g.count(c.bpRate*years*g.activity*0.8); i < n; i++ {
		at := g.at(from, stop)
		enc := g.encounter(at, "AMB", encCheckUp, 10)
		g.bp(at, enc)
	}
	if c.referral != nil && r.Float64() < 0.35 {
		at := g.at(from, stop)
		status := "completed"
		if g.end.Sub(at) < 90*day && g.death.IsZero() {
			status = "active"
		}
		g.referral(*c.referral, at, status, "")
	}
}

func (g *pgen) medication(dk string) string {
	if ref, ok := g.meds[dk]; ok {
		return ref
	}
	d := drugs[dk]
	ref := g.add("Medication", "med", g.start, M{
		"code": cc(coding(fhir.DMD, d.dmd, d.name), coding(fhir.SNOMED, d.dmd, d.name)),
	})
	g.meds[dk] = ref
	return ref
}

var unitCodes = map[string][2]string{ // unit -> system, code
	"tablet":      {fhir.SNOMED, "428673006"},
	"capsule":     {fhir.SNOMED, "428641000"},
	"dose":        {ucum, "{dose}"},
	"application": {ucum, "{application}"},
}

func quantity(v float64, unit string) M {
	uc := unitCodes[unit]
	return M{"value": v, "unit": unit, "system": uc[0], "code": uc[1]}
}

func dosage(d drug) []M {
	dose, freq := 1.0, d.perDay
	switch {
	case d.perDay == 6:
		dose, freq = 6, 1
	case d.perDay >= 4 && d.unit != "application" && d.unit != "dose":
		dose, freq = 2, d.perDay/2
	case d.unit == "dose":
		dose, freq = 2, d.perDay/2
	}
	return []M{{
		"sequence":    1,
		"timing":      M{"repeat": M{"frequency": int(freq), "period": 1, "periodUnit": "d"}},
		"route":       concept(d.route),
		"doseAndRate": []M{{"doseQuantity": quantity(dose, d.unit)}},
	}}
}

func duration(days int) M {
	return M{"value": days, "unit": "day", "system": ucum, "code": "d"}
}

// repeat writes a repeat prescription from begin to end: yearly
// authorisations, each with its MedicationStatement, and the issues that
// fall inside the record's issue window.
func (g *pgen) repeat(dk string, begin, end time.Time) {
	d := drugs[dk]
	med := g.medication(dk)
	ongoing := !end.Before(g.end) && g.death.IsZero()
	for seg := begin; seg.Before(end); {
		segEnd := seg.Add(year)
		last := !segEnd.Before(end)
		if last {
			segEnd = end
		}
		status, msStatus := "completed", "completed"
		if last && ongoing {
			status, msStatus = "active", "active"
		} else if last {
			status, msStatus = "stopped", "stopped"
		}
		repeats := int(year/day)/d.days - 1
		plan := M{
			"status":              status,
			"intent":              "plan",
			"category":            []M{cc(coding(mrCategory, "community", "Community"))},
			"medicationReference": ref(med),
			"subject":             ref(g.patRef),
			"authoredOn":          ts(seg),
			"requester":           ref(g.prf),
			"courseOfTherapyType": cc(coding(courseSystem, "continuous", "Continuous long term therapy")),
			"substitution":        M{"allowedBoolean": false},
			"dosageInstruction":   dosage(d),
			"dispenseRequest": M{
				"validityPeriod":         M{"start": dateOf(seg), "end": dateOf(seg.Add(year))},
				"numberOfRepeatsAllowed": repeats,
				"quantity":               quantity(float64(d.pack), d.unit),
				"expectedSupplyDuration": duration(d.days),
			},
		}
		if status == "stopped" {
			plan["statusReason"] = cc(coding(fhir.SNOMED, "182846007", "Medication discontinued"))
		}
		planRef := g.add("MedicationRequest", "mr", seg, plan)
		ms := M{
			"status":              msStatus,
			"category":            cc(coding(msCategory, "community", "Community")),
			"basedOn":             []M{ref(planRef)},
			"medicationReference": ref(med),
			"subject":             ref(g.patRef),
			"dateAsserted":        ts(seg),
			"dosage":              dosage(d),
		}
		if msStatus == "active" {
			ms["effectivePeriod"] = M{"start": dateOf(seg)}
		} else {
			ms["effectivePeriod"] = M{"start": dateOf(seg), "end": dateOf(segEnd)}
		}
		g.add("MedicationStatement", "ms", seg, ms)
		for t := seg; t.Before(segEnd); t = t.Add(time.Duration(d.days-2+g.r.IntN(5)) * day) {
			if t.Before(g.issueFrom) {
				continue
			}
			at := time.Date(t.Year(), t.Month(), t.Day(), 8+g.r.IntN(9), 10*g.r.IntN(6), 0, 0, time.UTC)
			if at.After(g.end) {
				break
			}
			g.add("MedicationRequest", "mr", at, M{
				"status":              "completed",
				"intent":              "order",
				"category":            []M{cc(coding(mrCategory, "community", "Community"))},
				"medicationReference": ref(med),
				"subject":             ref(g.patRef),
				"authoredOn":          ts(at),
				"requester":           ref(g.prf),
				"basedOn":             []M{ref(planRef)},
				"courseOfTherapyType": cc(coding(courseSystem, "continuous", "Continuous long term therapy")),
				"substitution":        M{"allowedBoolean": false},
				"dosageInstruction":   dosage(d),
				"dispenseRequest": M{
					"quantity":               quantity(float64(d.pack), d.unit),
					"expectedSupplyDuration": duration(d.days),
				},
			})
		}
		seg = segEnd
	}
}

// acuteCourse writes a one-off prescription issued at a consultation.
func (g *pgen) acuteCourse(dk string, at time.Time, enc string) {
	d := drugs[dk]
	med := g.medication(dk)
	plan := g.add("MedicationRequest", "mr", at, M{
		"status":              "completed",
		"intent":              "plan",
		"category":            []M{cc(coding(mrCategory, "community", "Community"))},
		"medicationReference": ref(med),
		"subject":             ref(g.patRef),
		"encounter":           ref(enc),
		"authoredOn":          ts(at),
		"requester":           ref(g.prf),
		"courseOfTherapyType": cc(coding(courseSystem, "acute", "Short course (acute) therapy")),
		"substitution":        M{"allowedBoolean": false},
		"dosageInstruction":   dosage(d),
		"dispenseRequest": M{
			"validityPeriod":         M{"start": dateOf(at), "end": dateOf(at.Add(28 * day))},
			"numberOfRepeatsAllowed": 0,
			"quantity":               quantity(float64(d.pack), d.unit),
			"expectedSupplyDuration": duration(d.days),
		},
	})
	g.add("MedicationRequest", "mr", at, M{
		"status":              "completed",
		"intent":              "order",
		"category":            []M{cc(coding(mrCategory, "community", "Community"))},
		"medicationReference": ref(med),
		"subject":             ref(g.patRef),
		"encounter":           ref(enc),
		"authoredOn":          ts(at),
		"requester":           ref(g.prf),
		"basedOn":             []M{ref(plan)},
		"courseOfTherapyType": cc(coding(courseSystem, "acute", "Short course (acute) therapy")),
		"substitution":        M{"allowedBoolean": false},
		"dosageInstruction":   dosage(d),
		"dispenseRequest": M{
			"quantity":               quantity(float64(d.pack), d.unit),
			"expectedSupplyDuration": duration(d.days),
		},
	})
	g.add("MedicationStatement", "ms", at, M{
		"status":              "completed",
		"category":            cc(coding(msCategory, "community", "Community")),
		"basedOn":             []M{ref(plan)},
		"medicationReference": ref(med),
		"subject":             ref(g.patRef),
		"context":             ref(enc),
		"dateAsserted":        ts(at),
		"effectivePeriod":     M{"start": dateOf(at), "end": dateOf(at.Add(time.Duration(d.days) * day))},
		"dosage":              dosage(d),
	})
}

func (g *pgen) consultations() {
	r := g.r
	years := yearsBetween(g.start, g.end)
	rate := (0.8 + 0.02*float64(g.age) + 0.5*float64(len(g.has))) * g.activity
	n := g.count(rate * years)
	for i := 0; i < n; i++ {
		at := g.at(g.start, g.end)
		ageThen := int(yearsBetween(g.birth, at))
		class, typ, mins := "AMB", encSymptom, 10
		switch u := r.Float64(); {
		case u < 0.25:
			class, typ = "VR", encTelephone
		case u < 0.32 && ageThen >= 75:
			class, typ, mins = "HH", encHome, 30
		}
		enc := g.encounter(at, class, typ, mins)
		if r.Float64() >= 0.55 {
			continue
		}
		var cands []int
		for k, a := range acutes {
			if ageThen >= a.minAge && ageThen <= a.maxAge {
				cands = append(cands, k)
			}
		}
		if len(cands) == 0 {
			continue
		}
		a := acutes[cands[r.IntN(len(cands))]]
		status := "resolved"
		abated := at.Add(time.Duration(7+r.IntN(21)) * day)
		if abated.After(g.end) {
			status, abated = "active", time.Time{}
		}
		g.condition(a.c, "encounter-diagnosis", at, at, status, abated, enc)
		if dk := a.drugs[r.IntN(len(a.drugs))]; dk != "" {
			if dk == "amoxicillin500" && g.allergicToPenicillin() {
				dk = "doxycycline"
			}
			g.acuteCourse(dk, at, enc)
		}
		if r.Float64() < 0.03 {
			g.referral(code{sct: "183519002", sctDisplay: "Referral to cardiology service"}, at, "completed", enc)
		}
	}
}

func (g *pgen) allergicToPenicillin() bool {
	for _, m := range g.res {
		if m["resourceType"] == "AllergyIntolerance" {
			c := m["code"].(M)["coding"].([]M)[0]["code"]
			if c == "91936005" || c == "292967008" {
				return true
			}
		}
	}
	return false
}

func (g *pgen) referral(c code, at time.Time, status, enc string) {
	m := M{
		"status":     status,
		"intent":     "order",
		"category":   []M{concept(code{sct: "3457005", sctDisplay: "Patient referral"})},
		"priority":   []string{"routine", "routine", "urgent"}[g.r.IntN(3)],
		"code":       concept(c),
		"subject":    ref(g.patRef),
		"authoredOn": ts(at),
		"requester":  ref(g.prf),
	}
	if enc != "" {
		m["encounter"] = ref(enc)
	}
	g.add("ServiceRequest", "sr", at, m)
}

// screening adds opportunistic blood tests and blood pressure checks.
func (g *pgen) screening() {
	if g.age < 18 {
		return
	}
	years := yearsBetween(maxTime(g.start, g.birth.Add(18*year)), g.end)
	for i, n := 0, g.count(0.25*years*g.activity); i < n; i++ {
		g.lab(screenPanels[g.r.IntN(len(screenPanels))], g.at(g.end.Add(-time.Duration(years*float64(year))), g.end))
	}
	if g.age >= 40 {
		for i, n := 0, g.count(0.3*years*g.activity); i < n; i++ {
			at := g.at(g.end.Add(-time.Duration(years*float64(year))), g.end)
			g.bp(at, g.encounter(at, "AMB", encCheckUp, 10))
		}
	}
}

func (g *pgen) base(key string) float64 {
	if v, ok := g.baseline[key]; ok {
		return v
	}
	v := g.r.NormFloat64()
	g.baseline[key] = v
	return v
}

func (g *pgen) lab(pk string, at time.Time) {
	p := panels[pk]
	specType := code{sct: "119297000", sctDisplay: "Blood specimen"}
	if p.serum {
		specType = code{sct: "119364003", sctDisplay: "Serum specimen"}
	}
	issued := at.Add(time.Duration(20+g.r.IntN(30)) * time.Hour)
	if issued.After(g.now) {
		issued = g.now
	}
	spec := g.add("Specimen", "spec", at, M{
		"status":       "available",
		"type":         concept(specType),
		"subject":      ref(g.patRef),
		"receivedTime": ts(at.Add(3 * time.Hour)),
		"collection":   M{"collectedDateTime": ts(at)},
	})
	var results []M
	for _, t := range p.tests {
		mean, sd, low, high := g.adjust(t)
		v := mean + sd*(0.6*g.base(t.c.sct)+0.8*g.r.NormFloat64())
		if v < mean/5 {
			v = mean / 5
		}
		pow := math.Pow(10, float64(t.decimals))
		v = math.Round(v*pow) / pow
		interp, idisp := "N", "Normal"
		if high > 0 && v > high {
			interp, idisp = "H", "High"
		} else if low > 0 && v < low {
			interp, idisp = "L", "Low"
		}
		uc := ucumQuantity(v, t)
		codings := concept(t.c)["coding"].([]M)
		if t.loinc != "" {
			codings = append(codings, coding(fhir.LOINC, t.loinc, ""))
		}
		rr := M{}
		if low > 0 {
			rr["low"] = ucumQuantity(low, t)
		}
		if high > 0 {
			rr["high"] = ucumQuantity(high, t)
		}
		results = append(results, ref(g.add("Observation", "obs", issued, M{
			"status":            "final",
			"category":          []M{cc(coding(fhir.ObservationCategorySystem, "laboratory", "Laboratory"))},
			"code":              M{"coding": codings},
			"subject":           ref(g.patRef),
			"effectiveDateTime": ts(at),
			"issued":            ts(issued),
			"valueQuantity":     uc,
			"interpretation":    []M{cc(coding(interpSystem, interp, idisp))},
			"referenceRange":    []M{rr},
			"specimen":          ref(spec),
		})))
	}
	g.add("DiagnosticReport", "dr", issued, M{
		"status":            "final",
		"category":          []M{cc(coding(v20074, "LAB", "Laboratory"))},
		"code":              concept(p.c),
		"subject":           ref(g.patRef),
		"effectiveDateTime": ts(at),
		"issued":            ts(issued),
		"specimen":          []M{ref(spec)},
		"result":            results,
	})
}

func ucumQuantity(v float64, t labTest) M {
	return M{"value": v, "unit": t.unit, "system": ucum, "code": t.ucum}
}

// adjust returns the distribution and reference range of a test for this
// patient: disease and treatment move results the way they do.
func (g *pgen) adjust(t labTest) (mean, sd, low, high float64) {
	mean, sd, low, high = t.mean, t.sd, t.low, t.high
	switch t.c.sct {
	case "1022431000000105": // haemoglobin
		if g.sex == "female" {
			mean, low, high = 130, 115, 160
		}
		if g.has["ida"] || g.has["ckd3"] {
			mean -= 18
		}
	case "999791000000106": // HbA1c
		if g.has["t2dm"] {
			mean, sd = 58, 9
		}
	case "1020291000000106": // eGFR
		mean = 100 - 0.5*float64(g.age)
		if g.has["ckd3"] {
			mean, sd = 46, 6
		}
	case "1000731000000107": // creatinine
		if g.sex == "female" {
			mean, low, high = 68, 45, 84
		}
		if g.has["ckd3"] {
			mean, sd = 135, 18
		}
	case "1005671000000105": // cholesterol
		if g.onStatin {
			mean = 4.3
		} else if g.has["lipids"] {
			mean = 6.6
		}
	case "1022791000000101": // TSH
		if g.has["hypothyroid"] {
			mean, sd = 3.2, 2.2
		}
	case "1000651000000109": // potassium
		if g.has["ckd3"] || g.has["hf"] {
			mean = 4.8
		}
	}
	return
}

func (g *pgen) bp(at time.Time, enc string) {
	ageThen := float64(int(yearsBetween(g.birth, at)))
	sys := 112 + 0.45*(ageThen-20) + 6*g.base("sys")
	dia := 72 + 0.12*(ageThen-20) + 4*g.base("dia")
	if g.has["htn"] {
		sys, dia = sys+14, dia+7
	}
	s := math.Round(g.norm(sys, 9))
	d := math.Round(g.norm(dia, 6))
	if d > s-25 {
		d = s - 25
	}
	comp := func(loinc, ldisp, sct, sdisp string, v float64) M {
		code := cc(coding(fhir.LOINC, loinc, ldisp), coding(fhir.SNOMED, sct, sdisp))
		code["text"] = ldisp // fixed by the UK Core BP profile (fhir.TextSystolicBP / TextDiastolicBP)
		return M{
			"code":          code,
			"valueQuantity": M{"value": v, "unit": "millimeter of mercury", "system": ucum, "code": "mm[Hg]"},
		}
	}
	g.add("Observation", "bp", at, M{
		"__profile":         fhir.ProfileBloodPressure,
		"status":            "final",
		"category":          []M{cc(coding(fhir.ObservationCategorySystem, "vital-signs", "Vital Signs"))},
		"code":              cc(coding(fhir.LOINC, fhir.LOINCBloodPressurePanel, "Blood pressure panel with all children optional"), coding(fhir.SNOMED, "75367002", "Blood pressure")),
		"subject":           ref(g.patRef),
		"encounter":         ref(enc),
		"effectiveDateTime": ts(at),
		"performer":         []M{ref(g.prf)},
		"component": []M{
			comp(fhir.LOINCSystolic, "Systolic blood pressure", "72313002", "Systolic arterial pressure", s),
			comp(fhir.LOINCDiastolic, "Diastolic blood pressure", "1091811000000102", "Diastolic arterial pressure", d),
		},
	})
}

func (g *pgen) procedures() {
	for _, p := range procedures {
		if g.age < p.minAge {
			continue
		}
		yearsOver := yearsBetween(maxTime(g.start, g.birth.Add(time.Duration(p.minAge)*year)), g.end)
		if yearsOver <= 0 {
			continue
		}
		n := g.count(p.rate * yearsOver / 10 * g.activity)
		if p.rate >= 1 { // yearly vaccination: at most one a year
			n = g.count(0.7 * yearsOver)
		} else if n > 1 {
			n = 1
		}
		from := g.end.Add(-time.Duration(yearsOver * float64(year)))
		for i := 0; i < n; i++ {
			var at time.Time
			if p.rate >= 1 {
				y := g.end.Year() - i
				at = g.at(time.Date(y, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(y, 11, 30, 0, 0, 0, 0, time.UTC))
				if at.Before(from) {
					break
				}
			} else {
				at = g.at(from, g.end)
			}
			g.add("Procedure", "proc", at, M{
				"status":            "completed",
				"code":              concept(p.c),
				"subject":           ref(g.patRef),
				"performedDateTime": ts(at),
				"recorder":          ref(g.prf),
			})
		}
	}
}

func (g *pgen) admissions() {
	if g.age < 40 && g.kind == "" {
		return
	}
	years := yearsBetween(g.start, g.end)
	rate := 0.01 * float64(len(g.has)) * g.activity
	n := g.count(rate * years)
	if g.kind == NotableDeceased {
		n++
	}
	for i := 0; i < n; i++ {
		at := g.at(g.start, g.end.Add(-14*day))
		if g.kind == NotableDeceased && i == n-1 {
			at = g.at(g.end.Add(-60*day), g.end.Add(-20*day))
		}
		reason := admissionReasons[g.r.IntN(len(admissionReasons))]
		stay := time.Duration(1+g.r.IntN(12)) * day
		enc := g.add("Encounter", "enc", at.Add(stay), M{
			"status":     "finished",
			"class":      coding(actCode, "IMP", "inpatient encounter"),
			"type":       []M{concept(encAdmission)},
			"subject":    ref(g.patRef),
			"period":     M{"start": ts(at), "end": ts(at.Add(stay))},
			"reasonCode": []M{concept(reason)},
		})
		g.condition(reason, "encounter-diagnosis", at, at.Add(stay), "resolved", at.Add(stay), enc)
	}
	if g.kind == NotableDeceased {
		g.referral(*refPalliative, g.at(g.end.Add(-120*day), g.end.Add(-70*day)), "completed", "")
	}
}

func (g *pgen) flags() {
	for _, f := range flags {
		prob := f.prob
		if g.kind == NotableDeceased || g.kind == NotableLargest {
			prob = 1
		}
		if g.age < f.minAge || g.r.Float64() >= prob {
			continue
		}
		from := maxTime(g.start, g.birth.Add(time.Duration(f.minAge)*year))
		at := g.at(from, g.end)
		g.add("Flag", "flag", at, M{
			"status":   "active",
			"category": []M{cc(coding(flagCategory, f.category, f.display))},
			"code":     concept(f.c),
			"subject":  ref(g.patRef),
			"period":   M{"start": ts(at)},
			"author":   ref(g.prf),
		})
	}
}

func (g *pgen) contraception() {
	if g.sex != "female" || g.age < 16 || g.age > 48 || g.r.IntN(4) != 0 {
		return
	}
	from := maxTime(g.start, g.birth.Add(16*year))
	if !from.Before(g.end.Add(-60 * day)) {
		return
	}
	begin := g.at(from, g.end.Add(-60*day))
	end := g.end
	if g.r.IntN(3) == 0 {
		end = g.at(begin.Add(60*day), g.end)
	}
	g.repeat("cocp", begin, end)
}
