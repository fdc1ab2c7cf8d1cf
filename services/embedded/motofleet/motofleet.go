// Package motofleet runs the worker instances of an elastiq stack on an
// AWS-compatible test server (moto, whose EC2 instances are only records) as
// worker processes on this machine, the way EC2 and the worker image run them:
//
//   - an instance that is running gets a worker process, after a boot delay
//     (LaunchReady the first time, StartReady after a stop), with an instance
//     metadata service of its own that gives the worker its instance ID;
//   - an instance that is stopping, stopped or terminated has its worker
//     sent SIGTERM, then SIGKILL after StopGrace, as EC2's shutdown does;
//   - a worker that crashes is started again after RestartDelay, as
//     systemd's Restart=on-failure does (ami/); one that exits 0 stays down
//     until its instance boots again. Workers run with -self-stop, as on
//     EC2: one that exits 0 has stopped its own instance first, so the
//     instance running after that is a new start, even if the scaler
//     started it again between two looks at the server (moto stops and
//     starts at once).
//
// The scaler under test launches, starts, stops and terminates the
// instances through the server; the Runner follows what the server says.
// Close terminates every instance of the stack, so a test leaves the
// server as it found it.
package motofleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/imds"
)

// Defaults for Config.
const (
	DefaultPoll         = 200 * time.Millisecond
	DefaultRestartDelay = 5 * time.Second // the worker unit's RestartSec
	DefaultStopGrace    = 30 * time.Second
)

// Config configures a Runner.
type Config struct {
	// AWS reaches the server with a principal that may describe and
	// terminate the stack's instances.
	AWS aws.Config
	// Stack is the stack whose workers (ec2fleet.WorkerTags) are run.
	Stack string
	// Command returns the command that runs the worker of instance id,
	// whose metadata service is at imds (for the worker's -imds-endpoint).
	// It is called for every start of a worker process.
	Command func(id, imds string) *exec.Cmd
	// LaunchReady is the time from an instance's launch to its worker's
	// start (the boot); StartReady the same after a stop.
	LaunchReady, StartReady time.Duration
	// RestartDelay is the time before a crashed worker is started again.
	// Default DefaultRestartDelay; negative for none.
	RestartDelay time.Duration
	// StopGrace is the time a worker has after SIGTERM before SIGKILL.
	// Default DefaultStopGrace.
	StopGrace time.Duration
	// Poll is how often the server is asked for the instances. Default
	// DefaultPoll.
	Poll time.Duration
	// Logger receives what the runner does; default none.
	Logger *slog.Logger
}

// Runner runs the stack's instances as processes.
type Runner struct {
	cfg   Config
	fleet *ec2fleet.Fleet
	log   *slog.Logger

	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	instances map[string]*instance
	starts    int // worker processes started, restarts included
}

// instance is one instance of the server and its worker.
type instance struct {
	id      string
	state   elastiq.InstanceState
	stopped bool      // it has been stopped since its launch: the next boot is a start
	readyAt time.Time // when the boot in progress ends; zero when not booting
	imds    *http.Server
	imdsURL string

	proc     *exec.Cmd
	exited   chan struct{} // closed when proc has exited
	killed   bool          // the runner stopped proc: not a crash
	crashAt  time.Time     // when the last process crashed; zero if none
	termSent time.Time
}

// Start begins following the stack's instances. Call Close to end.
func Start(cfg Config) (*Runner, error) {
	if cfg.Command == nil || cfg.Stack == "" {
		return nil, errors.New("motofleet: Command and Stack are required")
	}
	cfg.Poll = cmp.Or(cfg.Poll, DefaultPoll)
	cfg.RestartDelay = cmp.Or(cfg.RestartDelay, DefaultRestartDelay)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, DefaultStopGrace)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fleet, err := ec2fleet.New(cfg.AWS, ec2fleet.Config{Tags: ec2fleet.WorkerTags(cfg.Stack), Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("motofleet: %w", err)
	}
	r := &Runner{cfg: cfg, fleet: fleet, log: logger.With("component", "motofleet"),
		stop: make(chan struct{}), done: make(chan struct{}), instances: map[string]*instance{}}
	go r.loop()
	return r, nil
}

func (r *Runner) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Poll)
	defer tick.Stop()
	for {
		r.sync()
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
	}
}

// sync brings the processes in line with the server's instances.
func (r *Runner) sync() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := r.fleet.List(ctx)
	if err != nil {
		r.log.Warn("list instances", "err", err)
		return
	}
	now := time.Now()
	seen := map[string]bool{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, in := range list {
		seen[in.ID] = true
		r.follow(now, in.ID, in.State)
	}
	// List leaves out terminated instances.
	for id := range r.instances {
		if !seen[id] {
			r.follow(now, id, elastiq.InstanceTerminated)
		}
	}
}

// follow acts on one instance's state. r.mu is held.
func (r *Runner) follow(now time.Time, id string, state elastiq.InstanceState) {
	in := r.instances[id]
	if in == nil {
		if state == elastiq.InstanceTerminated {
			return
		}
		in = &instance{id: id}
		r.instances[id] = in
	}
	if in.state != state {
		r.log.Info("instance", "id", id, "state", state)
		in.state = state
	}
	switch state {
	case elastiq.InstancePending, elastiq.InstanceRunning:
		if in.proc != nil {
			return
		}
		if !in.crashAt.IsZero() {
			if now.Sub(in.crashAt) >= r.cfg.RestartDelay {
				in.crashAt = time.Time{}
				r.startWorker(in)
			}
			return
		}
		if in.readyAt.IsZero() {
			in.readyAt = now.Add(r.cfg.LaunchReady)
			if in.stopped {
				in.readyAt = now.Add(r.cfg.StartReady)
			}
		}
		if state == elastiq.InstanceRunning && !now.Before(in.readyAt) {
			in.readyAt = time.Time{}
			r.startWorker(in)
		}
	default: // stopping, stopped, shutting-down, terminated
		in.readyAt, in.crashAt = time.Time{}, time.Time{}
		in.stopped = true
		if in.proc != nil {
			r.signal(now, in)
		}
		if state == elastiq.InstanceTerminated && in.proc == nil {
			if in.imds != nil {
				in.imds.Close()
			}
			delete(r.instances, id)
		}
	}
}

// signal sends the worker SIGTERM, then SIGKILL after StopGrace. r.mu is
// held.
func (r *Runner) signal(now time.Time, in *instance) {
	in.killed = true
	switch {
	case in.termSent.IsZero():
		in.termSent = now
		r.log.Info("stop worker", "id", in.id, "signal", "SIGTERM")
		in.proc.Process.Signal(syscall.SIGTERM)
	case now.Sub(in.termSent) >= r.cfg.StopGrace:
		r.log.Warn("stop worker", "id", in.id, "signal", "SIGKILL", "after", r.cfg.StopGrace)
		in.proc.Process.Kill()
	}
}

// startWorker starts the instance's worker process. r.mu is held.
func (r *Runner) startWorker(in *instance) {
	if in.imds == nil {
		srv, url, err := serveIMDS(in.id)
		if err != nil {
			r.log.Error("metadata service", "id", in.id, "err", err)
			return
		}
		in.imds, in.imdsURL = srv, url
	}
	cmd := r.cfg.Command(in.id, in.imdsURL)
	if err := cmd.Start(); err != nil {
		r.log.Error("start worker", "id", in.id, "err", err)
		in.crashAt = time.Now()
		return
	}
	r.starts++
	r.log.Info("start worker", "id", in.id, "pid", cmd.Process.Pid)
	in.proc, in.killed, in.termSent = cmd, false, time.Time{}
	exited := make(chan struct{})
	in.exited = exited
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		defer r.mu.Unlock()
		in.proc = nil
		switch {
		case err != nil && !in.killed:
			r.log.Warn("worker crashed", "id", in.id, "err", err)
			in.crashAt = time.Now()
		case err == nil && !in.killed:
			// It stopped its instance: what runs next is a new start.
			r.log.Info("worker exited, its instance stopped", "id", in.id)
			in.stopped, in.readyAt = true, time.Time{}
		default:
			r.log.Info("worker exited", "id", in.id, "err", err)
		}
		close(exited)
	}()
}

// Kill kills the worker process of instance id at once (SIGKILL), as a
// crash would; the runner starts it again after RestartDelay, as systemd
// does. It fails if the instance has no worker running.
func (r *Runner) Kill(id string) error {
	r.mu.Lock()
	in := r.instances[id]
	if in == nil || in.proc == nil {
		r.mu.Unlock()
		return fmt.Errorf("motofleet: instance %s has no worker running", id)
	}
	exited := in.exited
	err := in.proc.Process.Kill()
	r.mu.Unlock()
	<-exited
	return err
}

// Worker is an instance as the runner sees it.
type Worker struct {
	ID    string
	State elastiq.InstanceState
	// PID is the worker process's, 0 when none runs.
	PID int
}

// Workers returns the instances the runner follows, ordered by ID.
func (r *Runner) Workers() []Worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Worker
	for _, in := range r.instances {
		w := Worker{ID: in.id, State: in.state}
		if in.proc != nil {
			w.PID = in.proc.Process.Pid
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Worker) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Starts is the number of worker processes started so far.
func (r *Runner) Starts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

// Close terminates every instance of the stack on the server, stops their
// workers (SIGTERM, SIGKILL after StopGrace) and waits for them, then stops
// following the server.
func (r *Runner) Close(ctx context.Context) error {
	list, err := r.fleet.List(ctx)
	if err == nil && len(list) > 0 {
		ids := make([]string, len(list))
		for i, in := range list {
			ids[i] = in.ID
		}
		err = r.fleet.Terminate(ctx, ids)
	}
	close(r.stop)
	<-r.done
	// Stop what still runs, whatever the server said.
	r.mu.Lock()
	var waits []chan struct{}
	for _, in := range r.instances {
		if in.proc != nil {
			r.signal(time.Now(), in)
			waits = append(waits, in.exited)
		}
	}
	r.mu.Unlock()
	for _, w := range waits {
		select {
		case <-w:
		case <-time.After(r.cfg.StopGrace):
			r.mu.Lock()
			for _, in := range r.instances {
				if in.proc != nil {
					in.proc.Process.Kill()
				}
			}
			r.mu.Unlock()
			<-w
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	for _, in := range r.instances {
		if in.imds != nil {
			in.imds.Close()
		}
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("motofleet: terminate the stack's instances: %w", err)
	}
	return nil
}

// serveIMDS starts the metadata service of instance id on loopback.
func serveIMDS(id string) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: imds.Handler(id)}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String(), nil
}
