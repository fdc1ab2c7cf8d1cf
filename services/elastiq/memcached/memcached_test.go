package memcached

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
)

// testServers returns the memcached servers to test against (host:port,
// comma-separated, from scripts/test-servers.sh). Without them the test
// fails (skips under -short).
func testServers(t *testing.T) []string {
	t.Helper()
	return strings.Split(awstest.RequireEnv(t, awstest.EnvMemcached), ",")
}

func newTestCache(t *testing.T, cfg Config) *Cache {
	t.Helper()
	if cfg.Servers == nil {
		cfg.Servers = testServers(t)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second // generous: the machine may be loaded
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// testKey is a key no other test (or test run) uses.
func testKey(t *testing.T) string {
	return fmt.Sprintf("elastiq-test/%s/%s", strings.ReplaceAll(t.Name(), " ", "_"), rand.Text())
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitMiss polls key until it misses, failing after a generous deadline.
func waitMiss(t *testing.T, c *Cache, key string) {
	t.Helper()
	elastiqtest.Eventually(t, key+" to expire", func() bool {
		_, err := c.Get(testCtx(t), key)
		if err != nil && !errors.Is(err, elastiq.ErrNotFound) {
			t.Fatalf("Get(%s) = %v, want a value or a miss", key, err)
		}
		return err != nil
	})
}

func TestExpiration(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const thirtyDays = 30 * 24 * 60 * 60
	tests := []struct {
		name string
		ttl  time.Duration
		want int32
	}{
		{name: "zero never expires", ttl: 0, want: 0},
		{name: "negative expires at once", ttl: -time.Second, want: -1},
		{name: "one nanosecond rounds up", ttl: time.Nanosecond, want: 1},
		{name: "sub-second rounds up", ttl: 300 * time.Millisecond, want: 1},
		{name: "whole seconds", ttl: 15 * time.Second, want: 15},
		{name: "fraction rounds up", ttl: 1500 * time.Millisecond, want: 2},
		{name: "thirty days is relative", ttl: thirtyDays * time.Second, want: thirtyDays},
		{name: "just over thirty days rounds to absolute", ttl: thirtyDays*time.Second + time.Millisecond, want: 1_700_000_000 + thirtyDays + 1},
		{name: "thirty-one days is absolute", ttl: 31 * 24 * time.Hour, want: 1_700_000_000 + 31*24*60*60},
		{name: "beyond 2038 is capped", ttl: 100 * 365 * 24 * time.Hour, want: math.MaxInt32},
		{name: "largest duration is capped", ttl: math.MaxInt64, want: math.MaxInt32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Expiration(tt.ttl, now); got != tt.want {
				t.Errorf("Expiration(%v, %d) = %d, want %d", tt.ttl, now.Unix(), got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no servers", cfg: Config{}},
		{name: "unresolvable server", cfg: Config{Servers: []string{"127.0.0.1:notaport"}}},
		{name: "negative timeout", cfg: Config{Servers: []string{"127.0.0.1:11211"}, Timeout: -time.Second}},
		{name: "negative item size", cfg: Config{Servers: []string{"127.0.0.1:11211"}, MaxItemBytes: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := New(tt.cfg); err == nil {
				c.Close()
				t.Errorf("New(%+v) = nil error, want one", tt.cfg)
			}
		})
	}
}

func TestBadKeys(t *testing.T) {
	// Keys are checked before any I/O, so no server is needed.
	c, err := New(Config{Servers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	tests := []struct {
		name string
		key  string
	}{
		{name: "empty", key: ""},
		{name: "too long", key: strings.Repeat("k", 251)},
		{name: "space", key: "a key"},
		{name: "newline", key: "a\nkey"},
		{name: "carriage return injects a command", key: "k\r\nflush_all"},
		{name: "tab", key: "a\tkey"},
		{name: "nul", key: "a\x00key"},
		{name: "delete", key: "a\x7fkey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			if err := c.Set(ctx, tt.key, []byte("v"), time.Minute); err == nil || !strings.Contains(err.Error(), "key") {
				t.Errorf("Set(%q) = %v, want an error about the key", tt.key, err)
			}
			_, err := c.Get(ctx, tt.key)
			if err == nil || errors.Is(err, elastiq.ErrNotFound) || !strings.Contains(err.Error(), "key") {
				t.Errorf("Get(%q) = %v, want an error about the key that is not ErrNotFound", tt.key, err)
			}
		})
	}
}

func TestLongestKeyIsAccepted(t *testing.T) {
	c := newTestCache(t, Config{})
	ctx := testCtx(t)
	key := testKey(t)
	key += strings.Repeat("k", elastiq.MaxCacheKeyLen-len(key))
	if err := c.Set(ctx, key, []byte("v"), time.Minute); err != nil {
		t.Fatalf("Set(250-byte key) = %v, want nil", err)
	}
	if got, err := c.Get(ctx, key); err != nil || string(got) != "v" {
		t.Errorf("Get(250-byte key) = %q, %v, want \"v\", nil", got, err)
	}
}

func TestHitMissOverwrite(t *testing.T) {
	c := newTestCache(t, Config{})
	ctx := testCtx(t)
	key := testKey(t)

	if got, err := c.Get(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
		t.Fatalf("Get(never set) = %q, %v, want ErrNotFound", got, err)
	}
	binary := []byte("first\r\nEND\r\n\x00\xff") // the protocol's own delimiters must survive
	if err := c.Set(ctx, key, binary, time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := c.Get(ctx, key); err != nil || !bytes.Equal(got, binary) {
		t.Fatalf("Get = %q, %v, want %q, nil", got, err, binary)
	}
	if err := c.Set(ctx, key, []byte("second"), time.Minute); err != nil {
		t.Fatalf("Set(overwrite): %v", err)
	}
	if got, err := c.Get(ctx, key); err != nil || string(got) != "second" {
		t.Fatalf("Get after overwrite = %q, %v, want \"second\", nil", got, err)
	}
	if err := c.Set(ctx, key, nil, time.Minute); err != nil {
		t.Fatalf("Set(empty): %v", err)
	}
	if got, err := c.Get(ctx, key); err != nil || len(got) != 0 {
		t.Fatalf("Get after empty Set = %q, %v, want empty, nil", got, err)
	}
}

func TestTTLExpiry(t *testing.T) {
	// memcached counts in whole seconds from its own clock tick, so a 3 s
	// TTL lives at least 2 s: long enough to read the value back once.
	c := newTestCache(t, Config{})
	ctx := testCtx(t)
	key := testKey(t)
	if err := c.Set(ctx, key, []byte("v"), 3*time.Second); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := c.Get(ctx, key); err != nil || string(got) != "v" {
		t.Fatalf("Get right after Set(ttl 3s) = %q, %v, want \"v\", nil", got, err)
	}
	waitMiss(t, c, key)
}

func TestSubSecondTTLExpires(t *testing.T) {
	// Truncated to whole seconds, 100 ms would be 0: never expire.
	c := newTestCache(t, Config{})
	key := testKey(t)
	if err := c.Set(testCtx(t), key, []byte("v"), 100*time.Millisecond); err != nil {
		t.Fatalf("Set: %v", err)
	}
	waitMiss(t, c, key)
}

func TestNegativeTTLRemoves(t *testing.T) {
	c := newTestCache(t, Config{})
	ctx := testCtx(t)
	key := testKey(t)
	if err := c.Set(ctx, key, []byte("v"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := c.Set(ctx, key, []byte("v"), -time.Second); err != nil {
		t.Fatalf("Set(negative ttl): %v", err)
	}
	if got, err := c.Get(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("Get after Set(negative ttl) = %q, %v, want ErrNotFound", got, err)
	}
}

func TestLongTTLIsKept(t *testing.T) {
	// Sent as 2678400 relative seconds, memcached would read 31 days as a
	// Unix time in January 1970 and drop the item at once.
	c := newTestCache(t, Config{})
	ctx := testCtx(t)
	for _, ttl := range []time.Duration{30 * 24 * time.Hour, 31 * 24 * time.Hour, 365 * 24 * time.Hour} {
		key := testKey(t)
		if err := c.Set(ctx, key, []byte("v"), ttl); err != nil {
			t.Fatalf("Set(ttl %v): %v", ttl, err)
		}
		if got, err := c.Get(ctx, key); err != nil || string(got) != "v" {
			t.Errorf("Get after Set(ttl %v) = %q, %v, want \"v\", nil", ttl, got, err)
		}
	}
}

func TestLargeValues(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name         string
		maxItemBytes int
		size         int
		wantTooLarge bool
	}{
		{name: "well under the limit", size: 512 << 10},
		{name: "over the client limit", size: DefaultMaxItemBytes + 1, wantTooLarge: true},
		// With the client limit raised past the server's 1 MiB, the
		// server itself refuses, and that is ErrTooLarge too.
		{name: "over the server limit", maxItemBytes: 4 << 20, size: 2 << 20, wantTooLarge: true},
		// The server's limit counts the key and item header as well.
		{name: "exactly the limit", size: DefaultMaxItemBytes, maxItemBytes: 4 << 20, wantTooLarge: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCache(t, Config{MaxItemBytes: tt.maxItemBytes})
			key := testKey(t)
			value := bytes.Repeat([]byte{'x'}, tt.size)
			err := c.Set(ctx, key, value, time.Minute)
			if tt.wantTooLarge {
				if !errors.Is(err, elastiq.ErrTooLarge) {
					t.Fatalf("Set(%d bytes) = %v, want ErrTooLarge", tt.size, err)
				}
				if got, err := c.Get(ctx, key); !errors.Is(err, elastiq.ErrNotFound) {
					t.Fatalf("Get after refused Set = %d bytes, %v, want ErrNotFound", len(got), err)
				}
				// The connection the refusal came on must not break the next call.
				if err := c.Set(ctx, key, []byte("small"), time.Minute); err != nil {
					t.Fatalf("Set(small) after refused Set = %v, want nil", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set(%d bytes) = %v, want nil", tt.size, err)
			}
			if got, err := c.Get(ctx, key); err != nil || !bytes.Equal(got, value) {
				t.Fatalf("Get = %d bytes, %v, want %d bytes, nil", len(got), err, tt.size)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr returns a loopback address that accepts connections and never
// answers, like a hung server.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	accepted := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- conn:
			default:
				conn.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(accepted)
		for conn := range accepted {
			conn.Close()
		}
	})
	return ln.Addr().String()
}

func TestServerDown(t *testing.T) {
	tests := []struct {
		name string
		addr func(*testing.T) string
	}{
		{name: "connection refused", addr: closedAddr},
		{name: "server does not answer", addr: silentAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Servers: []string{tt.addr(t)}, Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer c.Close()
			// The ctx deadline is far beyond the client's timeout: the
			// error must come from the timeout, not from ctx.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err = c.Get(ctx, "k")
			if err == nil || errors.Is(err, elastiq.ErrNotFound) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Get with the server down = %v, want an I/O error that is not ErrNotFound", err)
			}
			err = c.Set(ctx, "k", []byte("v"), time.Minute)
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Set with the server down = %v, want an I/O error", err)
			}
			if err := c.Ping(ctx); err == nil {
				t.Errorf("Ping with the server down = nil, want an error")
			}
		})
	}
}

func TestContextEndsCall(t *testing.T) {
	// A hung server and a client timeout of a minute: only ctx can end
	// the call. The abandoned call ends when the hung server's
	// connections close, so Close (which waits for it) must run after
	// silentAddr's cleanup: cleanups run last-registered first.
	var c *Cache
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := c.Set(context.Background(), "k", nil, 0); !errors.Is(err, ErrClosed) {
			t.Errorf("Set after Close = %v, want ErrClosed", err)
		}
	})
	c, err := New(Config{Servers: []string{silentAddr(t)}, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "k")
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Get after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Get did not return 30 s after its context was cancelled")
	}
}

func TestPing(t *testing.T) {
	c := newTestCache(t, Config{})
	if err := c.Ping(testCtx(t)); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

// BenchmarkSetGet measures one Set and one Get of a result-sized value
// (300 bytes) against the real server, from parallel goroutines.
func BenchmarkSetGet(b *testing.B) {
	servers := strings.Split(awstest.RequireEnv(b, awstest.EnvMemcached), ",")
	c, err := New(Config{Servers: servers, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	value := bytes.Repeat([]byte{'r'}, 300)
	prefix := "elastiq-bench/" + rand.Text()
	ctx := b.Context()
	b.RunParallel(func(pb *testing.PB) {
		key := prefix + "/" + rand.Text()
		for pb.Next() {
			if err := c.Set(ctx, key, value, time.Minute); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
