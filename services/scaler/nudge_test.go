package scaler

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestNudgeHandler: POST /nudge?n=N counts N arrivals and asks for an
// evaluation; a bad N is refused and counts nothing.
func TestNudgeHandler(t *testing.T) {
	h := newHarness(t, Config{Interval: time.Hour, ActionTimeout: testTimeout})
	srv := httptest.NewServer(NudgeHandler(h.scaler))
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
