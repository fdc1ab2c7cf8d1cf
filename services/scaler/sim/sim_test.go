package sim

import (
	"bytes"
	"encoding/xml"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/scaler/policy"
)

func policies(t *testing.T, max int) []policy.Policy {
	t.Helper()
	cc := policy.DefaultClassicConfig()
	cc.Max = max
	classic, err := policy.NewClassic(cc)
	if err != nil {
		t.Fatal(err)
	}
	bc := policy.DefaultBacklogConfig()
	bc.Max, bc.WarmPool = max, min(bc.WarmPool, max)
	backlog, err := policy.NewBacklog(bc)
	if err != nil {
		t.Fatal(err)
	}
	return []policy.Policy{classic, backlog}
}

// TestHandChecked is a run small enough to follow by hand: classic, a
// cold burst of 3, exact 2 s service, ready 10 s after a launch.
func TestHandChecked(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LaunchReady, cfg.ServiceSigma, cfg.ServiceTime = 10*time.Second, 0, 2*time.Second
	cfg.IdleTimeout, cfg.StopDelay, cfg.Tail = 5*time.Second, 10*time.Second, 5*time.Minute
	cfg.MeasureRate, cfg.MeasureServiceTime = false, false
	classic, err := policy.NewClassic(policy.DefaultClassicConfig())
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(cfg, classic, Burst(3, 0))
	if err != nil {
		t.Fatal(err)
	}
	// t=0: 3 arrive, the first evaluation launches 3; t=10: ready, each
	// takes one; t=12: all done; t=17: idle 5 s, each stops itself (billed
	// 17 s, so the 60 s minimum); t=27: stopped; last busy evaluation at
	// t=11, so at t=131 (idle 2 min) classic terminates the 3; end at
	// 12 + 5 min.
	want := Result{
		Policy: "classic", Workload: "burst-3-cold", Requests: 3, Completed: 3,
		Drain: 12 * time.Second, P50: 12 * time.Second, P95: 12 * time.Second, P99: 12 * time.Second, MaxLatency: 12 * time.Second,
		InstanceSeconds: 180, StoppedSeconds: 3 * (131 - 27),
		Launches: 3, Terminations: 3, MaxFleet: 3,
		Duration: 312 * time.Second,
	}
	got := r
	got.Samples = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Run(classic, burst of 3) =\n%+v\nwant\n%+v", got, want)
	}
	if s := r.Samples[2]; s.At != 10*time.Second || s.Running != 3 || s.InFlight != 3 || s.Visible != 0 {
		t.Errorf("sample at 10 s = %+v, want 3 running, 3 in flight", s)
	}
}

func TestDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	for _, p := range policies(t, 19) {
		w := Poisson(0.5, 20*time.Minute, DefaultLeadIn)
		a, err := Run(cfg, p, w)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(cfg, p, w)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs with seed %d differ: p99 %v vs %v, cost %.0f vs %.0f", p.Name(), cfg.Seed, a.P99, b.P99, a.InstanceSeconds, b.InstanceSeconds)
		}
		cfg2 := cfg
		cfg2.Seed++
		c, err := Run(cfg2, p, w)
		if err != nil {
			t.Fatal(err)
		}
		if c.Requests == a.Requests && c.P99 == a.P99 && c.InstanceSeconds == a.InstanceSeconds {
			t.Errorf("%s: seeds %d and %d gave the same run (%d requests, p99 %v)", p.Name(), cfg.Seed, cfg2.Seed, a.Requests, a.P99)
		}
	}
}

// TestConservationAndMax runs both policies on every standard workload,
// with the default maximum and a small one: every arrival completes once,
// nothing is redelivered (neither policy stops a busy worker), and the
// fleet never exceeds the policy's maximum.
func TestConservationAndMax(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every standard workload")
	}
	for _, max := range []int{19, 3} {
		for _, p := range policies(t, max) {
			for _, w := range Standard() {
				r, err := Run(DefaultConfig(), p, w)
				if err != nil {
					t.Fatal(err)
				}
				if r.Completed != r.Requests || r.Requests == 0 {
					t.Errorf("%s/%s (max %d): %d of %d requests completed", p.Name(), w.Name, max, r.Completed, r.Requests)
				}
				last := r.Samples[len(r.Samples)-1]
				if last.Arrived != r.Requests || last.Visible+last.InFlight != 0 {
					t.Errorf("%s/%s: last sample %+v, want %d arrived and an empty queue", p.Name(), w.Name, last, r.Requests)
				}
				if r.Redelivered != 0 {
					t.Errorf("%s/%s: %d redelivered, want 0", p.Name(), w.Name, r.Redelivered)
				}
				if r.MaxFleet > max {
					t.Errorf("%s/%s: max fleet %d, want at most %d", p.Name(), w.Name, r.MaxFleet, max)
				}
				for _, s := range r.Samples {
					if s.Pending+s.Running > max {
						t.Fatalf("%s/%s at %v: %d active, want at most %d", p.Name(), w.Name, s.At, s.Pending+s.Running, max)
					}
				}
			}
		}
	}
}

// script is a test double of a policy: it returns the decisions of a
// script, one per evaluation, then holds.
type script struct {
	decisions []policy.Decision
	seen      []policy.Observation
}

var _ policy.Policy = (*script)(nil)

func (s *script) Name() string { return "script" }
func (s *script) Decide(o policy.Observation) policy.Decision {
	s.seen = append(s.seen, o)
	if len(s.seen) <= len(s.decisions) {
		return s.decisions[len(s.seen)-1]
	}
	return policy.Decision{}
}

func TestBilling(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LaunchReady, cfg.StartReady, cfg.ServiceSigma = 5*time.Second, 2*time.Second, 0
	cfg.IdleTimeout, cfg.StopDelay, cfg.Tail = 10*time.Second, time.Second, time.Minute
	cfg.Nudge = false
	tests := []struct {
		name      string
		decisions []policy.Decision
		work      Workload
		want      float64 // instance-seconds after the lead-in
		wantLead  float64
	}{
		{
			// launched at 0, ready at 5, idle until 15: 15 s, billed 60.
			name:      "minimum per launch",
			decisions: []policy.Decision{{Launch: 1}},
			work:      Workload{Name: "none"},
			want:      60,
		},
		{
			// two launches, each billed the minimum.
			name:      "minimum per instance",
			decisions: []policy.Decision{{Launch: 2}},
			work:      Workload{Name: "none"},
			want:      120,
		},
		{
			// ready at 5, 100 messages of 1 s: busy until 105, idle until 115.
			name:      "longer than the minimum",
			decisions: []policy.Decision{{Launch: 1}},
			work:      Burst(100, 0),
			want:      115,
		},
		{
			// launched at 0 in a 10 s lead-in: 10 s before the first
			// arrival, the rest (5 s and the minimum's 45) after.
			name:      "lead-in part",
			decisions: []policy.Decision{{Launch: 1}},
			work:      Workload{Name: "late", LeadIn: 10 * time.Second, Arrivals: func(*rand.Rand) []time.Duration { return nil }},
			want:      50,
			wantLead:  10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &script{decisions: tt.decisions}
			r, err := Run(cfg, p, tt.work)
			if err != nil {
				t.Fatal(err)
			}
			if r.InstanceSeconds != tt.want || r.LeadInSeconds != tt.wantLead {
				t.Errorf("Run(%v, %s) instance-seconds = %.1f + lead-in %.1f, want %.1f + %.1f",
					tt.decisions, tt.work.Name, r.InstanceSeconds, r.LeadInSeconds, tt.want, tt.wantLead)
			}
		})
	}
}

func TestStartAfterStop(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LaunchReady, cfg.StartReady, cfg.ServiceSigma = 5*time.Second, 2*time.Second, 0
	cfg.IdleTimeout, cfg.StopDelay, cfg.Tail, cfg.Nudge = 10*time.Second, time.Second, 0, false
	// Launch at 0 (ready 5, stops itself at 15, stopped at 16), start at
	// 20 (ready 22, stops itself at 32): two intervals, 60 s each.
	decisions := make([]policy.Decision, 21)
	decisions[0] = policy.Decision{Launch: 1}
	decisions[20] = policy.Decision{Start: []string{"i-000001"}}
	p := &script{decisions: decisions}
	r, err := Run(cfg, p, Workload{Name: "none", LeadIn: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.InstanceSeconds+r.LeadInSeconds != 120 || r.Launches != 1 || r.Starts != 1 {
		t.Errorf("launch then start: %.0f instance-seconds, %d launches, %d starts; want 120, 1, 1",
			r.InstanceSeconds+r.LeadInSeconds, r.Launches, r.Starts)
	}
	o := p.seen[17]
	if len(o.Stopped) != 1 || o.Stopped[0].ID != "i-000001" || !o.Stopped[0].StateSince.Equal(epoch.Add(16*time.Second)) {
		t.Errorf("observation at 17 s: stopped %v, want i-000001 stopped since 16 s", o.Stopped)
	}
}

func TestBadDecision(t *testing.T) {
	p := &script{decisions: []policy.Decision{{Launch: 1}, {Start: []string{"i-000001"}}}}
	_, err := Run(DefaultConfig(), p, Burst(1, 0))
	if err == nil || !strings.Contains(err.Error(), "start i-000001: not a stopped instance") {
		t.Errorf("Run(start of a pending instance) error = %v, want not a stopped instance", err)
	}
}

func TestUnservedIsAnError(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Limit = time.Hour
	_, err := Run(cfg, &script{}, Burst(5, 0)) // never launches anything
	if err == nil || !strings.Contains(err.Error(), "0 of 5 requests served") {
		t.Errorf("Run(a policy that never scales) error = %v, want 0 of 5 served", err)
	}
}

func TestSharedCPUs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LaunchReady, cfg.ServiceSigma, cfg.CPUs = 0, 0, 2
	cfg.MeasureRate, cfg.MeasureServiceTime = false, false
	cc := policy.DefaultClassicConfig()
	cc.Max = 4
	classic, err := policy.NewClassic(cc)
	if err != nil {
		t.Fatal(err)
	}
	// 8 messages of 1 s on 4 workers sharing 2 CPUs: each pair of rounds
	// takes 2 s, so all are done at 4 s (plus the ready time of 0).
	r, err := Run(cfg, classic, Burst(8, 0))
	if err != nil {
		t.Fatal(err)
	}
	if r.Drain != 4*time.Second {
		t.Errorf("8 x 1 s on 4 workers, 2 CPUs: drain %v, want 4s", r.Drain)
	}
}

func TestWriteSVG(t *testing.T) {
	backlog := policies(t, 19)[1]
	r, err := Run(DefaultConfig(), backlog, Burst(100, DefaultLeadIn))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, r); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	dec := xml.NewDecoder(&b)
	var polylines, polygons int
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				polylines++
			case "polygon":
				polygons++
			}
		}
	}
	if polylines != 4 || polygons != 4 {
		t.Errorf("WriteSVG: %d polylines, %d polygons; want 4 lines (queue, requests) and 4 bands (states)", polylines, polygons)
	}
	if !strings.Contains(svg, "backlog on burst-100: 100 requests") {
		t.Errorf("WriteSVG: no title naming the policy and workload")
	}
}

func TestWorkloads(t *testing.T) {
	tests := []struct {
		w         Workload
		lo, hi    int
		wantFirst time.Duration
	}{
		{w: Burst(100, 0), lo: 100, hi: 100},
		{w: Poisson(2, time.Hour, 0), lo: 6800, hi: 7600},
		{w: Day(0, 4, 2*time.Hour, 0), lo: 13000, hi: 15800}, // mean rate 2/s over 7200 s
	}
	for _, tt := range tests {
		t.Run(tt.w.Name, func(t *testing.T) {
			ts := tt.w.Times(1)
			if len(ts) < tt.lo || len(ts) > tt.hi {
				t.Errorf("%s: %d arrivals, want %d to %d", tt.w.Name, len(ts), tt.lo, tt.hi)
			}
			for i := 1; i < len(ts); i++ {
				if ts[i] < ts[i-1] {
					t.Fatalf("%s: arrival %d at %v before %v", tt.w.Name, i, ts[i], ts[i-1])
				}
			}
		})
	}
	// The day's middle quarter (10:00 to 16:00 of the day... 12:00 to 18:00)
	// is busier than its first (00:00 to 06:00).
	ts := Day(0.05, 4, 2*time.Hour, 0).Times(1)
	var night, afternoon int
	for _, at := range ts {
		switch h := at.Hours() * 12; {
		case h < 6:
			night++
		case h >= 12 && h < 18:
			afternoon++
		}
	}
	if afternoon < 5*night {
		t.Errorf("day: %d arrivals 00-06h, %d 12-18h; want the afternoon far busier", night, afternoon)
	}
}
