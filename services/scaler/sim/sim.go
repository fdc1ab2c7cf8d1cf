// Package sim is a deterministic discrete-event simulator of elastiq's
// elastic tier: the request queue, the worker instances and their EC2
// lifecycle, and the scaler calling a policy.Policy at its interval, the
// same Decide the live scaler calls. It answers what a policy costs and
// how fast it serves on a workload, in simulated time.
//
// The model:
//
//   - Queue: FIFO; a waiting worker takes a new message at once, the
//     longest-waiting worker first (as the embedded queue hands them out).
//     Messages held by a worker that is stopped or terminated become
//     visible again after VisibilityTimeout. No duplicates otherwise.
//   - Workers: one message at a time; service times drawn per message from
//     a lognormal distribution around ServiceTime (the same draws for every
//     policy on a workload); a worker stops itself after IdleTimeout
//     without a message, as the real one does. With CPUs set, all busy
//     workers share that many processors (the embedded stack on one
//     machine) instead of each having its own.
//   - EC2: a launched instance serves LaunchReady after the call, a started
//     one StartReady after; a stopping one is stopped StopDelay later.
//   - Billing: per second from each launch or start until the instance
//     begins stopping or terminating, at least MinBilled per interval
//     (EC2's 60 s). The whole time to ready is billed: most of it is OS boot
//     and initialisation inside EC2's running state. Stopped instances are
//     counted apart (their disk).
//   - Scaler: evaluates at 0 and every Interval, and NudgeSettle after an
//     arrival when Nudge is set (the web tier nudges it per request).
//     Observations are exact (SQS's approximate counts and their lag are
//     not modelled).
package sim

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/scaler/cost"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

// Config is the simulated system. Start from DefaultConfig.
type Config struct {
	// Seed drives the arrivals and the service times.
	Seed uint64

	// LaunchReady and StartReady are how long a new and a stopped instance
	// take from the call to serving; StopDelay how long stopping lasts.
	LaunchReady, StartReady, StopDelay time.Duration

	// ServiceTime is the mean time a worker takes per message, with
	// ServiceSigma the standard deviation of its logarithm (0: every
	// message takes exactly ServiceTime).
	ServiceTime  time.Duration
	ServiceSigma float64
	// IdleTimeout: a worker stops itself after this long without a
	// message; zero never.
	IdleTimeout time.Duration
	// CPUs, if positive, is how many processors all instances share; zero
	// gives each instance its own.
	CPUs int
	// VisibilityTimeout: a message held by a worker that is stopped or
	// terminated is visible again this long after.
	VisibilityTimeout time.Duration

	// Interval between the scaler's evaluations; with Nudge, an arrival
	// also triggers one NudgeSettle later.
	Interval    time.Duration
	Nudge       bool
	NudgeSettle time.Duration
	// MeasureRate feeds the policy the arrival rate as the live scaler
	// measures it: policy.RateEstimate over the arrivals between
	// evaluations, counted from nudges, so only with Nudge.
	// MeasureServiceTime feeds it the mean service time of the messages
	// completed so far.
	MeasureRate, MeasureServiceTime bool

	// MinBilled is the least billed per launch or start.
	MinBilled time.Duration
	// Tail is how long the run goes on after the last completion, so that
	// the fleet scales in and its cost is counted. Limit bounds the whole
	// run; a workload not served by then is an error.
	Tail, Limit time.Duration
	// SampleEvery is the timeline's resolution.
	SampleEvery time.Duration
}

// DefaultConfig is EC2 as in AWS's warm-pool example (ready in 260 s after
// a launch, 36 s after a start), one second per message (lognormal, sigma
// 0.5), workers stopping after a minute idle as elastiq's do, the live
// scaler's one-second interval and nudges, and EC2's 60 s minimum.
func DefaultConfig() Config {
	return Config{
		Seed:               1,
		LaunchReady:        260 * time.Second,
		StartReady:         36 * time.Second,
		StopDelay:          10 * time.Second,
		ServiceTime:        time.Second,
		ServiceSigma:       0.5,
		IdleTimeout:        time.Minute,
		VisibilityTimeout:  15 * time.Second,
		Interval:           time.Second,
		Nudge:              true,
		NudgeSettle:        20 * time.Millisecond,
		MeasureRate:        true,
		MeasureServiceTime: true,
		MinBilled:          cost.MinBilled,
		Tail:               15 * time.Minute,
		Limit:              48 * time.Hour,
		SampleEvery:        5 * time.Second,
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.LaunchReady < 0 || c.StartReady < 0 || c.StopDelay < 0:
		return fmt.Errorf("sim config: LaunchReady %v, StartReady %v, StopDelay %v: want >= 0", c.LaunchReady, c.StartReady, c.StopDelay)
	case c.ServiceTime <= 0:
		return fmt.Errorf("sim config: ServiceTime %v: want > 0", c.ServiceTime)
	case c.ServiceSigma < 0:
		return fmt.Errorf("sim config: ServiceSigma %v: want >= 0", c.ServiceSigma)
	case c.IdleTimeout < 0 || c.CPUs < 0 || c.VisibilityTimeout < 0:
		return fmt.Errorf("sim config: IdleTimeout %v, CPUs %d, VisibilityTimeout %v: want >= 0", c.IdleTimeout, c.CPUs, c.VisibilityTimeout)
	case c.Interval <= 0:
		return fmt.Errorf("sim config: Interval %v: want > 0", c.Interval)
	case c.NudgeSettle < 0 || c.MinBilled < 0 || c.Tail < 0:
		return fmt.Errorf("sim config: NudgeSettle %v, MinBilled %v, Tail %v: want >= 0", c.NudgeSettle, c.MinBilled, c.Tail)
	case c.Limit <= 0 || c.SampleEvery <= 0:
		return fmt.Errorf("sim config: Limit %v, SampleEvery %v: want > 0", c.Limit, c.SampleEvery)
	}
	return nil
}

// Sample is the system at one moment of a run.
type Sample struct {
	At                                  time.Duration
	Visible, InFlight                   int
	Pending, Running, Stopping, Stopped int
	Arrived, Completed                  int
}

// Result is one policy on one workload.
type Result struct {
	Policy, Workload string
	// Requests arrived; Completed of them were served.
	Requests, Completed int
	// Drain is from the first arrival to the last completion.
	Drain time.Duration
	// Latency percentiles, arrival to completion.
	P50, P95, P99, MaxLatency time.Duration
	// InstanceSeconds is what was billed from the first arrival on;
	// LeadInSeconds what was billed before it (a warm pool being
	// initialised); StoppedSeconds the time instances spent stopped.
	InstanceSeconds, LeadInSeconds, StoppedSeconds float64
	Launches, Starts, Terminations                 int
	// MaxFleet is the most instances active (pending or running) at once.
	MaxFleet int
	// Redelivered counts messages that went back to the queue because
	// their worker was stopped or terminated.
	Redelivered int
	// Duration is the simulated time of the run, lead-in and tail included.
	Duration time.Duration
	Samples  []Sample
}

// epoch is the wall-clock time of simulated time zero, for Observation.Now.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type eventKind int

const (
	evArrival eventKind = iota
	evEval
	evReady
	evFinish
	evIdle
	evStopped
	evRedeliver
	evSample
)

type event struct {
	at   time.Duration
	seq  uint64
	kind eventKind
	inst *instance
	gen  uint64 // of the instance when scheduled (evReady, evFinish, evStopped)
	msg  int
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(q[i].at, q[j].at), cmp.Compare(q[i].seq, q[j].seq)) < 0
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type instance struct {
	id                     string
	state                  elastiq.InstanceState
	launchedAt, stateSince time.Duration
	// gen changes at every state change and service start, so events
	// scheduled before it are ignored.
	gen uint64

	msg       int     // held message, -1 for none
	work      float64 // seconds of work left on msg at worked
	worked    time.Duration
	idleSince time.Duration
	billFrom  time.Duration
}

type run struct {
	cfg    Config
	policy policy.Policy
	now    time.Duration
	seq    uint64
	events eventQueue

	arrivals []time.Duration // by message
	service  []float64       // seconds of work, by message
	done     []bool

	queue   []int // visible messages, FIFO
	waiting []*instance
	insts   []*instance
	nextID  int
	busy    int
	held    int // messages of stopped workers, not yet visible again

	arrived, completed, sinceEval int
	serviceSum                    float64
	rate                          policy.RateEstimate
	nudgePending                  bool
	lastBusy, scaleOut, scaleIn   time.Duration
	everOut, everIn               bool

	leadIn time.Duration
	res    Result
	lat    []time.Duration
	lastAt time.Duration // of the last completion
	ending bool          // all are served: the run ends at stopAt
	stopAt time.Duration
	err    error
}

// Run simulates p on w with cfg.
func Run(cfg Config, p policy.Policy, w Workload) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if p == nil {
		return Result{}, errors.New("sim: nil policy")
	}
	arrivals := w.Times(cfg.Seed)
	r := &run{
		cfg: cfg, policy: p, arrivals: arrivals, leadIn: w.LeadIn,
		service: serviceTimes(cfg, len(arrivals)), done: make([]bool, len(arrivals)),
		res: Result{Policy: p.Name(), Workload: w.Name, Requests: len(arrivals)},
	}
	for i, at := range arrivals {
		r.schedule(&event{at: w.LeadIn + at, kind: evArrival, msg: i})
	}
	r.schedule(&event{at: 0, kind: evEval})
	r.schedule(&event{at: 0, kind: evSample})
	if len(arrivals) == 0 {
		r.ending, r.stopAt = true, w.LeadIn+cfg.Tail
	}
	for len(r.events) > 0 && r.err == nil {
		e := heap.Pop(&r.events).(*event)
		if r.ending && e.at > r.stopAt {
			break
		}
		if e.at > cfg.Limit {
			return Result{}, fmt.Errorf("sim %s/%s: %d of %d requests served by the limit %v",
				p.Name(), w.Name, r.completed, len(arrivals), cfg.Limit)
		}
		r.advance(e.at)
		r.handle(e)
	}
	if r.err != nil {
		return Result{}, r.err
	}
	r.finish()
	return r.res, nil
}

// serviceTimes draws every message's work, lognormal with mean
// cfg.ServiceTime, from its own stream so arrivals do not shift it.
func serviceTimes(cfg Config, n int) []float64 {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5e7f1ce))
	mean, sigma := cfg.ServiceTime.Seconds(), cfg.ServiceSigma
	mu := math.Log(mean) - sigma*sigma/2
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Exp(mu + sigma*rng.NormFloat64())
	}
	return out
}

func (r *run) schedule(e *event) {
	r.seq++
	e.seq = r.seq
	heap.Push(&r.events, e)
}

// rateOf is how fast a busy worker progresses: 1, or the share of the
// processors when they are shared and oversubscribed.
func (r *run) rateOf() float64 {
	if r.cfg.CPUs > 0 && r.busy > r.cfg.CPUs {
		return float64(r.cfg.CPUs) / float64(r.busy)
	}
	return 1
}

// advance moves the clock to t, bringing busy workers' remaining work up to
// date.
func (r *run) advance(t time.Duration) {
	if r.cfg.CPUs > 0 && t > r.now {
		rate := r.rateOf()
		for _, in := range r.insts {
			if in.msg >= 0 && in.state == elastiq.InstanceRunning {
				in.work -= (t - in.worked).Seconds() * rate
				in.worked = t
			}
		}
	}
	r.now = t
}

// reschedule plans the finish of every busy worker after the processor
// share changed.
func (r *run) reschedule() {
	if r.cfg.CPUs == 0 {
		return
	}
	rate := r.rateOf()
	for _, in := range r.insts {
		if in.msg >= 0 && in.state == elastiq.InstanceRunning {
			in.gen++
			in.worked = r.now
			r.schedule(&event{at: r.now + seconds(max(0, in.work)/rate), kind: evFinish, inst: in, gen: in.gen})
		}
	}
}

func seconds(s float64) time.Duration { return time.Duration(math.Ceil(s * float64(time.Second))) }

func (r *run) handle(e *event) {
	switch e.kind {
	case evArrival:
		r.arrived++
		r.sinceEval++
		r.enqueue(e.msg)
		if r.cfg.Nudge && !r.nudgePending {
			r.nudgePending = true
			r.schedule(&event{at: r.now + r.cfg.NudgeSettle, kind: evEval, msg: 1})
		}
	case evEval:
		if e.msg == 1 {
			r.nudgePending = false
		} else {
			r.schedule(&event{at: r.now + r.cfg.Interval, kind: evEval})
		}
		r.evaluate()
	case evReady:
		if e.gen == e.inst.gen && e.inst.state == elastiq.InstancePending {
			r.setState(e.inst, elastiq.InstanceRunning)
			e.inst.idleSince = r.now
			r.takeOrWait(e.inst)
		}
	case evFinish:
		if e.gen == e.inst.gen && e.inst.msg >= 0 {
			r.complete(e.inst)
		}
	case evIdle:
		in := e.inst
		if in.state == elastiq.InstanceRunning && in.msg < 0 && r.now-in.idleSince >= r.cfg.IdleTimeout {
			r.halt(in, elastiq.InstanceStopping)
		}
	case evStopped:
		if e.gen == e.inst.gen && e.inst.state == elastiq.InstanceStopping {
			r.setState(e.inst, elastiq.InstanceStopped)
		}
	case evRedeliver:
		r.held--
		r.res.Redelivered++
		r.enqueue(e.msg)
	case evSample:
		r.sample()
		r.schedule(&event{at: r.now + r.cfg.SampleEvery, kind: evSample})
	}
}

// enqueue makes message m visible, handing it to the longest-waiting worker
// if there is one.
func (r *run) enqueue(m int) {
	r.queue = append(r.queue, m)
	if len(r.waiting) > 0 {
		in := r.waiting[0]
		r.waiting = r.waiting[1:]
		r.takeOrWait(in)
	}
}

// takeOrWait gives a running, idle worker the next visible message, or
// lets it wait (and schedules its idle stop).
func (r *run) takeOrWait(in *instance) {
	if len(r.queue) == 0 {
		r.waiting = append(r.waiting, in)
		if r.cfg.IdleTimeout > 0 {
			r.schedule(&event{at: in.idleSince + r.cfg.IdleTimeout, kind: evIdle, inst: in})
		}
		return
	}
	m := r.queue[0]
	r.queue = r.queue[1:]
	in.msg, in.work, in.worked = m, r.service[m], r.now
	r.busy++
	if r.cfg.CPUs > 0 {
		r.reschedule()
		return
	}
	in.gen++
	r.schedule(&event{at: r.now + seconds(in.work), kind: evFinish, inst: in, gen: in.gen})
}

func (r *run) complete(in *instance) {
	m := in.msg
	in.msg = -1
	r.busy--
	if !r.done[m] {
		r.done[m] = true
		r.completed++
		r.lat = append(r.lat, r.now-r.leadIn-r.arrivals[m])
		r.serviceSum += r.service[m]
		r.lastAt = r.now
		if r.completed == len(r.arrivals) {
			r.ending, r.stopAt = true, r.now+r.cfg.Tail
		}
	}
	in.idleSince = r.now
	r.reschedule()
	r.takeOrWait(in)
}

// halt takes an instance out of service into state (stopping or
// shutting-down): its held message goes back to the queue after the
// visibility timeout, and its billed interval ends.
func (r *run) halt(in *instance, state elastiq.InstanceState) {
	r.waiting = slices.DeleteFunc(r.waiting, func(x *instance) bool { return x == in })
	if in.msg >= 0 {
		r.held++
		r.schedule(&event{at: r.now + r.cfg.VisibilityTimeout, kind: evRedeliver, msg: in.msg})
		in.msg = -1
		r.busy--
		r.reschedule()
	}
	if in.state == elastiq.InstancePending || in.state == elastiq.InstanceRunning {
		r.bill(in.billFrom, r.now)
	}
	r.setState(in, state)
	if state == elastiq.InstanceStopping {
		r.schedule(&event{at: r.now + r.cfg.StopDelay, kind: evStopped, inst: in, gen: in.gen})
	}
}

// bill adds the interval [from, to], at least MinBilled, to the lead-in
// part up to the first arrival and the workload part after it.
func (r *run) bill(from, to time.Duration) {
	total := max(to-from, r.cfg.MinBilled).Seconds()
	pre := min(max(r.leadIn-from, 0), to-from).Seconds()
	r.res.LeadInSeconds += pre
	r.res.InstanceSeconds += total - pre
}

func (r *run) setState(in *instance, s elastiq.InstanceState) {
	if in.state == elastiq.InstanceStopped {
		r.res.StoppedSeconds += (r.now - in.stateSince).Seconds()
	}
	in.state, in.stateSince = s, r.now
	in.gen++
}

// evaluate observes the system as the live scaler does, asks the policy and
// carries out its decision.
func (r *run) evaluate() {
	if len(r.queue)+r.busy+r.held > 0 {
		r.lastBusy = r.now
	}
	o := r.observe()
	if r.everOut {
		o.LastScaleOut = epoch.Add(r.scaleOut)
	}
	if r.everIn {
		o.LastScaleIn = epoch.Add(r.scaleIn)
	}
	if r.cfg.MeasureRate && r.cfg.Nudge {
		o.ArrivalRate = r.rate.Add(o.Now, r.sinceEval)
		r.sinceEval = 0
	}
	if r.cfg.MeasureServiceTime && r.completed > 0 {
		o.ServiceTime = seconds(r.serviceSum / float64(r.completed))
	}
	d := r.policy.Decide(o)
	if err := r.act(d); err != nil {
		r.err = fmt.Errorf("sim %s/%s at %v: decision %v: %w", r.res.Policy, r.res.Workload, r.now, d, err)
	}
	r.res.MaxFleet = max(r.res.MaxFleet, r.observe().Active())
}

// observe is the queue and fleet as the live scaler sees them, through the
// same policy.Observe.
func (r *run) observe() policy.Observation {
	instances := make([]elastiq.Instance, len(r.insts))
	for i, in := range r.insts {
		instances[i] = elastiq.Instance{ID: in.id, State: in.state, LaunchedAt: epoch.Add(in.launchedAt), StateSince: epoch.Add(in.stateSince)}
	}
	stats := elastiq.QueueStats{Visible: len(r.queue), InFlight: r.busy + r.held}
	return policy.Observe(epoch.Add(r.now), stats, instances, r.now-r.lastBusy)
}

// act carries out d as EC2 would: a call naming an instance in the wrong
// state fails, and here that is the policy's error.
func (r *run) act(d policy.Decision) error {
	byID := func(id string) *instance {
		i, ok := slices.BinarySearchFunc(r.insts, id, func(in *instance, id string) int { return cmp.Compare(in.id, id) })
		if !ok {
			return nil
		}
		return r.insts[i]
	}
	for _, id := range d.Start {
		in := byID(id)
		if in == nil || in.state != elastiq.InstanceStopped {
			return fmt.Errorf("start %s: not a stopped instance", id)
		}
		r.setState(in, elastiq.InstancePending)
		in.billFrom = r.now
		r.res.Starts++
		r.schedule(&event{at: r.now + r.cfg.StartReady, kind: evReady, inst: in, gen: in.gen})
	}
	for range d.Launch {
		r.nextID++
		in := &instance{id: fmt.Sprintf("i-%06d", r.nextID), msg: -1, launchedAt: r.now, billFrom: r.now}
		r.insts = append(r.insts, in) // IDs ascend, so insts stays sorted
		r.setState(in, elastiq.InstancePending)
		r.res.Launches++
		r.schedule(&event{at: r.now + r.cfg.LaunchReady, kind: evReady, inst: in, gen: in.gen})
	}
	if len(d.Start) > 0 || d.Launch > 0 {
		r.scaleOut, r.everOut = r.now, true
	}
	for _, id := range d.Stop {
		in := byID(id)
		if in == nil || (in.state != elastiq.InstanceRunning && in.state != elastiq.InstancePending) {
			return fmt.Errorf("stop %s: not a pending or running instance", id)
		}
		r.halt(in, elastiq.InstanceStopping)
	}
	for _, id := range d.Terminate {
		in := byID(id)
		if in == nil {
			return fmt.Errorf("terminate %s: no such instance", id)
		}
		r.halt(in, elastiq.InstanceTerminated)
		r.res.Terminations++
	}
	if len(d.Terminate) > 0 {
		r.insts = slices.DeleteFunc(r.insts, func(in *instance) bool { return in.state == elastiq.InstanceTerminated })
	}
	if len(d.Stop) > 0 || len(d.Terminate) > 0 {
		r.scaleIn, r.everIn = r.now, true
	}
	return nil
}

func (r *run) sample() {
	o := r.observe()
	r.res.Samples = append(r.res.Samples, Sample{
		At: r.now, Visible: o.Visible, InFlight: o.InFlight, Arrived: r.arrived, Completed: r.completed,
		Pending: len(o.Pending), Running: len(o.Running), Stopping: len(o.Stopping), Stopped: len(o.Stopped),
	})
}

// finish closes the run at its end: open billing intervals and stopped
// time are counted up to it, and the latencies summarised.
func (r *run) finish() {
	end := r.now
	if r.ending {
		end = r.stopAt
	}
	r.advance(end)
	for _, in := range r.insts {
		switch in.state {
		case elastiq.InstancePending, elastiq.InstanceRunning:
			r.bill(in.billFrom, end)
		case elastiq.InstanceStopped:
			r.res.StoppedSeconds += (end - in.stateSince).Seconds()
		}
	}
	r.res.Duration = end
	r.res.Completed = r.completed
	if len(r.arrivals) > 0 {
		r.res.Drain = r.lastAt - r.leadIn - r.arrivals[0]
	}
	slices.Sort(r.lat)
	r.res.P50, r.res.P95, r.res.P99 = percentile(r.lat, 50), percentile(r.lat, 95), percentile(r.lat, 99)
	if len(r.lat) > 0 {
		r.res.MaxLatency = r.lat[len(r.lat)-1]
	}
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}
