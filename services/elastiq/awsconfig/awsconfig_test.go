package awsconfig_test

import (
	"testing"

	"github.com/elastiq/elastiq/services/elastiq/awsconfig"
)

func TestLoad(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	if _, err := (awsconfig.Flags{}).Load(t.Context()); err == nil {
		t.Errorf("Load() with no region = nil error, want one")
	}
	cfg, err := awsconfig.Flags{Region: "eu-west-1", Endpoint: "http://127.0.0.1:5000"}.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" || cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != "http://127.0.0.1:5000" {
		t.Errorf("Load() = region %q, endpoint %v; want eu-west-1, http://127.0.0.1:5000", cfg.Region, cfg.BaseEndpoint)
	}
	if !(awsconfig.Flags{Endpoint: "http://x"}).PathStyle() || (awsconfig.Flags{}).PathStyle() {
		t.Errorf("PathStyle() should be true exactly when an endpoint is set")
	}
}
