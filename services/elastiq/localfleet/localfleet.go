// Package localfleet is an elastiq.Fleet whose "instances" are workers run
// by the process itself, so the embedded stack shows the same elastic
// behaviour as the EC2 fleet: the scaler launches, starts, stops and
// terminates instances, and each running instance is a goroutine running the
// Worker that Config.NewWorker makes for it.
//
// The lifecycle follows EC2's:
//
//	Launch:    pending --BootDelay--> running
//	Run ends:  running -> stopping --StopDelay--> stopped   (the worker stopped itself)
//	Stop:      pending|running -> stopping --(Run returned, StopDelay)--> stopped
//	Start:     stopped -> pending --StartDelay--> running   (Run is called again)
//	Terminate: any -> shutting-down --(Run returned, StopDelay)--> terminated
//
// Stop and Terminate (and Close) ask the worker to shut down gracefully, as
// EC2 signals the programs of an instance it stops: Worker.Shutdown gets
// StopGrace to finish, then Run's context is cancelled, and the instance
// leaves stopping or shutting-down once Run has returned. When Run returns by
// itself (nil, or an error, which is logged) the instance stops, like an EC2
// instance that shuts itself down with stop behaviour.
// Terminated instances stay listed for TerminatedRetention, then vanish.
//
// As with EC2, a call naming an unknown instance fails as a whole
// (elastiq.ErrNotFound, wrapped), as does one asking for a transition the
// state does not allow (elastiq.ErrIncorrectState: starting a stopping or terminated
// instance, stopping a terminated one); asking for the state an instance is
// already in or heading to is a no-op. Launch with a client token already
// used returns the first call's instances and launches nothing.
package localfleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// DefaultTerminatedRetention is how long terminated instances stay listed
// when Config leaves it zero; EC2 keeps them for about an hour, but a
// minute is enough to see them go.
const DefaultTerminatedRetention = time.Minute

var (
	// ErrClosed is returned by calls that change the fleet after Close.
	ErrClosed = errors.New("fleet closed")
)

// Worker is what a running instance runs: a worker, with its own lifecycle.
// Run runs until the worker stops itself (it returns) or ctx ends; Shutdown
// asks it to stop gracefully within ctx, as a SIGTERM does.
type Worker interface {
	Run(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Config configures a Fleet.
type Config struct {
	// BootDelay is how long a new instance stays pending before it runs.
	BootDelay time.Duration
	// StartDelay is how long a started (previously stopped) instance stays
	// pending. Zero means BootDelay/2; negative means no delay.
	StartDelay time.Duration
	// StopDelay is how long an instance stays stopping or shutting-down
	// after Run returned.
	StopDelay time.Duration
	// TerminatedRetention is how long a terminated instance stays listed.
	// Default DefaultTerminatedRetention.
	TerminatedRetention time.Duration
	// NewWorker makes the worker of an instance each time it comes up (a
	// launch or a start); required.
	NewWorker func(instanceID string) (Worker, error)
	// StopGrace is how long a worker's Shutdown may take when its instance
	// is stopped or terminated, or the fleet closed, before Run's context
	// is cancelled. Zero cancels it as soon as Shutdown returns.
	StopGrace time.Duration
	// Logger receives lifecycle events; default none.
	Logger *slog.Logger
	// Now is the clock for LaunchedAt, StateSince and retention; default
	// time.Now.
	Now func() time.Time
	// After waits for the delays above; default time.After.
	After func(time.Duration) <-chan time.Time
	// OnChange, if set, is called with a snapshot of an instance after
	// each state change, in order. It is called with the fleet's lock
	// held: it must return quickly and must not call the Fleet.
	OnChange func(elastiq.Instance)
}

// Fleet runs instances as goroutines. It is safe for concurrent use.
type Fleet struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // cancelled by Close; parent of every Run
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per instance goroutine, and per shutdown

	mu        sync.Mutex
	closed    bool
	instances map[string]*instance
	tokens    map[string][]string // client token -> instance IDs
	launched  int
}

// desire is what the last command asked of an instance.
type desire int

const (
	wantRun desire = iota
	wantStop
	wantTerminate
)

type instance struct {
	elastiq.Instance
	token  string
	want   desire
	cancel context.CancelFunc // cancels Run while it runs, else nil
	worker Worker             // the running worker, else nil
	asked  bool               // the running worker was asked to shut down
	poke   chan struct{}      // buffered 1: want changed
}

// New returns an empty fleet.
func New(cfg Config) (*Fleet, error) {
	if cfg.NewWorker == nil {
		return nil, errors.New("new local fleet: Config.NewWorker is required")
	}
	switch {
	case cfg.StartDelay == 0:
		cfg.StartDelay = cfg.BootDelay / 2
	case cfg.StartDelay < 0:
		cfg.StartDelay = 0
	}
	cfg.TerminatedRetention = cmp.Or(cfg.TerminatedRetention, DefaultTerminatedRetention)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{
		cfg:       cfg,
		log:       logger.With("component", "localfleet"),
		instances: make(map[string]*instance),
		tokens:    make(map[string][]string),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

// Close shuts every running worker down (within StopGrace), stops every
// instance and waits for all of them. Instances are left stopped or
// terminated.
func (f *Fleet) Close() error {
	f.mu.Lock()
	f.closed = true
	var shutdowns sync.WaitGroup
	for _, in := range f.instances {
		if in.worker != nil && !in.asked {
			shutdowns.Add(1)
			f.shutdownLocked(in, shutdowns.Done)
		}
	}
	f.mu.Unlock()
	shutdowns.Wait()
	f.cancel()
	f.wg.Wait()
	return nil
}

// shutdownLocked asks in's running worker to shut down within StopGrace,
// then cancels its Run; done, if not nil, is called after that.
func (f *Fleet) shutdownLocked(in *instance, done func()) {
	in.asked = true
	w, cancel := in.worker, in.cancel
	f.wg.Go(func() {
		ctx, stop := context.WithTimeout(context.Background(), f.cfg.StopGrace)
		defer stop()
		if err := w.Shutdown(ctx); err != nil {
			f.log.Info("worker shutdown: grace period over", "id", in.ID, "err", err)
		}
		cancel()
		if done != nil {
			done()
		}
	})
}

// List returns a snapshot of the instances, in launch order, terminated
// ones included for TerminatedRetention.
func (f *Fleet) List(ctx context.Context) ([]elastiq.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked()
	out := make([]elastiq.Instance, 0, len(f.instances))
	for _, id := range slices.Sorted(maps.Keys(f.instances)) {
		out = append(out, f.instances[id].Instance)
	}
	return out, nil
}

// Launch creates n instances, pending for BootDelay. A non-empty token
// makes the call idempotent: a retry with the same token returns the
// first call's instances (as they are now) and launches nothing.
func (f *Fleet) Launch(ctx context.Context, n int, token string) ([]elastiq.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launch instances: %w", err)
	}
	if n < 1 {
		return nil, fmt.Errorf("launch %d instances: want at least 1", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("launch instances: %w", ErrClosed)
	}
	if ids, ok := f.tokens[token]; ok && token != "" {
		if len(ids) != n {
			return nil, fmt.Errorf("launch %d instances: token %q was used to launch %d", n, token, len(ids))
		}
		var out []elastiq.Instance
		for _, id := range ids {
			if in := f.instances[id]; in != nil {
				out = append(out, in.Instance)
			}
		}
		return out, nil
	}
	now := f.cfg.Now()
	out := make([]elastiq.Instance, 0, n)
	ids := make([]string, 0, n)
	for range n {
		f.launched++
		in := &instance{
			Instance: elastiq.Instance{ID: fmt.Sprintf("i-local-%06d", f.launched), LaunchedAt: now},
			token:    token,
			want:     wantRun,
			poke:     make(chan struct{}, 1),
		}
		f.instances[in.ID] = in
		f.setStateLocked(in, elastiq.InstancePending)
		ids = append(ids, in.ID)
		out = append(out, in.Instance)
		f.wg.Add(1)
		go f.life(in)
	}
	if token != "" {
		f.tokens[token] = ids
	}
	f.log.Info("launched instances", "n", n, "ids", ids)
	return out, nil
}

// Start starts stopped instances; pending and running ones are left alone.
func (f *Fleet) Start(ctx context.Context, ids []string) error {
	return f.command(ctx, "start", ids, func(in *instance) error {
		switch in.State {
		case elastiq.InstancePending, elastiq.InstanceRunning:
			return nil
		case elastiq.InstanceStopped:
			in.want = wantRun
			f.setStateLocked(in, elastiq.InstancePending)
			return nil
		default:
			return elastiq.ErrIncorrectState
		}
	})
}

// Stop stops pending and running instances; stopping and stopped ones are
// left alone.
func (f *Fleet) Stop(ctx context.Context, ids []string) error {
	return f.command(ctx, "stop", ids, func(in *instance) error {
		switch in.State {
		case elastiq.InstanceStopping, elastiq.InstanceStopped:
			return nil
		case elastiq.InstancePending, elastiq.InstanceRunning:
			in.want = wantStop
			f.setStateLocked(in, elastiq.InstanceStopping)
			return nil
		default:
			return elastiq.ErrIncorrectState
		}
	})
}

// Terminate terminates instances in any state.
func (f *Fleet) Terminate(ctx context.Context, ids []string) error {
	return f.command(ctx, "terminate", ids, func(in *instance) error {
		switch in.State {
		case elastiq.InstanceShuttingDown, elastiq.InstanceTerminated:
			return nil
		default:
			in.want = wantTerminate
			f.setStateLocked(in, elastiq.InstanceShuttingDown)
			return nil
		}
	})
}

// command applies change to every instance in ids, or to none of them if
// one is unknown or in a state change refuses. change runs twice per
// instance: first on a copy, to check, then for real.
func (f *Fleet) command(ctx context.Context, op string, ids []string, change func(*instance) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s instances: %w", op, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("%s instances: %w", op, ErrClosed)
	}
	f.pruneLocked()
	for _, id := range ids {
		in := f.instances[id]
		if in == nil {
			return fmt.Errorf("%s instance %s: %w", op, id, elastiq.ErrNotFound)
		}
		if err := validate(in, change); err != nil {
			return fmt.Errorf("%s instance %s (%s): %w", op, id, in.State, err)
		}
	}
	for _, id := range ids {
		in := f.instances[id]
		before := in.want
		change(in) // validated above
		if in.want != before {
			if in.worker != nil && in.want != wantRun && !in.asked {
				f.shutdownLocked(in, nil)
			}
			select {
			case in.poke <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// validate runs change on a detached copy of in, whose state changes go
// nowhere, to see whether it would fail.
func validate(in *instance, change func(*instance) error) error {
	probe := *in
	probe.poke = nil
	return change(&probe)
}

// setStateLocked moves in to state and reports the change. For the copies
// validate makes (no poke channel), it only sets the state.
func (f *Fleet) setStateLocked(in *instance, state elastiq.InstanceState) {
	in.State = state
	if in.poke == nil {
		return
	}
	in.StateSince = f.cfg.Now()
	f.log.Debug("instance state", "id", in.ID, "state", state)
	if f.cfg.OnChange != nil {
		f.cfg.OnChange(in.Instance)
	}
}

// pruneLocked drops instances terminated more than TerminatedRetention ago,
// and the client tokens whose instances are all gone.
func (f *Fleet) pruneLocked() {
	cutoff := f.cfg.Now().Add(-f.cfg.TerminatedRetention)
	for id, in := range f.instances {
		if in.State == elastiq.InstanceTerminated && in.StateSince.Before(cutoff) {
			delete(f.instances, id)
			if ids, ok := f.tokens[in.token]; ok && !slices.ContainsFunc(ids, func(id string) bool { return f.instances[id] != nil }) {
				delete(f.tokens, in.token)
			}
		}
	}
}

// life is an instance's goroutine: it drives the instance through its
// states until it is terminated or the fleet closes.
func (f *Fleet) life(in *instance) {
	defer f.wg.Done()
	delay := f.cfg.BootDelay
	for {
		if ctx, ok := f.boot(in, delay); ok {
			f.run(ctx, in)
		}
		for {
			if !f.windDown(in) {
				return
			}
			want, ok := f.awaitCommand(in)
			if !ok {
				return
			}
			if want == wantRun {
				break
			}
			// Terminated while stopped: wind down again, to terminated.
		}
		delay = f.cfg.StartDelay
	}
}

// boot waits out the pending delay and, unless the instance was stopped
// or terminated meanwhile or the fleet closed, marks it running and
// returns the context for its Run.
func (f *Fleet) boot(in *instance, delay time.Duration) (context.Context, bool) {
	done := f.wait(delay)
	for {
		select {
		case <-done:
			f.mu.Lock()
			defer f.mu.Unlock()
			if in.want != wantRun || f.ctx.Err() != nil {
				return nil, false
			}
			w, err := f.cfg.NewWorker(in.ID)
			if err != nil {
				f.log.Warn("worker failed to start", "id", in.ID, "err", err)
				in.want = wantStop
				f.setStateLocked(in, elastiq.InstanceStopping)
				return nil, false
			}
			ctx, cancel := context.WithCancel(f.ctx)
			in.cancel, in.worker, in.asked = cancel, w, false
			f.setStateLocked(in, elastiq.InstanceRunning)
			return ctx, true
		case <-in.poke:
			if f.want(in) != wantRun {
				return nil, false
			}
		case <-f.ctx.Done():
			return nil, false
		}
	}
}

// run runs the instance's worker until it returns. If nobody asked the
// instance to stop, the worker stopped itself and the instance stops.
func (f *Fleet) run(ctx context.Context, in *instance) {
	f.mu.Lock()
	w := in.worker
	f.mu.Unlock()
	err := w.Run(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	in.cancel()
	in.cancel, in.worker = nil, nil
	asked := in.asked || in.want != wantRun || f.ctx.Err() != nil
	switch {
	case in.asked:
		f.log.Debug("worker shut down", "id", in.ID, "err", err)
	case err != nil && !(asked && errors.Is(err, context.Canceled)):
		f.log.Warn("worker failed", "id", in.ID, "err", err)
	case !asked:
		f.log.Info("worker stopped itself", "id", in.ID)
	}
	in.asked = false
	if in.want == wantRun {
		in.want = wantStop
		f.setStateLocked(in, elastiq.InstanceStopping)
	}
}

// windDown waits out StopDelay after Run, then completes the stop or the
// termination. It reports whether the instance lives on (stopped).
func (f *Fleet) windDown(in *instance) bool {
	select {
	case <-f.wait(f.cfg.StopDelay):
	case <-f.ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.want == wantTerminate {
		f.setStateLocked(in, elastiq.InstanceTerminated)
		return false
	}
	f.setStateLocked(in, elastiq.InstanceStopped)
	return f.ctx.Err() == nil
}

// awaitCommand waits, while the instance is stopped, for a Start or a
// Terminate. ok is false when the fleet closed.
func (f *Fleet) awaitCommand(in *instance) (want desire, ok bool) {
	for {
		if w := f.want(in); w != wantStop {
			return w, true
		}
		select {
		case <-in.poke:
		case <-f.ctx.Done():
			return 0, false
		}
	}
}

func (f *Fleet) want(in *instance) desire {
	f.mu.Lock()
	defer f.mu.Unlock()
	return in.want
}

// wait returns a channel that fires after d, at once for d <= 0.
func (f *Fleet) wait(d time.Duration) <-chan time.Time {
	if d <= 0 {
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	}
	return f.cfg.After(d)
}
