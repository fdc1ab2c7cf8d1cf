package awsstack_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
)

func TestNew(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 1)
	ctx, cancel := context.WithTimeout(t.Context(), elastiqtest.Timeout)
	defer cancel()

	for name, q := range map[string]elastiq.Queue{"requests": s.Requests, "dead letters": s.DeadLetters, "responses": s.Responses} {
		if err := q.Send(ctx, []byte(name)); err != nil {
			t.Fatalf("%s: Send: %v", name, err)
		}
		msgs, err := q.Receive(ctx, 10, time.Second)
		if err != nil || len(msgs) != 1 || string(msgs[0].Body) != name {
			t.Errorf("%s: Receive() = %v, %v; want the message just sent", name, msgs, err)
		}
	}
	if err := s.Store.Put(ctx, "input/x", elastiq.Object{Body: []byte("x")}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := s.Store.Get(ctx, "input/x"); err != nil || string(got.Body) != "x" {
		t.Errorf("Get(input/x) = %q, %v; want x", got.Body, err)
	}
	args := s.Args()
	for _, want := range []string{s.Endpoint, s.Bucket, s.RequestsURL, s.ResponsesURL} {
		if !slices.Contains(args, want) {
			t.Errorf("Args() = %q, want it to hold %q", args, want)
		}
	}
}

// TestNewDeadLetters: a request received maxReceives times without being
// deleted moves to the dead-letter queue.
func TestNewDeadLetters(t *testing.T) {
	s := awsstack.New(t, time.Second, 1)
	ctx, cancel := context.WithTimeout(t.Context(), elastiqtest.Timeout)
	defer cancel()
	if err := s.Requests.Send(ctx, []byte("doomed")); err != nil {
		t.Fatal(err)
	}
	if msgs, err := s.Requests.Receive(ctx, 1, 5*time.Second); err != nil || len(msgs) != 1 {
		t.Fatalf("Receive() = %v, %v; want the message", msgs, err)
	}
	elastiqtest.Eventually(t, "the message in the dead-letter queue", func() bool {
		s.Requests.Receive(ctx, 1, 0) // the redrive happens on a receive
		msgs, err := s.DeadLetters.Receive(ctx, 1, time.Second)
		return err == nil && len(msgs) == 1 && string(msgs[0].Body) == "doomed"
	})
}
