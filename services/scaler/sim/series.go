package sim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// ReadSeries reads the CSV time series the load generator writes with
// -series (t_s, sent, answered, queue_visible, queue_in_flight,
// instances_<state>, ...) as samples, so a real run is drawn like a
// simulated one: sent as arrived, answered as completed. Rows whose metrics
// were not scraped (empty cells) are skipped.
func ReadSeries(r io.Reader) ([]Sample, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read series header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	fields := []struct {
		name string
		dst  func(*Sample) *int
	}{
		{"sent", func(s *Sample) *int { return &s.Arrived }},
		{"answered", func(s *Sample) *int { return &s.Completed }},
		{"queue_visible", func(s *Sample) *int { return &s.Visible }},
		{"queue_in_flight", func(s *Sample) *int { return &s.InFlight }},
		{"instances_pending", func(s *Sample) *int { return &s.Pending }},
		{"instances_running", func(s *Sample) *int { return &s.Running }},
		{"instances_stopping", func(s *Sample) *int { return &s.Stopping }},
		{"instances_stopped", func(s *Sample) *int { return &s.Stopped }},
	}
	required := []string{"t_s"}
	for _, f := range fields {
		required = append(required, f.name)
	}
	for _, name := range required {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("read series: no column %q", name)
		}
	}
	var out []Sample
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read series: %w", err)
		}
		t, err := strconv.ParseFloat(rec[col["t_s"]], 64)
		if err != nil {
			return nil, fmt.Errorf("read series line %d: t_s: %w", line, err)
		}
		s := Sample{At: time.Duration(t * float64(time.Second))}
		scraped := true
		for _, f := range fields {
			cell := rec[col[f.name]]
			if cell == "" {
				scraped = false
				break
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				return nil, fmt.Errorf("read series line %d: %s: %w", line, f.name, err)
			}
			*f.dst(&s) = int(v)
		}
		if scraped {
			out = append(out, s)
		}
	}
}

// SeriesResult summarises a real run's samples as a Result for WriteSVG:
// the drain is from the first sample with a request sent to the first with
// every request answered (to the series' resolution).
func SeriesResult(name string, samples []Sample) Result {
	r := Result{Policy: "live", Workload: name, Samples: samples}
	var first time.Duration = -1
	for _, s := range samples {
		r.Requests = max(r.Requests, s.Arrived)
		r.MaxFleet = max(r.MaxFleet, s.Pending+s.Running)
	}
	for _, s := range samples {
		if first < 0 && s.Arrived > 0 {
			first = s.At
		}
		if r.Requests > 0 && s.Completed == r.Requests {
			r.Drain = s.At - first
			r.Completed = s.Completed
			break
		}
	}
	if n := len(samples); n > 0 {
		r.Duration = samples[n-1].At
	}
	return r
}
