package web

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// The dashboard (GET /dashboard) is a page of live charts drawn in the
// browser from GET /dashboard/series, a timeline the server samples every
// Config.DashboardInterval and keeps for Config.DashboardWindow: what the web
// tier counted in each interval (requests accepted and rejected, answers by
// outcome, latency percentiles), the request queue and the fleet as read at
// the end of it, and from the scaler (Deps.Scaling) the fleet's usage and
// cost and the scaling decisions with their reasons. The page and its
// script are embedded in the binary; it needs no network beyond this server.

//go:embed dashboard
var dashboardFiles embed.FS

// ScalingReporter tells the dashboard what the scaler did and what the fleet
// cost: the embedded program's scaler itself, or a ScalerClient for a scaler
// in another process.
type ScalingReporter interface {
	ScalingReport(ctx context.Context, since time.Time) (elastiq.ScalingReport, error)
}

// maxLatencySamples bounds the latencies kept per interval for its
// percentiles; beyond it they are a uniform sample (reservoir sampling).
const maxLatencySamples = 4096

// DashboardPoint is one interval of the dashboard's timeline. Counts are
// of the interval; gauges are as read at its end, null when their source
// could not be read (or, for the fleet and usage, is not configured).
type DashboardPoint struct {
	// T is the end of the interval, in Unix milliseconds.
	T        int64 `json:"t"`
	Accepted int   `json:"accepted"`
	Rejected int   `json:"rejected"`
	Done     int   `json:"done"`
	Failed   int   `json:"failed"`
	// DeadLetters of the failed were answered from the dead-letter queue.
	DeadLetters int `json:"dead_letters"`
	// Latency percentiles of the answers in the interval, in seconds,
	// from acceptance to result; null without answers.
	P50 *float64 `json:"p50"`
	P95 *float64 `json:"p95"`
	P99 *float64 `json:"p99"`
	// The request queue.
	Visible  *int `json:"visible"`
	InFlight *int `json:"in_flight"`
	// The fleet's instances by state.
	Pending  *int `json:"pending"`
	Running  *int `json:"running"`
	Stopping *int `json:"stopping"`
	Stopped  *int `json:"stopped"`
	// The fleet's usage since the scaler started (elastiq.FleetUsage).
	BilledSeconds *float64 `json:"billed_seconds"`
	CostDollars   *float64 `json:"cost_dollars"`
}

// DashboardSeries is the answer of GET /dashboard/series.
type DashboardSeries struct {
	// IntervalMS is the time between points; WindowMS how far back they go.
	IntervalMS int64 `json:"interval_ms"`
	WindowMS   int64 `json:"window_ms"`
	// Points after the request's since, oldest first.
	Points []DashboardPoint `json:"points"`
	// Events are the scaling decisions that came with the points after
	// since: each comes with the first point sampled after the scaler
	// reported it, and its time may be earlier than that point's (a
	// decision made while the point was being sampled).
	Events []elastiq.ScalingEvent `json:"events"`
	// Sources names each source the latest point read and its error, if
	// it failed ("" when it was read).
	Sources map[string]string `json:"sources"`
}

// timeline holds the dashboard's counts for the interval under way and the
// points of the window.
type timeline struct {
	mu        sync.Mutex
	cur       DashboardPoint
	latencies []float64
	answered  int // answers this interval, for the reservoir
	points    []DashboardPoint
	events    []sampledEvent
	sources   map[string]string
}

// sampledEvent is a scaling decision and the time (Unix ms) of the point
// whose sample read it: what a page that has the points up to since has
// not been sent yet.
type sampledEvent struct {
	elastiq.ScalingEvent
	point int64
}

func (tl *timeline) accepted() { tl.mu.Lock(); tl.cur.Accepted++; tl.mu.Unlock() }
func (tl *timeline) rejected() { tl.mu.Lock(); tl.cur.Rejected++; tl.mu.Unlock() }

func (tl *timeline) deadLetter() { tl.mu.Lock(); tl.cur.DeadLetters++; tl.mu.Unlock() }

// result counts an answer and its latency.
func (tl *timeline) result(res elastiq.Result, now time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if res.Status == elastiq.StatusDone {
		tl.cur.Done++
	} else {
		tl.cur.Failed++
	}
	if res.SubmittedAt.IsZero() {
		return
	}
	lat := max(now.Sub(res.SubmittedAt), 0).Seconds()
	tl.answered++
	if len(tl.latencies) < maxLatencySamples {
		tl.latencies = append(tl.latencies, lat)
	} else if i := rand.IntN(tl.answered); i < maxLatencySamples {
		tl.latencies[i] = lat
	}
}

// sampleDashboard closes an interval every DashboardInterval until ctx
// ends.
func (s *Server) sampleDashboard(ctx context.Context) {
	t := time.NewTicker(s.cfg.DashboardInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample(ctx)
		}
	}
}

// sample reads the queue, the fleet and the scaler within MetricsTimeout
// and closes the interval under way.
func (s *Server) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MetricsTimeout)
	defer cancel()
	tl := s.dash
	tl.mu.Lock()
	since := time.Time{}
	if n := len(tl.events); n > 0 {
		since = tl.events[n-1].At
	}
	tl.mu.Unlock()

	var (
		wg        sync.WaitGroup
		src       sourceReads
		report    elastiq.ScalingReport
		reportErr error
	)
	if s.scaling != nil {
		wg.Go(func() { report, reportErr = s.scaling.ScalingReport(ctx, since) })
	}
	src = s.readSources(ctx)
	wg.Wait()
	stats, statsErr, instances, fleetErr := src.stats, src.statsErr, src.instances, src.fleetErr
	now := s.now()

	sources := map[string]string{"request_queue": errText(statsErr)}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	p := tl.cur
	p.T = now.UnixMilli()
	if statsErr == nil {
		p.Visible, p.InFlight = &stats.Visible, &stats.InFlight
	}
	if s.fleet != nil {
		sources["fleet"] = errText(fleetErr)
		if fleetErr == nil {
			counts := make(map[elastiq.InstanceState]int)
			for _, in := range instances {
				counts[in.State]++
			}
			n := func(st elastiq.InstanceState) *int { v := counts[st]; return &v }
			p.Pending, p.Running = n(elastiq.InstancePending), n(elastiq.InstanceRunning)
			p.Stopping, p.Stopped = n(elastiq.InstanceStopping), n(elastiq.InstanceStopped)
		}
	}
	if s.scaling != nil {
		sources["scaler"] = errText(reportErr)
		if reportErr == nil {
			p.BilledSeconds, p.CostDollars = &report.Usage.BilledSeconds, &report.Usage.CostDollars
			for _, e := range report.Events {
				if e.At.After(since) {
					tl.events = append(tl.events, sampledEvent{e, p.T})
				}
			}
		}
	}
	if len(tl.latencies) > 0 {
		slices.Sort(tl.latencies)
		q := func(f float64) *float64 { v := tl.latencies[int(f*float64(len(tl.latencies)-1)+0.5)]; return &v }
		p.P50, p.P95, p.P99 = q(0.50), q(0.95), q(0.99)
	}
	tl.cur, tl.latencies, tl.answered = DashboardPoint{}, tl.latencies[:0], 0
	tl.sources = sources

	cutoff := now.Add(-s.cfg.DashboardWindow)
	tl.points = append(tl.points, p)
	if i := slices.IndexFunc(tl.points, func(p DashboardPoint) bool { return p.T >= cutoff.UnixMilli() }); i > 0 {
		tl.points = slices.Delete(tl.points, 0, i)
	}
	if i := slices.IndexFunc(tl.events, func(e sampledEvent) bool { return !e.At.Before(cutoff) }); i > 0 {
		tl.events = slices.Delete(tl.events, 0, i)
	} else if i < 0 {
		tl.events = tl.events[:0]
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// handleDashboardSeries is GET /dashboard/series?since=T (Unix
// milliseconds; default: the whole window).
func (s *Server) handleDashboardSeries(w http.ResponseWriter, r *http.Request) error {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fail(errInvalid, "since: want a time in Unix milliseconds")
		}
	}
	tl := s.dash
	tl.mu.Lock()
	out := DashboardSeries{
		IntervalMS: s.cfg.DashboardInterval.Milliseconds(),
		WindowMS:   s.cfg.DashboardWindow.Milliseconds(),
		Points:     []DashboardPoint{},
		Events:     []elastiq.ScalingEvent{},
		Sources:    tl.sources,
	}
	for _, p := range tl.points {
		if p.T > since {
			out.Points = append(out.Points, p)
		}
	}
	for _, e := range tl.events {
		if e.point > since {
			out.Events = append(out.Events, e.ScalingEvent)
		}
	}
	body, err := json.Marshal(out)
	tl.mu.Unlock()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
	return nil
}

// dashboardAssets serves the page (GET /dashboard) and its script and
// style (GET /dashboard/{file}).
func dashboardAssets() http.Handler {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded folder is part of the build
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dashboard":
			http.ServeFileFS(w, r, sub, "index.html")
			return
		case "/dashboard/": // the page's relative links want no slash
			http.Redirect(w, r, "/dashboard", http.StatusMovedPermanently)
			return
		}
		http.StripPrefix("/dashboard", files).ServeHTTP(w, r)
	})
}
