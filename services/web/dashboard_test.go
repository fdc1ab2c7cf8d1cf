package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// fakeScaling is a test double of the scaler's report: fixed usage and
// events, answered after since as the scaler does; it counts calls.
type fakeScaling struct {
	mu     sync.Mutex
	usage  elastiq.FleetUsage
	events []elastiq.ScalingEvent
	calls  int
}

var _ ScalingReporter = (*fakeScaling)(nil)

func (f *fakeScaling) ScalingReport(_ context.Context, since time.Time) (elastiq.ScalingReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	rep := elastiq.ScalingReport{Usage: f.usage}
	for _, e := range f.events {
		if e.At.After(since) {
			rep.Events = append(rep.Events, e)
		}
	}
	return rep, nil
}

func (h *harness) series(t *testing.T, query string) DashboardSeries {
	t.Helper()
	r := h.get(t, "/dashboard/series"+query)
	if r.status != http.StatusOK {
		t.Fatalf("GET /dashboard/series%s = %d %q, want 200", query, r.status, r.body)
	}
	var s DashboardSeries
	if err := json.Unmarshal([]byte(r.body), &s); err != nil {
		t.Fatalf("decode series %q: %v", r.body, err)
	}
	return s
}

// TestDashboardSeries: the timeline counts what the web tier did in each
// interval, reads the queue, the fleet and the scaler, and answers from
// since on.
func TestDashboardSeries(t *testing.T) {
	faces, labels := loadFaces(t)
	fleet := &fakeFleet{instances: []elastiq.Instance{
		{ID: "i-1", State: elastiq.InstanceRunning},
		{ID: "i-2", State: elastiq.InstanceStopped},
		{ID: "i-3", State: elastiq.InstancePending},
	}}
	decided := time.Now().Add(-time.Minute)
	scaling := &fakeScaling{
		usage:  elastiq.FleetUsage{BilledSeconds: 120, CostDollars: 0.5},
		events: []elastiq.ScalingEvent{{At: decided, Launch: 2, Reason: "queue 3 > active 1"}},
	}
	cfg := testConfig()
	cfg.DashboardInterval = 50 * time.Millisecond
	h := newHarness(t, cfg, fleet, labels, func(d *Deps) { d.Scaling = scaling })
	h.worker.start(t, 1)

	for _, f := range faces[:3] {
		if r := h.upload(t, "/", "myfile", f.name, f.data); r.status != http.StatusOK {
			t.Fatalf("POST / = %d %q, want 200", r.status, r.body)
		}
	}
	if r := h.upload(t, "/", "myfile", "x.jpg", []byte("not an image")); r.status != http.StatusBadRequest {
		t.Fatalf("POST / of a non-image = %d, want 400", r.status)
	}

	var s DashboardSeries
	sum := func(f func(DashboardPoint) int) (n int) {
		for _, p := range s.Points {
			n += f(p)
		}
		return n
	}
	elastiqtest.Eventually(t, "the three answers in the timeline", func() bool {
		s = h.series(t, "")
		return sum(func(p DashboardPoint) int { return p.Done }) == 3
	})
	for name, tt := range map[string]struct{ got, want int }{
		"accepted": {sum(func(p DashboardPoint) int { return p.Accepted }), 3},
		"rejected": {sum(func(p DashboardPoint) int { return p.Rejected }), 1},
		"failed":   {sum(func(p DashboardPoint) int { return p.Failed }), 0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s over the window = %d, want %d", name, tt.got, tt.want)
		}
	}
	if s.IntervalMS != 50 || s.WindowMS != cfg.DashboardWindow.Milliseconds() {
		t.Errorf("interval, window = %d, %d ms; want 50, %d", s.IntervalMS, s.WindowMS, cfg.DashboardWindow.Milliseconds())
	}
	withLatency := 0
	for _, p := range s.Points {
		if p.P50 != nil {
			withLatency++
			if *p.P50 <= 0 || *p.P50 > *p.P95 || *p.P95 > *p.P99 {
				t.Errorf("point %d: p50, p95, p99 = %v, %v, %v; want 0 < p50 <= p95 <= p99", p.T, *p.P50, *p.P95, *p.P99)
			}
		}
	}
	if withLatency == 0 {
		t.Error("no point has latencies")
	}
	last := s.Points[len(s.Points)-1]
	if last.Running == nil || *last.Running != 1 || *last.Stopped != 1 || *last.Pending != 1 || *last.Stopping != 0 {
		t.Errorf("last point's fleet = running %v, stopped %v, pending %v; want 1, 1, 1", last.Running, last.Stopped, last.Pending)
	}
	if last.Visible == nil || *last.Visible != 0 {
		t.Errorf("last point's visible = %v, want 0", last.Visible)
	}
	if last.CostDollars == nil || *last.CostDollars != 0.5 || *last.BilledSeconds != 120 {
		t.Errorf("last point's cost = %v, billed %v; want 0.5, 120", last.CostDollars, last.BilledSeconds)
	}
	if len(s.Events) != 1 || s.Events[0].Launch != 2 || s.Events[0].Reason != "queue 3 > active 1" {
		t.Errorf("events = %+v, want the one launch, once (after many samples)", s.Events)
	}
	for src, err := range s.Sources {
		if err != "" {
			t.Errorf("source %s: %s, want no error", src, err)
		}
	}

	// From since on: nothing older, and the event only once.
	later := h.series(t, "?since="+strconv.FormatInt(last.T, 10))
	for _, p := range later.Points {
		if p.T <= last.T {
			t.Errorf("since=%d gave point %d", last.T, p.T)
		}
	}
	if len(later.Events) != 0 {
		t.Errorf("since=%d gave %d events, want 0 (the event is older)", last.T, len(later.Events))
	}
	if r := h.get(t, "/dashboard/series?since=yesterday"); r.status != http.StatusBadRequest || !strings.Contains(r.body, "since") {
		t.Errorf("GET /dashboard/series?since=yesterday = %d %q, want 400 naming since", r.status, r.body)
	}

	// A source that fails leaves its values null and says why.
	fleet.setListErr(errors.New("ec2 down"))
	elastiqtest.Eventually(t, "the fleet's error in the sources", func() bool {
		s = h.series(t, "")
		return strings.Contains(s.Sources["fleet"], "ec2 down")
	})
	if p := s.Points[len(s.Points)-1]; p.Running != nil {
		t.Errorf("with the fleet down, running = %d, want null", *p.Running)
	}
}

// TestDashboardWindow: points and events older than DashboardWindow go.
func TestDashboardWindow(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	scaling := &fakeScaling{events: []elastiq.ScalingEvent{{At: old, Terminate: 1, Reason: "idle"}}}
	cfg := testConfig()
	cfg.DashboardInterval = 20 * time.Millisecond
	cfg.DashboardWindow = 100 * time.Millisecond
	h := newHarness(t, cfg, nil, nil, func(d *Deps) { d.Scaling = scaling })
	elastiqtest.Eventually(t, "ten samples", func() bool {
		scaling.mu.Lock()
		defer scaling.mu.Unlock()
		return scaling.calls >= 10
	})
	s := h.series(t, "")
	if n := len(s.Points); n < 1 || n > 6 {
		t.Errorf("points in a 100 ms window sampled every 20 ms = %d, want 1 to 6", n)
	}
	if len(s.Events) != 0 {
		t.Errorf("events = %+v, want none (an hour old)", s.Events)
	}
	if p := s.Points[0]; p.Running != nil || p.CostDollars == nil {
		t.Errorf("without a fleet, running = %v (want null); with a scaler, cost = %v (want a value)", p.Running, p.CostDollars)
	}
}

// TestDashboardPage: the page and its files are served from the binary.
func TestDashboardPage(t *testing.T) {
	h := newHarness(t, testConfig(), nil, nil)
	for _, tt := range []struct {
		path, contentType, contains string
	}{
		{"/dashboard", "text/html", `src="dashboard/app.js"`},
		{"/dashboard/", "text/html", `src="dashboard/app.js"`}, // redirected
		{"/dashboard/app.js", "javascript", "dashboard/series"},
		{"/dashboard/app.css", "text/css", "--running"},
	} {
		r := h.get(t, tt.path)
		if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), tt.contentType) ||
			!strings.Contains(r.body, tt.contains) {
			t.Errorf("GET %s = %d %s, want 200 %s containing %q", tt.path, r.status, r.header.Get("Content-Type"), tt.contentType, tt.contains)
		}
	}
	if r := h.get(t, "/dashboard/nope.js"); r.status != http.StatusNotFound {
		t.Errorf("GET /dashboard/nope.js = %d, want 404", r.status)
	}
}

// TestDashboardLateEvent: a decision the scaler reports only after a point
// later than the decision was sampled (made while that point was being
// read) still reaches a page that already has that point: it comes with the
// next point, whatever its own time.
func TestDashboardLateEvent(t *testing.T) {
	_, labels := loadFaces(t)
	scaling := &fakeScaling{}
	cfg := testConfig()
	cfg.DashboardInterval = 50 * time.Millisecond
	h := newHarness(t, cfg, &fakeFleet{}, labels, func(d *Deps) { d.Scaling = scaling })

	var s DashboardSeries
	elastiqtest.Eventually(t, "a point in the timeline", func() bool {
		s = h.series(t, "")
		return len(s.Points) > 0
	})
	last := s.Points[len(s.Points)-1].T
	scaling.mu.Lock()
	scaling.events = []elastiq.ScalingEvent{{At: time.UnixMilli(last - 10), Start: 1, Reason: "late"}}
	scaling.mu.Unlock()
	elastiqtest.Eventually(t, "the late decision after the page's last point", func() bool {
		s = h.series(t, "?since="+strconv.FormatInt(last, 10))
		return len(s.Events) == 1 && s.Events[0].Reason == "late"
	})
}
