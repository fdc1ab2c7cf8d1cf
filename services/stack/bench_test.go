package stack

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// instantClassifier answers at once: with it, a request's end-to-end latency
// is the pipeline's own overhead (upload, validation, store, queues, worker,
// response consumer, wake-up), which is what BenchmarkPipelineOverhead
// measures.
type instantClassifier struct{}

var _ elastiq.Classifier = instantClassifier{}

func (instantClassifier) Classify(context.Context, []byte) (string, error) { return "Paul", nil }

// BenchmarkPipelineOverhead sends rounds of concurrent sync requests (the
// course's POST / contract) through the whole embedded stack over loopback
// HTTP, with a warm fleet, and reports the latency percentiles of all
// requests. One op is one round of `concurrency` requests sent at once.
func BenchmarkPipelineOverhead(b *testing.B) {
	imgs := loadWorkload(b)
	for _, concurrency := range []int{1, 100} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Worker.IdleTimeout = 0 // a warm fleet: workers never stop
			h := start(b, cfg, instantClassifier{}, nil)
			warm(b, h, imgs)
			var lat []time.Duration
			var mu sync.Mutex
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range concurrency {
					img := imgs[i%len(imgs)]
					wg.Go(func() {
						t0 := time.Now()
						code, body, err := h.post("/", "myfile", img.name, img.data)
						d := time.Since(t0)
						if err != nil || code != http.StatusOK || body != "Paul" {
							b.Errorf("POST / = %d %q, %v", code, body, err)
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(ms(quantile(lat, 0.50)), "ms-p50")
			b.ReportMetric(ms(quantile(lat, 0.99)), "ms-p99")
			b.ReportMetric(float64(len(lat)), "requests")
		})
	}
}

// warm sends one full burst first so the scaler has launched its workers and
// the HTTP client has its connections.
func warm(b *testing.B, h *harness, imgs []image) {
	var wg sync.WaitGroup
	for _, img := range imgs {
		wg.Go(func() {
			if code, body, err := h.post("/", "myfile", img.name, img.data); err != nil || code != http.StatusOK {
				b.Errorf("warm-up POST / = %d %q, %v", code, body, err)
			}
		})
	}
	wg.Wait()
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
