// Package localcache is an in-process elastiq.Cache with memcached
// semantics, for the embedded stack: a TTL per Set (zero: no expiry), a
// bound on the bytes held with least-recently-used eviction, and a miss
// (elastiq.ErrNotFound, wrapped) for keys that were never set, expired or
// were evicted. Values are copied in and out, so callers cannot change
// what is stored.
//
// It checks keys and values the way memcached does (keys of 1 to 250
// bytes without spaces or control characters; values up to MaxItemBytes),
// so code that works against it also works against a real memcached.
// Expired items are dropped when they are read, when a Set finds them at
// the cold end of the LRU list (up to two a Set), or when eviction reaches
// them, as in memcached; their bytes count until then.
package localcache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Defaults for Config.
const (
	DefaultMaxBytes     = 64 << 20
	DefaultMaxItemBytes = 1 << 20 // memcached's default item size limit
)

// Config configures a Cache. The zero value is usable.
type Config struct {
	// MaxBytes bounds the keys and values held; the least recently used
	// items are evicted to stay under it. Default DefaultMaxBytes.
	MaxBytes int64
	// MaxItemBytes is the largest value Set accepts. Default
	// DefaultMaxItemBytes, capped at MaxBytes.
	MaxItemBytes int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Stats are a cache's counters.
type Stats struct {
	Items     int
	Bytes     int64
	Hits      uint64
	Misses    uint64
	Evictions uint64
}

// Cache is an LRU cache with per-item TTLs, safe for concurrent use.
type Cache struct {
	maxBytes     int64
	maxItemBytes int
	now          func() time.Time

	mu    sync.Mutex
	items map[string]*list.Element // of *item
	lru   *list.List               // most recently used at the front
	stats Stats
}

type item struct {
	key       string
	value     []byte // never changed after Set
	expiresAt time.Time
}

func (it *item) size() int64 { return int64(len(it.key) + len(it.value)) }

// New returns an empty cache.
func New(cfg Config) *Cache {
	c := &Cache{
		maxBytes:     cfg.MaxBytes,
		maxItemBytes: cfg.MaxItemBytes,
		now:          cfg.Now,
		items:        make(map[string]*list.Element),
		lru:          list.New(),
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxItemBytes <= 0 {
		c.maxItemBytes = DefaultMaxItemBytes
	}
	c.maxItemBytes = int(min(int64(c.maxItemBytes), c.maxBytes))
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Get returns a copy of the value under key, or elastiq.ErrNotFound
// (wrapped) when it is missing or expired.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cache get %s: %w", key, err)
	}
	if err := elastiq.ValidateCacheKey(key); err != nil {
		return nil, fmt.Errorf("cache get: %w", err)
	}
	c.mu.Lock()
	e := c.items[key]
	if e != nil && c.expired(e.Value.(*item)) {
		c.removeLocked(e)
		e = nil
	}
	if e == nil {
		c.stats.Misses++
		c.mu.Unlock()
		return nil, fmt.Errorf("cache get %s: %w", key, elastiq.ErrNotFound)
	}
	c.stats.Hits++
	c.lru.MoveToFront(e)
	stored := e.Value.(*item).value
	c.mu.Unlock()
	// The stored slice is never written to, so it can be copied unlocked.
	v := make([]byte, len(stored))
	copy(v, stored)
	return v, nil
}

// Set stores a copy of value under key for ttl (zero: until evicted; less
// than zero: already expired, which removes the key).
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cache set %s: %w", key, err)
	}
	if err := elastiq.ValidateCacheKey(key); err != nil {
		return fmt.Errorf("cache set: %w", err)
	}
	if len(value) > c.maxItemBytes {
		return fmt.Errorf("cache set %s: %d bytes, limit %d: %w", key, len(value), c.maxItemBytes, elastiq.ErrTooLarge)
	}
	it := &item{key: key, value: make([]byte, len(value))}
	copy(it.value, value)

	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[key]; e != nil {
		c.removeLocked(e)
	}
	if ttl < 0 {
		return nil
	}
	if ttl > 0 {
		it.expiresAt = c.now().Add(ttl)
	}
	for c.stats.Bytes+it.size() > c.maxBytes {
		c.removeLocked(c.lru.Back())
		c.stats.Evictions++
	}
	// Drop up to two expired items from the cold end, so a cache of
	// short-lived results shrinks back instead of holding them until its
	// byte limit forces them out (each Set removes more than it adds).
	for range 2 {
		if e := c.lru.Back(); e != nil && c.expired(e.Value.(*item)) {
			c.removeLocked(e)
		}
	}
	c.items[key] = c.lru.PushFront(it)
	c.stats.Items++
	c.stats.Bytes += it.size()
	return nil
}

// Delete removes key; a missing key is no error.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cache delete %s: %w", key, err)
	}
	if err := elastiq.ValidateCacheKey(key); err != nil {
		return fmt.Errorf("cache delete: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[key]; e != nil {
		c.removeLocked(e)
	}
	return nil
}

// Stats returns the cache's counters. Items and Bytes include expired items
// not yet dropped.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Cache) expired(it *item) bool {
	return !it.expiresAt.IsZero() && !c.now().Before(it.expiresAt)
}

func (c *Cache) removeLocked(e *list.Element) {
	it := c.lru.Remove(e).(*item)
	delete(c.items, it.key)
	c.stats.Items--
	c.stats.Bytes -= it.size()
}
