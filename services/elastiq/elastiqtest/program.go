package elastiqtest

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"sync"
	"testing"
	"time"
)

// RunFunc is the shape of every elastiq program's run function: main calls
// it with the process's arguments, environment and standard streams.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Program is a program's run function running in a goroutine of a test, with
// its output captured.
type Program struct {
	tb     testing.TB
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed

	Stdout, Stderr *Buffer
}

// StartProgram calls run with args and getenv in a goroutine, with a context
// that StopProgram (or the end of the test) cancels, as a SIGTERM would. At
// the end of the test it stops the program if it still runs, and fails the
// test if it does not return within Timeout.
func StartProgram(tb testing.TB, run RunFunc, args []string, getenv func(string) string) *Program {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Program{tb: tb, cancel: cancel, done: make(chan struct{}), Stdout: &Buffer{}, Stderr: &Buffer{}}
	go func() {
		defer close(p.done)
		p.err = run(ctx, args, getenv, p.Stdout, p.Stderr)
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(Timeout):
			tb.Errorf("%s did not return within %v of its context's end; stderr:\n%s", args[0], Timeout, p.Stderr)
		}
	})
	return p
}

// WaitOutput waits until the program's stdout matches re and returns the
// match and its submatches. It fails the test if the program returns first
// or nothing matches within timeout.
func (p *Program) WaitOutput(re *regexp.Regexp, timeout time.Duration) []string {
	p.tb.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		if m := re.FindStringSubmatch(p.Stdout.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.Stdout.String()); m != nil {
				return m
			}
			p.tb.Fatalf("run() = %v before printing %q; stdout:\n%s\nstderr:\n%s", p.err, re, p.Stdout, p.Stderr)
		case <-deadline:
			p.tb.Fatalf("no output matching %q after %v; stdout:\n%s\nstderr:\n%s", re, timeout, p.Stdout, p.Stderr)
		case <-tick.C:
		}
	}
}

// Wait waits up to timeout for run to return by itself and returns its
// error. It fails the test if run does not return in time.
func (p *Program) Wait(timeout time.Duration) error {
	p.tb.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.tb.Fatalf("run() still running after %v; stderr:\n%s", timeout, p.Stderr)
		return nil
	}
}

// Interrupt cancels run's context, as SIGTERM would, and returns at once.
func (p *Program) Interrupt() { p.cancel() }

// Stop cancels run's context, as SIGTERM would, and returns what run
// returns. It fails the test if run does not return within Timeout.
func (p *Program) Stop() error {
	p.tb.Helper()
	p.Interrupt()
	return p.Wait(Timeout)
}

// Done is closed when run has returned.
func (p *Program) Done() <-chan struct{} { return p.done }

// Buffer is an io.Writer that a program may write while a test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Env is a program's environment for a test: getenv over kv, nothing else
// (nil is the empty environment).
func Env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}
