package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/scaler/sim"
)

func noEnv(string) string { return "" }

func TestRun(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"simulate", "-out", dir, "-workloads", "burst-100,poisson:0.5:10m"}, noEnv, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{
		"burst-100  classic", "burst-100  backlog", "poisson-0.5/s  backlog",
		"MET    burst-100", "poisson-0.5/s", "timelines: " + dir,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run output lacks %q:\n%s", want, out.String())
		}
	}
	for _, name := range []string{"classic_burst-100.svg", "backlog_poisson-0.5-per-s.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.HasPrefix(b, []byte("<svg")) {
			t.Errorf("timeline %s: %v, %.20q", name, err, b)
		}
	}
}

func TestParse(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		o, err := parse([]string{"simulate"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.workloads) != len(sim.Standard()) || o.sim.LaunchReady != 260*time.Second || o.policy.Backlog.LaunchReady != 260*time.Second || o.out != "sim-out" {
			t.Errorf("parse() = %d workloads, launch ready %v (policy %v), out %q; want the standard set, 4m20s, sim-out",
				len(o.workloads), o.sim.LaunchReady, o.policy.Backlog.LaunchReady, o.out)
		}
	})
	t.Run("local", func(t *testing.T) {
		o, err := parse([]string{"simulate", "-local", "-boot-delay", "4s", "-service-time", "15ms"}, noEnv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		c := o.sim
		if c.LaunchReady != 4*time.Second || c.StartReady != 2*time.Second || c.CPUs != 2 || c.MinBilled != 0 ||
			o.policy.Backlog.ServiceTime != 15*time.Millisecond || o.policy.Backlog.StartReady != 2*time.Second {
			t.Errorf("parse(-local) = launch %v, start %v, cpus %d, min billed %v, policy service %v; want 4s, 2s, 2, 0, 15ms",
				c.LaunchReady, c.StartReady, c.CPUs, c.MinBilled, o.policy.Backlog.ServiceTime)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parse([]string{"simulate"}, func(k string) string {
			return map[string]string{"ELASTIQ_WARM_POOL": "2", "ELASTIQ_MAX_WORKERS": "7"}[k]
		}, io.Discard)
		if err != nil || o.policy.Backlog.WarmPool != 2 || o.policy.Max != 7 {
			t.Errorf("parse(env) = warm pool %d, max %d, %v; want 2, 7", o.policy.Backlog.WarmPool, o.policy.Max, err)
		}
	})
	for _, args := range [][]string{
		{"-workloads", "nonsense"},
		{"-workloads", "burst:x"},
		{"-workloads", "poisson:2"},
		{"-workloads", "day:1:2:zz"},
		{"-service-time", "0"},
		{"extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if _, err := parse(append([]string{"simulate"}, args...), noEnv, io.Discard); err == nil {
				t.Errorf("parse(%q) = nil error, want one", args)
			}
		})
	}
	if err := run(context.Background(), []string{"simulate", "-policy", "nope", "-out", ""}, noEnv, io.Discard, io.Discard); err == nil {
		t.Errorf("run(-policy nope) = nil error, want one")
	}
}

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		spec     string
		name     string
		leadIn   time.Duration
		requests int
	}{
		{spec: "burst:7", name: "burst-7", leadIn: time.Minute, requests: 7},
		{spec: "burst-cold:7", name: "burst-7-cold", requests: 7},
		{spec: "poisson:0.5:1h", name: "poisson-0.5/s", leadIn: time.Minute},
		{spec: "day:0.1:3:2h", name: "day-0.1-3/s", leadIn: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			w, err := parseWorkload(tt.spec, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if w.Name != tt.name || w.LeadIn != tt.leadIn {
				t.Errorf("parseWorkload(%q) = %s after %v, want %s after %v", tt.spec, w.Name, w.LeadIn, tt.name, tt.leadIn)
			}
			if n := len(w.Times(1)); tt.requests > 0 && n != tt.requests {
				t.Errorf("parseWorkload(%q): %d arrivals, want %d", tt.spec, n, tt.requests)
			}
		})
	}
}

func TestCheckTargets(t *testing.T) {
	r := func(policy, workload string, p99 time.Duration, cost float64) sim.Result {
		return sim.Result{Policy: policy, Workload: workload, P99: p99, InstanceSeconds: cost}
	}
	lines := checkTargets([]sim.Result{
		r("classic", "burst-100", time.Minute, 1000), r("backlog", "burst-100", time.Minute, 500),
		r("classic", "burst-1000", time.Minute, 1000), r("backlog", "burst-1000", time.Minute, 501),
		r("classic", "poisson-1/s", time.Minute, 1000), r("backlog", "poisson-1/s", 61*time.Second, 10),
		r("classic", "day-1-2/s", time.Minute, 1000), r("backlog", "day-1-2/s", time.Second, 999),
		r("backlog", "alone", time.Second, 1),
	})
	want := []string{"MET    burst-100", "MISSED burst-1000", "MISSED poisson-1/s", "MET    day-1-2/s"}
	if len(lines) != len(want) {
		t.Fatalf("checkTargets = %q, want %d lines", lines, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("checkTargets line %d = %q, want it to start %q", i, lines[i], w)
		}
	}
}

func TestDrawSeries(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "demo.csv")
	err := os.WriteFile(csv, []byte("t_s,sent,answered,correct,queue_visible,queue_in_flight,instances_pending,instances_running,instances_stopping,instances_stopped\n"+
		"0.1,10,0,0,10,0,2,0,0,0\n3.2,10,10,10,0,0,0,2,0,0\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"simulate", "-series", csv, "-out", dir}, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("run(-series): %v", err)
	}
	if !strings.Contains(out.String(), "10 requests, drain 3.1s") {
		t.Errorf("run(-series) output = %q, want 10 requests, drain 3.1s", out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "live_demo.svg")); err != nil || !bytes.Contains(b, []byte("live on demo")) {
		t.Errorf("live_demo.svg: %v", err)
	}
	if err := run(context.Background(), []string{"simulate", "-series", filepath.Join(dir, "missing.csv")}, noEnv, io.Discard, io.Discard); err == nil {
		t.Errorf("run(-series missing.csv) = nil error, want one")
	}
}
