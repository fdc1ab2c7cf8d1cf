package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values at
// or below it. It is 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// millis is a duration that encodes in JSON as milliseconds.
type millis time.Duration

func (m millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(m)/float64(time.Millisecond), 'f', 3, 64), nil
}

func (m *millis) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("milliseconds %s: %w", b, err)
	}
	*m = millis(math.Round(f * float64(time.Millisecond)))
	return nil
}

// latencies are the percentiles of a set of request latencies.
type latencies struct {
	P50 millis `json:"p50"`
	P95 millis `json:"p95"`
	P99 millis `json:"p99"`
	Max millis `json:"max"`
}

func latencyStats(ds []time.Duration) latencies {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return latencies{
		P50: millis(percentile(sorted, 50)),
		P95: millis(percentile(sorted, 95)),
		P99: millis(percentile(sorted, 99)),
		Max: millis(percentile(sorted, 100)),
	}
}

// maxProblems is how many wrong or failed answers a summary lists.
const maxProblems = 5

// summary is what a set of requests came to.
type summary struct {
	Requests   int       `json:"requests"`
	Correct    int       `json:"correct"`
	Wrong      int       `json:"wrong"`
	Failed     int       `json:"failed"`
	Received   int       `json:"received"` // answers with HTTP 200: correct + wrong
	Elapsed    millis    `json:"elapsed_ms"`
	Throughput float64   `json:"throughput_rps"` // answers received per second
	Latency    latencies `json:"latency_ms"`     // of the answers received
	Problems   []problem `json:"problems,omitempty"`
}

// problem is a wrong or failed request, as listed in a summary.
type problem struct {
	Image   string `json:"image"`
	Verdict string `json:"verdict"`
	Status  int    `json:"status,omitempty"`
	Body    string `json:"body,omitempty"`
	Want    string `json:"want"`
	Error   string `json:"error,omitempty"`
}

// maxBodyShown bounds the answer quoted in a problem.
const maxBodyShown = 200

// summarize counts results, which took elapsed in all, and lists the first
// few problems in order.
func summarize(results []result, elapsed time.Duration) summary {
	s := summary{Requests: len(results), Elapsed: millis(elapsed)}
	var lat []time.Duration
	for _, r := range results {
		switch r.Verdict {
		case correct:
			s.Correct++
		case wrong:
			s.Wrong++
		case failed:
			s.Failed++
		}
		if r.Verdict != failed {
			lat = append(lat, r.Latency())
		}
		if r.Verdict != correct && len(s.Problems) < maxProblems {
			s.Problems = append(s.Problems, newProblem(r))
		}
	}
	s.Received = s.Correct + s.Wrong
	if elapsed > 0 {
		s.Throughput = float64(s.Received) / elapsed.Seconds()
	}
	s.Latency = latencyStats(lat)
	return s
}

func newProblem(r result) problem {
	p := problem{Image: r.Image.File, Verdict: r.Verdict.String(), Status: r.Status, Want: r.Want}
	p.Body = r.Body
	if len(p.Body) > maxBodyShown {
		p.Body = p.Body[:maxBodyShown] + "..."
	}
	if r.Err != nil {
		p.Error = r.Err.Error()
	}
	return p
}
