package rest

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

// read serves GET /{type}/{id}.
func (s *Server) read(c echo.Context) error {
	ctx, p := principal(c)
	r, err := s.core.Read(ctx, p, c.Param("type"), c.Param("id"))
	if err != nil {
		return err
	}
	etag := etagOf(r.JSON)
	c.Response().Header().Set("ETag", etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && match == etag {
		return c.NoContent(http.StatusNotModified)
	}
	if !r.Ix.LastUpdated.IsZero() {
		c.Response().Header().Set("Last-Modified", r.Ix.LastUpdated.UTC().Format(http.TimeFormat))
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

// search serves GET /{type}?...
func (s *Server) search(c echo.Context) error {
	typ := c.Param("type")
	if !fhir.IsReadable(typ) {
		return fhir.Errorf(fhir.CodeUnknownResourceType, "resource type %q is not served", truncate(typ, 40))
	}
	q, err := fhir.ParseQuery(typ, c.QueryParams(), strict(c))
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	pg, err := s.core.Search(ctx, p, q)
	if err != nil {
		return err
	}
	return s.writePage(c, pg)
}

// everything serves GET /Patient/{id}/$everything.
func (s *Server) everything(c echo.Context) error {
	e, err := fhir.ParseEverything(c.Param("id"), c.QueryParams(), strict(c))
	if err != nil {
		return err
	}
	ctx, p := principal(c)
	pg, err := s.core.Everything(ctx, p, e)
	if err != nil {
		return err
	}
	return s.writePage(c, pg)
}

// getStructuredRecord serves POST /Patient/$getstructuredrecord.
func (s *Server) getStructuredRecord(c echo.Context) error {
	body, err := readBody(c, fhir.MaxParametersBody, "Parameters")
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

// readBody reads a request body of at most max bytes.
func readBody(c echo.Context, max int, what string) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, int64(max)+1))
	if err != nil {
		return nil, fhir.Errorf(fhir.CodeBadRequest, "the request body could not be read")
	}
	if len(body) > max {
		return nil, fhir.Errorf(fhir.CodeBodyTooLarge, "the %s body is over %d bytes", what, max)
	}
	return body, nil
}
