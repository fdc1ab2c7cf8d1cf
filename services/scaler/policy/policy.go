// Package policy holds the scaler's decisions: pure functions from an
// Observation of the request queue and the worker fleet to a Decision with a
// reason. Nothing here takes a context, reads a clock or does I/O, so the live
// scaler and a simulator call the same code and table tests cover it fully.
package policy

import (
	"cmp"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Policy decides what the fleet should do next. Implementations are pure:
// the same Observation always yields the same Decision.
type Policy interface {
	Decide(Observation) Decision
	// Name is a short identifier for logs and flags ("classic").
	Name() string
}

// Observation is what a policy sees: the request queue, the fleet by state,
// and time as data.
type Observation struct {
	// Now is when the observation was taken.
	Now time.Time
	// Visible requests are waiting; InFlight ones are held by workers.
	Visible, InFlight int
	// Instances by state, each list sorted by ID. Instances shutting down
	// or terminated are gone for scaling purposes and are not listed.
	Running, Pending, Stopping, Stopped []elastiq.Instance
	// IdleFor is how long the queue has had no request, visible or in
	// flight (zero while it has one).
	IdleFor time.Duration
	// LastScaleOut and LastScaleIn are when the scaler last started or
	// launched, and last stopped or terminated, instances successfully
	// (zero if never): what a policy needs for cooldowns.
	LastScaleOut, LastScaleIn time.Time
	// ServiceTime is the measured mean time one instance takes per
	// message, and ArrivalRate the measured requests per second (see
	// RateEstimate); zero when not measured. Policies that use them fall
	// back to their configuration.
	ServiceTime time.Duration
	ArrivalRate float64
}

// Observe builds an Observation from raw queue stats and a fleet listing,
// bucketing instances by state and sorting each bucket by ID. The caller
// supplies idleFor and the last-action times it tracks.
func Observe(now time.Time, q elastiq.QueueStats, instances []elastiq.Instance, idleFor time.Duration) Observation {
	o := Observation{Now: now, Visible: q.Visible, InFlight: q.InFlight, IdleFor: idleFor}
	for _, in := range instances {
		switch in.State {
		case elastiq.InstanceRunning:
			o.Running = append(o.Running, in)
		case elastiq.InstancePending:
			o.Pending = append(o.Pending, in)
		case elastiq.InstanceStopping:
			o.Stopping = append(o.Stopping, in)
		case elastiq.InstanceStopped:
			o.Stopped = append(o.Stopped, in)
		}
	}
	for _, list := range [][]elastiq.Instance{o.Running, o.Pending, o.Stopping, o.Stopped} {
		slices.SortFunc(list, func(a, b elastiq.Instance) int { return cmp.Compare(a.ID, b.ID) })
	}
	return o
}

// Active is the number of instances that are or will soon be serving:
// running plus pending.
func (o Observation) Active() int { return len(o.Running) + len(o.Pending) }

// LogValue lists the observation's inputs for a log line.
func (o Observation) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("visible", o.Visible),
		slog.Int("in_flight", o.InFlight),
		slog.Int("running", len(o.Running)),
		slog.Int("pending", len(o.Pending)),
		slog.Int("stopping", len(o.Stopping)),
		slog.Int("stopped", len(o.Stopped)),
		slog.Duration("idle_for", o.IdleFor),
		slog.Duration("service_time", o.ServiceTime),
		slog.Float64("arrival_rate", o.ArrivalRate),
	)
}

// Decision is what the fleet should do now. The scaler carries it out in
// field order: start, launch, stop, terminate.
type Decision struct {
	// Start lists stopped instances to start.
	Start []string
	// Launch is how many new instances to launch.
	Launch int
	// Stop lists running instances to stop.
	Stop []string
	// Terminate lists instances to remove for good.
	Terminate []string
	// Reason states the inputs and the rule that produced the decision.
	Reason string
}

// Acts reports whether the decision changes the fleet.
func (d Decision) Acts() bool {
	return len(d.Start) > 0 || d.Launch > 0 || len(d.Stop) > 0 || len(d.Terminate) > 0
}

// String summarises the decision: "start [i-1 i-2], launch 3: <reason>".
func (d Decision) String() string {
	var parts []string
	for _, a := range d.actions() {
		parts = append(parts, a.Key+" "+a.Value.String())
	}
	if len(parts) == 0 {
		parts = append(parts, "hold")
	}
	return strings.Join(parts, ", ") + ": " + d.Reason
}

// LogValue gives the decision's actions and reason for a log line.
func (d Decision) LogValue() slog.Value {
	return slog.GroupValue(append(d.actions(), slog.String("reason", d.Reason))...)
}

// actions lists the decision's non-empty actions in the order they are
// carried out.
func (d Decision) actions() []slog.Attr {
	var attrs []slog.Attr
	if len(d.Start) > 0 {
		attrs = append(attrs, slog.Any("start", d.Start))
	}
	if d.Launch > 0 {
		attrs = append(attrs, slog.Int("launch", d.Launch))
	}
	if len(d.Stop) > 0 {
		attrs = append(attrs, slog.Any("stop", d.Stop))
	}
	if len(d.Terminate) > 0 {
		attrs = append(attrs, slog.Any("terminate", d.Terminate))
	}
	return attrs
}

// IDs returns the IDs of instances, in order (nil for none).
func IDs(instances []elastiq.Instance) []string {
	if len(instances) == 0 {
		return nil
	}
	ids := make([]string, len(instances))
	for i, in := range instances {
		ids[i] = in.ID
	}
	return ids
}
