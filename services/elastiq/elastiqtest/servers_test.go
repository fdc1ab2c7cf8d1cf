package elastiqtest_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/elastiq/elastiq/services/elastiq/awsconfig"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

func TestAWSEnv(t *testing.T) {
	t.Setenv("AWS_PROFILE", "someone-elses")
	endpoint := elastiqtest.AWSEnv(t)
	cfg, err := awsconfig.Flags{Endpoint: endpoint}.Load(t.Context())
	if err != nil {
		t.Fatalf("Load() after AWSEnv = %v", err)
	}
	creds, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil || creds.AccessKeyID != "test" || cfg.Region != elastiqtest.AWSRegion {
		t.Errorf("Load() after AWSEnv = key %q, region %q, %v; want test, %s", creds.AccessKeyID, cfg.Region, err, elastiqtest.AWSRegion)
	}
}

func TestLaunchTemplate(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), elastiqtest.Timeout)
	defer cancel()
	cfg := elastiqtest.AWSConfig(t)
	id := elastiqtest.LaunchTemplate(ctx, t, cfg)
	out, err := ec2.NewFromConfig(cfg).DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: []string{id}})
	if err != nil || len(out.LaunchTemplates) != 1 {
		t.Fatalf("DescribeLaunchTemplates(%s) = %v, %v; want the template", id, out, err)
	}
	if got := aws.ToString(out.LaunchTemplates[0].LaunchTemplateId); got != id {
		t.Errorf("DescribeLaunchTemplates(%s) found %s", id, got)
	}
}

func TestUniqueName(t *testing.T) {
	if a, b := elastiqtest.UniqueName(t), elastiqtest.UniqueName(t); a == b {
		t.Errorf("UniqueName() twice = %q both times, want different names", a)
	}
}
