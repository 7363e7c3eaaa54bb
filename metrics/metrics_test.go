package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestExposition(t *testing.T) {
	m := New("test")
	m.ObserveRequest("GET", "/:type/:id", 200, 3*time.Millisecond)
	m.ObserveRequest("GET", "/:type/:id", 999, time.Millisecond)
	m.TokenIssued()
	m.TokenRefused("unknown-client")
	m.AuthRefused("no-token")
	m.RateLimited("client")
	m.AuditRecorded(time.Millisecond, nil)
	m.SourceFetched("Y99001", 5*time.Millisecond, "SERVICE_UNAVAILABLE")
	m.WatchAudit(func() AuditStats {
		return AuditStats{QueueDepth: 2, Entries: 10, Commits: 4, ForwarderLag: map[string]uint64{"practice-trail": 3}}
	})
	m.WatchCircuits(func() map[string]string { return map[string]string{"Y99001": "half-open"} })
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(w.Body.String()))
	if err != nil {
		t.Fatalf("does not parse: %v\n%s", err, w.Body.String())
	}
	for _, tc := range []struct {
		name  string
		label string
		want  float64
	}{
		{"gpgate_http_requests_total", `status="200"`, 1},
		{"gpgate_http_requests_total", `status="other"`, 1},
		{"gpgate_tokens_total", `reason="unknown-client"`, 1},
		{"gpgate_audit_queue_depth", "", 2},
		{"gpgate_audit_forwarder_lag", `forwarder="practice-trail"`, 3},
		{"gpgate_source_circuit_state", `state="half-open"`, 1},
		{"gpgate_source_circuit_state", `state="open"`, 0},
		{"gpgate_source_errors_total", `code="SERVICE_UNAVAILABLE"`, 1},
	} {
		f, ok := fams[tc.name]
		if !ok {
			t.Errorf("no %s", tc.name)
			continue
		}
		found := false
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + `="` + l.GetValue() + `" `
			}
			if tc.label != "" && !strings.Contains(labels, tc.label) {
				continue
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if v == tc.want {
				found = true
			}
		}
		if !found {
			t.Errorf("%s{%s} != %v", tc.name, tc.label, tc.want)
		}
	}
}
