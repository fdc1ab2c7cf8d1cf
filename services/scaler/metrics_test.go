package scaler

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics: an evaluation's observation, decision and action, and the
// nudges, are recorded.
func TestMetrics(t *testing.T) {
	h := newHarness(t, Config{Interval: time.Hour, ActionTimeout: testTimeout})
	m := NewMetrics(prometheus.NewRegistry())
	h.scaler.deps.Metrics = m
	h.queue.set(2, 0)
	h.scaler.NudgeN(2)
	h.scaler.evaluate(t.Context())

	for name, c := range map[string]prometheus.Collector{
		"evaluations":                m.evaluations,
		"decisions{launch}":          m.decisions.WithLabelValues(ActionLaunch),
		"instances{launch}":          m.instances.WithLabelValues(ActionLaunch),
		"observed_messages{visible}": m.messages.WithLabelValues("visible"),
		"nudged requests":            m.arrivals,
	} {
		want := map[string]float64{"evaluations": 1, "decisions{launch}": 1, "instances{launch}": 2,
			"observed_messages{visible}": 2, "nudged requests": 2}[name]
		if got := testutil.ToFloat64(c); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(ActionLaunch)); got != 0 {
		t.Errorf("action errors{launch} = %v, want 0", got)
	}
}
