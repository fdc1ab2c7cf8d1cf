package diskstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

func benchObject() elastiq.Object {
	return elastiq.Object{
		Body:        bytes.Repeat([]byte("x"), 3<<10),
		ContentType: "image/jpeg",
		Metadata:    map[string]string{elastiq.MetaFileName: "test_00.jpg", elastiq.MetaSubmittedAt: time.Now().Format(time.RFC3339Nano)},
	}
}

// benchCase is a store configuration to benchmark; before each iteration
// the benchmark waits, timer stopped, until spares spare files are ready.
type benchCase struct {
	name   string
	opts   []Option
	spares int
}

// runCases runs iter b.N times on a new store per case, then report if
// set.
func runCases(b *testing.B, cases []benchCase, iter func(b *testing.B, s *Store, i int), report func(b *testing.B)) {
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if bc.spares > 0 {
					b.StopTimer()
					for len(s.spares) < bc.spares {
						time.Sleep(100 * time.Microsecond)
					}
					b.StartTimer()
				}
				iter(b, s, i)
				i++
			}
			if report != nil {
				report(b)
			}
		})
	}
}

// BenchmarkPutGet3KiB stores and reads back a 3 KiB object under a new key.
// With spares, each iteration waits for a spare file, as in a burst of
// requests after a quiet moment; without, every Put creates its temporary
// file, as when a long burst has used the spares up.
func BenchmarkPutGet3KiB(b *testing.B) {
	ctx := context.Background()
	obj := benchObject()
	runCases(b, []benchCase{
		{name: "nospares", opts: []Option{WithSpareFiles(0)}},
		{name: "spares", spares: 1},
		{name: "spares+fsync", opts: []Option{WithFsync()}, spares: 1},
	}, func(b *testing.B, s *Store, i int) {
		key := fmt.Sprintf("input/%08d", i)
		if err := s.Put(ctx, key, obj); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
	}, nil)
}

// BenchmarkBurst100 puts 100 new 3 KiB objects at once, as the web tier
// does when 100 requests arrive together, and reports the Put latency
// percentiles. With spares, each burst starts with a full set of them.
func BenchmarkBurst100(b *testing.B) {
	ctx := context.Background()
	obj := benchObject()
	var mu sync.Mutex
	var lat []time.Duration
	report := func(b *testing.B) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		lat = lat[:0]
	}
	runCases(b, []benchCase{
		{name: "nospares", opts: []Option{WithSpareFiles(0)}},
		{name: "spares", spares: DefaultSpareFiles},
	}, func(b *testing.B, s *Store, i int) {
		var wg sync.WaitGroup
		for j := range 100 {
			key := fmt.Sprintf("input/%08d", i*100+j)
			wg.Go(func() {
				start := time.Now()
				if err := s.Put(ctx, key, obj); err != nil {
					b.Error(err)
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			})
		}
		wg.Wait()
	}, report)
}
