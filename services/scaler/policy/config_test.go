package policy

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestConfigNew(t *testing.T) {
	for _, tt := range []struct {
		name           string
		args           []string
		wantName       string
		wantMax        int
		wantTerminate  time.Duration
		wantWarmPool   int
		wantLaunchWait time.Duration
	}{
		{name: "defaults", wantName: NameBacklog, wantMax: 19, wantTerminate: 10 * time.Minute, wantWarmPool: 4, wantLaunchWait: 260 * time.Second},
		{name: "classic", args: []string{"-policy", "classic"}, wantName: NameClassic, wantMax: 19, wantTerminate: 2 * time.Minute},
		{name: "classic set", args: []string{"-policy", "classic", "-max-workers", "3", "-terminate-after", "30s"},
			wantName: NameClassic, wantMax: 3, wantTerminate: 30 * time.Second},
		{name: "backlog set", args: []string{"-max-workers", "6", "-terminate-after", "5m", "-warm-pool", "2", "-launch-ready", "90s"},
			wantName: NameBacklog, wantMax: 6, wantTerminate: 5 * time.Minute, wantWarmPool: 2, wantLaunchWait: 90 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.RegisterFlags(fs)
			c.RegisterTimingFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			p, err := New(c)
			if err != nil {
				t.Fatalf("New(%+v) = %v", c, err)
			}
			if p.Name() != tt.wantName {
				t.Errorf("New(%q).Name() = %q, want %q", tt.args, p.Name(), tt.wantName)
			}
			switch p := p.(type) {
			case Classic:
				if got := p.Config(); got.Max != tt.wantMax || got.TerminateAfter != tt.wantTerminate {
					t.Errorf("New(%q) = classic %+v, want max %d, terminate after %v", tt.args, got, tt.wantMax, tt.wantTerminate)
				}
			case Backlog:
				if got := p.Config(); got.Max != tt.wantMax || got.TerminateAfter != tt.wantTerminate ||
					got.WarmPool != tt.wantWarmPool || got.LaunchReady != tt.wantLaunchWait {
					t.Errorf("New(%q) = backlog %+v, want max %d, terminate after %v, warm pool %d, launch ready %v",
						tt.args, got, tt.wantMax, tt.wantTerminate, tt.wantWarmPool, tt.wantLaunchWait)
				}
			}
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{name: "unknown policy", modify: func(c *Config) { c.Policy = "magic" }, want: "magic"},
		{name: "no workers", modify: func(c *Config) { c.Max = 0 }, want: "Max"},
		{name: "classic no workers", modify: func(c *Config) { c.Policy, c.Max = NameClassic, 0 }, want: "Max"},
		{name: "warm pool over max", modify: func(c *Config) { c.Max = 2 }, want: "WarmPool"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error about %s", err, tt.want)
			}
		})
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := DefaultConfig()
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-max-workers", "many"}); err == nil {
		t.Errorf("Parse(-max-workers many) = nil, want an error")
	}
}
