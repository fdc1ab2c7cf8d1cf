package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestNudger: every accepted request is reported, in fewer posts than
// requests when they come at once, and Nudge does not wait for the scaler.
func TestNudger(t *testing.T) {
	var total, posts atomic.Int64
	release := make(chan struct{})
	scaler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a slow scaler: the nudges pile up meanwhile
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if r.Method != http.MethodPost || r.URL.Path != "/nudge" || err != nil {
			http.Error(w, "bad nudge", http.StatusBadRequest)
			return
		}
		total.Add(int64(n))
		posts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer scaler.Close()
	n := NewNudger(scaler.URL+"/nudge", nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()

	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(n.Nudge)
	}
	wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Errorf("50 nudges took %v with the scaler not answering; Nudge must not wait", d)
	}
	close(release)
	elastiqtest.Eventually(t, "all 50 requests reported", func() bool { return total.Load() == 50 })
	if p := posts.Load(); p >= 50 {
		t.Errorf("%d posts for 50 requests at once, want fewer", p)
	}
	cancel()
	<-done
}

// TestNudgerScalerDown: a scaler that cannot be reached costs the counts,
// not the service: Nudge returns at once and Run keeps going.
func TestNudgerScalerDown(t *testing.T) {
	n := NewNudger("http://127.0.0.1:1/nudge", nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	for range 5 {
		n.Nudge()
	}
	elastiqtest.Eventually(t, "the counts taken (and dropped)", func() bool { return n.pending.Load() == 0 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
