package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestWorkerHoldTakesABatch: with Hold, one Receive takes a batch beyond the
// free slots, and the held messages wait for a slot: no more than
// Concurrency are classified at once, and every one is answered.
func TestWorkerHoldTakesABatch(t *testing.T) {
	const n = 5
	var active, peak atomic.Int64
	slow := func(ctx context.Context, image []byte) (string, error) {
		cur := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		return labelByContent(ctx, image)
	}
	h := newHarness(t, slow, func(c *Config) { c.Concurrency = 1; c.Hold = n - 1; c.BatchSize = 10 })
	for i := range n {
		_, body := h.submit(t, fmt.Sprintf("h%d.jpg", i), []byte(fmt.Sprintf("face of P%d", i)))
		h.requests.push(body)
	}
	h.runUntilIdle(t)
	if p := peak.Load(); p != 1 {
		t.Errorf("peak concurrent classifications = %d, want 1 (Concurrency)", p)
	}
	if st := h.worker.Stats(); st.Done != n || st.Received != n {
		t.Errorf("Stats() = %+v, want %d received and done", st, n)
	}
	if got := len(h.requests.deletedReceipts()); got != n {
		t.Errorf("deleted %d, want %d", got, n)
	}
	// One Receive took all n at once.
	h.requests.mu.Lock()
	batches := h.requests.batches
	h.requests.mu.Unlock()
	if len(batches) != 1 || batches[0] != n {
		t.Errorf("receives returned %v messages, want one batch of %d", batches, n)
	}
}

// TestShutdownReleasesHeld: at Shutdown the message being processed is
// finished and deleted, and the held ones, not started, are released at once
// for other workers.
func TestShutdownReleasesHeld(t *testing.T) {
	st := newShutdownTest(t)
	started, release := make(chan struct{}, 3), make(chan struct{})
	w := st.worker(t, gate(started, release), func(c *Config) {
		c.Concurrency, c.Hold, c.BatchSize = 1, 2, 10
		c.CancelReceiveOnShutdown = true
	})
	for i := range 3 {
		st.submit(t, fmt.Sprintf("%d.jpg", i))
	}
	runErr := run(w)
	wait(t, "the first classification to start", started)
	elastiqtest.Eventually(t, "all three in hand", func() bool {
		s, err := st.requests.Stats(t.Context())
		return err == nil && s.InFlight == 3 && s.Visible == 0
	})

	shut := make(chan error, 1)
	go func() { shut <- w.Shutdown(context.Background()) }()
	elastiqtest.Eventually(t, "the two held ones released", func() bool {
		s, err := st.requests.Stats(t.Context())
		return err == nil && s.Visible == 2
	})
	close(release)
	if err := wait(t, "Shutdown", shut); err != nil {
		t.Errorf("Shutdown() = %v, want nil", err)
	}
	if err := wait(t, "Run", runErr); !errors.Is(err, ErrShutdown) {
		t.Errorf("Run() = %v, want ErrShutdown", err)
	}
	if s := w.Stats(); s.Done != 1 {
		t.Errorf("Stats() = %+v, want 1 done", s)
	}
	if s, err := st.requests.Stats(t.Context()); err != nil || s != (elastiq.QueueStats{Visible: 2}) {
		t.Errorf("request queue = %+v, %v; want the 2 held ones visible, nothing in flight", s, err)
	}
	select {
	case <-started:
		t.Error("a held message was classified after Shutdown")
	default:
	}
}
