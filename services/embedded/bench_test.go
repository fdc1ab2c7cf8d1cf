package embedded

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
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
// HTTP, with a warm fleet, and reports percentiles over all requests of:
//
//   - ms-p50, ms-p99: the client's end-to-end latency minus the classifier's
//     time (about zero here), so the overhead as a client sees it, HTTP
//     client and server included (both run in this process, on the same
//     cores);
//   - srv-ms-p50, srv-ms-p99: the server's own handling, from the request
//     reaching the handler to the answer (its Server-Timing total), minus
//     the classifier's time: upload checks, store, queues, worker, response
//     consumer, wake-up;
//   - floor-ms-p50, floor-ms-p99: the same client against a handler that only
//     reads the multipart upload and answers, so the part of the first figure
//     that is loopback HTTP on this machine rather than elastiq.
//
// One op is one round of `concurrency` requests sent at once.
func BenchmarkPipelineOverhead(b *testing.B) {
	imgs := loadWorkload(b)
	for _, concurrency := range []int{1, 100} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Worker.IdleTimeout = 0 // a warm fleet: workers never stop
			h := start(b, cfg, instantClassifier{}, nil)
			warm(b, h, imgs)
			var lat, srv []time.Duration
			var mu sync.Mutex
			b.ResetTimer()
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range concurrency {
					img := imgs[i%len(imgs)]
					wg.Go(func() {
						t0 := time.Now()
						code, body, header, err := h.postHeader("/", "myfile", img.name, img.data)
						d := time.Since(t0)
						if err != nil || code != http.StatusOK || body != "Paul" {
							b.Errorf("POST / = %d %q, %v", code, body, err)
							return
						}
						total, classify, err := serverTiming(header.Get("Server-Timing"))
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						lat = append(lat, d-classify)
						srv = append(srv, total-classify)
						mu.Unlock()
					})
				}
				wg.Wait()
			}
			b.StopTimer()
			report(b, "", lat)
			report(b, "srv-", srv)
			report(b, "floor-", httpFloor(b, h.client, imgs, concurrency, b.N))
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

func report(b *testing.B, prefix string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(ms(quantile(lat, 0.50)), prefix+"ms-p50")
	b.ReportMetric(ms(quantile(lat, 0.99)), prefix+"ms-p99")
}

// serverTiming reads the total and classify durations of a Server-Timing
// header as the web tier writes it.
func serverTiming(v string) (total, classify time.Duration, err error) {
	for part := range strings.SplitSeq(v, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(part), ";dur=")
		f, perr := strconv.ParseFloat(dur, 64)
		if !ok || perr != nil {
			return 0, 0, fmt.Errorf("Server-Timing %q: cannot read %q", v, part)
		}
		d := time.Duration(f * float64(time.Millisecond))
		switch name {
		case "total":
			total = d
		case "classify":
			classify = d
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("Server-Timing %q: no total", v)
	}
	return total, classify, nil
}

// httpFloor sends rounds of the same uploads to a handler that only reads
// the multipart body and answers, and returns the latencies: what loopback
// HTTP alone costs here.
func httpFloor(b *testing.B, client *http.Client, imgs []image, concurrency, rounds int) []time.Duration {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _, err := r.FormFile("myfile")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.Copy(io.Discard, f)
		io.WriteString(w, "Paul")
	}))
	defer srv.Close()
	h := &harness{t: b, url: srv.URL, client: client}
	var lat []time.Duration
	var mu sync.Mutex
	for round := range rounds + 1 { // round 0 warms the connections, as warm does for the stack
		measured := round > 0
		var wg sync.WaitGroup
		for i := range concurrency {
			img := imgs[i%len(imgs)]
			wg.Go(func() {
				t0 := time.Now()
				code, _, err := h.post("/", "myfile", img.name, img.data)
				d := time.Since(t0)
				if err != nil || code != http.StatusOK {
					b.Errorf("floor POST / = %d, %v", code, err)
				}
				if measured {
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return lat
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
