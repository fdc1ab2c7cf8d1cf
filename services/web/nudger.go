package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/retry"
)

// Nudger reports accepted requests to a scaler in another process or on
// another machine (the scaler program's -addr: POST /nudge?n=N), so that it
// scales out with the first request and its backlog policy sees the arrival
// rate, as the embedded scaler does through Deps.OnAccepted. Nudge never
// blocks the request: it counts, and Run posts the count with at most one
// post in flight, so a burst costs a few posts. A scaler that cannot be
// reached is logged and the counts are dropped: they are estimates, and the
// scaler still sees the queue.
type Nudger struct {
	url     string
	client  *http.Client
	log     *slog.Logger
	pending atomic.Int64
	wake    chan struct{}
}

// maxNudges is the most requests one post reports (the scaler's limit).
const maxNudges = 100_000

// NewNudger returns a Nudger that posts to url (http://host:port/nudge).
// A nil logger discards.
func NewNudger(url string, log *slog.Logger) *Nudger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Nudger{url: url, client: &http.Client{Timeout: 5 * time.Second}, log: log.With("component", "nudger"),
		wake: make(chan struct{}, 1)}
}

// Nudge counts one accepted request; use it as Deps.OnAccepted.
func (n *Nudger) Nudge() {
	n.pending.Add(1)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run posts the counted requests until ctx ends.
func (n *Nudger) Run(ctx context.Context) {
	b := retry.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		count := min(n.pending.Swap(0), maxNudges)
		if count == 0 {
			continue
		}
		if err := n.post(ctx, count); err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("nudge the scaler", "err", err, "requests", count, "retry_in", b.Fail())
			if retry.Sleep(ctx, b.Delay()) != nil {
				return
			}
			continue
		}
		b.Reset()
	}
}

func (n *Nudger) post(ctx context.Context, count int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"?n="+strconv.FormatInt(count, 10), nil)
	if err != nil {
		return err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s: %s", n.url, resp.Status)
	}
	return nil
}
