package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// fleet returns n instances in state with IDs prefix-1 .. prefix-n.
func fleet(state elastiq.InstanceState, prefix string, n int) []elastiq.Instance {
	var out []elastiq.Instance
	for i := range n {
		out = append(out, elastiq.Instance{ID: fmt.Sprintf("%s-%02d", prefix, i+1), State: state})
	}
	return out
}

func TestClassicDecide(t *testing.T) {
	const minute = time.Minute
	tests := []struct {
		name string
		obs  Observation
		// want is compared field by field; Reason by wantReason substring.
		want       Decision
		wantReason string
	}{
		{
			name:       "empty queue, empty fleet",
			obs:        Observation{},
			want:       Decision{},
			wantReason: "queue 0 <= active 0",
		},
		{
			name:       "scale out from zero",
			obs:        Observation{Visible: 3},
			want:       Decision{Launch: 3},
			wantReason: "queue 3 > active 0: start 0 of 0 stopped, launch 3 (max 19)",
		},
		{
			name:       "queue equal to active",
			obs:        Observation{Visible: 2, Running: fleet(elastiq.InstanceRunning, "r", 2)},
			want:       Decision{},
			wantReason: "queue 2 <= active 2",
		},
		{
			name:       "queue below active",
			obs:        Observation{Visible: 1, Running: fleet(elastiq.InstanceRunning, "r", 3)},
			want:       Decision{},
			wantReason: "queue 1 <= active 3",
		},
		{
			name: "start only",
			obs: Observation{Visible: 4, Running: fleet(elastiq.InstanceRunning, "r", 2),
				Stopped: fleet(elastiq.InstanceStopped, "s", 3)},
			want:       Decision{Start: []string{"s-01", "s-02"}},
			wantReason: "queue 4 > active 2: start 2 of 3 stopped, launch 0 (max 19)",
		},
		{
			name: "start + launch",
			obs: Observation{Visible: 12, Running: fleet(elastiq.InstanceRunning, "r", 3),
				Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{Start: []string{"s-01", "s-02"}, Launch: 7},
			wantReason: "queue 12 > active 3: start 2 of 2 stopped, launch 7 (max 19)",
		},
		{
			name:       "launch capped at max",
			obs:        Observation{Visible: 100, Running: fleet(elastiq.InstanceRunning, "r", 4)},
			want:       Decision{Launch: 15},
			wantReason: "launch 15 (max 19)",
		},
		{
			name: "start capped at max",
			obs: Observation{Visible: 100, Running: fleet(elastiq.InstanceRunning, "r", 17),
				Stopped: fleet(elastiq.InstanceStopped, "s", 5)},
			want:       Decision{Start: []string{"s-01", "s-02"}},
			wantReason: "start 2 of 5 stopped, launch 0 (max 19)",
		},
		{
			name:       "max reached",
			obs:        Observation{Visible: 50, Running: fleet(elastiq.InstanceRunning, "r", 19)},
			want:       Decision{},
			wantReason: "queue 50 > active 19: at max 19",
		},
		{
			name: "more stopped than needed",
			obs: Observation{Visible: 2, Running: fleet(elastiq.InstanceRunning, "r", 1),
				Stopped: fleet(elastiq.InstanceStopped, "s", 6)},
			want:       Decision{Start: []string{"s-01"}},
			wantReason: "start 1 of 6 stopped, launch 0",
		},
		{
			name: "pending counted as active",
			obs: Observation{Visible: 5, Running: fleet(elastiq.InstanceRunning, "r", 1),
				Pending: fleet(elastiq.InstancePending, "p", 3)},
			want:       Decision{Launch: 1},
			wantReason: "queue 5 > active 4",
		},
		{
			name:       "all pending, enough",
			obs:        Observation{Visible: 3, Pending: fleet(elastiq.InstancePending, "p", 3)},
			want:       Decision{},
			wantReason: "queue 3 <= active 3",
		},
		{
			name:       "stopping not counted, not started",
			obs:        Observation{Visible: 2, Stopping: fleet(elastiq.InstanceStopping, "x", 2)},
			want:       Decision{Launch: 2},
			wantReason: "queue 2 > active 0",
		},
		{
			name:       "in-flight only is not scaled for",
			obs:        Observation{InFlight: 5, Running: fleet(elastiq.InstanceRunning, "r", 1)},
			want:       Decision{},
			wantReason: "queue 0 <= active 1",
		},
		{
			name: "idle terminate",
			obs: Observation{IdleFor: 2 * minute, Running: fleet(elastiq.InstanceRunning, "r", 1),
				Stopped: fleet(elastiq.InstanceStopped, "s", 3)},
			want:       Decision{Terminate: []string{"s-01", "s-02", "s-03"}},
			wantReason: "no request for 2m0s >= 2m0s: terminate 3 stopped",
		},
		{
			name:       "idle not long enough",
			obs:        Observation{IdleFor: 119 * time.Second, Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "queue empty for 1m59s < 2m0s: keep 2 stopped",
		},
		{
			name: "idle but queue not empty",
			obs: Observation{Visible: 1, IdleFor: 10 * minute, Running: fleet(elastiq.InstanceRunning, "r", 1),
				Stopped: fleet(elastiq.InstanceStopped, "s", 2)},
			want:       Decision{},
			wantReason: "queue 1 <= active 1",
		},
		{
			name:       "idle, nothing stopped",
			obs:        Observation{IdleFor: 10 * minute, Running: fleet(elastiq.InstanceRunning, "r", 2)},
			want:       Decision{},
			wantReason: "queue 0 <= active 2",
		},
		{
			name:       "burst after idle uses stopped first",
			obs:        Observation{Visible: 100, Stopped: fleet(elastiq.InstanceStopped, "s", 4)},
			want:       Decision{Start: []string{"s-01", "s-02", "s-03", "s-04"}, Launch: 15},
			wantReason: "queue 100 > active 0: start 4 of 4 stopped, launch 15 (max 19)",
		},
	}
	p, err := NewClassic(DefaultClassicConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecide(t, p, p.Config().Max, tt.obs, tt.want, tt.wantReason)
		})
	}
}

func TestClassicSmallMax(t *testing.T) {
	p, err := NewClassic(ClassicConfig{Max: 2, TerminateAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Decide(Observation{Visible: 10, Stopped: fleet(elastiq.InstanceStopped, "s", 1)})
	if !slices.Equal(got.Start, []string{"s-01"}) || got.Launch != 1 {
		t.Errorf("Decide(visible 10, 1 stopped) = %v, want start [s-01], launch 1", got)
	}
	if p.Name() != "classic" {
		t.Errorf("Name() = %q, want classic", p.Name())
	}
}

func TestClassicConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ClassicConfig
		wantErr bool
	}{
		{name: "default", cfg: DefaultClassicConfig()},
		{name: "zero max", cfg: ClassicConfig{Max: 0, TerminateAfter: time.Minute}, wantErr: true},
		{name: "zero terminate after", cfg: ClassicConfig{Max: 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClassic(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Errorf("NewClassic(%+v) error = %v, want error %v", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

// checkDecide runs p.Decide(obs) and checks the actions against want, the
// reason against wantReason (a substring), that a decision that acts leaves
// at most max active instances, and that no running worker is stopped
// (neither policy stops one).
func checkDecide(t *testing.T, p Policy, max int, obs Observation, want Decision, wantReason string) {
	t.Helper()
	got := p.Decide(obs)
	if !slices.Equal(got.Start, want.Start) || got.Launch != want.Launch ||
		!slices.Equal(got.Stop, want.Stop) || !slices.Equal(got.Terminate, want.Terminate) {
		t.Errorf("Decide(%v) = %v, want start %v, launch %d, stop %v, terminate %v",
			obs.LogValue(), got, want.Start, want.Launch, want.Stop, want.Terminate)
	}
	if !strings.Contains(got.Reason, wantReason) {
		t.Errorf("Decide(%v).Reason = %q, want it to contain %q", obs.LogValue(), got.Reason, wantReason)
	}
	if got.Acts() != want.Acts() {
		t.Errorf("Decide(%v).Acts() = %v, want %v", obs.LogValue(), got.Acts(), want.Acts())
	}
	if active := obs.Active() + len(got.Start) + got.Launch; got.Acts() && active > max {
		t.Errorf("Decide(%v) leaves %d active, want at most %d", obs.LogValue(), active, max)
	}
	if len(got.Stop) > 0 {
		t.Errorf("Decide(%v) stops %v, want no running worker stopped", obs.LogValue(), got.Stop)
	}
}
