package scaler

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/elastiq/elastiq/services/scaler/cost"
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

// TestMetricsUsage: the fleet's time and cost are counted between
// evaluations, at the configured prices.
func TestMetricsUsage(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interval = time.Hour
	cfg.Prices = cost.Prices{Running: 3.6, Stopped: 0} // a dollar per 1000 s
	h := newHarness(t, cfg)
	m := NewMetrics(prometheus.NewRegistry())
	h.scaler.deps.Metrics = m
	h.queue.set(2, 0)
	h.scaler.evaluate(t.Context()) // launches 2
	h.scaler.evaluate(t.Context()) // sees them pending (the test double's launch)
	h.clock.Advance(90 * time.Second)
	h.scaler.evaluate(t.Context())

	for name, tt := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"instance_seconds{pending}": {m.instanceSeconds.WithLabelValues("pending"), 180},
		"instance_seconds{stopped}": {m.instanceSeconds.WithLabelValues("stopped"), 0},
		"billed_instance_seconds":   {m.billedSeconds, 180},
		"cost_dollars":              {m.costDollars, 0.18},
	} {
		if got := testutil.ToFloat64(tt.c); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, tt.want)
		}
	}
}
