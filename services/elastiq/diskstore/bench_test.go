package diskstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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

func benchStore(b *testing.B, opts ...Option) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// putGet stores obj under a new key and reads it back.
func putGet(b *testing.B, s *Store, obj elastiq.Object, n int64) {
	ctx := context.Background()
	key := fmt.Sprintf("input/%016d", n)
	if err := s.Put(ctx, key, obj); err != nil {
		b.Fatal(err)
	}
	got, err := s.Get(ctx, key)
	if err != nil {
		b.Fatal(err)
	}
	if len(got.Body) != len(obj.Body) {
		b.Fatalf("Get(%s) = %d bytes, want %d", key, len(got.Body), len(obj.Body))
	}
}

// BenchmarkPutGet3KiB stores a 3 KiB object under a new key and reads it
// back, one at a time and from many goroutines; with fsync, concurrent
// Puts share flushes.
func BenchmarkPutGet3KiB(b *testing.B) {
	obj := benchObject()
	for _, bc := range []struct {
		name     string
		opts     []Option
		parallel int // goroutines per GOMAXPROCS; 0 runs sequentially
	}{
		{name: "seq"},
		{name: "seq+fsync", opts: []Option{WithFsync()}},
		{name: "parallel", parallel: 8},
		{name: "parallel+fsync", opts: []Option{WithFsync()}, parallel: 8},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchStore(b, bc.opts...)
			b.ReportAllocs()
			var n atomic.Int64
			if bc.parallel == 0 {
				for b.Loop() {
					putGet(b, s, obj, n.Add(1))
				}
				return
			}
			b.SetParallelism(bc.parallel)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					putGet(b, s, obj, n.Add(1))
				}
			})
			b.ReportMetric(float64(s.Stats().Flushes)/float64(b.N), "flushes/op")
		})
	}
}

// BenchmarkBurst100 puts 100 new 3 KiB objects at once, as the web tier
// does when 100 requests arrive together, and reports the Put latency
// percentiles.
func BenchmarkBurst100(b *testing.B) {
	ctx := context.Background()
	obj := benchObject()
	for _, bc := range []struct {
		name string
		opts []Option
	}{
		{name: "nofsync"},
		{name: "fsync", opts: []Option{WithFsync()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchStore(b, bc.opts...)
			b.ReportAllocs()
			var mu sync.Mutex
			var lat []time.Duration
			i := 0
			for b.Loop() {
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
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkOpen opens a store of 10,000 3 KiB objects (about 33 MB in one
// segment), which reads and checks every record.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	obj := benchObject()
	dir := b.TempDir()
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10_000 {
		if err := s.Put(ctx, fmt.Sprintf("input/%08d", i), obj); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if st := s.Stats(); st.Keys != 10_000 {
			b.Fatalf("Stats() = %+v, want 10000 keys", st)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
