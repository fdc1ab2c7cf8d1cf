package face

import (
	"bufio"
	"bytes"
	"context"
	"image/jpeg"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
	"github.com/elastiq/elastiq/services/worker/classify/internal/ortenv"
)

// Benchmarks of one classification (decode + detect + landmarks + align +
// embed + match), reporting the median and 99th percentile per image and
// the process's resident memory with the models loaded:
//
//	go test ./face -run '^$' -bench . -benchtime 300x

func benchClassifier(b *testing.B, sessions int) *Classifier {
	b.Helper()
	cfg := DefaultConfig()
	cfg.ModelDir = elastiqtest.ModelDir(b, ortenv.LibraryName, DetectModel, LandmarkModel, FeatureModel)
	cfg.Gallery = elastiqtest.CSE546(b)
	cfg.CacheDir = b.TempDir()
	cfg.Sessions = sessions
	c, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// cse546Images returns the ten distinct CSE546 photos and their labels.
func cse546Images(b *testing.B) (images [][]byte, labels []string) {
	b.Helper()
	for _, p := range distinct {
		data, err := os.ReadFile(photoPath(b, p.file))
		if err != nil {
			b.Fatal(err)
		}
		images, labels = append(images, data), append(labels, p.label)
	}
	return images, labels
}

// largePhoto composes a 1920x1080 JPEG: the ten CSE546 photos tiled at
// 160 px as a busy background, and test_00 (Paul) upscaled to 640 px.
func largePhoto(b *testing.B) []byte {
	b.Helper()
	var tiles []*imgproc.Image
	for _, p := range distinct {
		tiles = append(tiles, readPhoto(b, p.file).Resize(160, 160))
	}
	canvas := imgproc.New(1920, 1080)
	for y, i := 0, 0; y < 1080; y += 160 {
		for x := 0; x < 1920; x, i = x+160, i+1 {
			canvas.Paste(tiles[i%len(tiles)], x, y)
		}
	}
	canvas.Paste(readPhoto(b, "test_00").Resize(640, 640), 800, 220)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, canvas.RGBA(), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// runTimed classifies images[i % len] per iteration, checks each answer,
// and reports the median and p99 latency and the RSS.
func runTimed(b *testing.B, c *Classifier, images [][]byte, labels []string) {
	ctx := context.Background()
	// Warm up: the first runs of a session allocate and plan.
	for i := range images {
		if got, err := c.Classify(ctx, images[i]); err != nil || got != labels[i] {
			b.Fatalf("Classify(image %d) = %q, %v; want %q", i, got, err, labels[i])
		}
	}
	durations := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		start := time.Now()
		got, err := c.Classify(ctx, images[i%len(images)])
		durations = append(durations, time.Since(start))
		if err != nil || got != labels[i%len(labels)] {
			b.Fatalf("Classify = %q, %v; want %q", got, err, labels[i%len(labels)])
		}
		i++
	}
	reportLatency(b, durations)
	reportRSS(b)
}

func reportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "ms-p50")
	b.ReportMetric(pct(0.99), "ms-p99")
}

// reportRSS reports VmRSS from /proc/self/status in MiB.
func reportRSS(b *testing.B) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Logf("rss: %v", err)
		return
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				b.ReportMetric(kb/1024, "MiB-rss")
			}
			return
		}
	}
}

// BenchmarkClassifyCSE546 is one 64x64 CSE546 photo per iteration on one
// session (one core).
func BenchmarkClassifyCSE546(b *testing.B) {
	c := benchClassifier(b, 1)
	images, labels := cse546Images(b)
	runTimed(b, c, images, labels)
}

// BenchmarkClassifyLarge is one 1920x1080 JPEG per iteration on one
// session; decoding the JPEG is part of the time.
func BenchmarkClassifyLarge(b *testing.B) {
	c := benchClassifier(b, 1)
	runTimed(b, c, [][]byte{largePhoto(b)}, []string{"Paul"})
}

// BenchmarkClassifyCSE546Parallel keeps two sessions busy from four
// goroutines and reports throughput (the machine has two cores).
func BenchmarkClassifyCSE546Parallel(b *testing.B) {
	c := benchClassifier(b, 2)
	images, labels := cse546Images(b)
	ctx := context.Background()
	var mu sync.Mutex
	var durations []time.Duration
	b.SetParallelism(2) // 2 x GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for i := 0; pb.Next(); i++ {
			t0 := time.Now()
			got, err := c.Classify(ctx, images[i%len(images)])
			local = append(local, time.Since(t0))
			if err != nil || got != labels[i%len(labels)] {
				b.Errorf("Classify = %q, %v; want %q", got, err, labels[i%len(labels)])
				return
			}
		}
		mu.Lock()
		durations = append(durations, local...)
		mu.Unlock()
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "images/s")
	reportLatency(b, durations)
	reportRSS(b)
}

// BenchmarkEmbedding times the embedding model alone (fr_feature.onnx on an
// aligned CSE546 face, in the session's own OS thread), the part of
// BenchmarkClassifyCSE546 that ONNX Runtime spends most on. Their ratio is
// the figure to compare across machines or hours whose speed differs.
func BenchmarkEmbedding(b *testing.B) {
	c := benchClassifier(b, 1)
	images, labels := cse546Images(b)
	if got, err := c.Classify(context.Background(), images[0]); err != nil || got != labels[0] {
		b.Fatalf("Classify = %q, %v; want %q", got, err, labels[0]) // leaves the aligned face in the input tensor
	}
	durations := make([]time.Duration, 0, b.N)
	for b.Loop() {
		err := c.pool.Do(context.Background(), func(s *sessions) error {
			start := time.Now()
			err := s.feature.Run()
			durations = append(durations, time.Since(start))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportLatency(b, durations)
}
