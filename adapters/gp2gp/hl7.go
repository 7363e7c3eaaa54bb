package gp2gp

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/London must resolve in minimal containers

	"github.com/gpgate/gpgate/fhir"
)

// Code system OIDs used in GP2GP extracts and the FHIR code system URIs they
// become. An OID not listed is carried as urn:oid:<oid>, so no coding is lost.
const (
	OIDReadV2     = "2.16.840.1.113883.2.1.6.2"
	OIDCTV3       = "2.16.840.1.113883.2.1.3.2.4.14"
	OIDSNOMED     = "2.16.840.1.113883.2.1.3.2.4.15"
	OIDEMISCodes  = "2.16.840.1.113883.2.1.6.3" // EMIS (Egton) local clinical codes
	OIDEMISDrugs  = "2.16.840.1.113883.2.1.6.9" // EMIS drug codes
	OIDMultilex   = "2.16.840.1.113883.2.1.6.4" // Multilex drug codes
	OIDNHSNumber  = "2.16.840.1.113883.2.1.4.1"
	OIDGMPNumber  = "2.16.840.1.113883.2.1.4.2"
	OIDODSCode    = "2.16.840.1.113883.2.1.4.3"
	OIDSDSOrgCode = "1.2.826.0.1285.0.1.10"

	SystemEMISCodes = "https://fhir.hl7.org.uk/Id/egton-codes"
	SystemEMISDrugs = "https://fhir.hl7.org.uk/Id/emis-drug-codes"
	SystemMultilex  = "https://fhir.hl7.org.uk/Id/multilex-drug-codes"
	SystemGMPNumber = "https://fhir.hl7.org.uk/Id/gmp-number"
)

var oidSystems = map[string]string{
	OIDReadV2:    fhir.ReadV2,
	OIDCTV3:      fhir.CTV3,
	OIDSNOMED:    fhir.SNOMED,
	OIDEMISCodes: SystemEMISCodes,
	OIDEMISDrugs: SystemEMISDrugs,
	OIDMultilex:  SystemMultilex,
}

// SystemForOID translates a code system OID to its FHIR URI.
func SystemForOID(oid string) string {
	if s, ok := oidSystems[oid]; ok {
		return s
	}
	return "urn:oid:" + oid
}

// coding is a FHIR Coding as JSON.
type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// concept is a CodeableConcept as JSON: codings only, never text.
type concept struct {
	Coding []coding `json:"coding"`
	Text   string   `json:"text,omitempty"` // only the labels UK Core fixes (fhir.IsProfileFixedText)
}

// codings reads an HL7 CD/CV element: its own code and every translation
// (original coding first, then the maps the extract carries), each with its
// system translated from the OID. Text (originalText) is never read; a code
// without a code system, a null-flavoured code and duplicate pairs are
// dropped.
func codings(cd *node) []coding {
	var out []coding
	seen := map[string]bool{}
	var add func(x *node, depth int)
	add = func(x *node, depth int) {
		if x == nil || depth > 4 {
			return
		}
		code, sys := strings.TrimSpace(x.attr("code")), strings.TrimSpace(x.attr("codeSystem"))
		if code != "" && sys != "" && x.attr("nullFlavor") == "" && validCode(code) && validOID(sys) {
			c := coding{System: SystemForOID(sys), Code: code, Display: cleanDisplay(x.attr("displayName"))}
			if k := c.System + "|" + c.Code; !seen[k] {
				seen[k] = true
				out = append(out, c)
			}
		}
		for _, t := range x.children("translation") {
			add(t, depth+1)
		}
	}
	add(cd, 0)
	return out
}

// conceptOf returns the CodeableConcept of cd, or nil when it has no coding.
func conceptOf(cd *node) *concept {
	cs := codings(cd)
	if len(cs) == 0 {
		return nil
	}
	return &concept{Coding: cs}
}

func hasCode(cs []coding, system string, codes ...string) bool {
	for _, c := range cs {
		if c.System != system {
			continue
		}
		for _, k := range codes {
			if c.Code == k {
				return true
			}
		}
	}
	return false
}

// validCode: FHIR code = no leading/trailing whitespace, no runs of spaces.
func validCode(s string) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return !strings.Contains(s, "  ")
}

func validOID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

func cleanDisplay(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

var london = func() *time.Location {
	l, err := time.LoadLocation("Europe/London")
	if err != nil {
		return time.UTC
	}
	return l
}()

// ts is an HL7 TS value rendered as FHIR: a date at its precision, or a
// dateTime (GP systems record UK local time, so a time without a zone is
// read as Europe/London).
type ts struct {
	Date string    // FHIR date or dateTime, "" when absent or invalid
	Time time.Time // the instant (start of the period at date precision)
	Full bool      // precision reaches seconds (usable as an instant)
}

func (t ts) ok() bool { return t.Date != "" }

// parseTS parses YYYY[MM[DD[HH[MM[SS[.fff]]]]]][+|-ZZZZ].
func parseTS(v string) ts {
	v = strings.TrimSpace(v)
	if v == "" {
		return ts{}
	}
	zone := ""
	if i := strings.IndexAny(v, "+-"); i > 0 {
		zone, v = v[i:], v[:i]
	}
	if i := strings.IndexByte(v, '.'); i > 0 {
		v = v[:i]
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return ts{}
		}
	}
	loc := london
	if len(zone) == 5 {
		h, err1 := strconv.Atoi(zone[1:3])
		m, err2 := strconv.Atoi(zone[3:5])
		if err1 == nil && err2 == nil && h < 24 && m < 60 {
			off := h*3600 + m*60
			if zone[0] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		}
	}
	num := func(a, b int) int { n, _ := strconv.Atoi(v[a:b]); return n }
	switch len(v) {
	case 4:
		y := num(0, 4)
		if y < 1 {
			return ts{}
		}
		return ts{Date: v, Time: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}
	case 6:
		y, m := num(0, 4), num(4, 6)
		if y < 1 || m < 1 || m > 12 {
			return ts{}
		}
		return ts{Date: v[:4] + "-" + v[4:6], Time: time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)}
	case 8, 10, 12, 14:
	default:
		return ts{}
	}
	y, mo, d := num(0, 4), num(4, 6), num(6, 8)
	t := time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
	if y < 1 || t.Month() != time.Month(mo) || t.Day() != d {
		return ts{}
	}
	if len(v) == 8 {
		return ts{Date: t.Format("2006-01-02"), Time: t}
	}
	hh, mm, ss := num(8, 10), 0, 0
	if len(v) >= 12 {
		mm = num(10, 12)
	}
	if len(v) == 14 {
		ss = num(12, 14)
	}
	if hh > 23 || mm > 59 || ss > 59 {
		return ts{}
	}
	lt := time.Date(y, time.Month(mo), d, hh, mm, ss, 0, loc)
	return ts{Date: lt.Format("2006-01-02T15:04:05-07:00"), Time: lt, Full: len(v) == 14}
}

// tsOf reads the @value of a TS element.
func tsOf(x *node) ts {
	if x == nil || x.attr("nullFlavor") != "" {
		return ts{}
	}
	return parseTS(x.attr("value"))
}

// instant renders t as a FHIR instant; only full-precision times qualify.
func (t ts) instant() string {
	if !t.Full {
		return ""
	}
	return t.Time.Format("2006-01-02T15:04:05-07:00")
}

// effective reads an IVL_TS effectiveTime: center, or low/high.
type ivl struct{ Center, Low, High ts }

func ivlOf(x *node) ivl {
	if x == nil {
		return ivl{}
	}
	return ivl{Center: tsOf(x.child("center")), Low: tsOf(x.child("low")), High: tsOf(x.child("high"))}
}

// start is center, else low.
func (i ivl) start() ts {
	if i.Center.ok() {
		return i.Center
	}
	return i.Low
}

// number parses an HL7 REAL/INT attribute as a JSON number literal (kept as
// text so precision is not lost in float conversion).
func number(s string) (jsonNumber, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 32 {
		return "", false
	}
	// A JSON number (and FHIR decimal): no '+', exponent, leading zeros or
	// bare '.'; anything else parseable is normalised through float64.
	if !decimalRE.MatchString(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", false
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
		if !decimalRE.MatchString(s) {
			return "", false
		}
	}
	return jsonNumber(s), true
}

// jsonNumber is a decimal emitted verbatim.
type jsonNumber string

func (n jsonNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

var decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,12})?$`)
