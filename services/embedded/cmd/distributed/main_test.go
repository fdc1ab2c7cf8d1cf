package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestParse(t *testing.T) {
	base := []string{"distributed", "-endpoint", "http://127.0.0.1:5000", "-memcached", "127.0.0.1:11211"}
	o, err := parse(append(base, "-boot-delay", "4s", "--", "-sessions", "1"), env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.policy.Backlog.LaunchReady != 4*time.Second || o.policy.Backlog.StartReady != 2*time.Second {
		t.Errorf("launch and start ready = %v, %v; want the boot delay and half of it", o.policy.Backlog.LaunchReady, o.policy.Backlog.StartReady)
	}
	if !slices.Equal(o.workerArgs, []string{"-sessions", "1"}) {
		t.Errorf("worker args = %q, want what follows --", o.workerArgs)
	}
	if o.policy.Policy != "backlog" || !strings.HasPrefix(o.stack, "elastiq-") || o.bin == "" {
		t.Errorf("parse() = %+v; want the backlog policy, a stack name, this program's folder", o)
	}

	o, err = parse(append(base, "-boot-delay", "4s", "-start-ready", "1s"), env(nil), io.Discard)
	if err != nil || o.policy.Backlog.StartReady != time.Second || o.policy.Backlog.LaunchReady != 4*time.Second {
		t.Errorf("with -start-ready: %+v, %v; want start 1s, launch 4s", o.policy.Backlog, err)
	}

	for _, args := range [][]string{
		{"distributed"},
		{"distributed", "-endpoint", "http://x"},
		append(slices.Clone(base), "-policy", "fastest"),
	} {
		if _, err := parse(args, env(nil), io.Discard); err == nil {
			t.Errorf("parse(%q) = nil error", args)
		}
	}
}
