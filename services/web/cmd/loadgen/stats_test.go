package main

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range vs {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "no values", sorted: nil, p: 50, want: 0},
		{name: "one value p50", sorted: ms(7), p: 50, want: 7 * time.Millisecond},
		{name: "one value p99", sorted: ms(7), p: 99, want: 7 * time.Millisecond},
		{name: "even count median is the lower middle", sorted: ms(1, 2, 3, 4), p: 50, want: 2 * time.Millisecond},
		{name: "odd count median", sorted: ms(1, 2, 3, 4, 5), p: 50, want: 3 * time.Millisecond},
		{name: "p100 is the max", sorted: ms(1, 2, 3, 40), p: 100, want: 40 * time.Millisecond},
		{name: "p75 of four", sorted: ms(1, 2, 3, 40), p: 75, want: 3 * time.Millisecond},
		{name: "p76 of four rounds up", sorted: ms(1, 2, 3, 40), p: 76, want: 40 * time.Millisecond},
		{name: "tiny p is the min", sorted: ms(5, 6, 7), p: 0.1, want: 5 * time.Millisecond},
		{name: "p50 of 1..100", sorted: hundred, p: 50, want: 50 * time.Millisecond},
		{name: "p95 of 1..100", sorted: hundred, p: 95, want: 95 * time.Millisecond},
		{name: "p99 of 1..100", sorted: hundred, p: 99, want: 99 * time.Millisecond},
		{name: "p99 of 10 is the max", sorted: hundred[:10], p: 99, want: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestLatencyStatsSortsACopy(t *testing.T) {
	ds := []time.Duration{30, 10, 20}
	got := latencyStats(ds)
	want := latencies{P50: 20, P95: 30, P99: 30, Max: 30}
	if got != want {
		t.Errorf("latencyStats(%v) = %+v, want %+v", ds, got, want)
	}
	if ds[0] != 30 || ds[1] != 10 || ds[2] != 20 {
		t.Errorf("latencyStats reordered its argument: %v", ds)
	}
}

func TestSummarize(t *testing.T) {
	img := func(file string) *image { return &image{File: file} }
	res := func(file string, v verdict, start, end time.Duration) result {
		return result{Image: img(file), Verdict: v, Status: 200, Start: start, End: end, Want: "Paul"}
	}
	var results []result
	for i := range 8 {
		results = append(results, res("ok.jpg", correct, 0, time.Duration(i+1)*time.Second))
	}
	results = append(results,
		res("wrong.jpg", wrong, 0, 9*time.Second),
		result{Image: img("failed.jpg"), Verdict: failed, Err: errors.New("post failed.jpg: refused"), End: time.Hour, Want: "Bob"},
	)
	got := summarize(results, 10*time.Second)

	if got.Requests != 10 || got.Correct != 8 || got.Wrong != 1 || got.Failed != 1 || got.Received != 9 {
		t.Errorf("summarize() counts = %d requests, %d correct, %d wrong, %d failed, %d received; want 10, 8, 1, 1, 9",
			got.Requests, got.Correct, got.Wrong, got.Failed, got.Received)
	}
	if got.Throughput != 0.9 {
		t.Errorf("summarize() throughput = %v, want 0.9 answers/s", got.Throughput)
	}
	// The failed request's hour is not a latency: only answers count.
	if want := (latencies{P50: millis(5 * time.Second), P95: millis(9 * time.Second), P99: millis(9 * time.Second), Max: millis(9 * time.Second)}); got.Latency != want {
		t.Errorf("summarize() latency = %+v, want %+v", got.Latency, want)
	}
	wantProblems := []problem{
		{Image: "wrong.jpg", Verdict: "wrong", Status: 200, Want: "Paul"},
		{Image: "failed.jpg", Verdict: "failed", Want: "Bob", Error: "post failed.jpg: refused"},
	}
	if len(got.Problems) != len(wantProblems) || got.Problems[0] != wantProblems[0] || got.Problems[1] != wantProblems[1] {
		t.Errorf("summarize() problems = %+v, want %+v", got.Problems, wantProblems)
	}
}

func TestSummarizeListsFirstProblems(t *testing.T) {
	var results []result
	for i := range 20 {
		results = append(results, result{Image: &image{File: string(rune('a'+i)) + ".jpg"}, Verdict: wrong, Status: 200})
	}
	got := summarize(results, time.Second)
	if len(got.Problems) != maxProblems || got.Problems[0].Image != "a.jpg" || got.Problems[maxProblems-1].Image != "e.jpg" {
		t.Errorf("summarize() problems = %+v, want the first %d (a.jpg to e.jpg)", got.Problems, maxProblems)
	}
}

func TestMillisJSON(t *testing.T) {
	in := latencies{P50: millis(1500 * time.Microsecond), Max: millis(2 * time.Second)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"p50":1.500,"p95":0.000,"p99":0.000,"max":2000.000}`; string(b) != want {
		t.Errorf("json.Marshal(%+v) = %s, want %s", in, b, want)
	}
	var out latencies
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("json.Unmarshal(%s) = %+v, want %+v", b, out, in)
	}
}

func TestFmtDuration(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{name: "seconds to the millisecond", d: 1234567 * time.Microsecond, want: "1.235s"},
		{name: "milliseconds to 10µs", d: 12345678, want: "12.35ms"},
		{name: "microseconds", d: 870400, want: "870µs"},
		{name: "zero", d: 0, want: "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmtDuration(millis(tt.d)); got != tt.want {
				t.Errorf("fmtDuration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}
