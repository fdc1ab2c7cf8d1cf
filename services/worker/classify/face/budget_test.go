package face

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/imagecheck"
	"github.com/elastiq/elastiq/services/worker/classify/internal/imgproc"
)

// TestDecodeBudget sends decode bombs (PNGs of a few hundred KB that decode
// to hundreds of MB) to a classifier with several sessions, all at once:
// its decode budget lets one decode at a time, the heap never holds two,
// and one that could never fit fails at once with ErrTooLarge.
func TestDecodeBudget(t *testing.T) {
	bomb := elastiqtest.DecodeBomb(t, 3000, 3000) // 72 MB of 16-bit pixels and 27 MB RGB
	info, err := imagecheck.Inspect(bomb)
	if err != nil {
		t.Fatal(err)
	}
	c := openFace(t, func(c *Config) {
		c.Sessions = 4
		c.DecodeBudget = info.DecodeBytes * 3 / 2 // one at a time
	})
	face := photoBytes(t, "test_00")

	var wg sync.WaitGroup
	var mu sync.Mutex
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	baseHeap, peakHeap := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	go func() { // sample the heap while the bombs are classified
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peakHeap = max(peakHeap, ms.HeapInuse)
			mu.Unlock()
			if held := c.decoder.Held(); held > c.cfg.DecodeBudget {
				t.Errorf("decodes hold %d bytes, budget %d", held, c.cfg.DecodeBudget)
			}
		}
	}()
	for range 4 {
		wg.Go(func() {
			if _, err := c.Recognize(ctxT(t), bomb); !errors.Is(err, ErrNoFace) {
				t.Errorf("Recognize(bomb) = %v, want ErrNoFace", err)
			}
		})
	}
	// A photo is answered meanwhile.
	if m, err := c.Recognize(ctxT(t), face); err != nil || m.Label != "Paul" {
		t.Errorf("Recognize(test_00) during the bombs = %q, %v; want Paul", m.Label, err)
	}
	wg.Wait()
	close(done)
	// One bomb decoded at a time, and the garbage of the one before until
	// the collector runs: under two and a half. All four at once would
	// be four.
	grew := peakHeap - baseHeap
	if limit := uint64(info.DecodeBytes) * 5 / 2; grew > limit {
		t.Errorf("heap in use grew by %d MB with 4 bombs of %d MB each; want under %d MB",
			grew>>20, info.DecodeBytes>>20, limit>>20)
	}
	t.Logf("heap in use grew by %d MB (from %d MB); one bomb holds %d MB", grew>>20, baseHeap>>20, info.DecodeBytes>>20)

	small := openFace(t, func(c *Config) { c.DecodeBudget = info.DecodeBytes - 1 })
	if _, err := small.Recognize(ctxT(t), bomb); !errors.Is(err, imgproc.ErrTooLarge) {
		t.Errorf("Recognize(bomb) with a budget below its need = %v, want ErrTooLarge", err)
	}
}
