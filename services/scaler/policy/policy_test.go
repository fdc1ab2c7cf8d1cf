package policy

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

func TestObserve(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	instances := []elastiq.Instance{
		{ID: "i-9", State: elastiq.InstanceRunning},
		{ID: "i-3", State: elastiq.InstanceStopped},
		{ID: "i-1", State: elastiq.InstanceRunning},
		{ID: "i-5", State: elastiq.InstancePending},
		{ID: "i-7", State: elastiq.InstanceStopping},
		{ID: "i-2", State: elastiq.InstanceStopped},
		{ID: "i-4", State: elastiq.InstanceTerminated},
		{ID: "i-6", State: elastiq.InstanceShuttingDown},
	}
	o := Observe(now, elastiq.QueueStats{Visible: 4, InFlight: 2}, instances, 3*time.Second)
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{name: "running", got: IDs(o.Running), want: []string{"i-1", "i-9"}},
		{name: "pending", got: IDs(o.Pending), want: []string{"i-5"}},
		{name: "stopping", got: IDs(o.Stopping), want: []string{"i-7"}},
		{name: "stopped", got: IDs(o.Stopped), want: []string{"i-2", "i-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("Observe(...).%s = %v, want %v", tt.name, tt.got, tt.want)
			}
		})
	}
	if o.Visible != 4 || o.InFlight != 2 || o.IdleFor != 3*time.Second || !o.Now.Equal(now) || o.Active() != 3 {
		t.Errorf("Observe(...) = visible %d, in flight %d, idle %v, now %v, active %d; want 4, 2, 3s, %v, 3",
			o.Visible, o.InFlight, o.IdleFor, o.Now, o.Active(), now)
	}
}

func TestDecisionString(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want string
	}{
		{name: "hold", d: Decision{Reason: "queue 0 <= active 0"}, want: "hold: queue 0 <= active 0"},
		{name: "start and launch", d: Decision{Start: []string{"a", "b"}, Launch: 3, Reason: "r"},
			want: "start [a b], launch 3: r"},
		{name: "stop and terminate", d: Decision{Stop: []string{"a"}, Terminate: []string{"b"}, Reason: "r"},
			want: "stop [a], terminate [b]: r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecisionLogValue(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("decision", "decision", Decision{Start: []string{"i-1"}, Launch: 2, Reason: "queue 3 > active 0"})
	want := `decision.start=[i-1] decision.launch=2 decision.reason="queue 3 > active 0"`
	if !strings.Contains(b.String(), want) {
		t.Errorf("log line = %q, want it to contain %q", b.String(), want)
	}
}
