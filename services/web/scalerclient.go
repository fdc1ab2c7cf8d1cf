package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/retry"
)

var _ ScalingReporter = (*ScalerClient)(nil)

// ScalerClient is the web tier's client of a scaler in another process or on
// another machine (the scaler program's -addr, the web program's
// -scaler-url).
//
// It reports accepted requests (POST /nudge?n=N), so that the scaler scales
// out with the first request and its backlog policy sees the arrival rate,
// as the embedded scaler does through Deps.OnAccepted. Nudge never blocks
// the request: it counts, and Run posts the count with at most one post in
// flight, so a burst costs a few posts. A scaler that cannot be reached is
// logged and the counts are dropped: they are estimates, and the scaler
// still sees the queue.
//
// It also reads the scaler's report (GET /report) for the dashboard: it is
// a ScalingReporter.
type ScalerClient struct {
	url     string
	client  *http.Client
	log     *slog.Logger
	pending atomic.Int64
	wake    chan struct{}
}

// maxNudges is the most requests one post reports (the scaler's limit).
const maxNudges = 100_000

// NewScalerClient returns a client of the scaler at baseURL
// (http://host:port). A nil logger discards.
func NewScalerClient(baseURL string, log *slog.Logger) *ScalerClient {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ScalerClient{url: strings.TrimSuffix(baseURL, "/"), client: &http.Client{Timeout: 5 * time.Second}, log: log.With("component", "nudger"),
		wake: make(chan struct{}, 1)}
}

// Nudge counts one accepted request; use it as Deps.OnAccepted.
func (n *ScalerClient) Nudge() {
	n.pending.Add(1)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run posts the counted requests until ctx ends.
func (n *ScalerClient) Run(ctx context.Context) {
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

func (n *ScalerClient) post(ctx context.Context, count int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/nudge?n="+strconv.FormatInt(count, 10), nil)
	if err != nil {
		return err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s/nudge: %s", n.url, resp.Status)
	}
	return nil
}

// maxReportBytes bounds a scaler's report: 30 minutes of events are far
// less.
const maxReportBytes = 4 << 20

// ScalingReport reads the scaler's usage and its events after since.
func (n *ScalerClient) ScalingReport(ctx context.Context, since time.Time) (elastiq.ScalingReport, error) {
	var rep elastiq.ScalingReport
	u := n.url + "/report"
	if !since.IsZero() {
		u += "?since=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return rep, err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return rep, fmt.Errorf("scaler report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("scaler report: GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReportBytes)).Decode(&rep); err != nil {
		return rep, fmt.Errorf("scaler report: decode: %w", err)
	}
	return rep, nil
}
