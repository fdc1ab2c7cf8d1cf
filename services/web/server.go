// Package web is elastiq's web tier: it accepts image uploads over HTTP,
// stores them under input/<id>, sends a request per upload on the request
// queue, and answers with the result the workers send back on the response
// queue.
//
// A Server is an http.Handler plus a response consumer (Run) that must run
// alongside it: the consumer wakes the handlers waiting for results, writes
// each result to the shared cache, and remembers recent ones. Wire it as:
//
//	srv, err := web.New(cfg, deps)
//	go srv.Run(consumerCtx)            // until after the HTTP server has shut down
//	httpServer := &http.Server{Handler: srv}
//
// and on shutdown call httpServer.Shutdown first (waiting requests are still
// woken while it drains), then cancel consumerCtx and wait for Run to return.
package web

import (
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Deps are the backends a Server uses.
type Deps struct {
	// Requests is the queue accepted requests are sent on.
	Requests elastiq.Queue
	// Responses is the queue the workers send results on.
	Responses elastiq.Queue
	// Store holds the inputs (written here) and the outputs (written by the
	// workers, read here when a result is in neither memory nor cache).
	Store elastiq.ObjectStore
	// Cache is the shared result cache.
	Cache elastiq.Cache
	// Fleet, if set, is read on /metrics scrapes for instance counts.
	Fleet elastiq.Fleet
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Server is the web tier. Create it with New.
type Server struct {
	cfg       Config
	requests  elastiq.Queue
	responses elastiq.Queue
	store     elastiq.ObjectStore
	cache     elastiq.Cache
	fleet     elastiq.Fleet
	log       *slog.Logger
	now       func() time.Time

	images  imageLimits
	hub     *hub
	metrics *metrics
	handler http.Handler
	running atomic.Bool
}

// New checks cfg and deps and returns a Server. It starts nothing: call Run.
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
		cfg:       cfg,
		requests:  deps.Requests,
		responses: deps.Responses,
		store:     deps.Store,
		cache:     deps.Cache,
		fleet:     deps.Fleet,
		log:       deps.Logger,
		now:       deps.Now,
		images:    imageLimits{maxSide: cfg.MaxImageSide, maxPixels: cfg.MaxImagePixels},
		metrics:   newMetrics(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "web")
	if s.now == nil {
		s.now = time.Now
	}
	s.hub = newHub(cfg.ResultRetention, cfg.MaxRetainedResults, s.now)
	s.handler = s.instrument(s.routes())
	return s, nil
}

// ServeHTTP serves the routes listed in routes.go.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }
