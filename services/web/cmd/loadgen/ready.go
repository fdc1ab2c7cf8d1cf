package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

const (
	readyPoll         = 250 * time.Millisecond
	readyProbeTimeout = 5 * time.Second
)

// healthURL is the service's /healthz next to target.
func healthURL(target *url.URL) string {
	return target.ResolveReference(&url.URL{Path: "/healthz"}).String()
}

// waitReady polls GET health until it answers 200, for up to within. A 404
// also ends the wait: the server is up but has no health endpoint (the
// course's own services have none), so the requests themselves will tell.
func waitReady(ctx context.Context, client *http.Client, health string, within time.Duration, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	ticker := time.NewTicker(readyPoll)
	defer ticker.Stop()
	last := "no answer"
	for attempt := 0; ; attempt++ {
		status, err := probe(ctx, client, health)
		switch {
		case ctx.Err() != nil:
			// The probe was cut short by the deadline: keep the previous outcome.
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("HTTP %d", status)
		}
		switch {
		case err == nil && status == http.StatusOK:
			if attempt > 0 {
				fmt.Fprintf(stderr, "%s is ready\n", health)
			}
			return nil
		case err == nil && status == http.StatusNotFound:
			fmt.Fprintf(stderr, "%s: 404, the server has no health endpoint; sending anyway\n", health)
			return nil
		case attempt == 0:
			fmt.Fprintf(stderr, "waiting up to %s for %s\n", within, health)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("wait ready %s: %w", health, ctx.Err())
			}
			return fmt.Errorf("wait ready %s: not ready within %s (last: %s)", health, within, last)
		case <-ticker.C:
		}
	}
}

// probe makes one GET and returns its status.
func probe(ctx context.Context, client *http.Client, health string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, nil
}
