package rest

import (
	"time"

	"github.com/labstack/echo/v4"
)

// Observer is told of every answered request, by route pattern (never the
// path: paths carry patient ids), for metrics.
type Observer interface {
	ObserveRequest(method, route string, status int, elapsed time.Duration)
}

// observe reports each request to the Observer. It sits outside the access
// log, which renders errors, so the status is the one answered.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	if s.cfg.Observer == nil {
		return next
	}
	return func(c echo.Context) error {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				s.cfg.Observer.ObserveRequest(c.Request().Method, c.Path(), 500, time.Since(start))
				panic(r)
			}
		}()
		err := next(c)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		if err != nil && !c.Response().Committed {
			status = 500
		}
		s.cfg.Observer.ObserveRequest(c.Request().Method, route, status, time.Since(start))
		return err
	}
}
