package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// report is what a run prints: each round and all of them together.
type report struct {
	URL         string    `json:"url"`
	Field       string    `json:"field"`
	Concurrency int       `json:"concurrency"`
	Requests    int       `json:"requests_per_round"`
	Rounds      []summary `json:"rounds"`
	Total       summary   `json:"total"`
}

func newReport(cfg config, n int, rounds []round) report {
	rep := report{URL: cfg.URL.String(), Field: cfg.Field, Concurrency: min(cfg.Concurrency, n), Requests: n}
	var all []result
	var elapsed time.Duration
	for _, rd := range rounds {
		rep.Rounds = append(rep.Rounds, summarize(rd.Results, rd.Elapsed))
		all = append(all, rd.Results...)
		elapsed += rd.Elapsed
	}
	rep.Total = summarize(all, elapsed)
	return rep
}

// writeText prints the report for people:
//
//	requests     100 to http://127.0.0.1:8080/ (field myfile, 100 at a time)
//	total time   1.234s
//	throughput   81.0 req/s
//	latency      p50 512ms  p95 1.1s  p99 1.2s  max 1.2s
//	answers      99 correct, 1 wrong, 0 failed; 100/100 received
//	problems     (first 1 of 1)
//	  test_07.jpg  wrong   HTTP 200 "Nobody", want "Ranil"
//
// With several rounds, a line per round comes first and the block above
// covers all of them.
func (rep report) writeText(w io.Writer) error {
	ew := &errWriter{w: w}
	if len(rep.Rounds) > 1 {
		for i, s := range rep.Rounds {
			ew.printf("round %d/%d  %d/%d correct, %d wrong, %d failed in %s, %.1f req/s, p50 %s, p99 %s\n",
				i+1, len(rep.Rounds), s.Correct, s.Requests, s.Wrong, s.Failed,
				fmtDuration(s.Elapsed), s.Throughput, fmtDuration(s.Latency.P50), fmtDuration(s.Latency.P99))
		}
	}
	t := rep.Total
	ew.printf("requests     %d to %s (field %s, %d at a time", t.Requests, rep.URL, rep.Field, rep.Concurrency)
	if len(rep.Rounds) > 1 {
		ew.printf(", %d rounds of %d", len(rep.Rounds), rep.Requests)
	}
	ew.printf(")\n")
	ew.printf("total time   %s\n", fmtDuration(t.Elapsed))
	ew.printf("throughput   %.1f req/s\n", t.Throughput)
	ew.printf("latency      p50 %s  p95 %s  p99 %s  max %s\n",
		fmtDuration(t.Latency.P50), fmtDuration(t.Latency.P95), fmtDuration(t.Latency.P99), fmtDuration(t.Latency.Max))
	ew.printf("answers      %d correct, %d wrong, %d failed; %d/%d received\n",
		t.Correct, t.Wrong, t.Failed, t.Received, t.Requests)
	if len(t.Problems) > 0 {
		ew.printf("problems     (first %d of %d)\n", len(t.Problems), t.Wrong+t.Failed)
		for _, p := range t.Problems {
			ew.printf("  %s  %-6s  %s\n", p.Image, p.Verdict, p.describe())
		}
	}
	return ew.err
}

// describe says what came back and what was expected.
func (p problem) describe() string {
	if p.Error != "" {
		return fmt.Sprintf("error: %s", p.Error)
	}
	return fmt.Sprintf("HTTP %d %q, want %q", p.Status, p.Body, p.Want)
}

// writeJSON prints the report as one line of JSON.
func (rep report) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(rep)
}

// fmtDuration rounds d to a precision that reads well: 1.234s, 12.35ms, 870µs.
func fmtDuration(m millis) string {
	d := time.Duration(m)
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

// writeCSVFile creates path and fills it with write; what names the file
// in errors.
func writeCSVFile(path, what string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// writeTimeline writes one CSV row per request: when it started and ended
// (milliseconds since the first round began) and how it went.
func writeTimeline(w io.Writer, rounds []round) error {
	cw := csv.NewWriter(w)
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
	}
	if err := cw.Write([]string{"round", "seq", "image", "start_ms", "end_ms", "status", "verdict"}); err != nil {
		return err
	}
	for i, rd := range rounds {
		offset := rd.Began.Sub(rounds[0].Began)
		for _, r := range rd.Results {
			rec := []string{strconv.Itoa(i + 1), strconv.Itoa(r.Seq), r.Image.File,
				ms(offset + r.Start), ms(offset + r.End), strconv.Itoa(r.Status), r.Verdict.String()}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// errWriter keeps the first write error so a run of prints checks it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (ew *errWriter) printf(format string, args ...any) {
	if ew.err == nil {
		_, ew.err = fmt.Fprintf(ew.w, format, args...)
	}
}
