package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a delivery, for elastiq_worker_messages_total.
const (
	OutcomeDone        = "done"        // classified, stored, answered, deleted
	OutcomeFailed      = "failed"      // answered as failed (no face, bad image...), deleted
	OutcomeDuplicate   = "duplicate"   // a redelivery answered from the stored output/
	OutcomeUndecodable = "undecodable" // not a request: deleted
	OutcomeError       = "error"       // a transient error: left for redelivery
)

// Metrics are a worker's Prometheus metrics. A Worker whose Deps.Metrics is
// nil records none.
type Metrics struct {
	received      prometheus.Counter
	messages      *prometheus.CounterVec // outcome
	classify      prometheus.Histogram
	receiveErrors prometheus.Counter
	extensions    prometheus.Counter
}

// NewMetrics makes a worker's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_worker_messages_received_total", Help: "Deliveries taken off the request queue."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_worker_messages_total", Help: "Deliveries handled, by outcome."}, []string{"outcome"}),
		classify: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "elastiq_worker_classify_duration_seconds", Help: "Time the classifier took per image.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}),
		receiveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_worker_receive_errors_total", Help: "Receives from the request queue that failed."}),
		extensions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_worker_visibility_extensions_total", Help: "Heartbeats that extended a message's visibility."}),
	}
	for _, o := range []string{OutcomeDone, OutcomeFailed, OutcomeDuplicate, OutcomeUndecodable, OutcomeError} {
		m.messages.WithLabelValues(o)
	}
	reg.MustRegister(m.received, m.messages, m.classify, m.receiveErrors, m.extensions)
	return m
}

func (m *Metrics) receivedN(n int) {
	if m != nil {
		m.received.Add(float64(n))
	}
}

func (m *Metrics) outcome(o string) {
	if m != nil {
		m.messages.WithLabelValues(o).Inc()
	}
}

func (m *Metrics) classified(d time.Duration) {
	if m != nil {
		m.classify.Observe(d.Seconds())
	}
}

func (m *Metrics) receiveError() {
	if m != nil {
		m.receiveErrors.Inc()
	}
}

func (m *Metrics) extended() {
	if m != nil {
		m.extensions.Inc()
	}
}
