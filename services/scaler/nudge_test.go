package scaler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// TestHandler: POST /nudge?n=N counts N arrivals and asks for an
// evaluation; a bad N is refused and counts nothing.
func TestHandler(t *testing.T) {
	h := newHarness(t, Config{Interval: time.Hour, ActionTimeout: testTimeout})
	srv := httptest.NewServer(Handler(h.scaler))
	defer srv.Close()
	for _, tt := range []struct {
		method, path string
		want         int
		arrivals     int64
	}{
		{http.MethodPost, "/nudge", http.StatusNoContent, 1},
		{http.MethodPost, "/nudge?n=5", http.StatusNoContent, 6},
		{http.MethodPost, "/nudge?n=0", http.StatusBadRequest, 6},
		{http.MethodPost, "/nudge?n=many", http.StatusBadRequest, 6},
		{http.MethodPost, "/nudge?n=100001", http.StatusBadRequest, 6},
		{http.MethodGet, "/nudge", http.StatusMethodNotAllowed, 6},
		{http.MethodGet, "/healthz", http.StatusOK, 6},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
		if got := h.scaler.arrivals.Load(); got != tt.arrivals {
			t.Errorf("after %s %s, arrivals = %d, want %d", tt.method, tt.path, got, tt.arrivals)
		}
	}
	select {
	case <-h.scaler.nudge:
	default:
		t.Error("no evaluation asked for")
	}
}

// TestHandlerReport: GET /report answers the fleet's usage and the
// decisions that acted, after since; old ones are dropped.
func TestHandlerReport(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interval = time.Hour
	h := newHarness(t, cfg)
	srv := httptest.NewServer(Handler(h.scaler))
	defer srv.Close()
	get := func(query string) (elastiq.ScalingReport, int) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/report" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep elastiq.ScalingReport
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
				t.Fatalf("decode report: %v", err)
			}
		}
		return rep, resp.StatusCode
	}

	h.queue.set(3, 0)
	launchedAt := h.clock.Now()
	h.scaler.evaluate(t.Context()) // launches 3
	h.scaler.evaluate(t.Context()) // sees them pending, holds: no event
	h.clock.Advance(10 * time.Second)
	h.scaler.evaluate(t.Context())

	rep, code := get("")
	if code != http.StatusOK || len(rep.Events) != 1 {
		t.Fatalf("GET /report = %d with %d events, want 200 with 1: %+v", code, len(rep.Events), rep)
	}
	if e := rep.Events[0]; e.Launch != 3 || !e.At.Equal(launchedAt) || !strings.Contains(e.Reason, "queue 3") {
		t.Errorf("event = %+v, want launch 3 at %v with the policy's reason", e, launchedAt)
	}
	if got := rep.Usage.InstanceSeconds[elastiq.InstancePending]; got != 30 {
		t.Errorf("usage: pending instance-seconds = %v, want 30 (3 instances for 10 s)", got)
	}
	if rep.Usage.CostDollars <= 0 {
		t.Errorf("usage: cost = %v, want > 0 at the default prices", rep.Usage.CostDollars)
	}
	if rep, _ := get("?since=" + launchedAt.Format(time.RFC3339Nano)); len(rep.Events) != 0 {
		t.Errorf("GET /report?since=<the launch> = %d events, want 0", len(rep.Events))
	}
	if _, code := get("?since=yesterday"); code != http.StatusBadRequest {
		t.Errorf("GET /report?since=yesterday = %d, want 400", code)
	}
	h.clock.Advance(cfg.EventRetention)
	h.scaler.evaluate(t.Context())
	if rep, _ := get(""); len(rep.Events) != 0 {
		t.Errorf("after EventRetention, GET /report = %d events, want 0", len(rep.Events))
	}
}
