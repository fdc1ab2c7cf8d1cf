// Package awsstack makes, on the AWS-compatible test server (moto, started
// by scripts/test-servers.sh), the queues and the bucket of one elastiq
// deployment, for the tests of the distributed programs. Each Stack has
// names of its own, so tests sharing one server do not see each other's
// messages or objects.
//
// It is a package of its own, not part of elastiqtest, because it uses
// sqsqueue and s3store, whose own tests use elastiqtest.
package awsstack

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
)

// Stack is one deployment's queues and bucket on the test server, with
// clients for the test's own setup and checks.
type Stack struct {
	// Endpoint is the test server's URL, for a program's -endpoint flag.
	Endpoint string
	// Config reaches the test server with fake credentials.
	Config aws.Config
	// Name is the stack's name (also the -stack flag's value for the EC2
	// tags); the queues and the bucket are named after it.
	Name string

	// The request queue, its dead-letter queue and the response queue.
	RequestsURL, DeadLetterURL, ResponsesURL string
	Requests, DeadLetters, Responses         *sqsqueue.Queue
	// Bucket holds input/ and output/.
	Bucket string
	Store  *s3store.Store
}

// New sets the process environment for a program to reach the test server
// (elastiqtest.AWSEnv, so the test cannot be parallel) and creates a request
// queue with visibility timeout visibility and a dead-letter queue after
// maxReceives deliveries, a response queue and a bucket.
func New(tb testing.TB, visibility time.Duration, maxReceives int) *Stack {
	tb.Helper()
	s := &Stack{
		Endpoint: elastiqtest.AWSEnv(tb),
		Config:   elastiqtest.AWSConfig(tb),
		Name:     elastiqtest.UniqueName(tb),
	}
	s.create(tb, visibility, maxReceives)
	return s
}

// create makes the stack's queues and bucket.
func (s *Stack) create(tb testing.TB, visibility time.Duration, maxReceives int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), elastiqtest.Timeout)
	defer cancel()
	requests, err := sqsqueue.CreateWithDeadLetter(ctx, s.Config, s.Name+"-req",
		sqsqueue.CreateOptions{Visibility: visibility, MaxReceives: maxReceives})
	if err != nil {
		tb.Fatal(err)
	}
	responses, err := sqsqueue.CreateWithDeadLetter(ctx, s.Config, s.Name+"-res", sqsqueue.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	s.RequestsURL, s.DeadLetterURL, s.ResponsesURL = requests.URL, requests.DeadLetterURL, responses.URL
	for _, q := range []struct {
		url string
		dst **sqsqueue.Queue
	}{{s.RequestsURL, &s.Requests}, {s.DeadLetterURL, &s.DeadLetters}, {s.ResponsesURL, &s.Responses}} {
		if *q.dst, err = sqsqueue.Open(ctx, s.Config, q.url, sqsqueue.Options{}); err != nil {
			tb.Fatal(err)
		}
	}
	s.Bucket = s.Name
	opts := s3store.Options{UsePathStyle: true}
	if err := s3store.CreateBucket(ctx, s.Config, s.Bucket, opts); err != nil {
		tb.Fatal(err)
	}
	if s.Store, err = s3store.Open(ctx, s.Config, s.Bucket, opts); err != nil {
		tb.Fatal(err)
	}
}

// Args are the flags that point a distributed program at the stack: the
// endpoint, the bucket and the two queues.
func (s *Stack) Args() []string {
	return []string{"-endpoint", s.Endpoint, "-bucket", s.Bucket,
		"-request-queue-url", s.RequestsURL, "-response-queue-url", s.ResponsesURL}
}
