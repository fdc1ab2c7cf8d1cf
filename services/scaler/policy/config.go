package policy

import (
	"flag"
	"fmt"
	"time"
)

// The scaling policies by name.
const (
	NameBacklog = "backlog"
	NameClassic = "classic"
)

// Config chooses a scaling policy and configures it: the one way every
// program (the distributed scaler, the embedded stack, the simulator) picks
// its policy, with one set of defaults. Start from DefaultConfig, register
// the flags with RegisterFlags, and build the policy with New.
type Config struct {
	// Policy is NameBacklog (the default) or NameClassic.
	Policy string
	// Max is the most worker instances, for either policy.
	Max int
	// TerminateAfter: stopped instances (for backlog, those beyond the
	// warm pool) are terminated after the queue has been idle this long.
	// Zero means the chosen policy's own default: classic 2m, backlog 10m.
	TerminateAfter time.Duration
	// Backlog configures the backlog policy; its Max and TerminateAfter
	// come from the fields above. ServiceTime, LaunchReady and StartReady
	// describe the system the policy runs on: each program sets them from
	// what it knows (flags, the embedded fleet's delays, the simulator's
	// model).
	Backlog BacklogConfig
}

// DefaultConfig is the backlog policy with its defaults, at most 19
// instances as the original system.
func DefaultConfig() Config {
	b := DefaultBacklogConfig()
	return Config{Policy: NameBacklog, Max: b.Max, Backlog: b}
}

// RegisterFlags registers the flags that choose and configure the policy:
// -policy, -max-workers, -terminate-after, -warm-pool and -target-latency,
// with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Policy, "policy", c.Policy, "scaling policy: backlog (drain the backlog within -target-latency, warm pool) or classic (the original system's)")
	fs.IntVar(&c.Max, "max-workers", c.Max, "most worker instances")
	fs.DurationVar(&c.TerminateAfter, "terminate-after", c.TerminateAfter,
		"terminate stopped workers (backlog: those beyond the warm pool) after no request for this long (0: classic 2m, backlog 10m)")
	fs.IntVar(&c.Backlog.WarmPool, "warm-pool", c.Backlog.WarmPool, "backlog policy: stopped, initialised workers kept for the next burst")
	fs.DurationVar(&c.Backlog.TargetLatency, "target-latency", c.Backlog.TargetLatency, "backlog policy: drain the backlog within this long")
}

// RegisterTimingFlags registers -service-time, -launch-ready and
// -start-ready: what the backlog policy must be told about a system it cannot
// measure (the distributed scaler's EC2 workers).
func (c *Config) RegisterTimingFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Backlog.ServiceTime, "service-time", c.Backlog.ServiceTime, "backlog policy: expected time a worker takes per request")
	fs.DurationVar(&c.Backlog.LaunchReady, "launch-ready", c.Backlog.LaunchReady, "backlog policy: time from launching a worker to its first request")
	fs.DurationVar(&c.Backlog.StartReady, "start-ready", c.Backlog.StartReady, "backlog policy: time from starting a stopped worker to its first request")
}

// Validate reports whether New would build a policy from c.
func (c Config) Validate() error {
	_, err := New(c)
	return err
}

// New builds the policy c chooses.
func New(c Config) (Policy, error) {
	switch c.Policy {
	case NameBacklog:
		b := c.Backlog
		b.Max = c.Max
		if c.TerminateAfter != 0 {
			b.TerminateAfter = c.TerminateAfter
		}
		return NewBacklog(b)
	case NameClassic:
		cc := DefaultClassicConfig()
		cc.Max = c.Max
		if c.TerminateAfter != 0 {
			cc.TerminateAfter = c.TerminateAfter
		}
		return NewClassic(cc)
	}
	return nil, fmt.Errorf("scaling policy %q: want %s or %s", c.Policy, NameBacklog, NameClassic)
}
