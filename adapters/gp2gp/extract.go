package gp2gp

import (
	"fmt"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Extract is a parsed, structurally checked GP2GP EHR Extract.
type Extract struct {
	root    *node
	extract *node
	size    int
}

// ParseExtract parses an RCMR_IN030000UK06/UK07 message (or a bare
// EhrExtract) with encoding/xml under the hardening limits: at most maxBytes
// (DefaultMaxExtractBytes when <= 0), no DOCTYPE or entity declarations,
// UTF-8 only, every element in the HL7 v3 namespace. Errors wrap one of the
// Err* sentinels.
func ParseExtract(b []byte, maxBytes int64) (*Extract, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxExtractBytes
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, len(b), maxBytes)
	}
	if hasDoctype(b) {
		return nil, ErrHostile
	}
	root, err := parseXML(b, maxBytes)
	if err != nil {
		return nil, err
	}
	x, err := findExtract(root)
	if err != nil {
		return nil, err
	}
	return &Extract{root: root, extract: x, size: len(b)}, nil
}

// NHSNumber returns the patient's NHS number as the extract states it
// (recordTarget/patient/id/@extension) and whether it is a valid one; test
// harness placeholders ("Test Harness", "1234567890", "{{nhsNumber}}") are
// not.
func (x *Extract) NHSNumber() (fhir.NHSNumber, bool) {
	for _, id := range x.extract.path("recordTarget", "patient").children("id") {
		n, err := fhir.ParseNHSNumber(strings.TrimSpace(id.attr("extension")))
		if err == nil {
			return n, true
		}
	}
	return "", false
}

// SenderODS returns the ODS code of the practice that sent the extract
// (author/AgentOrgSDS/agentOrganizationSDS/id/@extension), or "".
func (x *Extract) SenderODS() string {
	return strings.TrimSpace(x.extract.path("author", "AgentOrgSDS", "agentOrganizationSDS", "id").attr("extension"))
}

// Map maps the extract to UK Core R4 resources for opt.NHS (Patient first,
// then the practice Organization, Practitioners and the clinical record).
// Every resource passes fhir.Canonicalize (R4 validation); free text is never
// read, confidential (NOPAT) entries are withheld and counted.
func (x *Extract) Map(opt MapOptions) (*Mapped, error) {
	if _, err := fhir.ParseNHSNumber(string(opt.NHS)); err != nil {
		return nil, err
	}
	if opt.Practice == "" {
		return nil, fmt.Errorf("gp2gp: map: practice ODS code is required")
	}
	return mapExtract(x.extract, opt)
}
