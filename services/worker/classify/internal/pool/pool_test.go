package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// state records the OS thread its worker opened it on.
type state struct {
	id  int
	tid int
}

func newTestPool(t *testing.T, n int, opened, closed *atomic.Int32) *Pool[*state] {
	t.Helper()
	p, err := New(n, func() (*state, error) {
		return &state{id: int(opened.Add(1)), tid: syscall.Gettid()}, nil
	}, func(*state) { closed.Add(1) })
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestJobsRunOnTheOwnersThread(t *testing.T) {
	var opened, closed atomic.Int32
	p := newTestPool(t, 3, &opened, &closed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int]bool{}
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Do(ctx, func(s *state) error {
				if tid := syscall.Gettid(); tid != s.tid {
					t.Errorf("job ran on thread %d, state %d was opened on %d", tid, s.id, s.tid)
				}
				mu.Lock()
				seen[s.id] = true
				mu.Unlock()
				time.Sleep(time.Millisecond)
				return nil
			})
			if err != nil {
				t.Errorf("Do: %v", err)
			}
		}()
	}
	wg.Wait()
	p.Close()
	if opened.Load() != 3 || closed.Load() != 3 {
		t.Errorf("opened %d, closed %d states; want 3 and 3", opened.Load(), closed.Load())
	}
	if len(seen) < 2 {
		t.Errorf("jobs ran on %d workers, want them spread over more than one of 3", len(seen))
	}
}

func TestDoReturnsJobError(t *testing.T) {
	var opened, closed atomic.Int32
	p := newTestPool(t, 1, &opened, &closed)
	defer p.Close()
	boom := errors.New("boom")
	if err := p.Do(context.Background(), func(*state) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Do = %v, want boom", err)
	}
}

func TestDoCancelled(t *testing.T) {
	var opened, closed atomic.Int32
	p := newTestPool(t, 1, &opened, &closed)
	defer p.Close()

	// Cancelled before: the job never runs.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := p.Do(ctx, func(*state) error { ran = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Do(cancelled) = %v, want context.Canceled", err)
	}

	// Cancelled while running: Do returns at once, the job finishes later.
	started, release := make(chan struct{}), make(chan struct{})
	finished := make(chan struct{})
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Do(ctx2, func(*state) error {
			close(started)
			<-release
			close(finished)
			return nil
		})
	}()
	<-started
	cancel2()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Do(cancelled while running) = %v, want context.Canceled", err)
	}
	close(release)
	<-finished
	// The worker is free again.
	if err := p.Do(context.Background(), func(*state) error { return nil }); err != nil {
		t.Errorf("Do after a cancelled job = %v, want nil", err)
	}
	if ran {
		t.Error("a job whose context was cancelled before Do ran anyway")
	}
}

func TestClose(t *testing.T) {
	var opened, closed atomic.Int32
	p := newTestPool(t, 2, &opened, &closed)
	p.Close()
	p.Close()
	if closed.Load() != 2 {
		t.Errorf("after Close %d states closed, want 2", closed.Load())
	}
	if err := p.Do(context.Background(), func(*state) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
}

func TestOpenFailure(t *testing.T) {
	var opened, closed atomic.Int32
	boom := errors.New("no model")
	_, err := New(3, func() (*state, error) {
		if opened.Add(1) == 2 {
			return nil, boom
		}
		return &state{}, nil
	}, func(*state) { closed.Add(1) })
	if !errors.Is(err, boom) {
		t.Fatalf("New = %v, want the open error", err)
	}
	if closed.Load() != 2 {
		t.Errorf("after a failed New %d states closed, want the 2 that opened", closed.Load())
	}
	if _, err := New(0, func() (*state, error) { return &state{}, nil }, func(*state) {}); err == nil {
		t.Error("New(0) = nil error, want one")
	}
}
