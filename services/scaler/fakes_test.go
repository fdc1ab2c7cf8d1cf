package scaler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Test doubles of the elastiq interfaces the scaler uses. fakeFleet keeps
// instances in a map, moves them between states at once (no boot delay) and
// records every call in order; both doubles can be told to fail calls.

var (
	_ QueueStats    = (*fakeQueue)(nil)
	_ elastiq.Fleet = (*fakeFleet)(nil)
)

var errInjected = errors.New("injected failure")

// fakeQueue is a test double of the request queue as the scaler reads it.
type fakeQueue struct {
	mu       sync.Mutex
	stats    elastiq.QueueStats
	failNext int
}

func (q *fakeQueue) set(visible, inFlight int) {
	q.mu.Lock()
	q.stats = elastiq.QueueStats{Visible: visible, InFlight: inFlight}
	q.mu.Unlock()
}

func (q *fakeQueue) Stats(ctx context.Context) (elastiq.QueueStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failNext > 0 {
		q.failNext--
		return elastiq.QueueStats{}, errInjected
	}
	return q.stats, nil
}

// fakeFleet is a test double of elastiq.Fleet.
type fakeFleet struct {
	mu        sync.Mutex
	instances map[string]elastiq.Instance
	nextID    int
	byToken   map[string][]elastiq.Instance
	// calls records each call that reached the fleet, failed or not:
	// "list", "start [s-1]", "launch 3 tok-1", "stop [...]", "terminate [...]".
	calls []string
	// fail makes the next fail[op] calls of op ("list", "launch", ...) fail.
	fail map[string]int
}

func newFakeFleet(instances ...elastiq.Instance) *fakeFleet {
	f := &fakeFleet{instances: map[string]elastiq.Instance{}, byToken: map[string][]elastiq.Instance{}, fail: map[string]int{}}
	for _, in := range instances {
		f.instances[in.ID] = in
	}
	return f
}

// record logs a call and reports whether it should fail. Call with f.mu held.
func (f *fakeFleet) record(op, args string) error {
	f.calls = append(f.calls, strings.TrimSpace(op+" "+args))
	if f.fail[op] > 0 {
		f.fail[op]--
		return fmt.Errorf("%s: %w", op, errInjected)
	}
	return nil
}

func (f *fakeFleet) List(ctx context.Context) ([]elastiq.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("list", ""); err != nil {
		return nil, err
	}
	var out []elastiq.Instance
	for _, in := range f.instances {
		out = append(out, in)
	}
	return out, nil
}

func (f *fakeFleet) setState(op string, ids []string, from, to elastiq.InstanceState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(op, fmt.Sprint(ids)); err != nil {
		return err
	}
	for _, id := range ids {
		in, ok := f.instances[id]
		if !ok || (from != "" && in.State != from) {
			return fmt.Errorf("%s %s: state %q: %w", op, id, in.State, elastiq.ErrNotFound)
		}
		in.State = to
		f.instances[id] = in
	}
	return nil
}

func (f *fakeFleet) Start(ctx context.Context, ids []string) error {
	return f.setState("start", ids, elastiq.InstanceStopped, elastiq.InstancePending)
}

func (f *fakeFleet) Stop(ctx context.Context, ids []string) error {
	return f.setState("stop", ids, elastiq.InstanceRunning, elastiq.InstanceStopped)
}

func (f *fakeFleet) Terminate(ctx context.Context, ids []string) error {
	return f.setState("terminate", ids, "", elastiq.InstanceTerminated)
}

func (f *fakeFleet) Launch(ctx context.Context, n int, token string) ([]elastiq.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("launch", fmt.Sprintf("%d %s", n, token)); err != nil {
		return nil, err
	}
	if prev, ok := f.byToken[token]; ok {
		return prev, nil
	}
	var out []elastiq.Instance
	for range n {
		f.nextID++
		in := elastiq.Instance{ID: fmt.Sprintf("i-%d", f.nextID), State: elastiq.InstancePending}
		f.instances[in.ID] = in
		out = append(out, in)
	}
	f.byToken[token] = out
	return out, nil
}

func (f *fakeFleet) failNext(op string, n int) {
	f.mu.Lock()
	f.fail[op] = n
	f.mu.Unlock()
}

// callLog returns the recorded calls other than "list".
func (f *fakeFleet) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(f.calls), func(c string) bool { return c == "list" })
}

func (f *fakeFleet) listCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == "list" {
			n++
		}
	}
	return n
}

// count returns how many instances are in state.
func (f *fakeFleet) count(state elastiq.InstanceState) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, in := range f.instances {
		if in.State == state {
			n++
		}
	}
	return n
}
