package elastiqtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// recorder is a test double of testing.TB: it records Errorf, Fatalf and
// Logf instead of failing or logging, and Fatalf ends the calling goroutine
// as testing's does. Context and Cleanup are the real test's.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	logs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errors) > 0
}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// finish runs the recorded cleanups, last first, as testing does.
func (r *recorder) finish() {
	r.mu.Lock()
	fs := slices.Clone(r.cleanups)
	r.cleanups = nil
	r.mu.Unlock()
	for _, f := range slices.Backward(fs) {
		f()
	}
}

// run calls f in its own goroutine, so a Fatalf ends only f, and returns
// what f recorded.
func (r *recorder) run(f func()) []string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errors)
}

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestClock(t *testing.T) {
	c := NewClock(epoch)
	steps := []struct {
		name string
		move func()
		want time.Time
	}{
		{name: "unmoved", move: func() {}, want: epoch},
		{name: "advance 90s", move: func() { c.Advance(90 * time.Second) }, want: epoch.Add(90 * time.Second)},
		{name: "advance -30s", move: func() { c.Advance(-30 * time.Second) }, want: epoch.Add(time.Minute)},
		{name: "set", move: func() { c.Set(epoch.Add(time.Hour)) }, want: epoch.Add(time.Hour)},
	}
	for _, st := range steps {
		st.move()
		if got := c.Now(); !got.Equal(st.want) {
			t.Fatalf("%s: Now() = %v, want %v", st.name, got, st.want)
		}
	}
}

func TestClockConcurrent(t *testing.T) {
	c := NewClock(epoch)
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c.Advance(time.Second)
			_ = c.Now()
		})
	}
	wg.Wait()
	if got, want := c.Now(), epoch.Add(n*time.Second); !got.Equal(want) {
		t.Errorf("Now() after %d concurrent Advance(1s) = %v, want %v", n, got, want)
	}
}

func TestLogs(t *testing.T) {
	l := NewLogs(t)
	log := l.Logger().With("component", "test")
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { log.Debug("tick", "i", i) })
	}
	wg.Wait()
	log.Info("done", "n", 10)
	got := l.String()
	if n := strings.Count(got, "level=DEBUG msg=tick component=test i="); n != 10 {
		t.Errorf("logs have %d debug ticks, want 10:\n%s", n, got)
	}
	if want := "level=INFO msg=done component=test n=10\n"; !strings.HasSuffix(got, want) {
		t.Errorf("logs = %q, want them to end with %q", got, want)
	}
}

func TestNewLogsShownOnFailure(t *testing.T) {
	tests := []struct {
		name     string
		fail     bool
		wantLogs []string
	}{
		{name: "passed", fail: false, wantLogs: nil},
		{name: "failed", fail: true, wantLogs: []string{"logs:\nhello\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			l := NewLogs(r)
			fmt.Fprintln(l, "hello")
			if tt.fail {
				r.Errorf("something broke")
			}
			r.finish()
			if !slices.Equal(r.logs, tt.wantLogs) {
				t.Errorf("test log = %q, want %q", r.logs, tt.wantLogs)
			}
		})
	}
}

func TestStore(t *testing.T) {
	ctx := t.Context()
	var s Store // the zero value is an empty store
	body := []byte("jpeg")
	obj := elastiq.Object{Body: body, ContentType: "image/jpeg", Metadata: map[string]string{"file-name": "a.jpg"}}
	for _, k := range []string{"output/b", "input/a", "input/c", "input/a"} {
		if err := s.Put(ctx, k, obj); err != nil {
			t.Fatalf("Put(%s) = %v", k, err)
		}
	}
	body[0] = 'X' // the store kept its own copy
	got, err := s.Get(ctx, "input/a")
	if err != nil || string(got.Body) != "jpeg" || got.ContentType != "image/jpeg" || got.Metadata["file-name"] != "a.jpg" {
		t.Fatalf("Get(input/a) = %q %q %v, %v; want jpeg image/jpeg with its metadata", got.Body, got.ContentType, got.Metadata, err)
	}
	got.Body[0] = 'Y' // and hands out copies
	if again, _ := s.Get(ctx, "input/a"); string(again.Body) != "jpeg" {
		t.Errorf("Get(input/a) after changing the last answer = %q, want jpeg", again.Body)
	}
	if h, err := s.Head(ctx, "input/a"); err != nil || h.Body != nil || h.ContentType != "image/jpeg" {
		t.Errorf("Head(input/a) = %q %q, %v; want no body, image/jpeg", h.Body, h.ContentType, err)
	}
	if keys, err := s.List(ctx, elastiq.InputPrefix); err != nil || !slices.Equal(keys, []string{"input/a", "input/c"}) {
		t.Errorf("List(input/) = %q, %v; want [input/a input/c]", keys, err)
	}
	if n, total := s.PutCount("input/a"), s.Puts(); n != 2 || total != 4 {
		t.Errorf("PutCount(input/a), Puts() = %d, %d; want 2, 4", n, total)
	}
	for _, k := range []string{"input/a", "input/a", "never/was"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("Delete(%s) = %v, want nil", k, err)
		}
	}
	for _, k := range []string{"input/a", "never/was"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, elastiq.ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", k, err)
		}
		if _, err := s.Head(ctx, k); !errors.Is(err, elastiq.ErrNotFound) {
			t.Errorf("Head(%s) = %v, want ErrNotFound", k, err)
		}
	}
}

func TestStoreInjectedErrors(t *testing.T) {
	ctx := t.Context()
	s := NewStore()
	if err := s.Put(ctx, "k", elastiq.Object{Body: []byte("v")}); err != nil {
		t.Fatalf("Put(k) = %v", err)
	}
	errPut, errGet := errors.New("disk full"), errors.New("disk on fire")
	s.SetPutErr(errPut)
	s.SetGetErr(errGet)
	if err := s.Put(ctx, "k", elastiq.Object{}); !errors.Is(err, errPut) {
		t.Errorf("Put(k) with SetPutErr = %v, want %v", err, errPut)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, errGet) {
		t.Errorf("Get(k) with SetGetErr = %v, want %v", err, errGet)
	}
	if _, err := s.Head(ctx, "k"); !errors.Is(err, errGet) {
		t.Errorf("Head(k) with SetGetErr = %v, want %v", err, errGet)
	}
	if n := s.PutCount("k"); n != 1 {
		t.Errorf("PutCount(k) = %d, want 1 (a failed Put does not count)", n)
	}
	s.SetPutErr(nil)
	s.SetGetErr(nil)
	if got, err := s.Get(ctx, "k"); err != nil || string(got.Body) != "v" {
		t.Errorf("Get(k) after clearing errors = %q, %v; want v", got.Body, err)
	}
}

func TestStoreConcurrent(t *testing.T) {
	s := NewStore()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			k := fmt.Sprintf("input/%02d", i%5)
			if err := s.Put(t.Context(), k, elastiq.Object{Body: []byte(k)}); err != nil {
				t.Errorf("Put(%s) = %v", k, err)
			}
			if _, err := s.Get(t.Context(), k); err != nil {
				t.Errorf("Get(%s) = %v", k, err)
			}
		})
	}
	wg.Wait()
	if keys, _ := s.List(t.Context(), ""); len(keys) != 5 || s.Puts() != 20 {
		t.Errorf("List() = %q, Puts() = %d; want 5 keys, 20 puts", keys, s.Puts())
	}
}

func TestEventually(t *testing.T) {
	tests := []struct {
		name       string
		trueAfter  int // cond holds from this call on; 0: never
		wantErrors []string
	}{
		{name: "at once", trueAfter: 1},
		{name: "after polling", trueAfter: 5},
		{name: "never", trueAfter: 0, wantErrors: []string{"timed out waiting for the moon"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			calls := 0
			cond := func() bool { calls++; return tt.trueAfter > 0 && calls >= tt.trueAfter }
			timeout := Timeout
			if tt.trueAfter == 0 {
				timeout = 20 * time.Millisecond
			}
			got := r.run(func() { eventually(r, timeout, "the moon", cond) })
			if !slices.Equal(got, tt.wantErrors) {
				t.Errorf("eventually failures = %q, want %q", got, tt.wantErrors)
			}
			if tt.trueAfter > 0 && calls != tt.trueAfter {
				t.Errorf("cond calls = %d, want %d", calls, tt.trueAfter)
			}
		})
	}
}

func TestStart(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name       string
		run        func(ctx context.Context) error
		timeout    time.Duration // how long stop waits; Timeout if zero
		wantErrors []string
	}{
		{name: "returns canceled",
			run: func(ctx context.Context) error { <-ctx.Done(); return fmt.Errorf("run: %w", ctx.Err()) }},
		{name: "returns nil",
			run:        func(ctx context.Context) error { <-ctx.Done(); return nil },
			wantErrors: []string{"Run() = <nil>, want context.Canceled"}},
		{name: "ignores cancel",
			run:        func(ctx context.Context) error { <-release; return ctx.Err() },
			timeout:    20 * time.Millisecond,
			wantErrors: []string{"Run did not return within 20ms of cancel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			started := make(chan struct{})
			run := func(ctx context.Context) error { close(started); return tt.run(ctx) }
			stop := start(r, cmp.Or(tt.timeout, Timeout), "Run", run)
			<-started
			got := r.run(stop)
			if !slices.Equal(got, tt.wantErrors) {
				t.Errorf("stop() failures = %q, want %q", got, tt.wantErrors)
			}
			if again := r.run(stop); len(again) != len(got) {
				t.Errorf("second stop() added failures %q, want none", again[len(got):])
			}
		})
	}
}

func TestStartContextEndsWithTest(t *testing.T) {
	done := make(chan error, 1)
	t.Run("inner", func(t *testing.T) {
		Start(t, "Run", func(ctx context.Context) error {
			<-ctx.Done()
			done <- ctx.Err()
			return ctx.Err()
		})
	})
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("run's ctx.Err() after the test ended = %v, want context.Canceled", err)
		}
	case <-time.After(Timeout):
		t.Fatalf("run's context did not end within %v of the test's end", Timeout)
	}
}

func TestWorkload(t *testing.T) {
	imgs := Workload(t)
	labels := map[string]bool{}
	for _, img := range imgs {
		if len(img.Data) == 0 || !strings.HasSuffix(img.Name, ".jpg") || img.Label == "" {
			t.Errorf("image %q: %d bytes, label %q; want a JPEG with a label", img.Name, len(img.Data), img.Label)
		}
		labels[img.Label] = true
	}
	if imgs[0].Name != "test_00.jpg" || imgs[0].Label != "Paul" || len(labels) != 8 {
		t.Errorf("workload starts %s %s with %d labels, want test_00.jpg Paul, 8 labels", imgs[0].Name, imgs[0].Label, len(labels))
	}
}

func TestProcStatus(t *testing.T) {
	rss, peak := ProcStatus(t, 0, "VmRSS"), ProcStatus(t, os.Getpid(), "VmHWM")
	if rss <= 0 || peak < rss/2 {
		t.Errorf("VmRSS %d, VmHWM %d: want a positive resident size and a peak near or above it", rss, peak)
	}
}
