package sqsqueue_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
)

// TestReplyQueues: a web instance's own queue is created alive, serves as a
// queue, is found by the workers through Replies, stays while marked alive,
// and is swept once its mark is older than the expiry; a result sent to a
// swept queue fails as not found, and marking it alive says it is gone.
func TestReplyQueues(t *testing.T) {
	ctx := t.Context()
	cfg := awstest.Config(t)
	api := sqs.NewFromConfig(cfg)
	prefix := awstest.Name(t) + "-"
	var made []*sqsqueue.ReplyQueue
	for range 2 {
		q, err := sqsqueue.CreateReplyQueue(ctx, cfg, prefix, sqsqueue.Options{})
		if err != nil {
			t.Fatalf("CreateReplyQueue(%q): %v", prefix, err)
		}
		made = append(made, q)
	}
	t.Cleanup(func() {
		for _, q := range made {
			q.Delete(t.Context()) // the test's leftovers; a swept one is gone already
		}
	})
	live, dead := made[0], made[1]
	if live.URL() == dead.URL() || !strings.Contains(live.URL(), prefix) {
		t.Fatalf("reply queues %s and %s: want two names under %s", live.URL(), dead.URL(), prefix)
	}

	// A worker sends on it by URL; the instance receives.
	replies := sqsqueue.NewReplies(api, sqsqueue.Options{})
	q, err := replies.Open(live.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, []byte(`{"id":"x"}`)); err != nil {
		t.Fatalf("Send to %s: %v", live.URL(), err)
	}
	if msgs, err := live.Receive(ctx, 10, time.Second); err != nil || len(msgs) != 1 {
		t.Errorf("Receive on the reply queue = %d messages, %v; want 1", len(msgs), err)
	}
	if _, err := replies.Open("not a url"); err == nil {
		t.Errorf("Replies.Open(%q) = nil error, want one", "not a url")
	}

	// Nothing is swept while every mark is recent.
	if gone, err := sqsqueue.SweepReplyQueues(ctx, api, prefix, time.Minute, time.Now(), sqsqueue.Options{}); err != nil || len(gone) != 0 {
		t.Fatalf("SweepReplyQueues now = %v, %v; want none deleted", gone, err)
	}
	// The dead one's instance last marked it 20 minutes ago.
	old := strconv.FormatInt(time.Now().Add(-20*time.Minute).Unix(), 10)
	if _, err := api.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: aws.String(dead.URL()), Tags: map[string]string{sqsqueue.AliveTag: old}}); err != nil {
		t.Fatal(err)
	}
	if err := live.MarkAlive(ctx); err != nil {
		t.Fatal(err)
	}
	gone, err := sqsqueue.SweepReplyQueues(ctx, api, prefix, 10*time.Minute, time.Now(), sqsqueue.Options{})
	if err != nil || !slices.Equal(gone, []string{dead.URL()}) {
		t.Errorf("SweepReplyQueues = %v, %v; want %s deleted", gone, err, dead.URL())
	}
	if err := dead.Send(ctx, []byte(`{}`)); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("Send to a swept queue = %v, want ErrNotFound", err)
	}
	if err := dead.MarkAlive(ctx); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("MarkAlive of a swept queue = %v, want ErrNotFound", err)
	}
	if _, err := sqsqueue.CreateReplyQueue(ctx, cfg, "bad.prefix", sqsqueue.Options{}); err == nil {
		t.Errorf("CreateReplyQueue(%q) = nil error, want one", "bad.prefix")
	}
	if out, err := api.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix)}); err != nil || !slices.Equal(out.QueueUrls, []string{live.URL()}) {
		t.Errorf("queues under %s after the sweep = %v, %v; want %s alone", prefix, out.QueueUrls, err, live.URL())
	}
}
