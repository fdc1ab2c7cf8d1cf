package web

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Outcomes of a response message, for elastiq_web_responses_total.
const (
	outcomeDone        = "done"
	outcomeFailed      = "failed"
	outcomeDuplicate   = "duplicate"
	outcomeUndecodable = "undecodable"
)

// metrics are the web tier's metrics, in the program's registry
// (Deps.Registry) or one of the server's own, so that several servers in one
// process, as in tests, do not share one: its counters, and the queue depth
// and instances read from their sources on each scrape (sourceCollector).
type metrics struct {
	registry     *prometheus.Registry
	requests     *prometheus.CounterVec // route, code
	inFlight     prometheus.Gauge
	responses    *prometheus.CounterVec // outcome
	deadLetters  prometheus.Counter
	refusedConns prometheus.Counter
	latency      prometheus.Histogram
}

func newMetrics(s *Server, reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_web_http_requests_total", Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elastiq_web_http_in_flight_requests", Help: "HTTP requests being served, this scrape included.",
		}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastiq_web_responses_total", Help: "Response-queue messages handled, by outcome.",
		}, []string{"outcome"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_web_dead_letters_total",
			Help: "Requests answered as failed from the dead-letter queue (they failed on every delivery).",
		}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastiq_web_refused_connections_total",
			Help: "Connections answered 503 at once: over MaxConns, or over MaxConnsPerClient from one address.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "elastiq_web_recognition_duration_seconds",
			Help:    "Time from accepting a request to receiving its result.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	// Every outcome's series exists from the first scrape.
	for _, o := range []string{outcomeDone, outcomeFailed, outcomeDuplicate, outcomeUndecodable} {
		m.responses.WithLabelValues(o)
	}
	m.registry.MustRegister(
		m.requests, m.inFlight, m.responses, m.deadLetters, m.refusedConns, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "elastiq_web_store_up", Help: "1 if the last write to the object store worked, 0 if it failed (see /healthz).",
		}, func() float64 {
			if s.storeHealth.status() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "elastiq_web_waiting_requests", Help: "Requests waiting for their result (POST / and GET with ?wait=).",
		}, func() float64 { return float64(s.hub.waiters()) }),
		sourceCollector{s},
	)
	return m
}

func (m *metrics) observeResult(res elastiq.Result, now time.Time) {
	outcome := outcomeDone
	if res.Status != elastiq.StatusDone {
		outcome = outcomeFailed
	}
	m.responses.WithLabelValues(outcome).Inc()
	if !res.SubmittedAt.IsZero() {
		m.latency.Observe(max(now.Sub(res.SubmittedAt), 0).Seconds())
	}
}

// instrument counts requests by route pattern and status, and those in flight.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		// ServeMux sets r.Pattern on the request it routes; unmatched
		// requests (its own 404 and 405) have none.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		code := sw.status()
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		if isUpload(r.Pattern) && code >= 400 && code != statusClientClosed && code != http.StatusGatewayTimeout &&
			code != http.StatusInternalServerError {
			s.dash.rejected()
		}
	})
}

// isUpload tells whether a route pattern accepts images.
func isUpload(pattern string) bool {
	return pattern == "POST /{$}" || pattern == "POST /v1/recognitions" || pattern == "POST /v1/verify"
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
	s.metricsHandler.ServeHTTP(w, r)
	return nil
}

var (
	descQueue = prometheus.NewDesc("elastiq_request_queue_messages",
		"Approximate messages on the request queue, by state.", []string{"state"}, nil)
	descFleet = prometheus.NewDesc("elastiq_fleet_instances", "Worker instances, by state.", []string{"state"}, nil)
	descUp    = prometheus.NewDesc("elastiq_web_metrics_source_up",
		"1 if this scrape read the source, 0 if it failed.", []string{"source"}, nil)
)

// sourceCollector reads the request queue's depth and the fleet's instances
// on each scrape, within Config.MetricsTimeout. A source that cannot be read
// is reported down and its series are left out; the scrape goes on.
type sourceCollector struct{ s *Server }

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueue
	ch <- descFleet
	ch <- descUp
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.MetricsTimeout)
	defer cancel()
	src := s.readSources(ctx)
	stats, statsErr, instances, fleetErr := src.stats, src.statsErr, src.instances, src.fleetErr

	ch <- sourceUp("request_queue", statsErr)
	if statsErr != nil {
		s.log.Warn("metrics: read request queue stats", "err", statsErr)
	} else {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(stats.Visible), "visible")
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(stats.InFlight), "in_flight")
	}
	if s.fleet == nil {
		return
	}
	ch <- sourceUp("fleet", fleetErr)
	if fleetErr != nil {
		s.log.Warn("metrics: list fleet", "err", fleetErr)
		return
	}
	for _, sc := range instanceCounts(instances) {
		ch <- prometheus.MustNewConstMetric(descFleet, prometheus.GaugeValue, float64(sc.n), string(sc.state))
	}
}

// sourceReads are the request queue's depth and the fleet's instances, as read
// for a scrape or a dashboard sample.
type sourceReads struct {
	stats     elastiq.QueueStats
	statsErr  error
	instances []elastiq.Instance // nil without Deps.Fleet
	fleetErr  error
}

// readSources reads the queue and the fleet (if any) at once.
func (s *Server) readSources(ctx context.Context) sourceReads {
	var (
		src sourceReads
		wg  sync.WaitGroup
	)
	wg.Go(func() { src.stats, src.statsErr = s.requests.Stats(ctx) })
	if s.fleet != nil {
		wg.Go(func() { src.instances, src.fleetErr = s.fleet.List(ctx) })
	}
	wg.Wait()
	return src
}

func sourceUp(source string, err error) prometheus.Metric {
	v := 1.0
	if err != nil {
		v = 0
	}
	return prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, v, source)
}

type stateCount struct {
	state elastiq.InstanceState
	n     int
}

// instanceCounts counts instances by state. The known states are always
// reported, at zero if no instance is in them, so every series exists from
// the first scrape; states this build does not know of follow, sorted.
func instanceCounts(instances []elastiq.Instance) []stateCount {
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
	var out []stateCount
	for _, st := range append(states, unknown...) {
		out = append(out, stateCount{st, counts[st]})
	}
	return out
}
