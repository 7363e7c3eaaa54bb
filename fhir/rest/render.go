package rest

import (
	"compress/gzip"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gpgate/gpgate/fhir"
)

const contentType = "application/fhir+json; charset=utf-8"

// ctxVersioned marks a request that named fhirVersion=4.0: its answer's
// Content-Type names it too.
const ctxVersioned = "gpgate.fhirVersion"

// negotiate answers 406 to requests that want anything but FHIR R4 JSON.
// _format, when given, decides alone (it overrides Accept, as FHIR says);
// otherwise Accept does. A fhirVersion media-type parameter must name R4
// (4.0). Request bodies are checked by the handlers that read them.
func (s *Server) negotiate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if f := r.URL.Query().Get("_format"); f != "" {
			ok, versioned, why := formatOK(f)
			if !ok {
				return fhir.Errorf(fhir.CodeNotAcceptable, "_format=%s: %s", truncate(f, 60), why)
			}
			if versioned {
				c.Set(ctxVersioned, true)
			}
			return next(c)
		}
		if a := r.Header.Get("Accept"); a != "" {
			ok, versioned, why := acceptsJSON(a)
			if !ok {
				return fhir.Errorf(fhir.CodeNotAcceptable, "Accept: %s", why)
			}
			if versioned {
				c.Set(ctxVersioned, true)
			}
		}
		return next(c)
	}
}

const onlyJSON = "only FHIR JSON is served (application/fhir+json, or _format=json)"

// servedVersion reports a fhirVersion parameter value naming R4.
func servedVersion(v string) bool {
	switch strings.TrimSpace(v) {
	case "4.0", "4.0.1":
		return true
	}
	return false
}

// formatOK reads a _format value: json, or a JSON media type (with an R4
// fhirVersion, if any).
func formatOK(f string) (ok, versioned bool, why string) {
	switch strings.ToLower(strings.TrimSpace(f)) {
	case "json", "application/json", "application/fhir+json", "application/json+fhir":
		return true, false, ""
	}
	mt, params, err := mime.ParseMediaType(f)
	if err != nil || !(mt == "application/fhir+json" || mt == "application/json") {
		return false, false, onlyJSON
	}
	if v, has := params["fhirversion"]; has {
		if !servedVersion(v) {
			return false, false, "fhirVersion=" + truncate(v, 10) + " is not served: gpgate serves FHIR R4 (fhirVersion=4.0) only"
		}
		return true, true, ""
	}
	return true, false, ""
}

// acceptsJSON reports whether an Accept header admits FHIR R4 JSON, whether
// the range that admits it names fhirVersion, and if not, why.
func acceptsJSON(accept string) (ok, versioned bool, why string) {
	why = onlyJSON
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/fhir+json", "application/json", "application/json+fhir":
		default:
			continue
		}
		if v, has := params["fhirversion"]; has {
			if !servedVersion(v) {
				why = "fhirVersion=" + truncate(v, 10) + " is not served: gpgate serves FHIR R4 (fhirVersion=4.0) only"
				continue
			}
			return true, true, ""
		}
		return true, false, ""
	}
	return false, false, why
}

// responseType is the Content-Type of a FHIR answer.
func responseType(c echo.Context) string {
	if v, _ := c.Get(ctxVersioned).(bool); v {
		return contentType + "; fhirVersion=4.0"
	}
	return contentType
}

func (s *Server) writeJSON(c echo.Context, status int, body []byte) error {
	ct := responseType(c)
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, ct)
	h.Set("Cache-Control", "no-store")
	return c.Blob(status, ct, body)
}

// gzipWhenAsked compresses answers for clients that accept gzip (a
// q-value of 0 refuses it), streaming: the compressor writes as the answer
// is written, nothing is held whole twice. Small answers go uncompressed.
func gzipWhenAsked() echo.MiddlewareFunc {
	gz := middleware.GzipWithConfig(middleware.GzipConfig{Level: gzip.BestSpeed, MinLength: 1024,
		// Prometheus' handler negotiates its own compression: compressing
		// it again would send a gzip of a gzip.
		Skipper: func(c echo.Context) bool { return c.Request().URL.Path == "/metrics" }})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		zipped := gz(next)
		return func(c echo.Context) error {
			if acceptsGzip(c.Request().Header.Get("Accept-Encoding")) && c.Request().URL.Path != "/metrics" {
				return zipped(c)
			}
			c.Response().Header().Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
			return next(c)
		}
	}
}

func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
			return false
		}
		return true
	}
	return false
}

// handleError is the one error renderer: every error leaves as an
// OperationOutcome with the status its code carries. Unknown errors are a
// generic 500; their detail goes to the log only.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var fe *fhir.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &fe):
	case errors.As(err, &he):
		fe = fromHTTPError(he, c)
	default:
		fe = fhir.Internal(err)
	}
	fe = fhir.AsError(fe)
	if fe.Code == fhir.CodeInternal {
		s.log.Error("internal error", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "route", c.Path(), "err", fe.Cause)
	}
	if ch, ok := err.(interface{ Challenge() string }); ok && fe.Status() == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", ch.Challenge())
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(fe.Status())
		return
	}
	_ = s.writeJSON(c, fe.Status(), fe.OperationOutcome())
}

func fromHTTPError(he *echo.HTTPError, c echo.Context) *fhir.Error {
	switch he.Code {
	case http.StatusNotFound:
		return fhir.Errorf(fhir.CodeUnknownResourceType, "no such endpoint")
	case http.StatusMethodNotAllowed:
		return fhir.Errorf(fhir.CodeMethodNotAllowed, "method %s is not supported here", c.Request().Method)
	case http.StatusRequestEntityTooLarge:
		return fhir.Errorf(fhir.CodeBodyTooLarge, "the request body is over the size limit")
	case http.StatusServiceUnavailable:
		return fhir.Errorf(fhir.CodeTimeout, "the request timed out")
	case http.StatusBadRequest:
		return fhir.Errorf(fhir.CodeBadRequest, "the request could not be parsed")
	case http.StatusUnauthorized:
		return fhir.Errorf(fhir.CodeUnauthorized, "authentication is required")
	}
	if he.Code >= 400 && he.Code < 500 {
		return fhir.Errorf(fhir.CodeBadRequest, "bad request")
	}
	return fhir.Internal(he)
}
