// Package retry holds the two small things every loop that talks to a queue,
// a store or a fleet needs: a sleep that ends with its context, and a
// doubling backoff after consecutive errors.
package retry

import (
	"context"
	"sync"
	"time"
)

// Sleep waits for d, or until ctx is done, and returns ctx.Err() in that
// case. A d of zero or less returns at once (with ctx.Err()).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff is a doubling delay: each consecutive failure lengthens it, from
// Min up to Max, and a success resets it to zero. The zero value never
// waits; set Min and Max. It is safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration

	mu  sync.Mutex
	cur time.Duration
}

// Fail records a failure and returns the delay to wait before the next try.
func (b *Backoff) Fail() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cur = min(max(2*b.cur, b.Min), b.Max)
	return b.cur
}

// Reset records a success: the next try needs no delay.
func (b *Backoff) Reset() {
	b.mu.Lock()
	b.cur = 0
	b.mu.Unlock()
}

// Delay is the delay owed after the failures recorded since the last Reset.
func (b *Backoff) Delay() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}
