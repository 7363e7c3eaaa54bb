// Package demo generates a deterministic synthetic region of GP practices
// and their patients' records: coded-only UK primary care data in UK Core R4,
// for `gpgate demo`, tests and benchmarks. The same Options give the same
// bytes, whatever the machine or the number of workers.
package demo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/gpgate/gpgate/fhir"
)

// Options configure a region.
type Options struct {
	Seed      uint64    // default 1
	Practices int       // default 3, at most 999
	Patients  int       // default 1000, spread round-robin over the practices
	Now       time.Time // every date is relative to it; default 2026-11-01T09:00:00Z
	// SkipValidation builds each resource's JSON with encoding/json and
	// indexes it without the jsonformat R4 round trip (about 14x faster).
	// The bytes are then encoding/json's compact form (keys sorted), not
	// jsonformat's. Regions of more than ValidateLimit patients skip
	// validation whatever this says: at ~0.5 ms of CPU per resource,
	// validating 100,000 patients would take hours.
	SkipValidation bool
	Workers        int // parallel generators; default GOMAXPROCS. Output does not depend on it.
}

// ValidateLimit is the largest region whose resources go through the
// jsonformat R4 round trip.
const ValidateLimit = 10000

// DefaultNow is the fixed clock of a default region.
var DefaultNow = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

func (o Options) withDefaults() Options {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Practices <= 0 {
		o.Practices = 3
	}
	if o.Patients <= 0 {
		o.Patients = 1000
	}
	if o.Now.IsZero() {
		o.Now = DefaultNow
	}
	o.Now = o.Now.UTC()
	if o.Patients > ValidateLimit {
		o.SkipValidation = true
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// Practice is one generated GP practice.
type Practice struct {
	ODS      string `json:"ods"`
	Name     string `json:"name"`
	Town     string `json:"town"`
	Postcode string `json:"postcode"`
	Patients int    `json:"patients"`
}

// NotableKind names a patient worth showing in a demo.
type NotableKind string

// The notable patients every region of 5 or more patients has.
const (
	NotableLargest     NotableKind = "largest"
	NotableNoAllergies NotableKind = "no-allergies-recorded"
	NotableDeceased    NotableKind = "deceased"
	NotableInvalidNHS  NotableKind = "invalid-nhs-number"
	NotableSmall       NotableKind = "very-small"
	NotableTypical     NotableKind = "typical"
	NotableDissent     NotableKind = "dissent"
)

// Notable is one notable patient.
type Notable struct {
	Kind        NotableKind `json:"kind"`
	NHS         string      `json:"nhs"` // raw: the invalid-nhs-number one fails Modulus 11
	PatientID   string      `json:"patientId"`
	Practice    string      `json:"practice"`
	Resources   int         `json:"resources"`
	Description string      `json:"description"`
}

// Summary describes a generated region.
type Summary struct {
	Seed            uint64     `json:"seed"`
	Practices       []Practice `json:"practices"`
	Patients        int        `json:"patients"`
	Resources       int        `json:"resources"`
	MinResources    int        `json:"minResources"`
	MedianResources int        `json:"medianResources"`
	MaxResources    int        `json:"maxResources"`
	Notable         []Notable  `json:"notable"`
}

// Practices returns the practices a region with these options has, so a
// store can register them before the records arrive.
func Practices(opts Options) []Practice {
	o := opts.withDefaults()
	ps := buildPractices(o)
	out := make([]Practice, len(ps))
	for i, p := range ps {
		out[i] = p.Practice
		out[i].Patients = o.Patients / o.Practices
		if i < o.Patients%o.Practices {
			out[i].Patients++
		}
	}
	return out
}

// practice is a Practice with what its records copy.
type practice struct {
	Practice
	street, district, phone string
	gps                     []gp
}

type gp struct {
	given, family, sex, sds string
}

func buildPractices(o Options) []*practice {
	n := o.Practices
	if n > 999 {
		n = 999
	}
	out := make([]*practice, n)
	for i := range out {
		r := rand.New(rand.NewPCG(o.Seed, 1<<40+uint64(i)))
		s := practiceSeeds[i%len(practiceSeeds)]
		name := s.name
		if i >= len(practiceSeeds) {
			name = fmt.Sprintf("%s %d", s.name, i/len(practiceSeeds)+1)
		}
		p := &practice{
			Practice: Practice{ODS: fmt.Sprintf("Y99%03d", i+1), Name: name, Town: s.town,
				Postcode: fmt.Sprintf("%s %d%c%c", s.outward, 1+r.IntN(9), inwardChars[r.IntN(len(inwardChars))], inwardChars[r.IntN(len(inwardChars))])},
			street: fmt.Sprintf("%d %s", 1+r.IntN(120), s.street), district: s.district,
			phone: fmt.Sprintf("01632 960%03d", r.IntN(1000)),
		}
		for k := 0; k < 3+r.IntN(4); k++ {
			g := gp{family: family[r.IntN(len(family))], sds: fmt.Sprintf("9999%08d", (i+1)*100+k)}
			if r.IntN(2) == 0 {
				g.sex, g.given = "female", givenFemale[r.IntN(len(givenFemale))]
			} else {
				g.sex, g.given = "male", givenMale[r.IntN(len(givenMale))]
			}
			p.gps = append(p.gps, g)
		}
		out[i] = p
	}
	return out
}

// nhsNumbers assigns the region's NHS numbers: 999-prefixed test numbers
// (never issued to real patients) with a valid check digit, in order; the
// patient at index invalid gets a number whose check digit is wrong.
func nhsNumbers(n, invalid int) []string {
	out := make([]string, n)
	k := 0
	for i := range out {
		for {
			nine := fmt.Sprintf("999%06d", k)
			k++
			c, ok := fhir.CheckDigit(nine)
			if !ok {
				continue
			}
			if i == invalid {
				c = '0' + (c-'0'+1)%10
			}
			out[i] = nine + string(c)
			break
		}
	}
	return out
}

// notableAt is where the forced notable patients sit in the region.
var notableAt = []NotableKind{NotableLargest, NotableNoAllergies, NotableDeceased, NotableInvalidNHS, NotableSmall, NotableDissent}

type result struct {
	rec  *fhir.Record
	info patientInfo
	err  error
}

type patientInfo struct {
	idx      int
	kind     NotableKind
	nhs      string
	id       string
	practice string
	count    int
	desc     string
}

// Generate builds the region and hands each record, in patient order, to
// sink with its practice. Records are not retained: a region of 100,000
// patients streams through in bounded memory. A sink error stops generation.
func Generate(opts Options, sink func(p Practice, rec *fhir.Record) error) (*Summary, error) {
	o := opts.withDefaults()
	practices := buildPractices(o)
	invalid := -1
	for i, k := range notableAt {
		if k == NotableInvalidNHS && i < o.Patients {
			invalid = i
		}
	}
	nhs := nhsNumbers(o.Patients, invalid)

	type job struct {
		idx int
		out chan result
	}
	jobs := make(chan job)
	order := make(chan job, o.Workers*4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		for i := 0; i < o.Patients; i++ {
			j := job{i, make(chan result, 1)}
			select {
			case order <- j:
			case <-stop:
				return
			}
			select {
			case jobs <- j:
			case <-stop:
				return
			}
		}
	}()
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				kind := NotableKind("")
				if j.idx < len(notableAt) {
					kind = notableAt[j.idx]
				}
				p := practices[j.idx%len(practices)]
				rec, info, err := generatePatient(&o, p, j.idx, nhs[j.idx], kind)
				j.out <- result{rec, info, err}
			}
		}()
	}
	infos := make([]patientInfo, 0, o.Patients)
	var err error
	for j := range order {
		res := <-j.out
		if res.err == nil {
			p := practices[j.idx%len(practices)]
			res.err = sink(p.Practice, res.rec)
		}
		if res.err != nil {
			err = res.err
			close(stop)
			break
		}
		infos = append(infos, res.info)
	}
	if err != nil {
		for range order { // let the producer see stop
		}
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return summarise(o, Practices(o), infos), nil
}

func summarise(o Options, practices []Practice, infos []patientInfo) *Summary {
	s := &Summary{Seed: o.Seed, Practices: practices, Patients: len(infos)}
	if len(infos) == 0 {
		return s
	}
	counts := make([]int, len(infos))
	largest := 0
	for i, in := range infos {
		counts[i] = in.count
		s.Resources += in.count
		if in.count > infos[largest].count {
			largest = i
		}
	}
	sort.Ints(counts)
	s.MinResources, s.MaxResources = counts[0], counts[len(counts)-1]
	s.MedianResources = counts[len(counts)/2]
	add := func(k NotableKind, in patientInfo, lead string) {
		s.Notable = append(s.Notable, Notable{Kind: k, NHS: in.nhs, PatientID: in.id, Practice: in.practice,
			Resources: in.count, Description: fmt.Sprintf("%s: %s (%d resources)", lead, in.desc, in.count)})
	}
	add(NotableLargest, infos[largest], "largest record")
	leads := map[NotableKind]string{
		NotableNoAllergies: "no allergies recorded (no AllergyIntolerance at all, not even 'no known allergy')",
		NotableDeceased:    "deceased",
		NotableInvalidNHS:  "NHS number fails Modulus 11 in the source: stored, never indexed or found",
		NotableSmall:       "very small record",
		NotableDissent:     "patient dissents from record sharing (coded 93C1. / 416409005): every consumer is refused NO_PATIENT_CONSENT",
	}
	for _, in := range infos {
		if lead, ok := leads[in.kind]; ok {
			add(in.kind, in, lead)
		}
	}
	typical := -1
	for i, in := range infos {
		if in.kind != "" || i == largest {
			continue
		}
		if typical < 0 || abs(in.count-s.MedianResources) < abs(infos[typical].count-s.MedianResources) {
			typical = i
		}
	}
	if typical >= 0 {
		add(NotableTypical, infos[typical], "typical record (closest to the median size)")
	}
	return s
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// render turns one built resource into a fhir.Resource.
func render(o *Options, m map[string]any) (*fhir.Resource, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if o.SkipValidation {
		return fhir.NewResource(raw)
	}
	return fhir.Canonicalize(raw)
}
