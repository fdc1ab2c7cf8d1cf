package cost

import (
	"math"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

func TestMeter(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	type obs struct {
		at     time.Duration
		states map[string]elastiq.InstanceState // id -> state
	}
	const (
		pending    = elastiq.InstancePending
		running    = elastiq.InstanceRunning
		stopping   = elastiq.InstanceStopping
		stopped    = elastiq.InstanceStopped
		terminated = elastiq.InstanceTerminated
	)
	tests := []struct {
		name       string
		obs        []obs
		wantBilled float64
		wantState  map[elastiq.InstanceState]float64
	}{
		{
			name: "one instance launched, run for five minutes, stopped for two",
			obs: []obs{
				{0, map[string]elastiq.InstanceState{"i-1": pending}},
				{10 * time.Second, map[string]elastiq.InstanceState{"i-1": running}},
				{300 * time.Second, map[string]elastiq.InstanceState{"i-1": stopping}},
				{310 * time.Second, map[string]elastiq.InstanceState{"i-1": stopped}},
				{430 * time.Second, map[string]elastiq.InstanceState{"i-1": terminated}},
			},
			wantBilled: 300,
			wantState:  map[elastiq.InstanceState]float64{pending: 10, running: 290, stopping: 10, stopped: 120},
		},
		{
			name: "a start shorter than the minimum is billed the minimum",
			obs: []obs{
				{0, map[string]elastiq.InstanceState{"i-1": stopped}},
				{30 * time.Second, map[string]elastiq.InstanceState{"i-1": pending}},
				{35 * time.Second, map[string]elastiq.InstanceState{"i-1": running}},
				{50 * time.Second, map[string]elastiq.InstanceState{"i-1": stopping}},
			},
			wantBilled: 60,
			wantState:  map[elastiq.InstanceState]float64{stopped: 30, pending: 5, running: 15},
		},
		{
			name: "an instance that disappears from the list has ended",
			obs: []obs{
				{0, map[string]elastiq.InstanceState{"i-1": running, "i-2": running}},
				{100 * time.Second, map[string]elastiq.InstanceState{"i-2": running}},
				{200 * time.Second, map[string]elastiq.InstanceState{"i-2": running}},
			},
			wantBilled: 300, // i-1 100, i-2 200 and still running
			wantState:  map[elastiq.InstanceState]float64{running: 300},
		},
		{
			name: "an observation out of order counts no time",
			obs: []obs{
				{0, map[string]elastiq.InstanceState{"i-1": running}},
				{100 * time.Second, map[string]elastiq.InstanceState{"i-1": running}},
				{90 * time.Second, map[string]elastiq.InstanceState{"i-1": running}},
				{160 * time.Second, map[string]elastiq.InstanceState{"i-1": running}},
			},
			wantBilled: 160,
			wantState:  map[elastiq.InstanceState]float64{running: 160},
		},
	}
	p := Prices{Running: 3.6, Stopped: 0.36} // a dollar per 1000 s, a tenth of that stopped
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeter(p)
			var u elastiq.FleetUsage
			for _, o := range tt.obs {
				var ins []elastiq.Instance
				for id, st := range o.states {
					ins = append(ins, elastiq.Instance{ID: id, State: st})
				}
				u = m.Observe(t0.Add(o.at), ins)
			}
			if u.BilledSeconds != tt.wantBilled {
				t.Errorf("BilledSeconds = %v, want %v", u.BilledSeconds, tt.wantBilled)
			}
			for st, want := range tt.wantState {
				if got := u.InstanceSeconds[st]; got != want {
					t.Errorf("InstanceSeconds[%s] = %v, want %v", st, got, want)
				}
			}
			for st, got := range u.InstanceSeconds {
				if _, ok := tt.wantState[st]; !ok && got != 0 {
					t.Errorf("InstanceSeconds[%s] = %v, want 0", st, got)
				}
			}
			want := tt.wantBilled/1000 + tt.wantState[stopped]/10000
			if math.Abs(u.CostDollars-want) > 1e-9 {
				t.Errorf("CostDollars = %v, want %v", u.CostDollars, want)
			}
		})
	}
}

func TestMeterUsageIsACopy(t *testing.T) {
	m := NewMeter(DefaultPrices())
	t0 := time.Now()
	m.Observe(t0, []elastiq.Instance{{ID: "i-1", State: elastiq.InstanceRunning}})
	u := m.Observe(t0.Add(time.Second), nil)
	u.InstanceSeconds[elastiq.InstanceRunning] = 99
	if got := m.Usage().InstanceSeconds[elastiq.InstanceRunning]; got != 1 {
		t.Errorf("after changing a returned usage, InstanceSeconds[running] = %v, want 1", got)
	}
}

func TestDefaultPrices(t *testing.T) {
	p := DefaultPrices()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// 19 workers for 3 minutes each, the README's burst of 100: about $0.025.
	if got := p.Dollars(19*180, 0); math.Abs(got-0.0245) > 0.0005 {
		t.Errorf("Dollars(19 workers x 180 s) = %v, want about 0.0245", got)
	}
	if err := (Prices{Running: -1}).Validate(); err == nil {
		t.Error("Validate(running -1) = nil, want an error")
	}
}
