package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// scrape GETs /metrics, parses it with Prometheus's own text parser and
// returns its samples keyed by `name{label=value,...}` with the labels in a
// fixed order (histograms as _bucket{le=...}, _count and _sum).
func scrape(t *testing.T, h *harness) map[string]float64 {
	t.Helper()
	r := h.get(t, "/metrics")
	if ct := r.header.Get("Content-Type"); r.status != http.StatusOK || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics = %d %s, want 200 text/plain; version=0.0.4", r.status, ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("GET /metrics is not valid Prometheus text: %v\n%s", err, r.body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[seriesKey(name, labels)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[seriesKey(name, labels)] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[seriesKey(name+"_count", labels)] = float64(h.GetSampleCount())
				out[seriesKey(name+"_sum", labels)] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[seriesKey(name+"_bucket", map[string]string{"le": strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)})] =
						float64(b.GetCumulativeCount())
				}
				out[seriesKey(name+"_bucket", map[string]string{"le": "+Inf"})] = float64(h.GetSampleCount())
			}
		}
	}
	return out
}

func seriesKey(name string, labels map[string]string) string {
	var parts []string
	for _, l := range []string{"route", "code", "state", "outcome", "source", "le"} {
		if v, ok := labels[l]; ok {
			parts = append(parts, l+"="+v)
		}
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

func TestMetrics(t *testing.T) {
	faces, labels := loadFaces(t)
	fleet := &fakeFleet{instances: []elastiq.Instance{
		{ID: "i-1", State: elastiq.InstanceRunning},
		{ID: "i-2", State: elastiq.InstanceRunning},
		{ID: "i-3", State: elastiq.InstanceStopped},
	}}
	h := newHarness(t, testConfig(), fleet, labels)

	// Two requests waiting on the queue, no worker yet.
	for _, f := range faces[:2] {
		h.submit(t, "file", f)
	}
	m := scrape(t, h)
	for key, want := range map[string]float64{
		`elastiq_request_queue_messages{state=visible}`:                         2,
		`elastiq_request_queue_messages{state=in_flight}`:                       0,
		`elastiq_web_http_requests_total{route=POST /v1/recognitions,code=202}`: 2,
		`elastiq_fleet_instances{state=running}`:                                2,
		`elastiq_fleet_instances{state=stopped}`:                                1,
		`elastiq_fleet_instances{state=pending}`:                                0,
		`elastiq_web_metrics_source_up{source=request_queue}`:                   1,
		`elastiq_web_metrics_source_up{source=fleet}`:                           1,
		`elastiq_web_http_in_flight_requests{}`:                                 1, // the scrape itself
		`elastiq_web_waiting_requests{}`:                                        0,
		`elastiq_web_recognition_duration_seconds_count{}`:                      0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("before work: %s = %v (present %v), want %v", key, got, ok, want)
		}
	}

	h.worker.start(t, 1)
	for _, f := range faces[2:5] {
		if r := h.upload(t, "/", "myfile", f.name, f.data); r.status != http.StatusOK {
			t.Fatalf("POST / = %d %q, want 200", r.status, r.body)
		}
	}
	h.upload(t, "/", "myfile", "x.jpg", []byte("not an image"))
	h.get(t, "/nope")
	elastiqtest.Eventually(t, "all five results", func() bool { return testutil.ToFloat64(h.srv.metrics.responses.WithLabelValues(outcomeDone)) == 5 })

	m = scrape(t, h)
	for key, want := range map[string]float64{
		`elastiq_web_http_requests_total{route=POST /{$},code=200}`:    3,
		`elastiq_web_http_requests_total{route=POST /{$},code=400}`:    1,
		`elastiq_web_http_requests_total{route=unmatched,code=404}`:    1,
		`elastiq_web_http_requests_total{route=GET /metrics,code=200}`: 1,
		`elastiq_web_responses_total{outcome=done}`:                    5,
		`elastiq_web_recognition_duration_seconds_count{}`:             5,
		`elastiq_web_recognition_duration_seconds_bucket{le=+Inf}`:     5,
		`elastiq_request_queue_messages{state=visible}`:                0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("after work: %s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if _, ok := m[`elastiq_web_recognition_duration_seconds_bucket{le=0.001}`]; !ok {
		t.Errorf("histogram has no 1ms bucket")
	}
	if _, ok := m[`elastiq_web_recognition_duration_seconds_bucket{le=60}`]; !ok {
		t.Errorf("histogram has no 60s bucket")
	}

	// Sources that fail are reported down, and the scrape still works.
	h.requests.set(func(q *fakeQueue) { q.statsErr = errors.New("stats down") })
	fleet.setListErr(errors.New("ec2 down"))
	m = scrape(t, h)
	for key, want := range map[string]float64{
		`elastiq_web_metrics_source_up{source=request_queue}`: 0,
		`elastiq_web_metrics_source_up{source=fleet}`:         0,
	} {
		if got := m[key]; got != want {
			t.Errorf("sources failing: %s = %v, want %v", key, got, want)
		}
	}
	for _, key := range []string{`elastiq_request_queue_messages{state=visible}`, `elastiq_fleet_instances{state=running}`} {
		if _, ok := m[key]; ok {
			t.Errorf("sources failing: %s present, want it left out", key)
		}
	}
}
