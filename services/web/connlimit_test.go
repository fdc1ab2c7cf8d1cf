package web

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestConnectionLimits: past the total cap, or the cap per client address
// (every connection here is from 127.0.0.1), a new connection is answered
// 503 with Retry-After at once and closed, never left hanging; a closed
// connection frees its slot; the refusals are counted.
func TestConnectionLimits(t *testing.T) {
	for _, tt := range []struct {
		name             string
		total, perClient int
	}{
		{"total", 3, 0},
		{"per client", 0, 3},
		{"both", 10, 3},
	} {
		t.Run(tt.name, func(t *testing.T) { testConnectionLimit(t, tt.total, tt.perClient) })
	}
}

func testConnectionLimit(t *testing.T, total, perClient int) {
	cfg := testConfig()
	cfg.MaxConns, cfg.MaxConnsPerClient = total, perClient
	h := newHarness(t, cfg, nil, nil)
	addr := strings.TrimPrefix(h.url, "http://")
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// ask sends GET /healthz on c and returns the answer.
	ask := func(c net.Conn) (*http.Response, error) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}

	held := []net.Conn{dial(), dial(), dial()}
	for i, c := range held {
		if resp, err := ask(c); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v, %v; want 200", i, resp, err)
		}
	}
	start := time.Now()
	resp, err := ask(dial())
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Fatalf("a 4th connection = %v, %v; want 503 with Retry-After, closed", resp, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the refusal took %v, want it at once", took)
	}

	// Closing one frees its slot.
	held[0].Close()
	elastiqtest.Eventually(t, "a slot freed by a close", func() bool {
		resp, err := ask(dial())
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if n := testutil.ToFloat64(h.srv.metrics.refusedConns); n < 1 {
		t.Errorf("elastiq_web_refused_connections_total = %v, want at least 1", n)
	}
}
