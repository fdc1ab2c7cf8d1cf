package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics of elastiq's web tier that a series records (see services/web),
// both labelled by state.
const (
	metricQueue     = "elastiq_request_queue_messages" // state: visible, in_flight
	metricInstances = "elastiq_fleet_instances"        // state: pending, running, ...
)

// instanceStates orders the instance columns of a series: EC2's states, then
// any other state the service reports, sorted.
var instanceStates = []string{"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}

// counters are the load generator's running totals over all rounds, read by
// the series sampler while requests are in flight.
type counters struct {
	sent, answered, correct atomic.Int64
}

// sample is one row of a series: the load generator's totals and, if the
// scrape worked, the service's queue and fleet by state.
type sample struct {
	At                      time.Duration // since the sampler started
	Sent, Answered, Correct int64
	Scraped                 bool
	Queue                   map[string]float64 // by state
	Instances               map[string]float64 // by state
}

// sampler records a series: every interval it reads the counters and
// scrapes the service's GET /metrics.
type sampler struct {
	client   *http.Client
	metrics  string // URL of GET /metrics
	every    time.Duration
	counters *counters

	start    time.Time
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	rows     []sample // written by the sampling goroutine until Close returns
	firstErr error    // of the first failed scrape, likewise
}

// startSampler starts sampling at once and then every interval until Close.
func startSampler(ctx context.Context, client *http.Client, target *url.URL, every time.Duration, c *counters) *sampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &sampler{
		client: client, metrics: target.ResolveReference(&url.URL{Path: "/metrics"}).String(),
		every: every, counters: c, start: time.Now(), cancel: cancel,
	}
	s.wg.Go(func() { s.loop(ctx) })
	return s
}

func (s *sampler) loop(ctx context.Context) {
	ticker := time.NewTicker(s.every)
	defer ticker.Stop()
	for {
		s.rows = append(s.rows, s.sample(ctx))
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Close stops sampling, takes a last sample unless ctx is done, and returns
// the series and the error of the first scrape that failed, if any did.
func (s *sampler) Close(ctx context.Context) ([]sample, error) {
	s.cancel()
	s.wg.Wait()
	if ctx.Err() == nil {
		s.rows = append(s.rows, s.sample(ctx))
	}
	return s.rows, s.firstErr
}

func (s *sampler) sample(ctx context.Context) sample {
	row := sample{
		At:       time.Since(s.start),
		Sent:     s.counters.sent.Load(),
		Answered: s.counters.answered.Load(),
		Correct:  s.counters.correct.Load(),
	}
	gauges, err := s.scrape(ctx)
	if err != nil {
		if s.firstErr == nil && ctx.Err() == nil {
			s.firstErr = err
		}
		return row
	}
	row.Scraped = true
	row.Queue = gauges[metricQueue]
	row.Instances = gauges[metricInstances]
	return row
}

func (s *sampler) scrape(ctx context.Context) (map[string]map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metrics, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.metrics, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.metrics, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		return nil, fmt.Errorf("scrape %s: HTTP %d", s.metrics, resp.StatusCode)
	}
	gauges, err := parseStateGauges(resp.Body, metricQueue, metricInstances)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.metrics, err)
	}
	return gauges, nil
}

// parseStateGauges reads the Prometheus text format with Prometheus's own
// parser and returns, for each of the named metrics, its values by the value
// of their "state" label ("" for none). Other metrics and labels are skipped.
func parseStateGauges(r io.Reader, names ...string) (map[string]map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]float64)
	for _, name := range names {
		f, ok := fams[name]
		if !ok {
			continue
		}
		out[name] = make(map[string]float64)
		for _, m := range f.GetMetric() {
			state := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" {
					state = l.GetValue()
				}
			}
			switch {
			case m.Gauge != nil:
				out[name][state] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[name][state] = m.GetCounter().GetValue()
			case m.Untyped != nil:
				out[name][state] = m.GetUntyped().GetValue()
			}
		}
	}
	return out, nil
}

// writeSeries writes a series as CSV: one row per sample with the time in
// seconds, the load generator's totals, the request queue by state and the
// instances by state. A cell is empty where the scrape failed.
func writeSeries(w io.Writer, rows []sample) error {
	states := slices.Clone(instanceStates)
	var extra []string
	for _, r := range rows {
		for st := range r.Instances {
			if !slices.Contains(states, st) && !slices.Contains(extra, st) {
				extra = append(extra, st)
			}
		}
	}
	slices.Sort(extra)
	states = append(states, extra...)

	header := []string{"t_s", "sent", "answered", "correct", "queue_visible", "queue_in_flight"}
	for _, st := range states {
		header = append(header, "instances_"+st)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	cell := func(m map[string]float64, key string, scraped bool) string {
		v, ok := m[key]
		switch {
		case ok:
			return strconv.FormatFloat(v, 'f', -1, 64)
		case scraped && m != nil:
			return "0" // the metric was there, this state was not
		default:
			return ""
		}
	}
	for _, r := range rows {
		rec := []string{
			strconv.FormatFloat(r.At.Seconds(), 'f', 3, 64),
			strconv.FormatInt(r.Sent, 10), strconv.FormatInt(r.Answered, 10), strconv.FormatInt(r.Correct, 10),
			cell(r.Queue, "visible", r.Scraped), cell(r.Queue, "in_flight", r.Scraped),
		}
		for _, st := range states {
			rec = append(rec, cell(r.Instances, st, r.Scraped))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
