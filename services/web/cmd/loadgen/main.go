// Command loadgen is elastiq's load generator: it sends a set of labelled
// images to the service concurrently, the way the CSE546 course's workload
// generator does (multipart POST, form field myfile or inputFile), checks
// every answer against the labels CSV, and prints the total time, the
// throughput, latency percentiles and the correct / wrong / failed counts.
// It exits non-zero if any answer is wrong or missing.
//
// From the repository root:
//
//	go run ./services/web/cmd/loadgen -url http://127.0.0.1:8080/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program: main only calls it, and tests call it too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	images, err := loadWorkload(cfg.Images, cfg.Labels, cfg.Field)
	if err != nil {
		return err
	}
	n := cfg.Requests
	if n == 0 {
		n = len(images)
	}

	client := newClient(cfg.Concurrency)
	defer client.CloseIdleConnections()
	if cfg.WaitReady > 0 {
		if err := waitReady(ctx, client, healthURL(cfg.URL), cfg.WaitReady, stderr); err != nil {
			return err
		}
	}

	tally := &counters{}
	var sm *sampler
	if cfg.Series != "" {
		sm = startSampler(ctx, client, cfg.URL, cfg.SeriesEvery, tally)
	}
	l := &loader{client: client, target: cfg.URL.String(), field: cfg.Field, timeout: cfg.Timeout, tally: tally}
	rounds := l.rounds(ctx, images, n, cfg.Concurrency, cfg.Repeat, stderr)
	var series []sample
	if sm != nil {
		linger(ctx, cfg.SeriesAfter, stderr)
		var scrapeErr error
		if series, scrapeErr = sm.Close(ctx); scrapeErr != nil {
			fmt.Fprintf(stderr, "series: %v; the service's columns are empty where a scrape failed\n", scrapeErr)
		}
	}

	rep := newReport(cfg, n, rounds)
	if err := rep.writeText(stdout); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	if cfg.JSON {
		if err := rep.writeJSON(stdout); err != nil {
			return fmt.Errorf("write json summary: %w", err)
		}
	}
	if cfg.Timeline != "" {
		if err := writeCSVFile(cfg.Timeline, "timeline", func(w io.Writer) error { return writeTimeline(w, rounds) }); err != nil {
			return err
		}
	}
	if cfg.Series != "" {
		if err := writeCSVFile(cfg.Series, "series", func(w io.Writer) error { return writeSeries(w, series) }); err != nil {
			return err
		}
	}

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if bad := rep.Total.Wrong + rep.Total.Failed; bad > 0 {
		return fmt.Errorf("%d of %d answers wrong or missing", bad, rep.Total.Requests)
	}
	return nil
}

// rounds sends the workload repeat times, one round after another, showing
// progress on stderr. An interrupted run stops after the current round.
func (l *loader) rounds(ctx context.Context, images []image, n, concurrency, repeat int, stderr io.Writer) []round {
	note := ""
	if repeat > 1 {
		note = fmt.Sprintf(", %d rounds", repeat)
	}
	fmt.Fprintf(stderr, "sending %d requests to %s (field %s, %d at a time%s)\n",
		n, l.target, l.field, min(concurrency, n), note)
	var done []round
	for i := range repeat {
		if ctx.Err() != nil {
			break
		}
		name := ""
		if repeat > 1 {
			name = fmt.Sprintf("round %d/%d", i+1, repeat)
		}
		prog := newProgress(stderr, name, n)
		done = append(done, l.round(ctx, images, n, concurrency, prog))
		prog.finish()
	}
	return done
}

// linger waits for d after the load (so a series shows the fleet scaling
// in), or until ctx is done.
func linger(ctx context.Context, d time.Duration, stderr io.Writer) {
	if d <= 0 {
		return
	}
	fmt.Fprintf(stderr, "recording the service for another %s\n", d)
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// newClient returns the one HTTP client of a run. Its transport keeps at
// least concurrency idle connections per host, so successive rounds reuse
// connections instead of opening new ones.
func newClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(tr.MaxIdleConns, concurrency)
	tr.MaxIdleConnsPerHost = concurrency
	tr.IdleConnTimeout = time.Minute
	return &http.Client{Transport: tr}
}
