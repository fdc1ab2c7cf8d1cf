package elastiqtest

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/imds"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/motoec2"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
)

// The helpers below reach the servers that scripts/test-servers.sh runs on
// loopback (moto_server for SQS, S3 and EC2; memcached), for the tests of
// packages and programs outside this module. When a server's variable is
// unset, the test fails with a message that says how to start the servers
// (or skips under go test -short, a unit-only run).

// AWSRegion is the region of the test configuration.
const AWSRegion = awstest.Region

// AWSEndpoint returns the URL of the AWS-compatible test server
// (ELASTIQ_TEST_AWS_ENDPOINT).
func AWSEndpoint(tb testing.TB) string {
	tb.Helper()
	return awstest.Endpoint(tb)
}

// AWSConfig returns an AWS configuration for the test server with static
// fake credentials, for a test's own setup and checks. It reads no shared
// config files and no AWS_* variables.
func AWSConfig(tb testing.TB) aws.Config {
	tb.Helper()
	return awstest.Config(tb)
}

// AWSEnv sets the process environment for the rest of the test so that a
// program loading the SDK's default chain (as the elastiq programs do) gets
// fake static credentials and region us-east-1, and nothing from the
// developer's own AWS setup (profiles, shared files). It returns the test
// server's URL, for the program's -endpoint flag. It uses tb.Setenv, so the
// test cannot be parallel.
func AWSEnv(tb testing.TB) string {
	tb.Helper()
	endpoint := AWSEndpoint(tb)
	IsolateAWSEnv(tb)
	return endpoint
}

// IsolateAWSEnv sets the process environment as AWSEnv does (fake static
// credentials, region us-east-1, no shared files), for a test that runs
// programs against a server of its own.
func IsolateAWSEnv(tb testing.TB) {
	tb.Helper()
	none := filepath.Join(tb.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "test",
		"AWS_SECRET_ACCESS_KEY":       "test",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  AWSRegion,
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
	} {
		tb.Setenv(k, v)
	}
}

// Memcached returns the address of the test memcached
// (ELASTIQ_TEST_MEMCACHED).
func Memcached(tb testing.TB) string {
	tb.Helper()
	return awstest.RequireEnv(tb, awstest.EnvMemcached)
}

// UniqueName returns a name made from the test's name and random digits,
// valid as an S3 bucket, SQS queue (with room for a "-dlq" suffix), launch
// template or EC2 tag value, so tests sharing one server do not collide.
func UniqueName(tb testing.TB) string {
	tb.Helper()
	return awstest.Name(tb)
}

// LaunchTemplate creates, on the test server, a launch template of a t3.micro
// from one of the server's Amazon Linux images (motoec2.LaunchTemplate), and
// returns its ID.
func LaunchTemplate(ctx context.Context, tb testing.TB, cfg aws.Config) string {
	tb.Helper()
	lt, err := motoec2.LaunchTemplate(ctx, cfg, UniqueName(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return lt.ID
}

// IMDS starts a test double of the EC2 instance metadata service, IMDSv2
// only (a token from PUT /latest/api/token, then the instance ID to a GET
// that carries it), and returns its URL for a program's -imds-endpoint.
func IMDS(tb testing.TB, instanceID string) string {
	srv := httptest.NewServer(imds.Handler(instanceID))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// TerminateAtEnd terminates, at the end of the test, every instance on the
// test server tagged elastiq:stack=stack that is not terminated yet
// (motoec2.TerminateStacks), so a test that launches workers leaves no
// running or stopped instance behind for the next one to list.
func TerminateAtEnd(tb testing.TB, cfg aws.Config, stack string) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := motoec2.TerminateStacks(ctx, cfg, stack); err != nil {
			tb.Error(err)
		}
	})
}

// Chromium returns the path of the browser that the dashboard's test drives
// headless (ELASTIQ_TEST_CHROMIUM). scripts/test-servers.sh start sets it,
// installing Debian's chromium when it is missing.
func Chromium(tb testing.TB) string {
	tb.Helper()
	return awstest.RequireEnv(tb, "ELASTIQ_TEST_CHROMIUM")
}
