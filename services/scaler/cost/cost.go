// Package cost estimates what the worker fleet costs: instance time by state,
// measured from successive observations of the fleet (Meter), and dollars at
// configured prices (Prices). The live scaler and the simulator bill the same
// way: an instance is billed while pending or running, at least MinBilled
// per start, as EC2 bills Linux instances per second with a 60-second
// minimum; a stopped instance costs its volume's storage.
package cost

import (
	"flag"
	"fmt"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// MinBilled is EC2's least billed time per launch or start.
const MinBilled = time.Minute

// Prices are dollars per instance-hour by state.
type Prices struct {
	// Running is a pending or running worker: its instance type and its
	// public IPv4 address.
	Running float64
	// Stopped is a stopped worker: its volume.
	Stopped float64
}

// DefaultPrices are the README's us-east-1 on-demand list prices (November
// 2026) for the default worker: a t3.small ($0.0208/h) with a public IPv4
// address ($0.005/h) while it runs, and its 8 GB gp3 volume ($0.08 per
// GB-month, 730 hours) while it is stopped.
func DefaultPrices() Prices {
	return Prices{Running: 0.0208 + 0.005, Stopped: 8 * 0.08 / 730}
}

// Validate reports a negative price.
func (p Prices) Validate() error {
	if p.Running < 0 || p.Stopped < 0 {
		return fmt.Errorf("prices: running %v, stopped %v per hour: want >= 0", p.Running, p.Stopped)
	}
	return nil
}

// Dollars is the cost of billedSeconds of running instances and
// stoppedSeconds of stopped ones.
func (p Prices) Dollars(billedSeconds, stoppedSeconds float64) float64 {
	return (billedSeconds*p.Running + stoppedSeconds*p.Stopped) / 3600
}

// Meter integrates the fleet's instance time from observations: between two
// observations, each instance is taken to have stayed in the state the
// first one saw. An instance that disappears from the list has ended. A
// Meter is not safe for concurrent use.
type Meter struct {
	prices Prices
	last   time.Time
	// seen is each instance's state at the last observation; billedFrom
	// when its current billed interval (pending or running) began.
	seen       map[string]elastiq.InstanceState
	billedFrom map[string]time.Time
	usage      elastiq.FleetUsage
}

// NewMeter returns a Meter that prices usage at p.
func NewMeter(p Prices) *Meter {
	return &Meter{
		prices:     p,
		seen:       make(map[string]elastiq.InstanceState),
		billedFrom: make(map[string]time.Time),
		usage:      elastiq.FleetUsage{InstanceSeconds: make(map[elastiq.InstanceState]float64)},
	}
}

// Observe records the fleet as listed at now and returns the usage so far.
// Observations out of order (now before the last) only update the states.
func (m *Meter) Observe(now time.Time, instances []elastiq.Instance) elastiq.FleetUsage {
	if !m.last.IsZero() && now.After(m.last) {
		dt := now.Sub(m.last).Seconds()
		for _, st := range m.seen {
			m.usage.InstanceSeconds[st] += dt
			if billed(st) {
				m.usage.BilledSeconds += dt
			}
		}
	}
	if m.last.IsZero() || now.After(m.last) {
		m.last = now
	}
	current := make(map[string]elastiq.InstanceState, len(instances))
	for _, in := range instances {
		current[in.ID] = in.State
	}
	for id, from := range m.billedFrom {
		if !billed(current[id]) { // ended: stopped, terminated or gone
			if short := MinBilled - now.Sub(from); short > 0 {
				m.usage.BilledSeconds += short.Seconds()
			}
			delete(m.billedFrom, id)
		}
	}
	for id, st := range current {
		if _, ok := m.billedFrom[id]; !ok && billed(st) {
			m.billedFrom[id] = now
		}
	}
	m.seen = current
	m.usage.CostDollars = m.prices.Dollars(m.usage.BilledSeconds, m.usage.InstanceSeconds[elastiq.InstanceStopped])
	return m.Usage()
}

// Usage returns the usage so far, a copy.
func (m *Meter) Usage() elastiq.FleetUsage {
	u := m.usage
	u.InstanceSeconds = make(map[elastiq.InstanceState]float64, len(m.usage.InstanceSeconds))
	for st, s := range m.usage.InstanceSeconds {
		u.InstanceSeconds[st] = s
	}
	return u
}

func billed(st elastiq.InstanceState) bool {
	return st == elastiq.InstancePending || st == elastiq.InstanceRunning
}

// RegisterFlags registers -price-per-hour and -stopped-price-per-hour, which
// set p; p's values are the defaults.
func (p *Prices) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&p.Running, "price-per-hour", p.Running,
		"dollars per hour of a pending or running worker (instance type and public address), for the cost estimate")
	fs.Float64Var(&p.Stopped, "stopped-price-per-hour", p.Stopped,
		"dollars per hour of a stopped worker (its volume), for the cost estimate")
}
