package elastiqtest

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// Logs is a test double of a log destination: it keeps everything written to
// it so a test can check what a component logged. It is safe for concurrent
// use, so a component's goroutines may log while the test reads.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// NewLogs returns an empty Logs whose contents are written to tb's log if
// the test fails, to show what the component under test did.
func NewLogs(tb testing.TB) *Logs {
	l := &Logs{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("logs:\n%s", l.String())
		}
	})
	return l
}

// Logger returns a logger that writes text records of every level, debug
// included, to l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write appends p to the logs.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
