package localfleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

var _ elastiq.Fleet = (*Fleet)(nil)

// testTimeout bounds every wait; it is a deadline for something that should
// happen soon, never a speed assertion.
const testTimeout = 30 * time.Second

// worker is a test double for the instances' workers (Config.NewWorker).
// Each Run call registers itself and returns when the test tells it to, or
// when its context ends (unless it was told to ignore cancellation). Its
// Shutdown returns at once, so the fleet cancels Run's context next: a
// worker with nothing to finish.
type worker struct {
	mu    sync.Mutex
	calls map[string]int           // instance ID -> Run calls so far
	exits map[string]chan error    // instance ID -> the running call's exit
	seen  map[string]chan struct{} // instance ID -> closed when its ctx ended
	busy  bool                     // ignore ctx, wait for exit
	runs  chan string              // every Run call's instance ID
}

func newWorker() *worker {
	return &worker{
		calls: make(map[string]int),
		exits: make(map[string]chan error),
		seen:  make(map[string]chan struct{}),
		runs:  make(chan string, 100),
	}
}

// New is Config.NewWorker.
func (w *worker) New(id string) (Worker, error) { return instanceWorker{w: w, id: id}, nil }

type instanceWorker struct {
	w  *worker
	id string
}

func (iw instanceWorker) Run(ctx context.Context) error { return iw.w.Run(ctx, iw.id) }

func (iw instanceWorker) Shutdown(context.Context) error { return nil }

func (w *worker) Run(ctx context.Context, id string) error {
	exit := make(chan error, 1)
	seen := make(chan struct{})
	w.mu.Lock()
	w.calls[id]++
	w.exits[id] = exit
	w.seen[id] = seen
	busy := w.busy
	w.mu.Unlock()
	w.runs <- id
	if !busy {
		select {
		case err := <-exit:
			return err
		case <-ctx.Done():
			close(seen)
			return ctx.Err()
		}
	}
	<-ctx.Done()
	close(seen)
	return <-exit
}

// exit makes the running call for id return err.
func (w *worker) exit(id string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.exits[id] <- err
}

// awaitCancel waits until the running call for id has seen its context end.
func (w *worker) awaitCancel(t *testing.T, id string) {
	t.Helper()
	w.mu.Lock()
	seen := w.seen[id]
	w.mu.Unlock()
	select {
	case <-seen:
	case <-time.After(testTimeout):
		t.Fatalf("Run(%s) context not cancelled after %v", id, testTimeout)
	}
}

func (w *worker) callCount(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[id]
}

// awaitRun waits for the next Run call and returns its instance ID.
func (w *worker) awaitRun(t *testing.T) string {
	t.Helper()
	select {
	case id := <-w.runs:
		return id
	case <-time.After(testTimeout):
		t.Fatalf("no Run call within %v", testTimeout)
		return ""
	}
}

// timers is a test double for Config.After: a delay ends when the test
// fires it.
type timers struct {
	mu      sync.Mutex
	pending []chan time.Time
	asked   []time.Duration
}

func (tm *timers) After(d time.Duration) <-chan time.Time {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	ch := make(chan time.Time, 1)
	tm.pending = append(tm.pending, ch)
	tm.asked = append(tm.asked, d)
	return ch
}

// fire ends the oldest pending delay, waiting for one to be asked for, and
// returns its duration.
func (tm *timers) fire(t *testing.T) time.Duration {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		tm.mu.Lock()
		if len(tm.pending) > 0 {
			ch, d := tm.pending[0], tm.asked[0]
			tm.pending, tm.asked = tm.pending[1:], tm.asked[1:]
			tm.mu.Unlock()
			ch <- time.Time{}
			return d
		}
		tm.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no delay pending after %v", testTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// changes records OnChange calls.
type changes struct {
	mu  sync.Mutex
	log map[string][]elastiq.InstanceState
}

func (c *changes) OnChange(in elastiq.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log[in.ID] = append(c.log[in.ID], in.State)
}

func (c *changes) of(id string) []elastiq.InstanceState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log[id])
}

type harness struct {
	fleet   *Fleet
	worker  *worker
	timers  *timers
	clock   *elastiqtest.Clock
	changes *changes
	logs    *elastiqtest.Logs
}

// newHarness makes a fleet whose delays the test fires by hand (BootDelay
// 1h, StartDelay 30m, no StopDelay unless cfg sets one).
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		worker:  newWorker(),
		timers:  &timers{},
		clock:   elastiqtest.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
		changes: &changes{log: make(map[string][]elastiq.InstanceState)},
		logs:    elastiqtest.NewLogs(t),
	}
	cfg.BootDelay = cmp.Or(cfg.BootDelay, time.Hour)
	cfg.NewWorker = h.worker.New
	cfg.After = h.timers.After
	cfg.Now = h.clock.Now
	cfg.OnChange = h.changes.OnChange
	cfg.Logger = h.logs.Logger()
	f, err := New(cfg)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	h.fleet = f
	t.Cleanup(func() { f.Close() })
	return h
}

func (h *harness) states(t *testing.T) map[string]elastiq.InstanceState {
	t.Helper()
	list, err := h.fleet.List(context.Background())
	if err != nil {
		t.Fatalf("List = %v", err)
	}
	out := make(map[string]elastiq.InstanceState, len(list))
	for _, in := range list {
		out[in.ID] = in.State
	}
	return out
}

// awaitState polls List until instance id is in state.
func (h *harness) awaitState(t *testing.T, id string, state elastiq.InstanceState) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		got := h.states(t)[id]
		if got == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s is %q after %v, want %q", id, got, testTimeout, state)
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *harness) wantState(t *testing.T, id string, want elastiq.InstanceState) {
	t.Helper()
	if got := h.states(t)[id]; got != want {
		t.Fatalf("instance %s is %q, want %q", id, got, want)
	}
}

func launch(t *testing.T, f *Fleet, n int, token string) []string {
	t.Helper()
	insts, err := f.Launch(context.Background(), n, token)
	if err != nil {
		t.Fatalf("Launch(%d, %q) = %v", n, token, err)
	}
	ids := make([]string, len(insts))
	for i, in := range insts {
		ids[i] = in.ID
	}
	return ids
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	f := h.fleet

	insts, err := f.Launch(ctx, 2, "")
	if err != nil {
		t.Fatalf("Launch(2) = %v", err)
	}
	if len(insts) != 2 || insts[0].ID != "i-local-000001" || insts[1].ID != "i-local-000002" {
		t.Fatalf("Launch(2) = %+v, want i-local-000001 and i-local-000002", insts)
	}
	for _, in := range insts {
		if in.State != elastiq.InstancePending || !in.LaunchedAt.Equal(h.clock.Now()) {
			t.Errorf("launched %s: state %q launched %v, want pending at %v", in.ID, in.State, in.LaunchedAt, h.clock.Now())
		}
	}
	id := insts[0].ID

	// Boot: both pending until their BootDelay ends.
	h.wantState(t, id, elastiq.InstancePending)
	for range 2 {
		if d := h.timers.fire(t); d != time.Hour {
			t.Fatalf("boot delay = %v, want 1h", d)
		}
	}
	ran := []string{h.worker.awaitRun(t), h.worker.awaitRun(t)}
	slices.Sort(ran)
	if !slices.Equal(ran, []string{insts[0].ID, insts[1].ID}) {
		t.Fatalf("Run called for %v, want both instances", ran)
	}
	h.awaitState(t, id, elastiq.InstanceRunning)

	// Stop cancels Run, then the instance is stopped.
	h.clock.Advance(time.Minute)
	if err := f.Stop(ctx, []string{id}); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	h.worker.awaitCancel(t, id)
	h.awaitState(t, id, elastiq.InstanceStopped)

	// Start: pending for StartDelay (BootDelay/2), then Run again.
	if err := f.Start(ctx, []string{id}); err != nil {
		t.Fatalf("Start = %v", err)
	}
	h.wantState(t, id, elastiq.InstancePending)
	if d := h.timers.fire(t); d != 30*time.Minute {
		t.Fatalf("start delay = %v, want 30m", d)
	}
	if got := h.worker.awaitRun(t); got != id {
		t.Fatalf("Run called for %s, want %s", got, id)
	}
	h.awaitState(t, id, elastiq.InstanceRunning)
	if n := h.worker.callCount(id); n != 2 {
		t.Fatalf("Run called %d times for %s, want 2", n, id)
	}

	// Terminate: shutting-down, then terminated, still listed.
	if err := f.Terminate(ctx, []string{id}); err != nil {
		t.Fatalf("Terminate = %v", err)
	}
	h.worker.awaitCancel(t, id)
	h.awaitState(t, id, elastiq.InstanceTerminated)

	want := []elastiq.InstanceState{
		elastiq.InstancePending, elastiq.InstanceRunning, elastiq.InstanceStopping, elastiq.InstanceStopped,
		elastiq.InstancePending, elastiq.InstanceRunning, elastiq.InstanceShuttingDown, elastiq.InstanceTerminated,
	}
	if got := h.changes.of(id); !slices.Equal(got, want) {
		t.Fatalf("OnChange states of %s = %v, want %v", id, got, want)
	}

	list, err := f.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != id || !list[0].LaunchedAt.Equal(insts[0].LaunchedAt) || !list[0].StateSince.Equal(h.clock.Now()) {
		t.Fatalf("List = %+v, want both instances, %s launched %v and terminated at %v", list, id, insts[0].LaunchedAt, h.clock.Now())
	}

	// Terminated instances are dropped after the retention.
	h.clock.Advance(DefaultTerminatedRetention + time.Second)
	if states := h.states(t); len(states) != 1 || states[insts[1].ID] != elastiq.InstanceRunning {
		t.Fatalf("List after the retention = %v, want only %s running", states, insts[1].ID)
	}
	if err := f.Start(ctx, []string{id}); !errors.Is(err, elastiq.ErrNotFound) {
		t.Fatalf("Start(dropped instance) = %v, want ErrNotFound", err)
	}
}

func TestSelfStop(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantLog string
	}{
		{name: "idle", err: nil, wantLog: "worker stopped itself"},
		{name: "error", err: errors.New("queue unreachable"), wantLog: "queue unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{StopDelay: time.Second})
			id := launch(t, h.fleet, 1, "")[0]
			h.timers.fire(t)
			h.worker.awaitRun(t)
			h.worker.exit(id, tt.err)
			h.awaitState(t, id, elastiq.InstanceStopping)
			if d := h.timers.fire(t); d != time.Second {
				t.Fatalf("stop delay = %v, want 1s", d)
			}
			h.awaitState(t, id, elastiq.InstanceStopped)
			if logs := h.logs.String(); !strings.Contains(logs, tt.wantLog) {
				t.Fatalf("logs = %q, want them to mention %q", logs, tt.wantLog)
			}
			// A self-stopped instance starts again.
			if err := h.fleet.Start(context.Background(), []string{id}); err != nil {
				t.Fatalf("Start = %v", err)
			}
			h.timers.fire(t)
			h.worker.awaitRun(t)
			h.awaitState(t, id, elastiq.InstanceRunning)
		})
	}
}

func TestLaunchToken(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	first := launch(t, h.fleet, 2, "scale-1")
	again := launch(t, h.fleet, 2, "scale-1")
	if !slices.Equal(first, again) {
		t.Fatalf("Launch with a repeated token = %v, want the first call's %v", again, first)
	}
	if _, err := h.fleet.Launch(ctx, 3, "scale-1"); err == nil {
		t.Fatal("Launch(3) with a token used for 2 = nil error, want an error")
	}
	other := launch(t, h.fleet, 1, "scale-2")
	untokened := launch(t, h.fleet, 1, "")
	launch(t, h.fleet, 1, "")
	if states := h.states(t); len(states) != 5 {
		t.Fatalf("List = %d instances, want 5 (2 + 1 + 1 + 1)", len(states))
	}
	if slices.Contains(first, other[0]) || slices.Contains(first, untokened[0]) {
		t.Fatalf("new tokens reused instances: %v, %v vs %v", other, untokened, first)
	}
}

func TestStopWaitsForBusyRun(t *testing.T) {
	h := newHarness(t, Config{})
	h.worker.busy = true // Run ignores cancellation until told to exit
	id := launch(t, h.fleet, 1, "")[0]
	h.timers.fire(t)
	h.worker.awaitRun(t)
	if err := h.fleet.Stop(context.Background(), []string{id}); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	h.worker.awaitCancel(t, id)
	// Run saw the cancellation but has not returned: still stopping.
	h.wantState(t, id, elastiq.InstanceStopping)
	h.worker.exit(id, nil)
	h.awaitState(t, id, elastiq.InstanceStopped)
}

func TestStopWhilePending(t *testing.T) {
	h := newHarness(t, Config{})
	id := launch(t, h.fleet, 1, "")[0]
	if err := h.fleet.Stop(context.Background(), []string{id}); err != nil {
		t.Fatalf("Stop(pending) = %v", err)
	}
	h.awaitState(t, id, elastiq.InstanceStopped)
	h.timers.fire(t) // the boot delay ends after the stop
	if n := h.worker.callCount(id); n != 0 {
		t.Fatalf("Run called %d times for an instance stopped while pending, want 0", n)
	}
	h.wantState(t, id, elastiq.InstanceStopped)
}

func TestTerminateStopped(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	id := launch(t, h.fleet, 1, "")[0]
	if err := h.fleet.Stop(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}
	h.awaitState(t, id, elastiq.InstanceStopped)
	if err := h.fleet.Terminate(ctx, []string{id}); err != nil {
		t.Fatalf("Terminate(stopped) = %v", err)
	}
	h.awaitState(t, id, elastiq.InstanceTerminated)
}

func TestCommandErrors(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	f := h.fleet
	ids := launch(t, f, 3, "")
	running, stopped, terminated := ids[0], ids[1], ids[2]
	if err := f.Stop(ctx, []string{stopped}); err != nil {
		t.Fatal(err)
	}
	if err := f.Terminate(ctx, []string{terminated}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // only running's boot delay still matters
		h.timers.fire(t)
	}
	h.worker.awaitRun(t)
	h.awaitState(t, running, elastiq.InstanceRunning)
	h.awaitState(t, stopped, elastiq.InstanceStopped)
	h.awaitState(t, terminated, elastiq.InstanceTerminated)

	tests := []struct {
		name string
		call func(context.Context, []string) error
		ids  []string
		want error // nil: success
	}{
		{name: "start unknown", call: f.Start, ids: []string{"i-local-999999"}, want: elastiq.ErrNotFound},
		{name: "stop unknown", call: f.Stop, ids: []string{"nope"}, want: elastiq.ErrNotFound},
		{name: "terminate unknown", call: f.Terminate, ids: []string{"nope"}, want: elastiq.ErrNotFound},
		{name: "start terminated", call: f.Start, ids: []string{terminated}, want: elastiq.ErrIncorrectState},
		{name: "stop terminated", call: f.Stop, ids: []string{terminated}, want: elastiq.ErrIncorrectState},
		{name: "start running is a no-op", call: f.Start, ids: []string{running}},
		{name: "stop stopped is a no-op", call: f.Stop, ids: []string{stopped}},
		{name: "terminate terminated is a no-op", call: f.Terminate, ids: []string{terminated}},
		{name: "empty list", call: f.Stop, ids: nil},
		// One bad ID fails the whole call: running stays running.
		{name: "stop with one unknown", call: f.Stop, ids: []string{running, "nope"}, want: elastiq.ErrNotFound},
		{name: "stop with one terminated", call: f.Stop, ids: []string{running, terminated}, want: elastiq.ErrIncorrectState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctx, tt.ids)
			if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("%s(%v) = %v, want %v", tt.name, tt.ids, err, tt.want)
			}
		})
	}
	h.wantState(t, running, elastiq.InstanceRunning)
	h.wantState(t, stopped, elastiq.InstanceStopped)
	if n := h.worker.callCount(running); n != 1 {
		t.Fatalf("Run called %d times for %s, want 1", n, running)
	}
	if _, err := f.Launch(ctx, 0, ""); err == nil {
		t.Fatal("Launch(0) = nil error, want an error")
	}
}

func TestCloseWaitsForRun(t *testing.T) {
	h := newHarness(t, Config{})
	h.worker.busy = true
	ids := launch(t, h.fleet, 2, "")
	h.timers.fire(t)
	h.timers.fire(t)
	h.worker.awaitRun(t)
	h.worker.awaitRun(t)

	closed := make(chan struct{})
	go func() {
		h.fleet.Close()
		close(closed)
	}()
	for _, id := range ids {
		h.worker.awaitCancel(t, id)
	}
	// Both Runs saw the cancellation and neither returned: Close waits.
	select {
	case <-closed:
		t.Fatal("Close returned while Run calls were still running")
	default:
	}
	for _, id := range ids {
		h.worker.exit(id, nil)
	}
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatalf("Close did not return within %v of the Runs returning", testTimeout)
	}
	for _, id := range ids {
		h.wantState(t, id, elastiq.InstanceStopped)
	}
	if _, err := h.fleet.Launch(context.Background(), 1, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Launch after Close = %v, want ErrClosed", err)
	}
}

// TestRealDelays runs a fleet on the real clock with short delays and many
// concurrent commands, for the race detector.
func TestRealDelays(t *testing.T) {
	ctx := context.Background()
	w := newWorker()
	f, err := New(Config{BootDelay: 5 * time.Millisecond, StopDelay: time.Millisecond, NewWorker: w.New})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	for i := range 5 {
		insts, err := f.Launch(ctx, 2, fmt.Sprint("token-", i))
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			ids = append(ids, in.ID)
		}
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			for range 5 {
				// Errors are expected when a command meets a state it does
				// not allow (start while stopping); the race detector and
				// the final states are what this test checks.
				f.Start(ctx, []string{id})
				f.Stop(ctx, []string{id})
			}
			if err := f.Terminate(ctx, []string{id}); err != nil {
				t.Errorf("Terminate(%s) = %v", id, err)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(testTimeout)
	for {
		list, err := f.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, in := range list {
			if in.State == elastiq.InstanceTerminated {
				done++
			}
		}
		if done == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d instances terminated after %v: %+v", done, len(ids), testTimeout, list)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewNeedsNewWorker(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New(Config{}) = nil error, want an error: NewWorker is required")
	}
}

// gracefulWorker is a test double of a worker that finishes its work on
// Shutdown: Run returns when Shutdown is called, and records whether its
// context was still alive then; Shutdown waits for Run to return.
type gracefulWorker struct {
	shutdown      chan struct{}
	ctxAliveAtEnd chan bool
	done          chan struct{}
}

func (w *gracefulWorker) Run(ctx context.Context) error {
	defer close(w.done)
	select {
	case <-w.shutdown:
		w.ctxAliveAtEnd <- ctx.Err() == nil
	case <-ctx.Done():
		w.ctxAliveAtEnd <- false
	}
	return errors.New("shut down")
}

func (w *gracefulWorker) Shutdown(ctx context.Context) error {
	close(w.shutdown)
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestStopShutsWorkerDownGracefully: stopping an instance asks its worker to
// shut down before its context is cancelled, as EC2's SIGTERM before the
// kill; so does Close.
func TestStopShutsWorkerDownGracefully(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	workers := map[string]*gracefulWorker{}
	f, err := New(Config{StopGrace: time.Minute, NewWorker: func(id string) (Worker, error) {
		w := &gracefulWorker{shutdown: make(chan struct{}), ctxAliveAtEnd: make(chan bool, 1), done: make(chan struct{})}
		mu.Lock()
		defer mu.Unlock()
		workers[id] = w
		return w, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	insts, err := f.Launch(ctx, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	elastiqtest.Eventually(t, "both workers running", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(workers) == 2
	})
	first, second := workers[insts[0].ID], workers[insts[1].ID]
	if err := f.Stop(ctx, []string{insts[0].ID}); err != nil {
		t.Fatal(err)
	}
	if alive := <-first.ctxAliveAtEnd; !alive {
		t.Errorf("Stop: Run's context ended before the worker finished, want Shutdown first")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if alive := <-second.ctxAliveAtEnd; !alive {
		t.Errorf("Close: Run's context ended before the worker finished, want Shutdown first")
	}
	list, _ := f.List(ctx)
	for _, in := range list {
		if in.State != elastiq.InstanceStopped {
			t.Errorf("instance %s is %s after Close, want stopped", in.ID, in.State)
		}
	}
}
