package web

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkRecognizeSync measures POST / through ServeHTTP (multipart
// parse, image check, store, send, wait for the response consumer to wake
// the handler) with fake workers that answer at once. ns/op is wall time per
// request at that concurrency; p50-ms and p99-ms are per-request latencies.
func BenchmarkRecognizeSync(b *testing.B) {
	faces, labels := loadFaces(b)
	f := faces[0]
	body, ct := multipartBody("myfile", f.name, f.data)
	for _, clients := range []int{1, 100} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			h := newHarness(b, testConfig(), nil, labels)
			h.worker.start(b, 4)
			var (
				mu        sync.Mutex
				latencies []time.Duration
			)
			one := func(own *[]time.Duration) {
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				req.Header.Set("Content-Type", ct)
				rec := httptest.NewRecorder()
				start := time.Now()
				h.srv.ServeHTTP(rec, req)
				*own = append(*own, time.Since(start))
				if rec.Code != http.StatusOK || rec.Body.String() != f.label {
					b.Errorf("POST / = %d %q, want 200 %q", rec.Code, rec.Body.String(), f.label)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			if clients == 1 {
				for b.Loop() {
					one(&latencies)
				}
			} else {
				// RunParallel starts parallelism × GOMAXPROCS goroutines.
				b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					var own []time.Duration
					for pb.Next() {
						one(&own)
					}
					mu.Lock()
					latencies = append(latencies, own...)
					mu.Unlock()
				})
			}
			b.StopTimer()
			slices.Sort(latencies)
			if n := len(latencies); n > 0 {
				b.ReportMetric(float64(latencies[n/2])/1e6, "p50-ms")
				b.ReportMetric(float64(latencies[n*99/100])/1e6, "p99-ms")
			}
		})
	}
}
