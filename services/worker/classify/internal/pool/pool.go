// Package pool runs work on a fixed set of goroutines that each own some
// thread-affine state, such as ONNX Runtime sessions.
//
// Each worker goroutine locks itself to its OS thread
// (runtime.LockOSThread), creates its state there, and runs every job that
// uses that state on the same thread. A session with one intra-op thread
// runs its kernels on the calling thread, so per-thread settings made at
// creation (such as the floating-point mode, see ortenv.FlushDenormals) hold
// for every run, and the session's thread is never shared with other
// goroutines.
package pool

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("pool closed")

// Pool runs jobs on n goroutines, each owning a state S.
type Pool[S any] struct {
	jobs chan job[S]
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type job[S any] struct {
	ctx  context.Context
	fn   func(S) error
	done chan error // buffered: a worker never blocks on an abandoned job
}

// New starts n workers. Each calls open on its own locked OS thread to make
// its state, and closeState on the same thread when the pool closes. If any
// open fails, New closes the workers that started and returns the error.
func New[S any](n int, open func() (S, error), closeState func(S)) (*Pool[S], error) {
	if n < 1 {
		return nil, errors.New("new pool: need at least one worker")
	}
	p := &Pool[S]{jobs: make(chan job[S]), quit: make(chan struct{})}
	started := make(chan error, n)
	for range n {
		p.wg.Add(1)
		go p.run(open, closeState, started)
	}
	var errs []error
	for range n {
		if err := <-started; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		p.Close()
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func (p *Pool[S]) run(open func() (S, error), closeState func(S), started chan<- error) {
	defer p.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, err := open()
	started <- err
	if err != nil {
		return
	}
	defer closeState(s)
	for {
		select {
		case <-p.quit:
			return
		case j := <-p.jobs:
			if err := j.ctx.Err(); err != nil {
				j.done <- err
				continue
			}
			j.done <- j.fn(s)
		}
	}
}

// Do runs fn on one of the workers and returns its error. If ctx ends
// first, Do returns ctx's error at once; a job that already started still
// runs to completion on its worker, and its result is dropped, so fn must
// not hand out anything the caller reads after Do returned.
func (p *Pool[S]) Do(ctx context.Context, fn func(S) error) error {
	j := job[S]{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-p.quit:
		return ErrClosed
	default:
	}
	select {
	case p.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.quit:
		return ErrClosed
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the workers after their current jobs and waits until each has
// closed its state. It is safe to call more than once.
func (p *Pool[S]) Close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}
