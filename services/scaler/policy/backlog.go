package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// BacklogConfig configures Backlog. Start from DefaultBacklogConfig.
type BacklogConfig struct {
	// Max is the most active instances (running, pending and about to be
	// started or launched) the policy asks for.
	Max int
	// ServiceTime is how long one instance takes per message. A measured
	// Observation.ServiceTime, when set, is used instead.
	ServiceTime time.Duration
	// TargetLatency: the policy sizes the fleet to drain the backlog
	// within TargetLatency of the moment the soonest capacity that can do
	// it is ready (at once for running instances, StartReady for stopped
	// ones, LaunchReady for new ones).
	TargetLatency time.Duration
	// LaunchReady and StartReady are how long a new and a stopped
	// instance take from the call to serving their first message.
	LaunchReady, StartReady time.Duration
	// WarmPool is how many stopped, initialised instances the policy keeps
	// for the next burst. When the queue is empty and the fleet has fewer
	// instances than this it launches the difference; they boot, find
	// nothing to do and stop themselves, pre-initialised.
	WarmPool int
	// TerminateAfter: stopped instances beyond WarmPool are terminated
	// once the queue has been empty this long.
	TerminateAfter time.Duration
	// Utilization is the busy fraction the fleet is sized for under a
	// steady arrival rate (Observation.ArrivalRate): at least
	// rate*service/Utilization active instances while there is work.
	Utilization float64
}

// DefaultBacklogConfig is sized for EC2 with AWS's warm-pool example: a new
// instance ready in 260 s, a stopped one in 36 s; one second per message;
// backlog drained within 30 s of the capacity being ready; four warm
// instances; extra stopped instances kept for 10 idle minutes (a stopped
// instance costs only its disk); 90% utilisation; at most 19 instances as
// the original system.
func DefaultBacklogConfig() BacklogConfig {
	return BacklogConfig{
		Max:            19,
		ServiceTime:    time.Second,
		TargetLatency:  30 * time.Second,
		LaunchReady:    260 * time.Second,
		StartReady:     36 * time.Second,
		WarmPool:       4,
		TerminateAfter: 10 * time.Minute,
		Utilization:    0.9,
	}
}

// Validate reports the first invalid setting.
func (c BacklogConfig) Validate() error {
	switch {
	case c.Max < 1:
		return fmt.Errorf("backlog policy: Max %d: want >= 1", c.Max)
	case c.ServiceTime <= 0:
		return fmt.Errorf("backlog policy: ServiceTime %v: want > 0", c.ServiceTime)
	case c.TargetLatency <= 0:
		return fmt.Errorf("backlog policy: TargetLatency %v: want > 0", c.TargetLatency)
	case c.LaunchReady < 0 || c.StartReady < 0:
		return fmt.Errorf("backlog policy: LaunchReady %v, StartReady %v: want >= 0", c.LaunchReady, c.StartReady)
	case c.WarmPool < 0 || c.WarmPool > c.Max:
		return fmt.Errorf("backlog policy: WarmPool %d: want 0 up to Max %d", c.WarmPool, c.Max)
	case c.TerminateAfter <= 0:
		return fmt.Errorf("backlog policy: TerminateAfter %v: want > 0", c.TerminateAfter)
	case !(c.Utilization > 0 && c.Utilization <= 1):
		return fmt.Errorf("backlog policy: Utilization %v: want in (0, 1]", c.Utilization)
	}
	return nil
}

// Backlog is the default policy. It sizes the fleet to the backlog (visible
// plus in-flight requests: a busy worker is capacity in use, not spare)
// within a target latency, counting when each instance will be ready:
//
//   - While there is work it looks for the shortest drain horizon H at
//     which running and pending instances plus the fewest additions serve
//     the backlog and the arrivals expected until H (ArrivalRate * H). Each
//     instance serves (H - its ready time) / ServiceTime messages. Stopped
//     instances are added before new ones (a warm start is much faster than
//     a launch), and what a shorter horizon added is kept. Candidate
//     horizons are TargetLatency after each running or pending instance is
//     ready, and, for additions, ready + max(TargetLatency, ready): an
//     instance is added only if it will serve at least as long as it took
//     to be ready, so a launch that would mostly be billed for booting is
//     not made. If no horizon works it adds all it may (up to Max). With a
//     measured arrival rate it also keeps rate*ServiceTime/Utilization
//     instances active.
//   - With an empty queue it fills the warm pool, and after TerminateAfter
//     it terminates stopped instances beyond the pool.
//
// It never stops a running instance: only a worker knows whether it holds a
// message (the queue's counts are approximate and a receive can race any
// observation), so workers stop themselves after their idle timeout, as
// the original system's did, and scale-to-zero of running instances is
// theirs. It holds while instances are pending rather than launching again
// for the same backlog (pending capacity is counted with its remaining
// ready time), and terminates only after the queue has been empty for
// TerminateAfter: the hysteresis that keeps it from flapping.
type Backlog struct{ cfg BacklogConfig }

var _ Policy = Backlog{}

// NewBacklog checks cfg and returns the policy.
func NewBacklog(cfg BacklogConfig) (Backlog, error) {
	if err := cfg.Validate(); err != nil {
		return Backlog{}, err
	}
	return Backlog{cfg: cfg}, nil
}

// Name returns "backlog".
func (Backlog) Name() string { return "backlog" }

// Config returns the policy's configuration.
func (p Backlog) Config() BacklogConfig { return p.cfg }

// Decide applies the backlog rules to o.
func (p Backlog) Decide(o Observation) Decision {
	if o.Visible+o.InFlight > 0 {
		return p.scaleOut(o)
	}
	return p.idle(o)
}

// idle keeps the warm pool and terminates stopped instances beyond it.
func (p Backlog) idle(o Observation) Decision {
	stopped, total := len(o.Stopped), o.Active()+len(o.Stopping)+len(o.Stopped)
	switch {
	case stopped > p.cfg.WarmPool && o.IdleFor >= p.cfg.TerminateAfter:
		return Decision{
			Terminate: IDs(o.Stopped[p.cfg.WarmPool:]),
			Reason: fmt.Sprintf("queue empty for %v >= %v: terminate %d stopped, keep warm pool of %d",
				o.IdleFor, p.cfg.TerminateAfter, stopped-p.cfg.WarmPool, p.cfg.WarmPool),
		}
	case total < p.cfg.WarmPool && o.Active() < p.cfg.Max:
		n := min(p.cfg.WarmPool-total, p.cfg.Max-o.Active())
		return Decision{
			Launch: n,
			Reason: fmt.Sprintf("queue empty, fleet %d < warm pool %d: launch %d to initialise and stop", total, p.cfg.WarmPool, n),
		}
	case stopped > p.cfg.WarmPool:
		return Decision{Reason: fmt.Sprintf("queue empty for %v < %v: keep %d stopped", o.IdleFor, p.cfg.TerminateAfter, stopped)}
	default:
		return Decision{Reason: fmt.Sprintf("queue empty: %d active, %d stopped (warm pool %d)", o.Active(), stopped, p.cfg.WarmPool)}
	}
}

// serviceTime is the measured per-message time if known, else the
// configured one.
func (p Backlog) serviceTime(o Observation) time.Duration {
	if o.ServiceTime > 0 {
		return o.ServiceTime
	}
	return p.cfg.ServiceTime
}

// plan is a scale-out candidate: instances to start and to launch.
type plan struct{ start, launch int }

// scaleOut sizes the fleet for a non-empty backlog.
func (p Backlog) scaleOut(o Observation) Decision {
	backlog := o.Visible + o.InFlight
	svc := p.serviceTime(o)
	ready := make([]time.Duration, 0, p.cfg.Max) // until each active instance serves
	for range o.Running {
		ready = append(ready, 0)
	}
	for _, in := range o.Pending {
		ready = append(ready, p.remaining(o.Now, in))
	}
	room := max(0, p.cfg.Max-o.Active())
	stopped := min(len(o.Stopped), room)

	// Shortest horizon first; what a shorter one added is kept, so warm
	// capacity that could not meet the target still shortens the drain.
	var c plan
	met := false
	for _, h := range p.horizons(ready, stopped > 0, room > stopped) {
		if c, met = p.fill(h, ready, backlog, o.ArrivalRate, svc, stopped, room, c); met {
			break
		}
	}
	if !met {
		c = plan{start: stopped, launch: room - stopped}
	}
	var floor int // active instances a steady arrival rate needs
	if o.ArrivalRate > 0 {
		floor = int(math.Ceil(o.ArrivalRate*svc.Seconds()/p.cfg.Utilization - 1e-9))
	}
	for o.Active()+c.start+c.launch < floor && c.start+c.launch < room {
		if c.start < stopped {
			c.start++
		} else {
			c.launch++
		}
	}

	for range c.start {
		ready = append(ready, p.cfg.StartReady)
	}
	for range c.launch {
		ready = append(ready, p.cfg.LaunchReady)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "backlog %d (visible %d, in flight %d) at %v/message, active %d",
		backlog, o.Visible, o.InFlight, svc, o.Active())
	if o.ArrivalRate > 0 {
		fmt.Fprintf(&b, ", %.2f/s arriving needs %d", o.ArrivalRate, floor)
	}
	switch {
	case c.start+c.launch > 0:
		fmt.Fprintf(&b, ": start %d of %d stopped, launch %d", c.start, len(o.Stopped), c.launch)
	case room == 0:
		fmt.Fprintf(&b, ": at max %d", p.cfg.Max)
	default:
		b.WriteString(": enough")
	}
	if d, ok := drainTime(ready, backlog, svc); ok {
		fmt.Fprintf(&b, ", drained in ~%v", d.Round(time.Second))
	}
	fmt.Fprintf(&b, " (target %v after ready, max %d)", p.cfg.TargetLatency, p.cfg.Max)
	if !met {
		b.WriteString(", no horizon met: all it may")
	}
	return Decision{Start: IDs(o.Stopped[:c.start]), Launch: c.launch, Reason: b.String()}
}

// drainTime is when instances that serve from the given ready times, one
// message per svc each, have served backlog messages; ok is false without
// instances.
func drainTime(ready []time.Duration, backlog int, svc time.Duration) (time.Duration, bool) {
	if len(ready) == 0 {
		return 0, false
	}
	rs := slices.Clone(ready)
	slices.Sort(rs)
	work := float64(backlog) * svc.Seconds()
	var sum float64
	for k, r := range rs {
		sum += r.Seconds()
		h := (work + sum) / float64(k+1) // all of rs[:k+1] serving from their ready times
		if k == len(rs)-1 || h <= rs[k+1].Seconds() {
			return time.Duration(h * float64(time.Second)), true
		}
	}
	return 0, false // not reached
}

// horizons are the candidate drain horizons, shortest first: TargetLatency
// after each moment capacity can be ready.
func (p Backlog) horizons(ready []time.Duration, canStart, canLaunch bool) []time.Duration {
	hs := make([]time.Duration, 0, len(ready)+2)
	for _, r := range ready {
		hs = append(hs, r+p.cfg.TargetLatency)
	}
	if canStart {
		hs = append(hs, p.useful(p.cfg.StartReady))
	}
	if canLaunch {
		hs = append(hs, p.useful(p.cfg.LaunchReady))
	}
	slices.Sort(hs)
	return slices.Compact(hs)
}

// fill adds to c the fewest instances, stopped ones first, with which the
// backlog is served by horizon h; ok is false if even all it may add do
// not.
func (p Backlog) fill(h time.Duration, ready []time.Duration, backlog int, rate float64, svc time.Duration, stopped, room int, c plan) (plan, bool) {
	serves := func(r time.Duration) float64 { return max(0, (h-r).Seconds()) / svc.Seconds() }
	capacity := float64(c.start)*serves(p.cfg.StartReady) + float64(c.launch)*serves(p.cfg.LaunchReady)
	for _, r := range ready {
		capacity += serves(r)
	}
	need := float64(backlog) + rate*h.Seconds() - 1e-9
	for capacity < need && c.start < stopped && h >= p.useful(p.cfg.StartReady) {
		capacity += serves(p.cfg.StartReady)
		c.start++
	}
	for capacity < need && c.start+c.launch < room && h >= p.useful(p.cfg.LaunchReady) {
		capacity += serves(p.cfg.LaunchReady)
		c.launch++
	}
	return c, capacity >= need
}

// useful is the shortest horizon at which an instance ready after r is
// worth adding: it serves for at least TargetLatency, and for at least as
// long as it took to be ready, so booting is at most half of what it is
// billed for the backlog.
func (p Backlog) useful(r time.Duration) time.Duration { return r + max(p.cfg.TargetLatency, r) }

// remaining is how long a pending instance still needs to be ready at now:
// StartReady after a start, LaunchReady after a launch (an instance whose
// state changed within a second of its launch), counted from StateSince.
// Without StateSince the whole LaunchReady is assumed.
func (p Backlog) remaining(now time.Time, in elastiq.Instance) time.Duration {
	if in.StateSince.IsZero() || now.IsZero() {
		return p.cfg.LaunchReady
	}
	total := p.cfg.StartReady
	if in.StateSince.Sub(in.LaunchedAt) < time.Second {
		total = p.cfg.LaunchReady
	}
	return max(0, total-now.Sub(in.StateSince))
}
