package awstest

import (
	"regexp"
	"strings"
	"testing"
)

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*[a-z0-9]$`)

func TestName(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
	}{
		{name: "Simple", prefix: "t-testname-simple-"},
		{name: "with spaces and/Sub_Tests", prefix: "t-testname-with-spaces-and-sub-tests-"},
		{name: strings.Repeat("VeryLong", 20), prefix: "t-testname-verylong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := Name(t), Name(t)
			if a == b {
				t.Errorf("Name() twice = %q both times, want different names", a)
			}
			for _, n := range []string{a, b} {
				if !strings.HasPrefix(n, tt.prefix) {
					t.Errorf("Name() = %q, want prefix %q", n, tt.prefix)
				}
				if len(n) > maxName {
					t.Errorf("len(Name()) = %d (%q), want <= %d", len(n), n, maxName)
				}
				if !validName.MatchString(n) || strings.Contains(n, "--") {
					t.Errorf("Name() = %q, want lower-case letters, digits and single inner hyphens", n)
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Setenv(EnvEndpoint, "http://127.0.0.1:1234/")
	cfg := Config(t)
	if got := *cfg.BaseEndpoint; got != "http://127.0.0.1:1234" {
		t.Errorf("Config().BaseEndpoint = %q, want %q", got, "http://127.0.0.1:1234")
	}
	if cfg.Region != Region {
		t.Errorf("Config().Region = %q, want %q", cfg.Region, Region)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("Config().Credentials.Retrieve: %v", err)
	}
	if creds.AccessKeyID != "test" || creds.SecretAccessKey != "test" {
		t.Errorf("Config() credentials = %q/%q, want test/test", creds.AccessKeyID, creds.SecretAccessKey)
	}
}
