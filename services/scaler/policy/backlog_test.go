package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// testBacklogConfig pins every setting the table below depends on, so a
// change of defaults does not silently change what it tests: 1 s per
// message, drained within 30 s of ready, launch ready in 260 s, start in
// 36 s, warm pool of 2, terminate after 10 min, at most 19.
func testBacklogConfig() BacklogConfig {
	return BacklogConfig{
		Max:            19,
		ServiceTime:    time.Second,
		TargetLatency:  30 * time.Second,
		LaunchReady:    260 * time.Second,
		StartReady:     36 * time.Second,
		WarmPool:       2,
		TerminateAfter: 10 * time.Minute,
		Utilization:    0.9,
	}
}

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// pending returns n pending instances with IDs prefix-01.., launched (or,
// with started, started again after a stop) ago.
func pending(prefix string, n int, ago time.Duration, started bool) []elastiq.Instance {
	out := fleet(elastiq.InstancePending, prefix, n)
	for i := range out {
		out[i].StateSince = now.Add(-ago)
		out[i].LaunchedAt = out[i].StateSince
		if started {
			out[i].LaunchedAt = out[i].StateSince.Add(-time.Hour)
		}
	}
	return out
}

func TestBacklogDecide(t *testing.T) {
	tests := []struct {
		name       string
		cfg        func(*BacklogConfig) // changes to testBacklogConfig, if any
		obs        Observation
		want       Decision
		wantReason string
	}{
		{
			name:       "empty queue, empty fleet: fill the warm pool",
			obs:        Observation{Now: now},
			want:       Decision{Launch: 2},
			wantReason: "fleet 0 < warm pool 2: launch 2",
		},
		{
			name:       "empty queue, warm pool full",
			obs:        Observation{Now: now, IdleFor: time.Hour, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "queue empty: 0 active, 2 stopped (warm pool 2)",
		},
		{
			name:       "empty queue, running and stopping workers count towards the pool",
			obs:        Observation{Now: now, Running: fleet(elastiq.InstanceRunning, "r", 1), Stopping: fleet(elastiq.InstanceStopping, "x", 1)},
			want:       Decision{},
			wantReason: "queue empty: 1 active, 0 stopped",
		},
		{
			name:       "empty queue with stopped instances, not idle long enough",
			obs:        Observation{Now: now, IdleFor: 9 * time.Minute, Stopped: fleet(elastiq.InstanceStopped, "s", 5)},
			want:       Decision{},
			wantReason: "queue empty for 9m0s < 10m0s: keep 5 stopped",
		},
		{
			name:       "empty queue with stopped instances, idle: terminate beyond the pool",
			obs:        Observation{Now: now, IdleFor: 10 * time.Minute, Stopped: fleet(elastiq.InstanceStopped, "s", 5)},
			want:       Decision{Terminate: []string{"s-03", "s-04", "s-05"}},
			wantReason: "terminate 3 stopped, keep warm pool of 2",
		},
		{
			name: "empty queue, no warm pool: scale to zero",
			cfg:  func(c *BacklogConfig) { c.WarmPool = 0 },
			obs:  Observation{Now: now, IdleFor: 10 * time.Minute, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want: Decision{Terminate: []string{"s-01", "s-02"}},
		},
		{
			name:       "scale out from zero: first request starts a warm instance",
			obs:        Observation{Now: now, Visible: 1, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01"}},
			wantReason: "start 1 of 2 stopped, launch 0, drained in ~37s",
		},
		{
			name:       "scale out from zero, nothing stopped: launch one",
			obs:        Observation{Now: now, Visible: 1},
			want:       Decision{Launch: 1},
			wantReason: "start 0 of 0 stopped, launch 1, drained in ~4m21s",
		},
		{
			name:       "a launch must serve as long as it boots: the warm pool drains 900 alone",
			obs:        Observation{Now: now, Visible: 900, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01", "s-02"}},
			wantReason: "start 2 of 2 stopped, launch 0, drained in ~8m6s",
		},
		{
			name:       "burst after idle: warm pool first, no launch when it drains by the launch horizon",
			obs:        Observation{Now: now, Visible: 100, IdleFor: time.Hour, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01", "s-02"}},
			wantReason: "start 2 of 2 stopped, launch 0, drained in ~1m26s",
		},
		{
			name: "burst after idle, enough stopped to meet the target",
			obs:  Observation{Now: now, Visible: 100, Stopped: fleet(elastiq.InstanceStopped, "s", 6)},
			// A start counts from 36 + max(30, 36) = 72 s: 36 each.
			want:       Decision{Start: []string{"s-01", "s-02", "s-03"}},
			wantReason: "start 3 of 6 stopped, launch 0, drained in ~1m9s",
		},
		{
			name: "large burst: warm pool and launches",
			obs:  Observation{Now: now, Visible: 1200, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			// A launch counts from 260 + max(30, 260) = 520 s: by then 2
			// starts serve 2*484 = 968, each launch 260 more.
			want:       Decision{Start: []string{"s-01", "s-02"}, Launch: 1},
			wantReason: "start 2 of 2 stopped, launch 1, drained in ~8m31s",
		},
		{
			name:       "backlog beyond any horizon: all it may",
			obs:        Observation{Now: now, Visible: 10000, Running: fleet(elastiq.InstanceRunning, "r", 3), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01", "s-02"}, Launch: 14},
			wantReason: "no horizon met: all it may",
		},
		{
			name:       "running instances drain it",
			obs:        Observation{Now: now, Visible: 40, InFlight: 2, Running: fleet(elastiq.InstanceRunning, "r", 2), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "backlog 42 (visible 40, in flight 2) at 1s/message, active 2: enough, drained in ~21s",
		},
		{
			name:       "in-flight only counts as backlog",
			obs:        Observation{Now: now, InFlight: 3, Running: fleet(elastiq.InstanceRunning, "r", 3)},
			want:       Decision{},
			wantReason: "backlog 3 (visible 0, in flight 3)",
		},
		{
			// Not by 30 s, but by 72 s (when a warm start counts): 2*72 = 144
			// short of 200 by 56; each start serves 36 more.
			name:       "in-flight only beyond the fleet: scale out",
			obs:        Observation{Now: now, InFlight: 200, Running: fleet(elastiq.InstanceRunning, "r", 2), Stopped: fleet(elastiq.InstanceStopped, "s", 4)},
			want:       Decision{Start: []string{"s-01", "s-02"}},
			wantReason: "backlog 200 (visible 0, in flight 200) at 1s/message, active 2: start 2 of 4 stopped, launch 0, drained in ~1m8s",
		},
		{
			name:       "all pending, ready soon enough: hold",
			obs:        Observation{Now: now, Visible: 50, Pending: pending("p", 2, 240*time.Second, false), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "enough, drained in ~45s",
		},
		{
			name:       "all pending, launched just now: warm instances are sooner",
			obs:        Observation{Now: now, Visible: 50, Pending: pending("p", 2, 0, false), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01", "s-02"}},
			wantReason: "start 2 of 2 stopped, launch 0",
		},
		{
			name:       "all pending after a start: counted with the start time",
			obs:        Observation{Now: now, Visible: 30, Pending: pending("p", 1, 6*time.Second, true)},
			want:       Decision{},
			wantReason: "enough, drained in ~1m0s",
		},
		{
			name:       "pending without StateSince: a whole launch assumed",
			obs:        Observation{Now: now, Visible: 30, Pending: fleet(elastiq.InstancePending, "p", 1)},
			want:       Decision{},
			wantReason: "enough, drained in ~4m50s",
		},
		{
			name:       "max reached",
			obs:        Observation{Now: now, Visible: 1000, Running: fleet(elastiq.InstanceRunning, "r", 19), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "at max 19",
		},
		{
			name:       "max caps starts",
			obs:        Observation{Now: now, Visible: 2000, Running: fleet(elastiq.InstanceRunning, "r", 18), Stopped: fleet(elastiq.InstanceStopped, "s", 3)},
			want:       Decision{Start: []string{"s-01"}},
			wantReason: "start 1 of 3 stopped, launch 0",
		},
		{
			name:       "measured service time replaces the configured one",
			obs:        Observation{Now: now, Visible: 100, ServiceTime: 100 * time.Millisecond, Running: fleet(elastiq.InstanceRunning, "r", 1), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "at 100ms/message, active 1: enough, drained in ~10s",
		},
		{
			name:       "arrival rate keeps enough active",
			obs:        Observation{Now: now, Visible: 1, ArrivalRate: 4, Running: fleet(elastiq.InstanceRunning, "r", 2), Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01", "s-02"}, Launch: 1},
			wantReason: "4.00/s arriving needs 5",
		},
		{
			name:       "arrival rate ignored without backlog",
			obs:        Observation{Now: now, ArrivalRate: 4, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "queue empty",
		},
		{
			name:       "stopping instances are not started",
			obs:        Observation{Now: now, Visible: 1, Stopping: fleet(elastiq.InstanceStopping, "x", 2)},
			want:       Decision{Launch: 1},
			wantReason: "launch 1",
		},
		{
			name:       "warm pool fill capped by max",
			cfg:        func(c *BacklogConfig) { c.Max, c.WarmPool = 2, 2 },
			obs:        Observation{Now: now, Running: fleet(elastiq.InstanceRunning, "r", 1)},
			want:       Decision{Launch: 1},
			wantReason: "fleet 1 < warm pool 2: launch 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testBacklogConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p, err := NewBacklog(cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkDecide(t, p, cfg.Max, tt.obs, tt.want, tt.wantReason)
		})
	}
}

func TestBacklogConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*BacklogConfig)
	}{
		{name: "zero max", change: func(c *BacklogConfig) { c.Max = 0 }},
		{name: "zero service time", change: func(c *BacklogConfig) { c.ServiceTime = 0 }},
		{name: "zero target", change: func(c *BacklogConfig) { c.TargetLatency = 0 }},
		{name: "negative launch ready", change: func(c *BacklogConfig) { c.LaunchReady = -time.Second }},
		{name: "warm pool over max", change: func(c *BacklogConfig) { c.WarmPool = 20 }},
		{name: "negative warm pool", change: func(c *BacklogConfig) { c.WarmPool = -1 }},
		{name: "zero terminate after", change: func(c *BacklogConfig) { c.TerminateAfter = 0 }},
		{name: "zero utilization", change: func(c *BacklogConfig) { c.Utilization = 0 }},
		{name: "utilization over one", change: func(c *BacklogConfig) { c.Utilization = 1.5 }},
	}
	if _, err := NewBacklog(DefaultBacklogConfig()); err != nil {
		t.Errorf("NewBacklog(DefaultBacklogConfig()) = %v, want no error", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultBacklogConfig()
			tt.change(&cfg)
			if _, err := NewBacklog(cfg); err == nil {
				t.Errorf("NewBacklog(%+v) = nil error, want one", cfg)
			}
		})
	}
}

func TestDrainTime(t *testing.T) {
	tests := []struct {
		name    string
		ready   []time.Duration
		backlog int
		want    time.Duration
	}{
		{name: "one running", ready: []time.Duration{0}, backlog: 10, want: 10 * time.Second},
		{name: "two running", ready: []time.Duration{0, 0}, backlog: 10, want: 5 * time.Second},
		{name: "late one never helps", ready: []time.Duration{0, 20 * time.Second}, backlog: 10, want: 10 * time.Second},
		{name: "late one helps", ready: []time.Duration{0, 4 * time.Second}, backlog: 10, want: 7 * time.Second},
		{name: "unsorted", ready: []time.Duration{4 * time.Second, 0}, backlog: 10, want: 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := drainTime(tt.ready, tt.backlog, time.Second)
			if !ok || got != tt.want {
				t.Errorf("drainTime(%v, %d, 1s) = %v, %v; want %v, true", tt.ready, tt.backlog, got, ok, tt.want)
			}
		})
	}
	if _, ok := drainTime(nil, 3, time.Second); ok {
		t.Errorf("drainTime(nil, 3, 1s) ok = true, want false")
	}
}

// TestNoFlapping feeds each policy a queue that alternates between a burst
// and empty every evaluation, with the fleet updated as the policy asked
// (started and launched instances run at once, the hardest case), and checks
// that it never scales in while requests keep coming and never exceeds Max.
func TestNoFlapping(t *testing.T) {
	classic, err := NewClassic(DefaultClassicConfig())
	if err != nil {
		t.Fatal(err)
	}
	backlog, err := NewBacklog(testBacklogConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Policy{classic, backlog} {
		t.Run(p.Name(), func(t *testing.T) {
			var running, stopped []elastiq.Instance
			stopped = fleet(elastiq.InstanceStopped, "s", 2)
			launched, changes := 0, 0
			for i := range 120 {
				o := Observation{Now: now.Add(time.Duration(i) * time.Second), Running: running, Stopped: stopped}
				if i%2 == 0 {
					o.Visible = 30
				} else {
					o.IdleFor = time.Second // the queue was busy a second ago
				}
				d := p.Decide(o)
				if len(d.Terminate) > 0 || len(d.Stop) > 0 {
					t.Fatalf("evaluation %d: Decide(%v) = %v, want no scale-in under flapping load", i, o.LogValue(), d)
				}
				if d.Acts() {
					changes++
				}
				for _, id := range d.Start {
					running = append(running, elastiq.Instance{ID: id, State: elastiq.InstanceRunning})
					stopped = slices.DeleteFunc(stopped, func(in elastiq.Instance) bool { return in.ID == id })
				}
				for range d.Launch {
					launched++
					running = append(running, fleet(elastiq.InstanceRunning, "l"+strings.Repeat("x", launched), 1)...)
				}
				if len(running) > 19 {
					t.Fatalf("evaluation %d: %d running, want at most 19", i, len(running))
				}
			}
			if changes > 2 {
				t.Errorf("%s changed the fleet %d times in 120 flapping evaluations, want at most 2", p.Name(), changes)
			}
		})
	}
}
