package localcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

var _ elastiq.Cache = (*Cache)(nil)

// newCache makes a cache on a fake clock.
func newCache(cfg Config) (*Cache, *elastiqtest.Clock) {
	clock := elastiqtest.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg.Now = clock.Now
	return New(cfg), clock
}

func set(t *testing.T, c *Cache, key, value string, ttl time.Duration) {
	t.Helper()
	if err := c.Set(context.Background(), key, []byte(value), ttl); err != nil {
		t.Fatalf("Set(%s) = %v", key, err)
	}
}

// wantGet checks Get(key): want "" means a miss.
func wantGet(t *testing.T, c *Cache, key, want string) {
	t.Helper()
	got, err := c.Get(context.Background(), key)
	switch {
	case want == "" && !errors.Is(err, elastiq.ErrNotFound):
		t.Fatalf("Get(%s) = %q, %v; want ErrNotFound", key, got, err)
	case want != "" && (err != nil || string(got) != want):
		t.Fatalf("Get(%s) = %q, %v; want %q", key, got, err, want)
	}
}

func TestTTL(t *testing.T) {
	tests := []struct {
		name    string
		ttl     time.Duration
		advance time.Duration
		want    string
	}{
		{name: "no expiry", ttl: 0, advance: 365 * 24 * time.Hour, want: "v"},
		{name: "before expiry", ttl: time.Minute, advance: time.Minute - time.Nanosecond, want: "v"},
		{name: "at expiry", ttl: time.Minute, advance: time.Minute, want: ""},
		{name: "after expiry", ttl: time.Minute, advance: time.Hour, want: ""},
		{name: "negative", ttl: -time.Second, advance: 0, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clock := newCache(Config{})
			set(t, c, "k", "v", tt.ttl)
			clock.Advance(tt.advance)
			wantGet(t, c, "k", tt.want)
		})
	}
}

func TestExpiredItemIsDropped(t *testing.T) {
	c, clock := newCache(Config{})
	set(t, c, "k", "value", time.Second)
	clock.Advance(time.Second)
	wantGet(t, c, "k", "")
	if s := c.Stats(); s.Items != 0 || s.Bytes != 0 {
		t.Fatalf("Stats() after reading an expired item = %+v, want no items, no bytes", s)
	}
}

// TestExpiredItemsDropOnSet: a cache of short-lived items written and never
// read stays at what one TTL's worth of them holds, far under its limit.
func TestExpiredItemsDropOnSet(t *testing.T) {
	c, clock := newCache(Config{})
	for i := range 10_000 {
		set(t, c, fmt.Sprintf("k%d", i), "value", time.Second)
		clock.Advance(10 * time.Millisecond) // 100 items a TTL
	}
	if s := c.Stats(); s.Items > 101 {
		t.Fatalf("Stats() after 10,000 items of a 1 s TTL, 100 a second = %+v; want at most 101 items", s)
	}
}

func TestNegativeTTLRemovesExisting(t *testing.T) {
	c, _ := newCache(Config{})
	set(t, c, "k", "v", 0)
	set(t, c, "k", "w", -1)
	wantGet(t, c, "k", "")
}

func TestOverwrite(t *testing.T) {
	c, clock := newCache(Config{})
	set(t, c, "k", "first", time.Second)
	set(t, c, "k", "second value", 0)
	clock.Advance(time.Hour)
	wantGet(t, c, "k", "second value")
	want := Stats{Items: 1, Bytes: int64(len("k") + len("second value")), Hits: 1}
	if s := c.Stats(); s != want {
		t.Fatalf("Stats() = %+v, want %+v", s, want)
	}
}

func TestLRUEviction(t *testing.T) {
	// Each item is a 1-byte key and a 9-byte value: 10 bytes; 3 fit.
	c, _ := newCache(Config{MaxBytes: 30})
	value := strings.Repeat("x", 9)
	set(t, c, "a", value, 0)
	set(t, c, "b", value, 0)
	set(t, c, "c", value, 0)
	wantGet(t, c, "a", value) // a is now the most recently used
	set(t, c, "d", value, 0)  // evicts b, the least recently used

	for key, want := range map[string]string{"a": value, "b": "", "c": value, "d": value} {
		wantGet(t, c, key, want)
	}
	s := c.Stats()
	if s.Items != 3 || s.Bytes != 30 || s.Evictions != 1 {
		t.Fatalf("Stats() = %+v, want 3 items, 30 bytes, 1 eviction", s)
	}

	// A value that needs the room of two items evicts two.
	set(t, c, "e", strings.Repeat("y", 19), 0)
	if s := c.Stats(); s.Items != 2 || s.Bytes != 30 || s.Evictions != 3 {
		t.Fatalf("Stats() after a 20-byte item = %+v, want 2 items, 30 bytes, 3 evictions", s)
	}
}

func TestValuesAreCopied(t *testing.T) {
	ctx := context.Background()
	c, _ := newCache(Config{})
	in := []byte("stored")
	if err := c.Set(ctx, "k", in, 0); err != nil {
		t.Fatal(err)
	}
	copy(in, "XXXXXX")
	out, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	copy(out, "YYYYYY")
	wantGet(t, c, "k", "stored")
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	c, _ := newCache(Config{MaxBytes: 1000, MaxItemBytes: 100})
	tests := []struct {
		name  string
		key   string
		value []byte
		want  error // nil: any error
	}{
		{name: "value too large", key: "k", value: make([]byte, 101), want: elastiq.ErrTooLarge},
		{name: "empty key", key: ""},
		{name: "key too long", key: strings.Repeat("k", elastiq.MaxCacheKeyLen+1)},
		{name: "space in key", key: "a b"},
		{name: "newline in key", key: "a\nb"},
		{name: "DEL in key", key: "a\x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Set(ctx, tt.key, tt.value, 0)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Set(%q, %d bytes) = %v, want an error (%v)", tt.key, len(tt.value), err, tt.want)
			}
		})
	}
	if err := c.Set(ctx, strings.Repeat("k", elastiq.MaxCacheKeyLen), make([]byte, 100), 0); err != nil {
		t.Errorf("Set(longest key, largest value) = %v", err)
	}
	if s := c.Stats(); s.Items != 1 {
		t.Errorf("Stats().Items = %d, want 1 (failed Sets store nothing)", s.Items)
	}
}

func TestItemLimitCappedAtMaxBytes(t *testing.T) {
	c, _ := newCache(Config{MaxBytes: 10})
	if err := c.Set(context.Background(), "k", make([]byte, 11), 0); !errors.Is(err, elastiq.ErrTooLarge) {
		t.Fatalf("Set(11 bytes into a 10-byte cache) = %v, want elastiq.ErrTooLarge", err)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	c, _ := newCache(Config{})
	set(t, c, "k", "v", 0)
	for range 2 {
		if err := c.Delete(ctx, "k"); err != nil {
			t.Fatalf("Delete(k) = %v", err)
		}
	}
	wantGet(t, c, "k", "")
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	c := New(Config{MaxBytes: 4 << 10})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprintf("k%d", (g*500+i)%300)
				if err := c.Set(ctx, key, []byte(key), time.Minute); err != nil {
					t.Errorf("Set = %v", err)
					return
				}
				v, err := c.Get(ctx, key)
				if err != nil && !errors.Is(err, elastiq.ErrNotFound) {
					t.Errorf("Get = %v", err)
					return
				}
				if err == nil && string(v) != key {
					t.Errorf("Get(%s) = %q, want %q", key, v, key)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.Bytes > 4<<10 {
		t.Fatalf("Stats().Bytes = %d, want at most %d", s.Bytes, 4<<10)
	}
}

func BenchmarkSetGet(b *testing.B) {
	ctx := context.Background()
	c := New(Config{})
	value := make([]byte, 300)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("result/%026d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := keys[i%len(keys)]
		i++
		if err := c.Set(ctx, key, value, time.Hour); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Get(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
