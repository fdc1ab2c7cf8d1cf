package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	n := NewScalerClient(scaler.URL, nil)
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
	n := NewScalerClient("http://127.0.0.1:1", nil)
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

// TestScalerClientReport: the report is read with since, and a scaler that
// answers an error is an error. The scaler here is a test double of its
// GET /report; the e2e test reads the real one.
func TestScalerClientReport(t *testing.T) {
	at := time.Date(2026, 11, 29, 12, 0, 0, 500, time.UTC)
	var gotSince atomic.Value
	scaler := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/report" {
			http.NotFound(w, r)
			return
		}
		gotSince.Store(r.URL.Query().Get("since"))
		if r.URL.Query().Get("since") == "" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"usage":{"instance_seconds":{"running":30},"billed_seconds":30,"cost_dollars":0.0002},` +
			`"events":[{"at":"2026-11-29T12:00:01Z","launch":3,"reason":"queue 3 > active 0"}]}`))
	}))
	defer scaler.Close()
	c := NewScalerClient(scaler.URL+"/", nil)

	rep, err := c.ScalingReport(t.Context(), at)
	if err != nil {
		t.Fatalf("ScalingReport: %v", err)
	}
	if s, _ := gotSince.Load().(string); s != at.Format(time.RFC3339Nano) {
		t.Errorf("since sent = %q, want %q", s, at.Format(time.RFC3339Nano))
	}
	if rep.Usage.BilledSeconds != 30 || len(rep.Events) != 1 || rep.Events[0].Launch != 3 {
		t.Errorf("report = %+v, want 30 billed seconds and one launch of 3", rep)
	}
	if _, err := c.ScalingReport(t.Context(), time.Time{}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("ScalingReport from a scaler answering 503 = %v, want an error naming it", err)
	}
}
