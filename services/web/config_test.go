package web

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v, want nil", err)
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{name: "no upload size", change: func(c *Config) { c.MaxUploadBytes = 0 }, want: "MaxUploadBytes"},
		{name: "no side", change: func(c *Config) { c.MaxImageSide = 0 }, want: "MaxImageSide"},
		{name: "no pixels", change: func(c *Config) { c.MaxImagePixels = -1 }, want: "MaxImagePixels"},
		{name: "no sync timeout", change: func(c *Config) { c.SyncTimeout = 0 }, want: "SyncTimeout"},
		{name: "no max wait", change: func(c *Config) { c.MaxWait = 0 }, want: "MaxWait"},
		{name: "no io timeout", change: func(c *Config) { c.IOTimeout = 0 }, want: "IOTimeout"},
		{name: "no metrics timeout", change: func(c *Config) { c.MetricsTimeout = 0 }, want: "MetricsTimeout"},
		{name: "write timeout under the sync wait", change: func(c *Config) { c.WriteTimeout = c.SyncTimeout }, want: "WriteTimeout"},
		{name: "no decode memory", change: func(c *Config) { c.MaxDecodeBytes = 0 }, want: "MaxDecodeBytes"},
		{name: "no ttl", change: func(c *Config) { c.CacheTTL = 0 }, want: "CacheTTL"},
		{name: "no retention", change: func(c *Config) { c.ResultRetention = 0 }, want: "ResultRetention"},
		{name: "no retained results", change: func(c *Config) { c.MaxRetainedResults = 0 }, want: "MaxRetainedResults"},
		{name: "no consumers", change: func(c *Config) { c.Consumers = 0 }, want: "Consumers"},
		{name: "batch over SQS max", change: func(c *Config) { c.ReceiveBatch = 11 }, want: "ReceiveBatch"},
		{name: "wait over SQS max", change: func(c *Config) { c.ReceiveWait = 21 * time.Second }, want: "ReceiveWait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "30s", want: 30 * time.Second},
		{in: "1500ms", want: 1500 * time.Millisecond},
		{in: "30", want: 30 * time.Second},
		{in: "10m", want: time.Minute}, // capped
		{in: "0", want: 0},
		{in: "-1s", wantErr: true},
		{in: "soon", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseWait(tt.in, time.Minute)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseWait(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLoadAdminToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{AdminTokenFile: file}
	if err := c.LoadAdminToken(); err != nil || c.AdminToken != "s3cret" {
		t.Errorf("LoadAdminToken = %q, %v; want s3cret", c.AdminToken, err)
	}
	for _, bad := range []Config{
		{AdminToken: "a", AdminTokenFile: file},
		{AdminTokenFile: filepath.Join(dir, "missing")},
		{AdminTokenFile: os.DevNull},
	} {
		if err := bad.LoadAdminToken(); err == nil {
			t.Errorf("LoadAdminToken(%+v) = nil error", bad)
		}
	}
}
