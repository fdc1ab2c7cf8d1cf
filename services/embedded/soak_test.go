package embedded

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// BenchmarkSoak sends SOAK_REQUESTS requests (default 200,000; POST /, the
// CSE546 images over and over) through the embedded stack at SOAK_RATE a second (default 300) with
// a retention of SOAK_RETENTION (default 1m), and reports the resident
// memory and the data folder's size after the first tenth of them and at
// the end, and their ratio (each after a collection and a compaction). The target is a ratio of at most 1.1 for both:
// with retention, the store deletes and compacts as fast as requests come,
// and nothing else grows. It takes about 11 minutes: make soak runs it (not
// make bench). The classifier is the content test double, so the figures
// are the pipeline's alone.
func BenchmarkSoak(b *testing.B) {
	total := envInt(b, "SOAK_REQUESTS", 200_000)
	first := total / 10
	rate := envInt(b, "SOAK_RATE", 300)
	retention := time.Minute
	if v := os.Getenv("SOAK_RETENTION"); v != "" {
		var err error
		if retention, err = time.ParseDuration(v); err != nil {
			b.Fatalf("SOAK_RETENTION: %v", err)
		}
	}
	imgs := loadWorkload(b)
	cfg := testConfig(b)
	cfg.Retention = retention
	cfg.Worker.IdleTimeout = 0
	// The stack's logs go where a program's do, to a stream nothing keeps
	// (a test's log buffer would be what grows).
	h := startLogged(b, cfg, newContentClassifier(imgs), nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))

	var sent, failed atomic.Int64
	var firstRSS, firstDisk int64
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range jobs {
				img := imgs[i%len(imgs)]
				code, body, err := h.post("/", "myfile", img.name, img.data)
				if err != nil || code != http.StatusOK || body != img.label {
					if failed.Add(1) <= 5 {
						b.Errorf("request %d: %s = %d %q, %v; want 200 %q", i, img.name, code, body, err, img.label)
					}
				}
				sent.Add(1)
			}
		})
	}
	t0 := time.Now()
	for b.Loop() {
		for i := range total {
			<-tick.C
			jobs <- i
			if i == first {
				firstRSS, firstDisk = settledRSS(b), settledDisk(b, h.s)
				b.Logf("after %d requests (%v): RSS %d MiB, data %d KiB", first, time.Since(t0).Round(time.Second), firstRSS>>20, firstDisk>>10)
			}
		}
	}
	close(jobs)
	wg.Wait()
	rss, disk := settledRSS(b), settledDisk(b, h.s)
	b.Logf("after %d requests (%v): RSS %d MiB, data %d KiB; %d failed", total, time.Since(t0).Round(time.Second), rss>>20, disk>>10, failed.Load())
	b.ReportMetric(float64(firstRSS)/(1<<20), "MiB-RSS-at-tenth")
	b.ReportMetric(float64(rss)/(1<<20), "MiB-RSS-at-end")
	b.ReportMetric(float64(rss)/float64(firstRSS), "RSS-end/tenth")
	b.ReportMetric(float64(firstDisk)/(1<<10), "KiB-data-at-tenth")
	b.ReportMetric(float64(disk)/(1<<10), "KiB-data-at-end")
	b.ReportMetric(float64(disk)/float64(firstDisk), "data-end/tenth")
}

// settledRSS is this process's resident memory after a collection that
// returns what it can to the system, so two readings compare what is held
// rather than where the collector's cycle is.
func settledRSS(tb testing.TB) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	return elastiqtest.ProcStatus(tb, 0, "VmRSS")
}

// settledDisk is the size of the stack's data folder after a compaction,
// for the same reason: the store's file size swings between what it holds
// and twice that as it waits for the next compaction (compactWhenWasteful).
func settledDisk(tb testing.TB, s *Stack) int64 {
	if err := s.Store.Compact(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return dirSize(tb, s.cfg.DataDir)
}

// dirSize is the size of the files under dir.
func dirSize(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
