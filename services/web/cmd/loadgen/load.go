package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// verdict is what a request came to.
type verdict int

const (
	correct verdict = iota // HTTP 200 with the expected answer
	wrong                  // HTTP 200 with another answer
	failed                 // no answer: transport error, timeout or a status other than 200
)

func (v verdict) String() string {
	switch v {
	case correct:
		return "correct"
	case wrong:
		return "wrong"
	case failed:
		return "failed"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// progressTick is how often a round lets its progress report the time.
const progressTick = time.Second

// maxAnswer bounds how much of an answer is read; a label is a few bytes.
const maxAnswer = 64 << 10

// result is the outcome of one request.
type result struct {
	Seq     int    // position in its round, 0-based
	Image   *image // what was sent
	Status  int    // HTTP status; 0 if no response
	Body    string // the answer, as received
	Err     error  // transport error or timeout
	Want    string // the expected answer
	Verdict verdict
	Start   time.Duration // since the start of the round
	End     time.Duration // since the start of the round, once the body was read
}

// Latency is the time from sending the request to having read the answer.
func (r result) Latency() time.Duration { return r.End - r.Start }

// round is one pass of n requests.
type round struct {
	Results []result // indexed by Seq
	Began   time.Time
	Elapsed time.Duration
}

// loader sends uploads to the service.
type loader struct {
	client  *http.Client
	target  string
	field   string
	timeout time.Duration
	tally   *counters // running totals over all rounds
}

// round sends n requests, image i%len(images) for request i, at most
// concurrency at a time, and reports each to prog as it finishes. If ctx is
// cancelled the remaining requests fail at once.
func (l *loader) round(ctx context.Context, images []image, n, concurrency int, prog *progress) round {
	seqs := make(chan int, n)
	for i := range n {
		seqs <- i
	}
	close(seqs)

	start := time.Now()
	results := make(chan result, concurrency)
	var wg sync.WaitGroup
	for range min(concurrency, n) {
		wg.Go(func() {
			for seq := range seqs {
				res := l.send(ctx, &images[seq%len(images)], start)
				res.Seq = seq
				results <- res
			}
		})
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	rd := round{Results: make([]result, n), Began: start}
	ticker := time.NewTicker(progressTick)
	defer ticker.Stop()
	for {
		select {
		case res, ok := <-results:
			if !ok {
				rd.Elapsed = time.Since(start)
				return rd
			}
			rd.Results[res.Seq] = res
			prog.add(res)
		case <-ticker.C:
			prog.tick()
		}
	}
}

// send uploads one image and judges the answer. origin is the start of the
// round, from which the result's Start and End are measured.
func (l *loader) send(ctx context.Context, img *image, origin time.Time) result {
	res := result{Image: img, Want: img.want(l.field), Start: time.Since(origin)}
	l.tally.sent.Add(1)
	res.Status, res.Body, res.Err = l.post(ctx, img)
	res.End = time.Since(origin)
	res.Verdict = judge(res.Status, res.Body, res.Err, res.Want)
	if res.Verdict != failed {
		l.tally.answered.Add(1)
	}
	if res.Verdict == correct {
		l.tally.correct.Add(1)
	}
	return res
}

// post sends img and returns the status and answer.
func (l *loader) post(ctx context.Context, img *image) (status int, body string, err error) {
	if err := ctx.Err(); err != nil {
		return 0, "", fmt.Errorf("post %s: %w", img.File, err)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.target, bytes.NewReader(img.body))
	if err != nil {
		return 0, "", fmt.Errorf("post %s: %w", img.File, err)
	}
	req.Header.Set("Content-Type", img.contentType)
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("post %s: %w", img.File, l.unwrap(ctx, err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, string(b), fmt.Errorf("read answer to %s: %w", img.File, l.unwrap(ctx, err))
	}
	return resp.StatusCode, string(b), nil
}

// unwrap drops the method and URL that net/http adds to an error (every
// request has the same ones) and says when the request timed out.
func (l *loader) unwrap(ctx context.Context, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", l.timeout, err)
	}
	return err
}

// judge decides whether an answer is the expected one. Surrounding
// whitespace (a trailing newline) is ignored; anything else counts.
func judge(status int, body string, err error, want string) verdict {
	switch {
	case err != nil || status != http.StatusOK:
		return failed
	case strings.TrimSpace(body) == want:
		return correct
	default:
		return wrong
	}
}
