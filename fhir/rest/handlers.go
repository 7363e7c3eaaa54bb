package rest

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// read serves GET /{type}/{id} (with _summary and _elements).
func (s *Server) read(c echo.Context) error {
	typ, id := c.Param("type"), c.Param("id")
	if op, ok := operationName(typ, id); ok {
		return notImplementedOperation(op)
	}
	q := c.QueryParams()
	sub, err := fhir.ParseSubset(typ, q["_summary"], q["_elements"])
	if err != nil {
		return err
	}
	if sub.Summary == fhir.SummaryCount {
		return fhir.Errorf(fhir.CodeInvalidParameter, "_summary=count applies to searches, not to a read").At("_summary")
	}
	ctx, p := principal(c)
	r, err := s.core.Read(ctx, p, typ, id)
	if err != nil {
		return err
	}
	r = sub.Apply(r)
	etag := etagOf(r.JSON)
	c.Response().Header().Set("ETag", etag)
	if !r.Ix.LastUpdated.IsZero() {
		c.Response().Header().Set("Last-Modified", r.Ix.LastUpdated.UTC().Format(http.TimeFormat))
	}
	if match := c.Request().Header.Get("If-None-Match"); match != "" && match == etag {
		return c.NoContent(http.StatusNotModified)
	}
	return s.writeJSON(c, http.StatusOK, r.JSON)
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s)
}

func strict(c echo.Context) bool {
	for _, p := range c.Request().Header.Values("Prefer") {
		for _, part := range strings.Split(p, ",") {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(part), " ", ""), "handling=strict") {
				return true
			}
		}
	}
	return false
}

// search serves GET /{type}?... and POST /{type}/_search (a form body with
// the same parameters; URL parameters, if any, count too).
func (s *Server) search(c echo.Context) error {
	typ := c.Param("type")
	if op, ok := operationName(typ); ok {
		return notImplementedOperation(op)
	}
	if !fhir.IsReadable(typ) {
		return fhir.Errorf(fhir.CodeUnknownResourceType, "resource type %q is not served", truncate(typ, 40))
	}
	v, err := searchValues(c)
	if err != nil {
		return err
	}
	return s.runSearch(c, typ, v, "/"+typ, v)
}

// compartment serves GET /Patient/{id}/{type} and POST
// /Patient/{id}/{type}/_search: a search of type within the patient's
// compartment, the same as /{type}?patient={id}.
func (s *Server) compartment(c echo.Context) error {
	id, typ := c.Param("id"), c.Param("type")
	switch {
	case strings.HasPrefix(typ, "$"):
		return notImplementedOperation(typ)
	case typ == "_history":
		return fhir.Errorf(fhir.CodeNotImplemented, "history is not supported: gpgate keeps no versions of the records it fetches")
	case !fhir.IsReadable(typ):
		return fhir.Errorf(fhir.CodeUnknownResourceType, "resource type %q is not served", truncate(typ, 40))
	case !fhir.ValidID(id):
		return fhir.Errorf(fhir.CodeInvalidParameter, "the patient id is not a valid FHIR logical id").At("id")
	}
	v, err := searchValues(c)
	if err != nil {
		return err
	}
	// The compartment is the patient parameter (for the compartment's own
	// Patient, its _id); the paging links repeat the compartment path, not
	// the parameter.
	inPatient := url.Values{}
	for k, vals := range v {
		inPatient[k] = vals
	}
	if typ == "Patient" {
		inPatient["_id"] = append(append([]string(nil), v["_id"]...), id)
	} else {
		inPatient["patient"] = append(append([]string(nil), v["patient"]...), id)
	}
	return s.runSearch(c, typ, inPatient, "/Patient/"+id+"/"+typ, v)
}

// runSearch parses and runs a search; links are the parameters the paging
// links repeat on path.
func (s *Server) runSearch(c echo.Context, typ string, v url.Values, path string, links url.Values) error {
	q, err := fhir.ParseQuery(typ, v, strict(c))
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	pg, err := s.core.Search(ctx, p, q)
	if err != nil {
		return err
	}
	return s.writePage(c, pg, path, links)
}

// searchValues are a search's parameters: the URL's, and for a POST the
// form body's (application/x-www-form-urlencoded).
func searchValues(c echo.Context) (url.Values, error) {
	v := url.Values{}
	for k, vals := range c.QueryParams() {
		v[k] = append([]string(nil), vals...)
	}
	if c.Request().Method != http.MethodPost {
		return v, nil
	}
	body, _, err := readBody(c, maxSearchBody, "search", formType)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fhir.Errorf(fhir.CodeInvalidParameter, "the search form body could not be parsed")
	}
	for k, vals := range form {
		v[k] = append(v[k], vals...)
	}
	return v, nil
}

const maxSearchBody = 64 << 10

// everything serves Patient/{id}/$everything: GET with URL parameters, POST
// with a Parameters body (or a form), URL parameters counting too.
func (s *Server) everything(c echo.Context) error {
	v := url.Values{}
	for k, vals := range c.QueryParams() {
		v[k] = append([]string(nil), vals...)
	}
	if c.Request().Method == http.MethodPost {
		body, mt, err := readBody(c, fhir.MaxParametersBody, "Parameters", fhirJSON, plainJSON, formType)
		if err != nil {
			return err
		}
		bv, err := fhir.EverythingValues(body, mt == formType)
		if err != nil {
			return err
		}
		for k, vals := range bv {
			v[k] = append(v[k], vals...)
		}
	}
	e, err := fhir.ParseEverything(c.Param("id"), v, strict(c))
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	pg, err := s.core.Everything(ctx, p, e)
	if err != nil {
		return err
	}
	return s.writePage(c, pg, "/Patient/"+e.PatientID+"/$everything", v)
}

// getStructuredRecord serves POST /Patient/$getstructuredrecord.
func (s *Server) getStructuredRecord(c echo.Context) error {
	body, _, err := readBody(c, fhir.MaxParametersBody, "Parameters", fhirJSON, plainJSON)
	if err != nil {
		return err
	}
	sr, err := fhir.ParseStructuredRequest(body, strict(c))
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	col, err := s.core.StructuredRecord(ctx, p, sr)
	if err != nil {
		return err
	}
	return s.writeCollection(c, col)
}

// Request body media types.
const (
	fhirJSON  = "application/fhir+json"
	plainJSON = "application/json"
	formType  = "application/x-www-form-urlencoded"
)

// readBody reads a request body of at most max bytes whose media type is
// one of kinds (an empty body has none to check), and returns it with its
// media type. A FHIR version other than R4 in the media type is refused.
func readBody(c echo.Context, max int, what string, kinds ...string) ([]byte, string, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, int64(max)+1))
	if err != nil {
		return nil, "", fhir.Errorf(fhir.CodeBadRequest, "the request body could not be read")
	}
	if len(body) > max {
		return nil, "", fhir.Errorf(fhir.CodeBodyTooLarge, "the %s body is over %d bytes", what, max)
	}
	if len(body) == 0 {
		return body, "", nil
	}
	mt, params, err := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	ok := false
	for _, k := range kinds {
		ok = ok || (err == nil && mt == k)
	}
	if !ok {
		return nil, "", fhir.Errorf(fhir.CodeUnsupportedMediaType, "a %s body must be %s", what, strings.Join(kinds, " or "))
	}
	if v, has := params["fhirversion"]; has && !servedVersion(v) {
		return nil, "", fhir.Errorf(fhir.CodeUnsupportedMediaType, "the body is fhirVersion=%s; gpgate serves FHIR R4 (fhirVersion=4.0) only", truncate(v, 10))
	}
	return body, mt, nil
}
