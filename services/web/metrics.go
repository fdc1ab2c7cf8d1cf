package web

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/web/internal/promtext"
)

// Outcomes of a response message, for elastiq_web_responses_total.
const (
	outcomeDone        = "done"
	outcomeFailed      = "failed"
	outcomeDuplicate   = "duplicate"
	outcomeUndecodable = "undecodable"
)

// metrics are the web tier's own counters; queue depth and instances are
// read from their sources on each scrape.
type metrics struct {
	requests  *promtext.CounterVec // route, code
	inFlight  atomic.Int64
	responses *promtext.CounterVec // outcome
	latency   *promtext.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		requests:  promtext.NewCounterVec("route", "code"),
		responses: promtext.NewCounterVec("outcome"),
		latency: promtext.NewHistogram(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
			1, 2.5, 5, 10, 30, 60),
	}
}

func (m *metrics) observeResult(res elastiq.Result, now time.Time) {
	outcome := outcomeDone
	if res.Status != elastiq.StatusDone {
		outcome = outcomeFailed
	}
	m.responses.Inc(outcome)
	if !res.SubmittedAt.IsZero() {
		m.latency.Observe(max(now.Sub(res.SubmittedAt), 0).Seconds())
	}
}

// instrument counts requests by route pattern and status, and those in flight.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.inFlight.Add(1)
		defer s.metrics.inFlight.Add(-1)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		// ServeMux sets r.Pattern on the request it routes; unmatched
		// requests (its own 404 and 405) have none.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.metrics.requests.Inc(route, strconv.Itoa(sw.status()))
	})
}

// statusWriter records the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// handleMetrics is GET /metrics in the Prometheus text format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.MetricsTimeout)
	defer cancel()
	var (
		wg        sync.WaitGroup
		stats     elastiq.QueueStats
		statsErr  error
		instances []elastiq.Instance
		fleetErr  error
	)
	wg.Go(func() { stats, statsErr = s.requests.Stats(ctx) })
	if s.fleet != nil {
		wg.Go(func() { instances, fleetErr = s.fleet.List(ctx) })
	}
	wg.Wait()

	var buf bytes.Buffer
	pw := promtext.NewWriter(&buf)
	pw.Counter("elastiq_web_http_requests_total", "HTTP requests answered, by route pattern and status code.",
		s.metrics.requests.Samples()...)
	pw.Gauge("elastiq_web_http_in_flight_requests", "HTTP requests being served, this scrape included.",
		promtext.Sample{Value: float64(s.metrics.inFlight.Load())})
	pw.Gauge("elastiq_web_waiting_requests", "Requests waiting for their result (POST / and GET with ?wait=).",
		promtext.Sample{Value: float64(s.hub.waiters())})
	pw.Counter("elastiq_web_responses_total", "Response-queue messages handled, by outcome.",
		s.metrics.responses.Samples()...)
	pw.Histogram("elastiq_web_recognition_duration_seconds",
		"Time from accepting a request to receiving its result.", s.metrics.latency.Snapshot())

	up := []promtext.Sample{sourceUp("request_queue", statsErr)}
	if statsErr != nil {
		s.log.Warn("metrics: read request queue stats", "err", statsErr)
	} else {
		pw.Gauge("elastiq_request_queue_messages", "Approximate messages on the request queue, by state.",
			promtext.Sample{Labels: []promtext.Label{{Name: "state", Value: "visible"}}, Value: float64(stats.Visible)},
			promtext.Sample{Labels: []promtext.Label{{Name: "state", Value: "in_flight"}}, Value: float64(stats.InFlight)})
	}
	if s.fleet != nil {
		up = append(up, sourceUp("fleet", fleetErr))
		if fleetErr != nil {
			s.log.Warn("metrics: list fleet", "err", fleetErr)
		} else {
			pw.Gauge("elastiq_fleet_instances", "Worker instances, by state.", instanceSamples(instances)...)
		}
	}
	pw.Gauge("elastiq_web_metrics_source_up", "1 if this scrape read the source, 0 if it failed.", up...)

	if err := pw.Err(); err != nil { // writes to a bytes.Buffer do not fail
		return err
	}
	w.Header().Set("Content-Type", promtext.ContentType)
	_, _ = w.Write(buf.Bytes()) // a write error means the client is gone
	return nil
}

func sourceUp(source string, err error) promtext.Sample {
	v := 1.0
	if err != nil {
		v = 0
	}
	return promtext.Sample{Labels: []promtext.Label{{Name: "source", Value: source}}, Value: v}
}

// instanceSamples counts instances by state. The known states are always
// reported, at zero if no instance is in them, so every series exists from
// the first scrape; states this build does not know of follow, sorted.
func instanceSamples(instances []elastiq.Instance) []promtext.Sample {
	counts := make(map[elastiq.InstanceState]int)
	for _, in := range instances {
		counts[in.State]++
	}
	states := []elastiq.InstanceState{
		elastiq.InstancePending, elastiq.InstanceRunning, elastiq.InstanceStopping,
		elastiq.InstanceStopped, elastiq.InstanceShuttingDown, elastiq.InstanceTerminated,
	}
	var unknown []elastiq.InstanceState
	for st := range counts {
		if !slices.Contains(states, st) {
			unknown = append(unknown, st)
		}
	}
	slices.Sort(unknown)
	var out []promtext.Sample
	for _, st := range append(states, unknown...) {
		out = append(out, promtext.Sample{Labels: []promtext.Label{{Name: "state", Value: string(st)}}, Value: float64(counts[st])})
	}
	return out
}
