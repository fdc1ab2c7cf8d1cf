package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics: each delivery is counted once, by outcome, and each
// classification is timed.
func TestMetrics(t *testing.T) {
	h := newHarness(t, func(ctx context.Context, image []byte) (string, error) {
		if string(image) == "no face" {
			return "", errors.New("no face found")
		}
		return labelByContent(ctx, image)
	}, nil)
	reg := prometheus.NewRegistry()
	h.worker.deps.Metrics = NewMetrics(reg)

	_, ann := h.submit(t, "a.jpg", []byte("face of Ann"))
	_, bad := h.submit(t, "b.jpg", []byte("no face"))
	h.requests.push(ann)
	h.requests.push(bad)
	h.requests.pushDelivery(ann, 2) // a redelivery: answered from output/
	h.requests.push([]byte("not a request"))
	h.runUntilIdle(t)

	m := h.worker.deps.Metrics
	for outcome, want := range map[string]float64{
		OutcomeDone: 1, OutcomeFailed: 1, OutcomeDuplicate: 1, OutcomeUndecodable: 1, OutcomeError: 0,
	} {
		if got := testutil.ToFloat64(m.messages.WithLabelValues(outcome)); got != want {
			t.Errorf("messages{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.ToFloat64(m.received); got != 4 {
		t.Errorf("received = %v, want 4", got)
	}
	if n, err := testutil.GatherAndCount(reg, "elastiq_worker_classify_duration_seconds"); err != nil || n != 1 {
		t.Errorf("classify histogram series = %d, %v; want 1", n, err)
	}
	if got := histogramCount(t, reg, "elastiq_worker_classify_duration_seconds"); got != 2 {
		t.Errorf("classifications timed = %d, want 2 (Ann, and the image with no face)", got)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
