package elastiqtest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Eventually polls cond until it holds, and fails the test if it does not
// within Timeout. what says what the test waits for, as in "timed out
// waiting for the result cached".
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	eventually(tb, Timeout, what, cond)
}

func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Start runs run in a goroutine with a context that ends with the test, and
// returns stop. Stop cancels that context and waits for run to return: the
// test fails if run returns anything but context.Canceled, or does not return
// within Timeout. name is what failure messages call run, as in
// "Run() = <nil>, want context.Canceled". Calls of stop after the first do
// nothing.
func Start(tb testing.TB, name string, run func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	return start(tb, Timeout, name, run)
}

func start(tb testing.TB, timeout time.Duration, name string, run func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(tb.Context())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx) }()
	var stopped atomic.Bool
	return func() {
		tb.Helper()
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				tb.Errorf("%s() = %v, want context.Canceled", name, err)
			}
		case <-time.After(timeout):
			tb.Fatalf("%s did not return within %v of cancel", name, timeout)
		}
	}
}
