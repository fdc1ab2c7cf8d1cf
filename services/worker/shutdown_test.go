package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/memqueue"
)

// The Shutdown tests run over memqueue, the embedded queue with SQS
// semantics (receipts, visibility, receive counts).

type shutdownTest struct {
	requests, responses *memqueue.Queue
	store               *elastiqtest.Store
	logs                *elastiqtest.Logs
}

func newShutdownTest(t *testing.T) *shutdownTest {
	st := &shutdownTest{
		requests:  memqueue.New(memqueue.Config{VisibilityTimeout: time.Hour}),
		responses: memqueue.New(memqueue.Config{}),
		store:     elastiqtest.NewStore(),
		logs:      elastiqtest.NewLogs(t),
	}
	t.Cleanup(func() { st.requests.Close(); st.responses.Close() })
	return st
}

func (st *shutdownTest) worker(t *testing.T, c classifierFunc, edit func(*Config)) *Worker {
	t.Helper()
	cfg := DefaultConfig("w")
	cfg.VisibilityTimeout, cfg.IdleTimeout = time.Hour, 0
	if edit != nil {
		edit(&cfg)
	}
	w, err := New(cfg, Deps{Requests: st.requests, Responses: st.responses, Store: st.store, Classifier: c,
		Logger: st.logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// submit stores an input and sends its request.
func (st *shutdownTest) submit(t *testing.T, name string) elastiq.Request {
	t.Helper()
	req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: name, SubmittedAt: time.Now()}
	req.InputKey = elastiq.InputKey(req.ID)
	if err := st.store.Put(t.Context(), req.InputKey, elastiq.Object{Body: []byte("face of Zoe")}); err != nil {
		t.Fatal(err)
	}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.requests.Send(t.Context(), body); err != nil {
		t.Fatal(err)
	}
	return req
}

// run starts w.Run and returns a channel with its result.
func run(w *Worker) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- w.Run(context.Background()) }()
	return errc
}

func wait[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// gate is a classifier that signals it started, then waits for release.
func gate(started chan<- struct{}, release <-chan struct{}) classifierFunc {
	return func(ctx context.Context, image []byte) (string, error) {
		started <- struct{}{}
		select {
		case <-release:
			return "Zoe", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// TestShutdownFinishesInHand: Shutdown lets the message in hand finish and
// be deleted, takes no new message, and Run returns ErrShutdown.
func TestShutdownFinishesInHand(t *testing.T) {
	st := newShutdownTest(t)
	started, release := make(chan struct{}, 1), make(chan struct{})
	w := st.worker(t, gate(started, release), func(c *Config) { c.Concurrency = 2; c.CancelReceiveOnShutdown = true })
	req := st.submit(t, "a.jpg")
	runErr := run(w)
	wait(t, "the classification to start", started)

	shut := make(chan error, 1)
	go func() { shut <- w.Shutdown(context.Background()) }()
	elastiqtest.Eventually(t, "the worker draining", func() bool {
		return strings.Contains(st.logs.String(), "stopping: finishing the requests in hand")
	})
	late := st.submit(t, "late.jpg") // a free slot must not take it
	close(release)
	if err := wait(t, "Shutdown", shut); err != nil {
		t.Errorf("Shutdown() = %v, want nil", err)
	}
	if err := wait(t, "Run", runErr); !errors.Is(err, ErrShutdown) {
		t.Errorf("Run() after Shutdown = %v, want ErrShutdown", err)
	}
	msgs, err := st.responses.Receive(t.Context(), 10, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("responses = %d, %v; want 1", len(msgs), err)
	}
	if res, err := elastiq.DecodeResult(msgs[0].Body); err != nil || res.ID != req.ID || res.Label != "Zoe" {
		t.Errorf("response = %+v, %v; want %s labelled Zoe", res, err, req.ID)
	}
	msgs, err = st.requests.Receive(t.Context(), 10, 0)
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Body), string(late.ID)) || msgs[0].ReceiveCount != 1 {
		t.Errorf("request queue after Shutdown = %+v, %v; want only the late request, never delivered before", msgs, err)
	}
	if err := w.Run(t.Context()); !errors.Is(err, ErrShutdown) {
		t.Errorf("Run() after Shutdown = %v, want ErrShutdown at once", err)
	}
}

// TestShutdownGraceOver: a message still in hand when Shutdown's context
// ends is released at once for another worker, not deleted.
func TestShutdownGraceOver(t *testing.T) {
	st := newShutdownTest(t)
	started := make(chan struct{}, 1)
	w := st.worker(t, gate(started, nil), func(c *Config) { c.CancelReceiveOnShutdown = true })
	req := st.submit(t, "a.jpg")
	runErr := run(w)
	wait(t, "the classification to start", started)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := w.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown() past its grace = %v, want context.DeadlineExceeded", err)
	}
	if err := wait(t, "Run", runErr); !errors.Is(err, ErrShutdown) {
		t.Errorf("Run() = %v, want ErrShutdown", err)
	}
	msgs, err := st.requests.Receive(t.Context(), 10, 0)
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Body), string(req.ID)) || msgs[0].ReceiveCount != 2 {
		t.Fatalf("request queue after the grace = %+v, %v; want %s visible at once, delivered a second time", msgs, err, req.ID)
	}
	if _, err := st.store.Get(t.Context(), elastiq.OutputKey(req.ID)); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("output/%s: %v, want none: the classification was interrupted", req.ID, err)
	}
}

// TestShutdownPollInProgress: by default a long poll in progress at
// Shutdown runs to its end (on SQS, cutting it short could leave messages
// invisible) and what it brings is released at once; with
// CancelReceiveOnShutdown the poll ends at once.
func TestShutdownPollInProgress(t *testing.T) {
	for _, tt := range []struct {
		name         string
		cancelPoll   bool
		wantReceives int // deliveries of the late message before the test's own
	}{
		{name: "poll runs to its end", cancelPoll: false, wantReceives: 1},
		{name: "poll cancelled", cancelPoll: true, wantReceives: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newShutdownTest(t)
			w := st.worker(t, labelByContent, func(c *Config) {
				c.ReceiveWait = 5 * time.Second
				c.CancelReceiveOnShutdown = tt.cancelPoll
			})
			runErr := run(w)
			elastiqtest.Eventually(t, "the worker polling", func() bool { return strings.Contains(st.logs.String(), "worker started") })
			time.Sleep(20 * time.Millisecond) // into the poll
			shut := make(chan error, 1)
			go func() { shut <- w.Shutdown(context.Background()) }()
			wait(t, "Shutdown to begin", w.quit)
			if tt.cancelPoll {
				// The poll ended with the Shutdown: nothing is polling
				// when the late request arrives.
				if err := wait(t, "Shutdown", shut); err != nil {
					t.Errorf("Shutdown() = %v, want nil", err)
				}
			}
			late := st.submit(t, "late.jpg")
			if !tt.cancelPoll {
				if err := wait(t, "Shutdown", shut); err != nil {
					t.Errorf("Shutdown() = %v, want nil", err)
				}
			}
			if err := wait(t, "Run", runErr); !errors.Is(err, ErrShutdown) {
				t.Errorf("Run() = %v, want ErrShutdown", err)
			}
			msgs, err := st.requests.Receive(t.Context(), 10, 0)
			if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].Body), string(late.ID)) ||
				msgs[0].ReceiveCount != tt.wantReceives+1 {
				t.Errorf("request queue after Shutdown = %+v, %v; want the late request visible, delivered %d times before",
					msgs, err, tt.wantReceives)
			}
			if res, _ := st.responses.Stats(t.Context()); res != (elastiq.QueueStats{}) {
				t.Errorf("responses = %+v, want none: nothing was taken", res)
			}
		})
	}
}

// TestShutdownBeforeRun: a worker shut down before it runs never takes a
// message.
func TestShutdownBeforeRun(t *testing.T) {
	st := newShutdownTest(t)
	w := st.worker(t, labelByContent, nil)
	if err := w.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown() before Run = %v, want nil", err)
	}
	st.submit(t, "a.jpg")
	if err := w.Run(t.Context()); !errors.Is(err, ErrShutdown) {
		t.Errorf("Run() after Shutdown = %v, want ErrShutdown", err)
	}
	if s, _ := st.requests.Stats(t.Context()); s.Visible != 1 {
		t.Errorf("request queue = %+v, want the request still visible", s)
	}
}
