// Package web is elastiq's web tier: it accepts image uploads over HTTP,
// stores them under input/<id>, sends a request per upload on the request
// queue, and answers with the result the workers send back on the response
// queue.
//
// A Server owns its lifecycle: Serve runs the HTTP server together with the
// response consumer, which wakes the handlers waiting for results, writes
// each result to the shared cache and remembers recent ones, and the
// dead-letter consumer, which answers as failed the requests that failed on
// every delivery. On shutdown it stops HTTP first, so the requests still
// waiting get their results while it drains, then the consumers.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Deps are the backends a Server uses.
type Deps struct {
	// Requests is the queue accepted requests are sent on.
	Requests elastiq.Queue
	// Responses is the queue the workers send results on.
	Responses elastiq.Queue
	// ReplyTo, when each web instance has its own response queue, is the
	// URL of this one's (Responses): every request names it, so its result
	// comes back here. Empty: one response queue, one web instance.
	ReplyTo string
	// ReplyQueues, if set, opens the queue a request names in ReplyTo; a
	// dead letter's failed result goes there (without it, on Responses).
	ReplyQueues elastiq.ReplyQueues
	// DeadLetters, if set, is the request queue's dead-letter queue: the
	// requests that land there are answered as failed.
	DeadLetters elastiq.Queue
	// Store holds the inputs (written here) and the outputs (written by the
	// workers, read here when a result is in neither memory nor cache).
	Store elastiq.ObjectStore
	// Cache is the shared result cache.
	Cache elastiq.Cache
	// Fleet, if set, is read on /metrics scrapes and by the dashboard for
	// instance counts.
	Fleet InstanceLister
	// Scaling, if set, gives the dashboard the scaler's decisions and the
	// fleet's cost.
	Scaling ScalingReporter
	// Registry, if set, is the program's metrics registry: the web tier
	// registers its metrics there and serves all of it on /metrics (the
	// embedded program's workers and scaler join it). Default: a registry
	// of the server's own, with the Go and process collectors.
	Registry *prometheus.Registry
	// OnAccepted, if set, is called after each accepted request is queued
	// (the embedded stack nudges its scaler with it). It must not block.
	OnAccepted func()
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// InstanceLister lists the worker instances; the web tier only counts them.
type InstanceLister interface {
	List(ctx context.Context) ([]elastiq.Instance, error)
}

// Server is the web tier. Create it with New and call Serve.
type Server struct {
	cfg         Config
	requests    elastiq.Queue
	responses   elastiq.Queue
	replyTo     string
	replyQueues elastiq.ReplyQueues
	deadLetters elastiq.Queue
	store       elastiq.ObjectStore
	cache       elastiq.Cache
	fleet       InstanceLister
	scaling     ScalingReporter
	onAccepted  func()
	log         *slog.Logger
	now         func() time.Time

	images      imageLimits
	hub         *hub
	dash        *timeline
	storeHealth storeHealth
	revision    revision // the gallery's, for the requests sent
	metrics     *metrics
	// metricsHandler serves metrics.registry.
	metricsHandler http.Handler
	handler        http.Handler
	running        atomic.Bool
}

// New checks cfg and deps and returns a Server. It starts nothing: call Serve.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var missing []error
	for _, d := range []struct {
		name string
		nil  bool
	}{
		{"Requests", deps.Requests == nil},
		{"Responses", deps.Responses == nil},
		{"Store", deps.Store == nil},
		{"Cache", deps.Cache == nil},
	} {
		if d.nil {
			missing = append(missing, errors.New(d.name))
		}
	}
	if len(missing) > 0 {
		return nil, errors.Join(append([]error{errors.New("web: missing dependencies:")}, missing...)...)
	}
	s := &Server{
		cfg:         cfg,
		requests:    deps.Requests,
		responses:   deps.Responses,
		replyTo:     deps.ReplyTo,
		replyQueues: deps.ReplyQueues,
		deadLetters: deps.DeadLetters,
		store:       deps.Store,
		cache:       deps.Cache,
		fleet:       deps.Fleet,
		scaling:     deps.Scaling,
		onAccepted:  deps.OnAccepted,
		log:         deps.Logger,
		now:         deps.Now,
		images:      imageLimits{maxSide: cfg.MaxImageSide, maxPixels: cfg.MaxImagePixels, maxDecode: cfg.MaxDecodeBytes},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "web")
	if s.now == nil {
		s.now = time.Now
	}
	s.hub = newHub(cfg.ResultRetention, cfg.MaxRetainedResults, s.now)
	// A change made before this start may be one a worker has not read:
	// the first requests make every worker read the gallery again.
	s.revision.bump(s.now())
	s.dash = &timeline{}
	s.metrics = newMetrics(s, deps.Registry)
	s.metricsHandler = promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError})
	s.handler = s.instrument(s.paceUploads(s.routes()))
	return s, nil
}

// ioContext bounds a handler's calls to the store and queues.
func (s *Server) ioContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.IOTimeout)
}

// ServeHTTP serves the routes listed in routes.go.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// readHeaderTimeout bounds how long a client may take to send its request
// line and headers.
const readHeaderTimeout = 10 * time.Second

// Serve serves HTTP on ln and runs the response consumer (and, with
// Deps.DeadLetters, the dead-letter consumer) until ctx is done or one of
// them fails. It then shuts down in order: HTTP first, within
// Config.ShutdownTimeout, so the requests waiting for results still get them
// from the consumers while it drains; then the consumers. It returns nil
// after a shutdown that ctx asked for, and the failure otherwise. Serve takes
// ownership of ln and may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.running.CompareAndSwap(false, true) {
		ln.Close()
		return errors.New("web: Serve was already called")
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	wg.Go(func() { s.consumeResponses(bg) })
	wg.Go(func() { s.sampleDashboard(bg) })
	if s.deadLetters != nil {
		wg.Go(func() { s.consumeDeadLetters(bg) })
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		BaseContext:       func(net.Listener) context.Context { return bg },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ln = newLimitListener(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerClient, func(string) { s.metrics.refusedConns.Inc() })
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serve: %w", err)
	}
	s.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if serr := hs.Shutdown(shutdownCtx); serr != nil {
		s.log.Warn("HTTP shutdown: requests still open after the timeout were cut off", "err", serr)
		hs.Close()
	}
	stopBG()
	wg.Wait()
	return err
}
