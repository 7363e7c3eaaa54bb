package main

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gpgate/gpgate/consent/smart"
	"github.com/gpgate/gpgate/fhir"
)

// Health and metrics endpoints. /healthz (alive) is served on the main
// listener to anyone; /readyz and /metrics on --admin-listen when it is
// given, else on the main listener to loopback callers only (a remote
// caller gets 404, as for any unknown path).
const (
	pathHealthz = "/healthz"
	pathReadyz  = "/readyz"
	pathMetrics = "/metrics"
)

type health struct {
	draining *atomic.Bool
	state    *state
	auditor  *timedAuditor
	authz    *smart.Server
	regs     *liveRegistry
}

func (h *health) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz says whether this node should be sent requests: not draining, its
// state store answering, the audit log writable (the commit queue not
// full; after a failed durable write, not ready until the log answers
// again and a moment has passed — a node taken out of service gets no
// requests to prove the log recovered with, so readiness asks the log
// itself), a token-signing key. The practices' circuit states are
// reported; an open circuit fails only that practice, not the node.
func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := true
	fail := func(name, why string) { checks[name], ok = why, false }
	if h.draining.Load() {
		fail("lifecycle", "draining")
	} else {
		checks["lifecycle"] = "serving"
	}
	pctx, cancel := context.WithTimeout(r.Context(), time.Second)
	err := h.state.ping(pctx)
	cancel()
	if err != nil {
		fail("state-store", "unavailable")
	} else {
		checks["state-store"] = "ok"
	}
	st := h.auditor.st.Stats()
	failing, since := h.auditor.failing()
	switch {
	case st.QueueDepth >= 4000:
		fail("audit", "commit queue full")
	case failing && since < auditSettle:
		fail("audit", "a durable write failed just now")
	case failing && !h.auditAnswers(r.Context()):
		fail("audit", "the last durable write failed and the log does not answer")
	default:
		checks["audit"] = "ok"
	}
	if h.authz.SigningKeyID() == "" {
		fail("signing-key", "no active key")
	} else {
		checks["signing-key"] = "ok"
	}
	status := "ready"
	code := http.StatusOK
	if !ok {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	b, _ := json.Marshal(map[string]any{"status": status, "checks": checks, "sources": h.regs.circuits()})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// auditSettle is how long after a failed durable write a node stays not
// ready even when its log answers again.
const auditSettle = 2 * time.Second

// auditAnswers asks the audit log for its first entry, within a second.
func (h *health) auditAnswers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _, err := h.auditor.st.Get(ctx, 1)
	return err == nil
}

// loopbackOnly answers 404 to callers not on this host: the caller's
// address the server found (through a trusted balancer on this host, the
// address the balancer forwarded), else the TCP peer.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := fhir.ClientAddrFrom(r.Context())
		if host == "" {
			host, _, _ = net.SplitHostPort(r.RemoteAddr)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// stdLogger adapts slog to net/http's ErrorLog: TLS handshake failures
// and the like are logged at debug level (a scanner's noise), the rest as
// warnings.
type stdLogger = log.Logger

type slogWriter struct{ l *slog.Logger }

func (s slogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		s.l.Debug("http server", "msg", msg)
	} else {
		s.l.Warn("http server", "msg", msg)
	}
	return len(p), nil
}

func newStdLogger(l *slog.Logger) *log.Logger { return log.New(slogWriter{l}, "", 0) }
