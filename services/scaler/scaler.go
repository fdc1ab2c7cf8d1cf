// Package scaler is the control loop that keeps the worker fleet sized to the
// request queue. Each evaluation observes the queue and the fleet, asks a
// policy.Policy for a Decision (pure code, in package policy) and carries it
// out through an elastiq.Fleet. Every decision is logged with its inputs and
// reason; failed observations and actions are logged and retried at the next
// evaluation.
package scaler

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/retry"
	"github.com/elastiq/elastiq/services/scaler/cost"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

// Config configures a Scaler. Start from DefaultConfig.
type Config struct {
	// Interval between evaluations. Nudge evaluates at once in between.
	Interval time.Duration
	// ActionTimeout bounds each queue and fleet call.
	ActionTimeout time.Duration
	// NudgeSettle is how long an evaluation waits after the first nudge,
	// so that a burst of requests (the course's 100 at once) is seen as one
	// queue and answered with one decision instead of one per request.
	// Zero evaluates on the first nudge.
	NudgeSettle time.Duration
	// Prices are what the fleet's instances cost, for its usage
	// (Metrics and ScalingReport).
	Prices cost.Prices
	// EventRetention is how long ScalingReport keeps the decisions that
	// acted.
	EventRetention time.Duration
}

// DefaultConfig evaluates every second with 30-second calls, and 20 ms
// after the first request of a burst; prices usage at cost.DefaultPrices
// and reports the last 30 minutes of events.
func DefaultConfig() Config {
	return Config{Interval: time.Second, ActionTimeout: 30 * time.Second, NudgeSettle: 20 * time.Millisecond,
		Prices: cost.DefaultPrices(), EventRetention: 30 * time.Minute}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return fmt.Errorf("scaler config: Interval %v: want > 0", c.Interval)
	case c.ActionTimeout <= 0:
		return fmt.Errorf("scaler config: ActionTimeout %v: want > 0", c.ActionTimeout)
	case c.NudgeSettle < 0 || c.NudgeSettle >= c.Interval:
		return fmt.Errorf("scaler config: NudgeSettle %v: want 0 up to Interval %v", c.NudgeSettle, c.Interval)
	case c.EventRetention < 0:
		return fmt.Errorf("scaler config: EventRetention %v: want >= 0", c.EventRetention)
	}
	return c.Prices.Validate()
}

// QueueStats reads the request queue's depth: all the scaler asks of it.
type QueueStats interface {
	Stats(ctx context.Context) (elastiq.QueueStats, error)
}

// Deps are what a Scaler observes and drives.
type Deps struct {
	// Queue is the request queue.
	Queue  QueueStats
	Fleet  elastiq.Fleet
	Policy policy.Policy
	// Metrics, if set, records what the scaler sees and does
	// (NewMetrics).
	Metrics *Metrics
	// Logger defaults to discarding; Now to time.Now; NewToken (the
	// idempotency token of a launch) to crypto/rand.Text.
	Logger   *slog.Logger
	Now      func() time.Time
	NewToken func() string
}

// Status is the outcome of the latest evaluation.
type Status struct {
	// At is when the observation was taken; zero before the first one.
	At          time.Time
	Observation policy.Observation
	Decision    policy.Decision
}

// Scaler runs the control loop. Create it with New, call Run, and call
// Nudge when a request arrives.
type Scaler struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	nudge   chan struct{}
	running atomic.Bool
	// arrivals counts nudges since the last evaluation: the requests the
	// arrival rate is estimated from.
	arrivals atomic.Int64

	// Loop state, touched only by Run's goroutine. The idle clock starts
	// at New and restarts at Run.
	lastBusy, lastScaleOut, lastScaleIn time.Time
	rate                                policy.RateEstimate
	// retryLaunch is the token of a launch that failed; a retry of the
	// same size reuses it, so a launch that did happen is not repeated.
	retryLaunch struct {
		n     int
		token string
	}

	mu     sync.Mutex
	last   Status
	meter  *cost.Meter
	events []elastiq.ScalingEvent // oldest first, within EventRetention
}

// New checks cfg and deps and returns a Scaler.
func New(cfg Config, deps Deps) (*Scaler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Queue == nil:
		return nil, errors.New("new scaler: nil Queue")
	case deps.Fleet == nil:
		return nil, errors.New("new scaler: nil Fleet")
	case deps.Policy == nil:
		return nil, errors.New("new scaler: nil Policy")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.NewToken == nil {
		deps.NewToken = rand.Text
	}
	return &Scaler{
		cfg:      cfg,
		deps:     deps,
		log:      deps.Logger.With("component", "scaler", "policy", deps.Policy.Name()),
		nudge:    make(chan struct{}, 1),
		lastBusy: deps.Now(),
		meter:    cost.NewMeter(cfg.Prices),
	}, nil
}

// Nudge asks for an evaluation now rather than at the next tick, so that
// scale-out from zero starts with the first request. It never blocks; nudges
// that arrive while one is pending are merged. Call it once per accepted
// request: the nudges are also counted, and give the policy its
// Observation.ArrivalRate (zero without nudges).
func (s *Scaler) Nudge() { s.NudgeN(1) }

// NudgeN is n nudges at once: n requests accepted since the last report
// (Handler's). n < 1 counts nothing but still asks for an evaluation.
func (s *Scaler) NudgeN(n int) {
	if n > 0 {
		s.arrivals.Add(int64(n))
	}
	s.deps.Metrics.nudged(n)
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Last returns the outcome of the latest evaluation that observed the queue
// and fleet.
func (s *Scaler) Last() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// ScalingReport returns the fleet's usage so far and the decisions that
// acted after since, within Config.EventRetention. It is safe to call
// from any goroutine (the embedded web tier's dashboard does).
func (s *Scaler) ScalingReport(_ context.Context, since time.Time) (elastiq.ScalingReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.events, since, func(e elastiq.ScalingEvent, t time.Time) int {
		if e.At.After(t) {
			return 1
		}
		return -1
	})
	return elastiq.ScalingReport{Usage: s.meter.Usage(), Events: slices.Clone(s.events[i:])}, nil
}

// Run evaluates at once, then every Interval and on every Nudge, until ctx is
// cancelled; it returns ctx.Err(). Errors of one evaluation are logged and
// do not stop the loop. Run must not be called concurrently.
func (s *Scaler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scaler run: already running")
	}
	defer s.running.Store(false)
	s.lastBusy = s.deps.Now()
	s.log.Info("scaler started", "interval", s.cfg.Interval)
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.evaluate(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.nudge:
			if s.cfg.NudgeSettle > 0 {
				if err := retry.Sleep(ctx, s.cfg.NudgeSettle); err != nil {
					return err
				}
				select { // the nudges of the burst are answered by this evaluation
				case <-s.nudge:
				default:
				}
			}
		}
	}
}

// evaluate observes, decides and acts once.
func (s *Scaler) evaluate(ctx context.Context) {
	now := s.deps.Now()
	stats, instances, err := s.observe(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("observe failed; retrying next evaluation", "err", err)
		}
		return
	}
	if stats.Visible+stats.InFlight > 0 {
		s.lastBusy = now
	}
	obs := policy.Observe(now, stats, instances, now.Sub(s.lastBusy))
	obs.LastScaleOut, obs.LastScaleIn = s.lastScaleOut, s.lastScaleIn
	obs.ArrivalRate = s.rate.Add(now, int(s.arrivals.Swap(0)))
	d := s.deps.Policy.Decide(obs)

	level := slog.LevelDebug
	if d.Acts() {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "scaling decision", "observed", obs, "decision", d)
	s.mu.Lock()
	s.last = Status{At: now, Observation: obs, Decision: d}
	usage := s.meter.Observe(now, instances)
	s.events = slices.DeleteFunc(s.events, func(e elastiq.ScalingEvent) bool { return now.Sub(e.At) > s.cfg.EventRetention })
	if d.Acts() {
		s.events = append(s.events, elastiq.ScalingEvent{At: now, Start: len(d.Start), Launch: d.Launch,
			Stop: len(d.Stop), Terminate: len(d.Terminate), Reason: d.Reason})
	}
	s.mu.Unlock()
	s.deps.Metrics.observed(obs, d, usage)
	s.act(ctx, d)
}

func (s *Scaler) observe(ctx context.Context) (elastiq.QueueStats, []elastiq.Instance, error) {
	var stats elastiq.QueueStats
	var instances []elastiq.Instance
	err := s.call(ctx, func(ctx context.Context) (err error) {
		stats, err = s.deps.Queue.Stats(ctx)
		return err
	})
	if err != nil {
		return stats, nil, fmt.Errorf("queue stats: %w", err)
	}
	err = s.call(ctx, func(ctx context.Context) (err error) {
		instances, err = s.deps.Fleet.List(ctx)
		return err
	})
	if err != nil {
		return stats, nil, fmt.Errorf("list fleet: %w", err)
	}
	return stats, instances, nil
}

// act carries out d in order: start, launch, stop, terminate. Each failure is
// logged and the rest still run; the next evaluation sees the fleet as it is
// and decides again.
func (s *Scaler) act(ctx context.Context, d policy.Decision) {
	if len(d.Start) > 0 {
		if s.try(ctx, ActionStart, d.Start, func(ctx context.Context) error {
			return s.deps.Fleet.Start(ctx, d.Start)
		}) {
			s.lastScaleOut = s.deps.Now()
		}
	}
	if d.Launch > 0 {
		s.launch(ctx, d.Launch)
	}
	if len(d.Stop) > 0 {
		if s.try(ctx, ActionStop, d.Stop, func(ctx context.Context) error {
			return s.deps.Fleet.Stop(ctx, d.Stop)
		}) {
			s.lastScaleIn = s.deps.Now()
		}
	}
	if len(d.Terminate) > 0 {
		if s.try(ctx, ActionTerminate, d.Terminate, func(ctx context.Context) error {
			return s.deps.Fleet.Terminate(ctx, d.Terminate)
		}) {
			s.lastScaleIn = s.deps.Now()
		}
	}
}

// launch launches n instances with a fresh idempotency token, unless the
// previous launch of the same size failed: then it retries with that launch's
// token, so a launch that did happen but whose answer was lost (a timeout)
// is not repeated.
func (s *Scaler) launch(ctx context.Context, n int) {
	token := s.retryLaunch.token
	if s.retryLaunch.n != n || token == "" {
		token = s.deps.NewToken()
	}
	var launched []elastiq.Instance
	err := s.call(ctx, func(ctx context.Context) (err error) {
		launched, err = s.deps.Fleet.Launch(ctx, n, token)
		return err
	})
	s.deps.Metrics.acted(ActionLaunch, len(launched), err)
	if err != nil {
		s.retryLaunch.n, s.retryLaunch.token = n, token
		if ctx.Err() == nil {
			s.log.Error("launch instances failed; retrying next evaluation", "n", n, "token", token, "err", err)
		}
		return
	}
	s.retryLaunch.n, s.retryLaunch.token = 0, ""
	s.lastScaleOut = s.deps.Now()
	s.log.Info("launched instances", "n", n, "token", token, "ids", policy.IDs(launched))
}

// try runs one fleet action with ActionTimeout and logs the outcome.
func (s *Scaler) try(ctx context.Context, action string, ids []string, f func(context.Context) error) bool {
	op := action + " instances"
	err := s.call(ctx, f)
	s.deps.Metrics.acted(action, len(ids), err)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error(op+" failed; retrying next evaluation", "ids", ids, "err", err)
		}
		return false
	}
	s.log.Info(op, "ids", ids)
	return true
}

// call runs f with ActionTimeout.
func (s *Scaler) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ActionTimeout)
	defer cancel()
	return f(ctx)
}
