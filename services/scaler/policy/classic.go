package policy

import (
	"fmt"
	"time"
)

// ClassicConfig configures Classic. Start from DefaultClassicConfig.
type ClassicConfig struct {
	// Max is the most active instances (running, pending and about to
	// be started or launched) the policy asks for.
	Max int
	// TerminateAfter: stopped instances are terminated once no request has
	// been seen for this long.
	TerminateAfter time.Duration
}

// DefaultClassicConfig is the original system's setting: at most 19
// instances, stopped ones terminated after 2 idle minutes.
func DefaultClassicConfig() ClassicConfig {
	return ClassicConfig{Max: 19, TerminateAfter: 2 * time.Minute}
}

// Validate reports the first invalid setting.
func (c ClassicConfig) Validate() error {
	switch {
	case c.Max < 1:
		return fmt.Errorf("classic policy: Max %d: want >= 1", c.Max)
	case c.TerminateAfter <= 0:
		return fmt.Errorf("classic policy: TerminateAfter %v: want > 0", c.TerminateAfter)
	}
	return nil
}

// Classic is the original system's policy, kept as the baseline. With Q
// visible requests and A active (running + pending) instances:
//
//   - when Q > A it starts min(S, Q-A) of the S stopped instances and then
//     launches new ones until A reaches min(Q, Max);
//   - when the queue is empty and no request has been seen for
//     TerminateAfter it terminates the stopped instances;
//   - otherwise it holds.
//
// It never stops an instance: the original workers stopped themselves when
// the queue was empty. It counts only visible requests, so a busy worker
// holding an in-flight message is taken as spare capacity.
type Classic struct{ cfg ClassicConfig }

var _ Policy = Classic{}

// NewClassic checks cfg and returns the policy.
func NewClassic(cfg ClassicConfig) (Classic, error) {
	if err := cfg.Validate(); err != nil {
		return Classic{}, err
	}
	return Classic{cfg: cfg}, nil
}

// Name returns "classic".
func (Classic) Name() string { return "classic" }

// Config returns the policy's configuration.
func (p Classic) Config() ClassicConfig { return p.cfg }

// Decide applies the classic rules to o.
func (p Classic) Decide(o Observation) Decision {
	q, a, s := o.Visible, o.Active(), len(o.Stopped)
	switch {
	case q > a:
		need := min(q, p.cfg.Max) - a
		if need <= 0 {
			return Decision{Reason: fmt.Sprintf("queue %d > active %d: at max %d", q, a, p.cfg.Max)}
		}
		start := min(s, need)
		d := Decision{Start: IDs(o.Stopped[:start]), Launch: need - start}
		d.Reason = fmt.Sprintf("queue %d > active %d: start %d of %d stopped, launch %d (max %d)",
			q, a, start, s, d.Launch, p.cfg.Max)
		return d
	case q == 0 && o.IdleFor >= p.cfg.TerminateAfter && s > 0:
		return Decision{
			Terminate: IDs(o.Stopped),
			Reason: fmt.Sprintf("queue empty, no request for %v >= %v: terminate %d stopped",
				o.IdleFor, p.cfg.TerminateAfter, s),
		}
	case q == 0 && s > 0:
		return Decision{Reason: fmt.Sprintf("queue empty for %v < %v: keep %d stopped", o.IdleFor, p.cfg.TerminateAfter, s)}
	default:
		return Decision{Reason: fmt.Sprintf("queue %d <= active %d", q, a)}
	}
}
