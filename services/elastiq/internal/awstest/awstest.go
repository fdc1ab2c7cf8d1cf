// Package awstest holds the helpers shared by the tests that talk AWS
// protocols to a real server on loopback (moto, started by
// scripts/test-servers.sh), and by the tests of other servers that script
// starts.
//
// A test that needs a server calls Endpoint (or Config, or RequireEnv for
// another server's address). When the server's variable is unset the test
// fails, with a message that says how to start the servers, unless the run
// asked for unit tests only (go test -short, make test-unit): then it skips.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Environment variables set by `scripts/test-servers.sh start`.
const (
	// EnvEndpoint is the moto server's URL, e.g. http://127.0.0.1:5000.
	EnvEndpoint = "ELASTIQ_TEST_AWS_ENDPOINT"
	// EnvMemcached is memcached's address, e.g. 127.0.0.1:11211.
	EnvMemcached = "ELASTIQ_TEST_MEMCACHED"
)

// Region is the region of the test configuration.
const Region = "us-east-1"

// RequireEnv returns the value of the environment variable name, which
// scripts/test-servers.sh sets to a server's address. When it is unset the
// test fails, or skips under -short.
func RequireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := name + " is not set: start the test servers with\n" +
		"\teval \"$(scripts/test-servers.sh start)\"\n" +
		"(or run `make test`, which starts and stops them)"
	if testing.Short() {
		t.Skip("-short, unit tests only: " + msg)
	}
	t.Fatal(msg)
	return ""
}

// Endpoint returns the URL of the AWS-compatible test server.
func Endpoint(t testing.TB) string {
	t.Helper()
	return strings.TrimRight(RequireEnv(t, EnvEndpoint), "/")
}

// Config returns an AWS configuration for the test server: static fake
// credentials, region us-east-1 and BaseEndpoint set to Endpoint. It reads
// no shared config files and no AWS_* variables, so a developer's own AWS
// setup cannot leak into a test. Clients that need path-style addressing
// (S3) set it themselves.
func Config(t testing.TB) aws.Config {
	t.Helper()
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(Endpoint(t)),
	}
}

// maxName leaves room for a suffix such as "-dlq" under the tightest limit
// of the names Name is used for (S3 buckets: 63).
const maxName = 56

// Name returns a resource name unique to this call: "t-", the test's name
// folded to lower-case letters, digits and hyphens and shortened, and 8
// random hex digits. At most 56 characters, so it is a valid S3 bucket
// name, SQS queue name and EC2 tag value, with room for a short suffix.
func Name(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random name: %v", err)
	}
	suffix := "-" + hex.EncodeToString(b[:])

	var sb strings.Builder
	sb.WriteString("t-")
	dash := true // no leading or doubled hyphens
	for _, r := range strings.ToLower(t.Name()) {
		if sb.Len() >= maxName-len(suffix) {
			break
		}
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			sb.WriteRune(r)
			dash = false
		case !dash:
			sb.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(sb.String(), "-") + suffix
}
