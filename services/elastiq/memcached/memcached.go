// Package memcached is the elastiq.Cache on one or more memcached servers,
// through github.com/bradfitz/gomemcache.
//
// A miss is elastiq.ErrNotFound (wrapped). Any other failure (a server that
// is down, refuses the connection or does not answer within Config.Timeout)
// is a plain error, never ErrNotFound, so the web tier can tell "not cached"
// from "cache broken", log the latter and fall back to output/.
//
// Keys and values are checked before they are sent, the way memcached
// checks them (elastiq.ValidateCacheKey: 1 to 250 bytes, no spaces or control
// characters; values up to Config.MaxItemBytes), and a value the server
// still refuses as too large is reported as elastiq.ErrTooLarge too, so
// callers handle both caches with the same errors.
//
// TTLs follow memcached's expiration rules: whole seconds, sub-second TTLs
// round up to one second, TTLs over 30 days are sent as an absolute Unix
// time (memcached reads any larger number that way), zero never expires and
// a negative TTL expires the key at once.
package memcached

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Defaults for Config.
const (
	DefaultTimeout      = 500 * time.Millisecond
	DefaultMaxIdleConns = 8
	// DefaultMaxItemBytes is memcached's default item size limit (-I 1m).
	// The limit covers the key and a header of about 50 bytes too, so the
	// server refuses values a little smaller than this; those come back as
	// elastiq.ErrTooLarge as well.
	DefaultMaxItemBytes = 1 << 20
)

// maxRelativeTTL is the longest expiration memcached reads as seconds from
// now; anything larger is an absolute Unix time (REALTIME_MAXDELTA).
const maxRelativeTTL = 30 * 24 * time.Hour

// Config configures a Cache.
type Config struct {
	// Servers are host:port addresses (or unix socket paths); keys are
	// spread over them by hash. At least one is required.
	Servers []string
	// Timeout bounds connecting to a server and each call's network I/O.
	// Default DefaultTimeout.
	Timeout time.Duration
	// MaxIdleConns is how many idle connections are kept per server.
	// Default DefaultMaxIdleConns.
	MaxIdleConns int
	// MaxItemBytes is the largest value Set sends; larger ones fail with
	// elastiq.ErrTooLarge without a round trip. Default
	// DefaultMaxItemBytes; set it to the server's -I if that was raised.
	MaxItemBytes int
	// Now is the clock used to turn TTLs over 30 days into absolute times;
	// default time.Now.
	Now func() time.Time
}

// Cache is an elastiq.Cache on memcached, safe for concurrent use.
type Cache struct {
	client       *memcache.Client
	maxItemBytes int
	now          func() time.Time

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // calls still running after their ctx ended
}

var _ elastiq.Cache = (*Cache)(nil)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("cache closed")

// New returns a Cache for cfg's servers. It does not connect: a server that
// is down shows as errors from Get and Set (and Ping).
func New(cfg Config) (*Cache, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("new memcached cache: no servers")
	}
	var servers memcache.ServerList
	if err := servers.SetServers(cfg.Servers...); err != nil {
		return nil, fmt.Errorf("new memcached cache: servers %s: %w", strings.Join(cfg.Servers, ","), err)
	}
	if cfg.Timeout < 0 || cfg.MaxIdleConns < 0 || cfg.MaxItemBytes < 0 {
		return nil, errors.New("new memcached cache: negative Timeout, MaxIdleConns or MaxItemBytes")
	}
	client := memcache.NewFromSelector(&servers)
	client.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	client.MaxIdleConns = cmp.Or(cfg.MaxIdleConns, DefaultMaxIdleConns)
	c := &Cache{
		client:       client,
		maxItemBytes: cmp.Or(cfg.MaxItemBytes, DefaultMaxItemBytes),
		now:          cfg.Now,
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Get returns the value under key, or elastiq.ErrNotFound (wrapped) when
// memcached does not hold it.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	if err := elastiq.ValidateCacheKey(key); err != nil {
		return nil, fmt.Errorf("cache get: %w", err)
	}
	var value []byte
	err := c.do(ctx, func() error {
		it, err := c.client.Get(key)
		if err == nil {
			value = it.Value
		}
		return err
	})
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return nil, fmt.Errorf("cache get %s: %w", key, elastiq.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("cache get %s: %w", key, err)
	}
	return value, nil
}

// Set stores value under key for ttl (see the package comment for how ttl
// is sent).
func (c *Cache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := elastiq.ValidateCacheKey(key); err != nil {
		return fmt.Errorf("cache set: %w", err)
	}
	if len(value) > c.maxItemBytes {
		return fmt.Errorf("cache set %s: %d bytes, limit %d: %w", key, len(value), c.maxItemBytes, elastiq.ErrTooLarge)
	}
	it := &memcache.Item{Key: key, Value: value, Expiration: Expiration(ttl, c.now())}
	err := c.do(ctx, func() error { return c.client.Set(it) })
	if err != nil && isTooLarge(err) {
		return fmt.Errorf("cache set %s: %d bytes refused by the server: %w", key, len(value), elastiq.ErrTooLarge)
	}
	if err != nil {
		return fmt.Errorf("cache set %s: %w", key, err)
	}
	return nil
}

// Ping checks that every server answers.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.do(ctx, c.client.Ping); err != nil {
		return fmt.Errorf("cache ping: %w", err)
	}
	return nil
}

// Close waits for calls abandoned by a cancelled context to finish (each
// within Timeout) and closes the idle connections. Calls after Close fail
// with ErrClosed.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	if err := c.client.Close(); err != nil {
		return fmt.Errorf("close memcached cache: %w", err)
	}
	return nil
}

// do runs a gomemcache call, which takes no context, so that it returns
// when ctx ends. The abandoned call still finishes within the client's
// Timeout, and Close waits for it.
func (c *Cache) do(ctx context.Context, call func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer c.wg.Done()
		done <- call()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isTooLarge reports whether err is memcached refusing an item as too
// large. gomemcache passes the line through as an "unexpected response".
func isTooLarge(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SERVER_ERROR object too large") ||
		strings.Contains(s, "SERVER_ERROR out of memory storing object")
}

// Expiration converts ttl into memcached's exptime at time now: 0 for no
// expiry, -1 for "already expired", whole seconds rounded up for TTLs up to
// 30 days, and the absolute Unix time (capped at the largest int32) beyond.
func Expiration(ttl time.Duration, now time.Time) int32 {
	switch {
	case ttl == 0:
		return 0
	case ttl < 0:
		return -1
	}
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 {
		secs++
	}
	if secs <= int64(maxRelativeTTL/time.Second) {
		return int32(secs)
	}
	abs := now.Unix() + secs
	if abs > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(abs)
}
