package rest

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/gpgate/gpgate/fhir"
)

const contentType = "application/fhir+json; charset=utf-8"

// negotiate answers 406 to requests that want a format other than FHIR JSON
// (by Accept or _format), and 415 to bodies that are not JSON.
func (s *Server) negotiate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if f := r.URL.Query().Get("_format"); f != "" && !jsonFormat(f) {
			return fhir.Errorf(fhir.CodeNotAcceptable, "only FHIR JSON is served (_format=json or application/fhir+json)")
		}
		if a := r.Header.Get("Accept"); a != "" && !acceptsJSON(a) {
			return fhir.Errorf(fhir.CodeNotAcceptable, "only application/fhir+json is served")
		}
		if r.Method == http.MethodPost && r.ContentLength != 0 {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || !(mt == "application/fhir+json" || mt == "application/json") {
				return fhir.Errorf(fhir.CodeUnsupportedMediaType, "request bodies must be application/fhir+json")
			}
		}
		return next(c)
	}
}

func jsonFormat(f string) bool {
	switch strings.ToLower(strings.TrimSpace(f)) {
	case "json", "application/json", "application/fhir+json", "application/json+fhir":
		return true
	}
	mt, _, err := mime.ParseMediaType(f)
	return err == nil && (mt == "application/fhir+json" || mt == "application/json")
}

// acceptsJSON reports whether an Accept header admits FHIR JSON.
func acceptsJSON(accept string) bool {
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
			return true
		}
	}
	return false
}

func (s *Server) writeJSON(c echo.Context, status int, body []byte) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, contentType)
	h.Set("Cache-Control", "no-store")
	return c.Blob(status, contentType, body)
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
