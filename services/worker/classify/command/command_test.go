package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

var _ elastiq.Classifier = (*Classifier)(nil)

func newT(t *testing.T, cfg Config) *Classifier {
	t.Helper()
	c, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// sh runs script with sh -c; the image path is $1.
func sh(script string, args ...string) []string {
	return append([]string{"sh", "-c", script, "sh"}, args...)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cmd   []string
		image string
		want  string
	}{
		{name: "last non-empty line", cmd: sh(`echo loading model >&2; echo debug; echo "  Paul  "; echo; echo`, "{}"), want: "Paul"},
		{name: "reads the image file", cmd: sh(`cat "$1"`, "{}"), image: "line one\nBob\n", want: "Bob"},
		{name: "path appended without placeholder", cmd: sh(`cat "$1"`), image: "Emily", want: "Emily"},
		{name: "placeholder inside an argument", cmd: sh(`cat "${1#--image=}"`, "--image={}"), image: "Gerry", want: "Gerry"},
		{name: "byte count", cmd: sh(`wc -c < "$1" | tr -d ' '`, "{}"), image: strings.Repeat("x", 1234), want: "1234"},
		{name: "crlf output", cmd: sh(`printf 'Wang\r\n'`, "{}"), want: "Wang"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newT(t, Config{Command: tc.cmd, Timeout: 30 * time.Second})
			got, err := c.Classify(ctxT(t), []byte(tc.image))
			if err != nil || got != tc.want {
				t.Fatalf("Classify = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestClassifyErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmd     []string
		timeout time.Duration
		want    []string
		is      error
	}{
		{name: "non-zero exit", cmd: sh(`echo partial; echo "model file missing" >&2; exit 3`, "{}"), want: []string{"exit status 3", "model file missing"}},
		{name: "no output", cmd: sh(`echo "nothing to say" >&2`, "{}"), want: []string{"printed no label", "nothing to say"}},
		{name: "blank output", cmd: sh(`printf '\n  \n'`, "{}"), want: []string{"printed no label"}},
		{name: "timeout", cmd: sh(`echo "starting" >&2; sleep 60`, "{}"), timeout: 200 * time.Millisecond,
			want: []string{"stopped after", "starting"}, is: context.DeadlineExceeded},
		{name: "killed by signal", cmd: sh(`kill -9 $$`, "{}"), want: []string{"signal: killed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newT(t, Config{Command: tc.cmd, Timeout: tc.timeout})
			got, err := c.Classify(ctxT(t), []byte("img"))
			if err == nil {
				t.Fatalf("Classify = %q, nil; want an error", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Classify error %q does not contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Classify error %q is not %v", err, tc.is)
			}
		})
	}
}

func TestStderrTail(t *testing.T) {
	c := newT(t, Config{Command: sh(`i=0; while [ $i -lt 500 ]; do echo "noise line $i" >&2; i=$((i+1)); done; echo "the real cause" >&2; exit 1`, "{}")})
	_, err := c.Classify(ctxT(t), []byte("img"))
	if err == nil {
		t.Fatal("Classify = nil error, want one")
	}
	msg := err.Error()
	if !strings.HasSuffix(msg, "the real cause") || strings.Contains(msg, "noise line 0\n") || len(msg) > stderrTail+200 {
		t.Errorf("Classify error (%d bytes) should end with the last of stderr and be bounded: %.200q...", len(msg), msg)
	}
}

func TestCancelledByCaller(t *testing.T) {
	c := newT(t, Config{Command: sh(`sleep 60`, "{}")})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	if got, err := c.Classify(ctx, []byte("img")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Classify = %q, %v; want context.Canceled", got, err)
	}
}

func TestTempFileRemoved(t *testing.T) {
	dir := t.TempDir()
	c := newT(t, Config{Command: sh(`echo "$1"`, "{}"), TempDir: dir})
	path, err := c.Classify(ctxT(t), []byte("img"))
	if err != nil {
		t.Fatalf("Classify: %v", err)
	}
	if !strings.HasPrefix(path, dir) {
		t.Errorf("image path %q not in TempDir %q", path, dir)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s) after Classify = %v, want not exist", path, err)
	}
}

func TestConcurrent(t *testing.T) {
	c := newT(t, Config{Command: sh(`cat "$1"`, "{}"), Timeout: 30 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("label-%d", i)
			if got, err := c.Classify(ctxT(t), []byte(want)); err != nil || got != want {
				errs <- fmt.Errorf("Classify = %q, %v; want %q", got, err, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "empty", cfg: Config{}, want: "command is empty"},
		{name: "negative timeout", cfg: Config{Command: []string{"true"}, Timeout: -time.Second}, want: "timeout"},
		{name: "missing program", cfg: Config{Command: []string{"elastiq-no-such-program"}}, want: "executable file not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) error = %v, want one containing %q", tc.cfg, err, tc.want)
			}
		})
	}
}
