package access

import (
	"bytes"
	"context"
	"strings"

	"github.com/gpgate/gpgate/fhir"
)

// Read returns one resource of a patient's record by type and id (ids are
// prefixed with their patient's id: fhir.ResourceID). A resource the
// decision does not let out is NO_RECORD_FOUND, like one that does not
// exist.
func (c *Core) Read(ctx context.Context, p *fhir.Principal, typ, id string) (*fhir.Resource, error) {
	if !fhir.IsReadable(typ) {
		return nil, fhir.Errorf(fhir.CodeUnknownResourceType, "resource type %q is not served", safe(typ))
	}
	if !fhir.ValidID(id) {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the id is not a valid FHIR logical id").At("id")
	}
	req := &fhir.Request{Interaction: "read", Type: typ, ID: id, PatientID: fhir.PatientIDOf(id), Areas: fhir.AreasOfType(typ)}
	rec, dec, err := c.open(ctx, p, req)
	if err != nil {
		return nil, err
	}
	r := rec.Find(typ, id)
	if r != nil && !req.Areas.Any(r.Ix.Area) {
		r = nil // the caller may see it, but not through this request's scopes
	}
	if r == nil {
		e := c.entry(ctx, p, req, dec, 0)
		e.Outcome, e.Code = fhir.OutcomeDenied, fhir.CodeNoRecordFound
		if err := c.write(ctx, e); err != nil {
			return nil, err
		}
		return nil, fhir.Errorf(fhir.CodeNoRecordFound, "no %s with that id", typ)
	}
	if err := c.grant(ctx, p, req, dec, 1); err != nil {
		return nil, err
	}
	return r, nil
}

// Search answers a search on one type within one patient's record (the
// patient parameter is required: a facade does not search across
// patients). Patient searches go to FindPatient.
func (c *Core) Search(ctx context.Context, p *fhir.Principal, q *fhir.Query) (*fhir.Page, error) {
	if q.Type == "Patient" {
		return c.FindPatient(ctx, p, q)
	}
	if q.Patient == "" {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "a %s search needs the patient parameter", q.Type).At("patient")
	}
	req := &fhir.Request{Interaction: "search-type", Type: q.Type, Query: q, PatientID: q.Patient, Areas: fhir.AreasOfType(q.Type)}
	rec, dec, err := c.open(ctx, p, req)
	if err != nil {
		return nil, err
	}
	var matches []*fhir.Resource
	for _, r := range rec.Resources {
		if r.Type == q.Type && req.Areas.Any(r.Ix.Area) && q.Match(r) {
			matches = append(matches, r)
		}
	}
	return c.page(ctx, p, req, dec, q, matches, rec)
}

// FindPatient answers Patient?identifier=<NHS number> and Patient?_id=: the
// Patient, if the caller may see it. A patient gpgate cannot find is
// refused exactly like one at a practice without an agreement.
func (c *Core) FindPatient(ctx context.Context, p *fhir.Principal, q *fhir.Query) (*fhir.Page, error) {
	req := &fhir.Request{Interaction: "search-type", Type: "Patient", Query: q, NHS: q.NHS, Areas: fhir.AreaDemographics}
	if q.NHS == "" {
		for _, f := range q.Filters {
			if f.Param == "_id" && len(f.Tokens) == 1 && !f.Not {
				req.PatientID = f.Tokens[0].Code
			}
		}
		if !fhir.ValidID(req.PatientID) {
			return nil, fhir.Errorf(fhir.CodeInvalidParameter, "Patient search needs one identifier or one _id").At("identifier")
		}
	}
	rec, dec, err := c.open(ctx, p, req)
	if err != nil {
		return nil, err
	}
	var matches []*fhir.Resource
	if pt := rec.Patient(); pt != nil && req.Areas.Any(pt.Ix.Area) && q.Match(pt) {
		matches = append(matches, pt)
	}
	return c.page(ctx, p, req, dec, q, matches, rec)
}

// page sorts and cuts the page, adds what _include and _revinclude ask for,
// and audits what it returns: the page and the included resources, counted
// and with their areas (_summary=count returns, and counts, none).
func (c *Core) page(ctx context.Context, p *fhir.Principal, req *fhir.Request, dec fhir.Decision, q *fhir.Query, matches []*fhir.Resource, rec *fhir.Record) (*fhir.Page, error) {
	q.SortResources(matches)
	var pg, inc []*fhir.Resource
	if !q.CountOnly() {
		pg = fhir.PageOf(matches, q)
		// The redacted record holds only what the caller may see, so
		// whatever the page points at (or is pointed at by) in it may
		// go with the page.
		inc = fhir.Included(rec.Resources, pg, q.Includes)
	}
	audited := *req
	for _, r := range inc {
		audited.Areas |= r.Ix.Area & dec.Areas
	}
	if err := c.grant(ctx, p, &audited, dec, len(pg)+len(inc)); err != nil {
		return nil, err
	}
	return &fhir.Page{Resources: pg, Included: inc, Total: len(matches), Query: q, Warnings: rec.Warnings, Areas: req.Areas, Summary: dec.Summary & req.Areas}, nil
}

// Everything answers Patient/{id}/$everything: every resource of the record
// the caller may see (within _type, _since, start and end), paged.
func (c *Core) Everything(ctx context.Context, p *fhir.Principal, e *fhir.EverythingRequest) (*fhir.Page, error) {
	req := &fhir.Request{Interaction: "operation", Operation: "$everything", Type: "Patient", ID: e.PatientID, PatientID: e.PatientID, Areas: fhir.AllAreas, Query: e.Query}
	rec, dec, err := c.open(ctx, p, req)
	if err != nil {
		return nil, err
	}
	// rec is this request's own (redaction made it): when everything
	// matches, as for a plain $everything, it is the list of matches.
	matches := rec.Resources
	for i, r := range rec.Resources {
		if !req.Areas.Any(r.Ix.Area) || !e.Match(r) {
			matches = append(make([]*fhir.Resource, 0, len(rec.Resources)), rec.Resources[:i]...)
			for _, r := range rec.Resources[i+1:] {
				if req.Areas.Any(r.Ix.Area) && e.Match(r) {
					matches = append(matches, r)
				}
			}
			break
		}
	}
	var pg []*fhir.Resource
	if !e.Query.CountOnly() {
		pg = fhir.PageOf(matches, e.Query)
	}
	if err := c.grant(ctx, p, req, dec, len(pg)); err != nil {
		return nil, err
	}
	return &fhir.Page{Resources: pg, Total: len(matches), Query: e.Query, Warnings: rec.Warnings, Areas: req.Areas, Summary: dec.Summary & req.Areas}, nil
}

// StructuredRecord answers $getstructuredrecord: Patient, practice and
// usual GP, then one List per requested section with the section's
// resources, then whatever those reference that the caller may see (so
// every reference in the answer resolves within it: references to anything
// the caller may not see were removed by redaction).
func (c *Core) StructuredRecord(ctx context.Context, p *fhir.Principal, sr *fhir.StructuredRequest) (*fhir.Collection, error) {
	// The decision is asked for every area: the sections pick what is
	// returned, and references from them (an Encounter of a diagnosis, the
	// Medication of a statement) are included where the decision permits.
	req := &fhir.Request{Interaction: "operation", Operation: "$getstructuredrecord", Type: "Patient", NHS: sr.NHS, Areas: fhir.AllAreas}
	rec, dec, err := c.open(ctx, p, req)
	if err != nil {
		return nil, err
	}
	now := c.now()
	out := &fhir.Collection{}
	included := map[string]bool{}
	add := func(r *fhir.Resource) {
		if key := r.Type + "/" + r.ID; !included[key] {
			included[key] = true
			out.Resources = append(out.Resources, r)
		}
	}
	for _, r := range rec.Resources {
		if r.Ix.Area == fhir.AreaDemographics {
			add(r)
		}
	}
	for i := range sr.Sections {
		sec := &sr.Sections[i]
		permitted := dec.Areas.Any(sec.Area)
		var members, entries []*fhir.Resource
		if permitted {
			for _, r := range rec.Resources {
				if sec.Keeps(r) {
					members = append(members, r)
				}
			}
			fhir.SortByDateDesc(members)
			if sec.MostRecent > 0 {
				members = limitType(members, "Encounter", sec.MostRecent)
			}
			var reported map[string]bool
			if sec.Area == fhir.AreaInvestigations {
				reported = observationsReported(members)
			}
			for _, r := range members {
				add(r)
				if contains(sec.ListTypes, r.Type) && !(sec.Area == fhir.AreaInvestigations && r.Type == "Observation" && reported[r.ID]) {
					entries = append(entries, r)
				}
			}
		}
		add(sec.ListOf(rec.PatientID, entries, now, permitted, rec.Warnings))
	}
	// Close the collection over references: the redacted record holds only
	// what the caller may see, so whatever a member points at is in it.
	for i := 0; i < len(out.Resources); i++ {
		for _, ref := range fhir.References(out.Resources[i].JSON) {
			if included[ref] {
				continue
			}
			if t, id, ok := strings.Cut(ref, "/"); ok {
				if r := rec.Find(t, id); r != nil {
					add(r)
				}
			}
		}
	}
	for _, name := range sr.Ignored {
		out.Warnings = append(out.Warnings, fhir.Issue{Severity: "warning", Code: fhir.WarnUnknownParamIgnored, Diagnostics: "parameter " + name + " is not supported and was ignored", Expression: name})
	}
	out.Warnings = append(out.Warnings, rec.Warnings...)
	audited := dec
	audited.Areas = 0
	for _, r := range out.Resources {
		audited.Areas |= r.Ix.Area
	}
	if err := c.grant(ctx, p, req, audited, len(out.Resources)); err != nil {
		return nil, err
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// limitType keeps the n most recent resources of typ (rs is newest first)
// and every resource of another type.
func limitType(rs []*fhir.Resource, typ string, n int) []*fhir.Resource {
	out := rs[:0:0]
	seen := 0
	for _, r := range rs {
		if r.Type == typ {
			if seen >= n {
				continue
			}
			seen++
		}
		out = append(out, r)
	}
	return out
}

// observationsReported returns the ids of the Observations the
// DiagnosticReports among members name ("Observation/<id>" anywhere in a
// report): their results, which the List reaches through the report. One
// pass over each report, where a search per Observation made the section
// quadratic (a third of the CPU of $getstructuredrecord under load).
func observationsReported(members []*fhir.Resource) map[string]bool {
	out := map[string]bool{}
	needle := []byte(`"Observation/`)
	for _, m := range members {
		if m.Type != "DiagnosticReport" {
			continue
		}
		js := m.JSON
		for {
			i := bytes.Index(js, needle)
			if i < 0 {
				break
			}
			js = js[i+len(needle):]
			j := bytes.IndexByte(js, '"')
			if j < 0 {
				break
			}
			out[string(js[:j])] = true
			js = js[j:]
		}
	}
	return out
}

// safe makes a caller-supplied name safe to echo in diagnostics.
func safe(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s)
}
