// Package embedded wires the whole elastic pipeline into one process with the
// embedded backends, so elastiq runs on one machine with no AWS at all:
//
//	client ─▶ web ─▶ store input/<id> ─▶ request queue ─▶ local fleet of workers
//	          ▲                                               │ classify, output/<id>
//	          └── waiter ◀── response consumer ◀── response queue
//
// The request and response queues are memqueue (SQS semantics: visibility
// timeout, redelivery, a dead-letter queue after MaxReceives), the object
// store is diskstore (accepted inputs and results survive a restart), the
// result cache is localcache, and the fleet is localfleet, whose instances
// are worker loops with a configurable boot delay. The scaler runs the same
// policy code as on AWS and is nudged on every accepted request, so scale-out
// from zero is immediate.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/diskstore"
	"github.com/elastiq/elastiq/services/elastiq/localcache"
	"github.com/elastiq/elastiq/services/elastiq/localfleet"
	"github.com/elastiq/elastiq/services/elastiq/memqueue"
	"github.com/elastiq/elastiq/services/elastiq/promserve"
	"github.com/elastiq/elastiq/services/scaler"
	"github.com/elastiq/elastiq/services/scaler/policy"
	"github.com/elastiq/elastiq/services/web"
	"github.com/elastiq/elastiq/services/worker"
)

// Config configures the embedded stack. Start from DefaultConfig.
type Config struct {
	// DataDir holds the object store (input/ and output/).
	DataDir string
	// Fsync makes every stored object durable across a power loss, at a
	// cost in latency; without it objects survive a process restart.
	Fsync bool
	// VisibilityTimeout of the request and response queues.
	VisibilityTimeout time.Duration
	// MaxReceives: a request delivered this many times without being
	// finished goes to the dead-letter queue and is answered as failed.
	MaxReceives int
	// Retention is how long a request's objects (input, output) are kept:
	// older ones are deleted and the store compacted in the background (see
	// retention.go). Zero keeps everything.
	Retention time.Duration
	// CacheBytes bounds the in-process result cache.
	CacheBytes int64
	// BootDelay is how long a newly launched worker instance takes to
	// start; StartDelay the same for a stopped one (a warm instance).
	BootDelay  time.Duration
	StartDelay time.Duration
	// WorkerGrace is how long a worker whose instance is stopped (or the
	// stack shut down) gets to finish the requests in hand, as the
	// distributed worker's -grace.
	WorkerGrace time.Duration

	Web    web.Config
	Worker worker.Config // Name is set per instance
	Scaler scaler.Config
	// Policy chooses and configures the scaling policy. The backlog
	// policy's LaunchReady and StartReady are the local fleet's BootDelay
	// and effective StartDelay: New sets them.
	Policy policy.Config
}

// DefaultConfig is the embedded stack of `make run`.
func DefaultConfig() Config {
	c := Config{
		DataDir:           ".data",
		VisibilityTimeout: elastiq.DefaultVisibilityTimeout,
		MaxReceives:       5,
		Retention:         7 * 24 * time.Hour,
		CacheBytes:        localcache.DefaultMaxBytes,
		BootDelay:         0,
		StartDelay:        0, // half the boot delay, like a warm EC2 instance
		WorkerGrace:       25 * time.Second,
		Web:               web.DefaultConfig(),
		Worker:            worker.DefaultConfig("template"),
		Scaler:            scaler.DefaultConfig(),
		Policy:            policy.DefaultConfig(),
	}
	// The face model takes about 17 ms an image on this machine (make
	// bench), not the second the policy assumes for a small EC2 instance.
	c.Policy.Backlog.ServiceTime = 20 * time.Millisecond
	return c
}

// startDelay is the time a stopped local instance takes to start, as
// localfleet reads StartDelay.
func (c Config) startDelay() time.Duration {
	switch {
	case c.StartDelay < 0:
		return 0
	case c.StartDelay == 0:
		return c.BootDelay / 2
	}
	return c.StartDelay
}

// policy is the configured policy, told the local fleet's timings.
func (c Config) policy() policy.Config {
	p := c.Policy
	p.Backlog.LaunchReady, p.Backlog.StartReady = c.BootDelay, c.startDelay()
	return p
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("stack config: empty DataDir")
	case c.VisibilityTimeout <= 0:
		return fmt.Errorf("stack config: VisibilityTimeout %v: want > 0", c.VisibilityTimeout)
	case c.Retention < 0:
		return fmt.Errorf("stack config: Retention %v: want >= 0 (0: keep everything)", c.Retention)
	case c.MaxReceives < 1:
		return fmt.Errorf("stack config: MaxReceives %d: want >= 1", c.MaxReceives)
	case c.BootDelay < 0:
		return fmt.Errorf("stack config: BootDelay %v: want >= 0", c.BootDelay)
	case c.WorkerGrace < 0:
		return fmt.Errorf("stack config: WorkerGrace %v: want >= 0", c.WorkerGrace)
	}
	w := c.Worker
	w.VisibilityTimeout = c.VisibilityTimeout
	for _, err := range []error{c.Web.Validate(), w.Validate(), c.Scaler.Validate(), c.policy().Validate()} {
		if err != nil {
			return fmt.Errorf("stack config: %w", err)
		}
	}
	return nil
}

// Deps are the parts of the stack that are not embedded backends.
type Deps struct {
	// Classifier labels images for every worker instance; it must be safe
	// for concurrent use.
	Classifier elastiq.Classifier
	Logger     *slog.Logger
}

// Stack is the embedded elastiq pipeline.
type Stack struct {
	cfg Config
	log *slog.Logger

	Store     *diskstore.Store
	Requests  *memqueue.Queue
	Responses *memqueue.Queue
	Dead      *memqueue.Queue
	Cache     *localcache.Cache
	Fleet     *localfleet.Fleet
	Scaler    *scaler.Scaler
	Web       *web.Server

	classifier    elastiq.Classifier
	registry      *prometheus.Registry
	workerMetrics *worker.Metrics
	journal       *receiveJournal // the request queue's receive counts, kept across restarts
	gallery       *worker.Gallery // the stored gallery, when the classifier can change its own
	// workerQueue, when set (by tests), wraps the request queue a worker
	// instance sees, so a test can cut one instance off as if it crashed.
	workerQueue func(instanceID string, q elastiq.Queue) elastiq.Queue
}

// New builds the stack; nothing runs until Run.
func New(cfg Config, deps Deps) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Classifier == nil {
		return nil, errors.New("stack: no classifier")
	}
	if cfg.Retention > 0 { // no copy of a result outlives the durable one
		cfg.Web.CacheTTL = min(cfg.Web.CacheTTL, cfg.Retention)
		cfg.Web.ResultRetention = min(cfg.Web.ResultRetention, cfg.Retention)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// One registry for the whole program, served on the web tier's
	// /metrics: the web tier's, the scaler's and the workers' metrics (the
	// workers' summed over the local fleet).
	reg := promserve.NewRegistry()
	s := &Stack{cfg: cfg, log: log, classifier: deps.Classifier, registry: reg, workerMetrics: worker.NewMetrics(reg)}

	var opts []diskstore.Option
	if cfg.Fsync {
		opts = append(opts, diskstore.WithFsync())
	}
	store, err := diskstore.Open(filepath.Join(cfg.DataDir, "objects"), opts...)
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.Store = store
	if fe, ok := deps.Classifier.(elastiq.FaceEnroller); ok {
		s.gallery = worker.NewGallery(store, fe, log)
	}
	if s.journal, err = openReceiveJournal(journalPath(cfg.DataDir)); err != nil {
		s.closeBackends()
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.Dead = memqueue.New(memqueue.Config{VisibilityTimeout: cfg.VisibilityTimeout})
	s.Requests = memqueue.New(memqueue.Config{
		VisibilityTimeout: cfg.VisibilityTimeout,
		MaxReceives:       cfg.MaxReceives,
		DeadLetter:        s.Dead,
	})
	s.Responses = memqueue.New(memqueue.Config{VisibilityTimeout: cfg.VisibilityTimeout})
	s.Cache = localcache.New(localcache.Config{MaxBytes: cfg.CacheBytes})

	s.Fleet, err = localfleet.New(localfleet.Config{
		BootDelay:  cfg.BootDelay,
		StartDelay: cfg.StartDelay,
		StopGrace:  cfg.WorkerGrace,
		NewWorker:  s.newWorker,
		Logger:     log,
	})
	if err != nil {
		s.closeBackends()
		return nil, fmt.Errorf("stack: %w", err)
	}
	pol, err := policy.New(cfg.policy())
	if err != nil {
		s.closeBackends()
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.Scaler, err = scaler.New(cfg.Scaler, scaler.Deps{
		Queue:   s.Requests,
		Fleet:   s.Fleet,
		Policy:  pol,
		Metrics: scaler.NewMetrics(s.registry),
		Logger:  log,
	})
	if err != nil {
		s.closeBackends()
		return nil, fmt.Errorf("stack: %w", err)
	}
	s.Web, err = web.New(cfg.Web, web.Deps{
		Requests:    s.Requests,
		Responses:   s.Responses,
		DeadLetters: s.Dead,
		Store:       s.Store,
		Cache:       s.Cache,
		Fleet:       s.Fleet,
		// Every accepted request nudges the scaler, so scale-out does
		// not wait for its next tick.
		OnAccepted: s.Scaler.Nudge,
		Scaling:    s.Scaler,
		Registry:   reg,
		Logger:     log,
	})
	if err != nil {
		s.closeBackends()
		return nil, fmt.Errorf("stack: %w", err)
	}
	return s, nil
}

// newWorker is the worker a local fleet instance runs each time it comes
// up: it stops itself after its idle timeout, and drains on Shutdown.
func (s *Stack) newWorker(id string) (localfleet.Worker, error) {
	cfg := s.cfg.Worker
	cfg.Name = id
	cfg.VisibilityTimeout = s.cfg.VisibilityTimeout
	// The embedded queue takes nothing from a cancelled receive.
	cfg.CancelReceiveOnShutdown = true
	var requests elastiq.Queue = journaledQueue{Queue: s.Requests, journal: s.journal, onError: func(err error) {
		s.log.Warn("receive counts not journaled: a restart may deliver these requests more than -max-receives times", "err", err)
	}}
	if s.workerQueue != nil {
		requests = s.workerQueue(id, requests)
	}
	return worker.New(cfg, worker.Deps{
		Requests:   requests,
		Responses:  s.Responses,
		Store:      s.Store,
		Classifier: s.classifier,
		Gallery:    s.gallery,
		Metrics:    s.workerMetrics,
		Logger:     s.log,
	})
}

// Handler is the web tier's HTTP handler.
func (s *Stack) Handler() http.Handler { return s.Web }

// Run re-enqueues accepted but unfinished inputs, then runs the scaler and
// the worker fleet and serves the web tier on ln until ctx is done. The web
// tier shuts down first (HTTP, then its consumers), then the scaler, then the
// fleet, whose workers finish the requests in hand within WorkerGrace; then
// the backends close. Run takes ownership of ln.
func (s *Stack) Run(ctx context.Context, ln net.Listener) error {
	defer s.closeBackends()
	ids, err := s.start(ctx)
	if err != nil {
		ln.Close()
		if ctx.Err() != nil {
			return nil // stopped while starting: a clean stop; the next start recovers
		}
		return err
	}
	for _, id := range ids {
		s.log.Info("request re-enqueued: accepted before a restart, no result yet", "id", id)
	}
	if len(ids) > 0 {
		s.log.Info("re-enqueued accepted requests that had no result", "count", len(ids))
	}
	scaling, stopScaling := context.WithCancel(context.WithoutCancel(ctx))
	scalerDone := make(chan struct{})
	go func() {
		defer close(scalerDone)
		s.Scaler.Run(scaling) // returns scaling.Err()
	}()
	retentionDone := make(chan struct{})
	go func() {
		defer close(retentionDone)
		if s.cfg.Retention > 0 {
			s.retain(scaling)
		}
	}()
	s.log.Info("embedded stack", "data", s.cfg.DataDir)
	runErr := s.Web.Serve(ctx, ln)
	stopScaling()
	<-scalerDone
	<-retentionDone
	if err := s.Fleet.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close fleet: %w", err)
	}
	return runErr
}

// start reads the stored gallery (seeding it when empty) and re-enqueues
// the accepted requests that have no result, which it returns.
func (s *Stack) start(ctx context.Context) ([]elastiq.RequestID, error) {
	if s.gallery != nil {
		if err := s.gallery.Start(ctx); err != nil {
			return nil, err
		}
	}
	ids, err := Recover(ctx, s.Store, s.Requests, s.journal.Count)
	if err != nil {
		return nil, err
	}
	return ids, s.journal.Keep(ids)
}

func (s *Stack) closeBackends() {
	if s.Fleet != nil {
		s.Fleet.Close()
	}
	for _, q := range []*memqueue.Queue{s.Requests, s.Responses, s.Dead} {
		if q != nil {
			q.Close()
		}
	}
	if s.Store != nil {
		s.Store.Close()
	}
	if s.journal != nil {
		s.journal.Close()
	}
}
