package scaler

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

// testTimeout bounds every wait; generous for a loaded machine.
const testTimeout = 30 * time.Second

type harness struct {
	queue  *fakeQueue
	fleet  *fakeFleet
	clock  *elastiqtest.Clock
	logs   *elastiqtest.Logs
	scaler *Scaler
}

func newHarness(t *testing.T, cfg Config, instances ...elastiq.Instance) *harness {
	t.Helper()
	h := &harness{
		queue: &fakeQueue{},
		fleet: newFakeFleet(instances...),
		clock: elastiqtest.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
		logs:  elastiqtest.NewLogs(t),
	}
	p, err := policy.NewClassic(policy.DefaultClassicConfig())
	if err != nil {
		t.Fatal(err)
	}
	tokens := 0
	h.scaler, err = New(cfg, Deps{
		Queue:    h.queue,
		Fleet:    h.fleet,
		Policy:   p,
		Logger:   h.logs.Logger(),
		Now:      h.clock.Now,
		NewToken: func() string { tokens++; return fmt.Sprintf("tok-%d", tokens) },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func stopped(ids ...string) []elastiq.Instance {
	var out []elastiq.Instance
	for _, id := range ids {
		out = append(out, elastiq.Instance{ID: id, State: elastiq.InstanceStopped})
	}
	return out
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name      string
		instances []elastiq.Instance
		visible   int
		wantCalls []string
	}{
		{name: "scale out from zero", visible: 3, wantCalls: []string{"launch 3 tok-1"}},
		{name: "start before launch", visible: 5, instances: stopped("s-1", "s-2"),
			wantCalls: []string{"start [s-1 s-2]", "launch 3 tok-1"}},
		{name: "start only", visible: 1, instances: stopped("s-1", "s-2"), wantCalls: []string{"start [s-1]"}},
		{name: "hold", visible: 0, instances: stopped("s-1"), wantCalls: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig(), tt.instances...)
			h.queue.set(tt.visible, 0)
			h.scaler.evaluate(t.Context())
			if got := h.fleet.callLog(); !slices.Equal(got, tt.wantCalls) {
				t.Errorf("fleet calls = %q, want %q", got, tt.wantCalls)
			}
			if got := h.scaler.Last(); got.Observation.Visible != tt.visible || !got.At.Equal(h.clock.Now()) {
				t.Errorf("Last() = visible %d at %v, want %d at %v", got.Observation.Visible, got.At, tt.visible, h.clock.Now())
			}
		})
	}
}

func TestDecisionsLogged(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.queue.set(0, 0)
	h.scaler.evaluate(t.Context())
	h.queue.set(2, 1)
	h.scaler.evaluate(t.Context())
	lines := strings.Split(strings.TrimSpace(h.logs.String()), "\n")
	var decisions []string
	for _, l := range lines {
		if strings.Contains(l, `msg="scaling decision"`) {
			decisions = append(decisions, l)
		}
	}
	if len(decisions) != 2 {
		t.Fatalf("logged %d decisions, want 2:\n%s", len(decisions), h.logs.String())
	}
	wants := []string{
		`level=DEBUG msg="scaling decision" component=scaler policy=classic observed.visible=0 observed.in_flight=0`,
		`level=INFO msg="scaling decision" component=scaler policy=classic observed.visible=2 observed.in_flight=1`,
	}
	for i, want := range wants {
		if !strings.Contains(decisions[i], want) {
			t.Errorf("decision log %d = %q, want it to contain %q", i, decisions[i], want)
		}
	}
	if want := `decision.launch=2 decision.reason="queue 2 > active 0`; !strings.Contains(decisions[1], want) {
		t.Errorf("decision log = %q, want it to contain %q", decisions[1], want)
	}
}

func TestIdleTerminate(t *testing.T) {
	h := newHarness(t, DefaultConfig(), stopped("s-1", "s-2")...)
	steps := []struct {
		name      string
		advance   time.Duration
		visible   int
		inFlight  int
		wantCalls []string
	}{
		{name: "just started", wantCalls: nil},
		{name: "idle 1m", advance: time.Minute, wantCalls: nil},
		{name: "in flight restarts the idle clock", advance: 90 * time.Second, inFlight: 1, wantCalls: nil},
		{name: "idle 1m59s", advance: 119 * time.Second, wantCalls: nil},
		{name: "idle 2m", advance: time.Second, wantCalls: []string{"terminate [s-1 s-2]"}},
	}
	for _, st := range steps {
		h.clock.Advance(st.advance)
		h.queue.set(st.visible, st.inFlight)
		h.scaler.evaluate(t.Context())
		if got := h.fleet.callLog(); !slices.Equal(got, st.wantCalls) {
			t.Fatalf("%s: fleet calls = %q, want %q", st.name, got, st.wantCalls)
		}
	}
	if n := h.fleet.count(elastiq.InstanceTerminated); n != 2 {
		t.Errorf("terminated instances = %d, want 2", n)
	}
	if got := h.scaler.Last().Observation.IdleFor; got != 2*time.Minute {
		t.Errorf("Last().Observation.IdleFor = %v, want 2m0s", got)
	}
}

func TestLastScaleTimesObserved(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.queue.set(2, 0)
	h.scaler.evaluate(t.Context())
	launchedAt := h.clock.Now()
	h.clock.Advance(time.Second)
	h.scaler.evaluate(t.Context())
	if got := h.scaler.Last().Observation; !got.LastScaleOut.Equal(launchedAt) || !got.LastScaleIn.IsZero() {
		t.Errorf("Last().Observation LastScaleOut, LastScaleIn = %v, %v; want %v, zero", got.LastScaleOut, got.LastScaleIn, launchedAt)
	}
}

func TestLaunchTokens(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	// A failed launch is retried with its token while the size is the
	// same; a new decision of another size gets a fresh token.
	h.fleet.failNext("launch", 1)
	h.queue.set(2, 0)
	h.scaler.evaluate(t.Context())
	h.scaler.evaluate(t.Context())
	h.queue.set(5, 0)
	h.scaler.evaluate(t.Context())
	want := []string{"launch 2 tok-1", "launch 2 tok-1", "launch 3 tok-2"}
	if got := h.fleet.callLog(); !slices.Equal(got, want) {
		t.Errorf("fleet calls = %q, want %q", got, want)
	}
	if n := h.fleet.count(elastiq.InstancePending); n != 5 {
		t.Errorf("pending instances = %d, want 5", n)
	}
}

func TestRunSurvivesErrors(t *testing.T) {
	h := newHarness(t, Config{Interval: 5 * time.Millisecond, ActionTimeout: testTimeout})
	h.queue.failNext = 2
	h.fleet.failNext("list", 2)
	h.fleet.failNext("launch", 2)
	h.queue.set(4, 0)
	stop := elastiqtest.Start(t, "Run", h.scaler.Run)
	elastiqtest.Eventually(t, "4 instances launched despite failures", func() bool {
		return h.fleet.count(elastiq.InstancePending) == 4
	})
	stop()
	launches := h.fleet.callLog()
	if len(launches) != 3 || launches[2] != "launch 4 tok-1" {
		t.Errorf("fleet calls = %q, want three tries of launch 4 tok-1", launches)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "observe failed") || !strings.Contains(logs, "launch instances failed") {
		t.Errorf("logs lack the failures:\n%s", logs)
	}
}

func TestNudgeEvaluatesAtOnce(t *testing.T) {
	// An interval far longer than the test: only a nudge can cause the
	// second evaluation.
	h := newHarness(t, Config{Interval: time.Hour, ActionTimeout: testTimeout})
	stop := elastiqtest.Start(t, "Run", h.scaler.Run)
	defer stop()
	elastiqtest.Eventually(t, "first evaluation", func() bool { return h.fleet.listCalls() == 1 })
	if got := h.fleet.callLog(); len(got) != 0 {
		t.Fatalf("fleet calls on an empty queue = %q, want none", got)
	}
	h.queue.set(1, 0)
	h.scaler.Nudge()
	elastiqtest.Eventually(t, "launch after nudge", func() bool { return slices.Equal(h.fleet.callLog(), []string{"launch 1 tok-1"}) })
}

// TestNudgeBurstOneDecision: a burst of requests, each nudging, within the
// settle time is answered by one evaluation of the whole queue.
func TestNudgeBurstOneDecision(t *testing.T) {
	h := newHarness(t, Config{Interval: time.Hour, ActionTimeout: testTimeout, NudgeSettle: 200 * time.Millisecond})
	stop := elastiqtest.Start(t, "Run", h.scaler.Run)
	defer stop()
	elastiqtest.Eventually(t, "first evaluation", func() bool { return h.fleet.listCalls() == 1 })
	for n := 1; n <= 10; n++ {
		h.queue.set(n, 0)
		h.scaler.Nudge()
	}
	elastiqtest.Eventually(t, "launch after the burst", func() bool { return len(h.fleet.callLog()) > 0 })
	if got, want := h.fleet.callLog(), []string{"launch 10 tok-1"}; !slices.Equal(got, want) {
		t.Errorf("fleet calls after a burst of 10 nudges = %q, want %q", got, want)
	}
}

func TestRunTwiceConcurrently(t *testing.T) {
	h := newHarness(t, Config{Interval: time.Hour, ActionTimeout: testTimeout})
	stop := elastiqtest.Start(t, "Run", h.scaler.Run)
	defer stop()
	elastiqtest.Eventually(t, "first evaluation", func() bool { return h.fleet.listCalls() == 1 })
	if err := h.scaler.Run(t.Context()); err == nil {
		t.Error("second concurrent Run() = nil, want an error")
	}
}

func TestNewValidates(t *testing.T) {
	p, err := policy.NewClassic(policy.DefaultClassicConfig())
	if err != nil {
		t.Fatal(err)
	}
	q, f := &fakeQueue{}, newFakeFleet()
	tests := []struct {
		name string
		cfg  Config
		deps Deps
	}{
		{name: "zero interval", cfg: Config{ActionTimeout: time.Second}, deps: Deps{Queue: q, Fleet: f, Policy: p}},
		{name: "zero action timeout", cfg: Config{Interval: time.Second}, deps: Deps{Queue: q, Fleet: f, Policy: p}},
		{name: "settle past interval", cfg: Config{Interval: time.Second, ActionTimeout: time.Second, NudgeSettle: time.Second}, deps: Deps{Queue: q, Fleet: f, Policy: p}},
		{name: "no queue", cfg: DefaultConfig(), deps: Deps{Fleet: f, Policy: p}},
		{name: "no fleet", cfg: DefaultConfig(), deps: Deps{Queue: q, Policy: p}},
		{name: "no policy", cfg: DefaultConfig(), deps: Deps{Queue: q, Fleet: f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, tt.deps); err == nil {
				t.Error("New() error = nil, want an error")
			}
		})
	}
	if _, err := New(DefaultConfig(), Deps{Queue: q, Fleet: f, Policy: p}); err != nil {
		t.Errorf("New(defaults) = %v, want nil", err)
	}
}

func TestArrivalRateFromNudges(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	// Two requests a second for 40 s, evaluated every second: the rate
	// (median of 10 s buckets) shows once three buckets are complete.
	for range 40 {
		h.scaler.Nudge()
		h.scaler.Nudge()
		h.scaler.evaluate(t.Context())
		h.clock.Advance(time.Second)
	}
	h.scaler.evaluate(t.Context())
	if got := h.scaler.Last().Observation.ArrivalRate; got != 2 {
		t.Errorf("ArrivalRate after 2 nudges/s for 40 s = %v, want 2", got)
	}
	if !strings.Contains(h.logs.String(), "arrival_rate=2") {
		t.Errorf("decision log lacks arrival_rate=2")
	}
}
