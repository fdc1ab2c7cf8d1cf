package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSlowUploads: a body that stalls, or trickles below the minimum rate,
// is cut with 408 within the stall timeout and its connection closed; one
// that declares more bytes than it sends is answered once the stall ends
// the wait; an honest slow upload above the minimum rate is served.
func TestSlowUploads(t *testing.T) {
	faces, labels := loadFaces(t)
	cfg := testConfig()
	cfg.BodyStallTimeout = 300 * time.Millisecond
	cfg.MinUploadRate = 16 << 10 // 16 KiB/s
	h := newHarness(t, cfg, nil, labels)
	h.worker.start(t, 1)
	small, smallCT := multipartBody("file", faces[0].name, faces[0].data)
	// About 100 KB: a PNG of noise.
	big, bigCT := multipartBody("file", "noise.png", noisePNG(t, 316))
	addr := strings.TrimPrefix(h.url, "http://")

	for _, tt := range []struct {
		name     string
		body     []byte
		ct       string
		declared int
		feed     func(c net.Conn, body []byte)
		want     int
		within   time.Duration
	}{
		{"stalls after 1 KiB of a declared 10 MiB", small, smallCT, 10 << 20,
			func(c net.Conn, body []byte) { c.Write(body[:1024]) }, http.StatusRequestTimeout, 5 * time.Second},
		// The form is whole (its closing boundary came): accepted, and
		// answered once the stall ends the wait for the rest.
		{"declares 1000 bytes more than it sends", small, smallCT, len(small) + 1000,
			func(c net.Conn, body []byte) { c.Write(body) }, http.StatusAccepted, 5 * time.Second},
		{"trickles a byte every 100 ms", small, smallCT, len(small), func(c net.Conn, body []byte) {
			for i := range body {
				if _, err := c.Write(body[i : i+1]); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}, http.StatusRequestTimeout, 5 * time.Second},
		{"honest and slow: 8 KiB every 200 ms, above the minimum", big, bigCT, len(big), func(c net.Conn, body []byte) {
			for len(body) > 0 {
				n := min(8<<10, len(body))
				if _, err := c.Write(body[:n]); err != nil {
					return
				}
				body = body[n:]
				time.Sleep(200 * time.Millisecond)
			}
		}, http.StatusAccepted, 30 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			fmt.Fprintf(c, "POST /v1/recognitions HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
				tt.ct, tt.declared)
			go tt.feed(c, tt.body)
			c.SetReadDeadline(time.Now().Add(time.Minute))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != tt.want || took > tt.within {
				t.Errorf("answer %s after %v, want %d within %v", resp.Status, took, tt.want, tt.within)
			}
			if tt.want == http.StatusRequestTimeout && !resp.Close {
				t.Errorf("answer %s keeps the connection open, want it closed", resp.Status)
			}
		})
	}
}

// TestStalledUploadsMemory: the buffer of an upload grows with the bytes
// received, not with the length its client declares: 200 uploads that
// declare 10 MiB each and stall after 1 KiB hold a few MB, not 2 GB.
func TestStalledUploadsMemory(t *testing.T) {
	faces, _ := loadFaces(t)
	cfg := testConfig()
	cfg.BodyStallTimeout = time.Minute
	h := newHarness(t, cfg, nil, nil)
	body, ct := multipartBody("file", faces[0].name, faces[0].data)
	addr := strings.TrimPrefix(h.url, "http://")
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 200
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /v1/recognitions HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ct, 10<<20)
		c.Write(body[:1024])
	}
	time.Sleep(500 * time.Millisecond) // every handler is reading its body
	runtime.ReadMemStats(&during)
	grew := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d stalled uploads declaring 10 MiB: heap grew %.1f MB", n, float64(grew)/1e6)
	if grew > 64<<20 {
		t.Errorf("heap grew %.1f MB with %d stalled uploads, want under 64 MB (the buffers must not follow Content-Length)", float64(grew)/1e6, n)
	}
}

// TestWaitOutlivesUploadDeadline: a sync POST / whose result comes after
// the upload's pace deadline is still answered: the deadline ends with the
// upload (before, the server took the waiting client for gone: 499).
func TestWaitOutlivesUploadDeadline(t *testing.T) {
	faces, labels := loadFaces(t)
	cfg := testConfig()
	cfg.BodyStallTimeout = 200 * time.Millisecond
	h := newHarness(t, cfg, nil, labels)
	go func() {
		time.Sleep(time.Second) // 5 deadlines later
		h.worker.start(t, 1)
	}()
	if r := h.upload(t, "/", "myfile", faces[0].name, faces[0].data); r.status != http.StatusOK || r.body != faces[0].label {
		t.Errorf("POST / answered after the upload deadline = %d %q, want 200 %q", r.status, r.body, faces[0].label)
	}
}
