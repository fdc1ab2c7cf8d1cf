package awsstack_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
	"github.com/elastiq/elastiq/services/elastiq/s3store"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
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

// TestEnforcing: a user may do what its policy grants and nothing else, and
// the recorder names each call's action, resource and answer.
func TestEnforcing(t *testing.T) {
	s := awsstack.NewEnforcing(t, 30*time.Second, 1)
	ctx, cancel := context.WithTimeout(t.Context(), elastiqtest.Timeout)
	defer cancel()
	policy := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["sqs:SendMessage","sqs:GetQueueAttributes"],"Resource":["` + s.RequestsARN + `"]},
		{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["` + s.BucketARN + `"]},
		{"Effect":"Allow","Action":["s3:PutObject"],"Resource":["` + s.BucketARN + `/input/*"]}]}`
	keys := s.User(t, "sender", policy)
	cfg := s.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(keys.AccessKeyID, keys.SecretAccessKey, "")

	requests, err := sqsqueue.Open(ctx, cfg, s.RequestsURL, sqsqueue.Options{})
	if err != nil {
		t.Fatalf("Open(requests) as sender: %v", err)
	}
	if err := requests.Send(ctx, []byte("x")); err != nil {
		t.Errorf("Send as sender: %v", err)
	}
	if _, err := requests.Receive(ctx, 1, 0); err == nil {
		t.Error("Receive as sender succeeded; the policy does not grant sqs:ReceiveMessage")
	}
	store, err := s3store.Open(ctx, cfg, s.Bucket, s3store.Options{UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, elastiq.InputPrefix+"a", elastiq.Object{Body: []byte("a")}); err != nil {
		t.Errorf("Put(input/a) as sender: %v", err)
	}
	// A prefix with a "/" (signed as %2F), which moto alone would refuse
	// (Recorder.resignForMoto).
	if keys, err := store.List(ctx, elastiq.InputPrefix); err != nil || len(keys) != 1 {
		t.Errorf("List(input/) as sender = %q, %v; want [input/a]", keys, err)
	}
	if err := store.Put(ctx, elastiq.OutputPrefix+"a", elastiq.Object{Body: []byte("a")}); err == nil {
		t.Error("Put(output/a) as sender succeeded; the policy grants input/ only")
	}
	if _, err := sqsqueue.Open(ctx, cfg, s.ResponsesURL, sqsqueue.Options{}); err == nil {
		t.Error("Open(responses) as sender succeeded; the policy grants the request queue only")
	}

	want := []struct {
		action, resource string
		status           int
	}{
		{"sqs:SendMessage", s.RequestsARN, 200},
		{"sqs:ReceiveMessage", s.RequestsARN, 403},
		{"s3:PutObject", s.BucketARN + "/input/a", 200},
		{"s3:PutObject", s.BucketARN + "/output/a", 403},
	}
	calls := s.Recorder.Calls()
	for _, w := range want {
		found := slices.ContainsFunc(calls, func(c awsstack.Call) bool {
			return c.AccessKeyID == keys.AccessKeyID && c.Action == w.action && c.Resource == w.resource && c.Status == w.status
		})
		if !found {
			t.Errorf("no call %s on %s answered %d recorded; calls: %+v", w.action, w.resource, w.status, calls)
		}
	}
	if got := s.UserOf(keys.AccessKeyID); got != "sender" {
		t.Errorf("UserOf(sender's key) = %q", got)
	}
}

// TestEnforcingDeletedQueue: moto denies a call on a queue it no longer has
// even when the caller's policy grants that queue (it authorizes against
// "*"), where AWS answers QueueDoesNotExist. The recorder marks such a
// call, and Denied does not count it; a call the policy refuses still is.
func TestEnforcingDeletedQueue(t *testing.T) {
	s := awsstack.NewEnforcing(t, 30*time.Second, 1)
	ctx, cancel := context.WithTimeout(t.Context(), elastiqtest.Timeout)
	defer cancel()
	admin := sqs.NewFromConfig(s.Config)
	created, err := admin.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("gone-1")})
	if err != nil {
		t.Fatal(err)
	}
	goneARN := strings.Replace(s.RequestsARN, s.RequestsARN[strings.LastIndex(s.RequestsARN, ":")+1:], "gone-1", 1)
	keys := s.User(t, "replier", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["sqs:SendMessage"],"Resource":["`+strings.TrimSuffix(goneARN, "1")+`*"]}]}`)
	cfg := s.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(keys.AccessKeyID, keys.SecretAccessKey, "")
	replier := sqs.NewFromConfig(cfg)
	send := func(url *string) error {
		_, err := replier.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x")})
		return err
	}
	if err := send(created.QueueUrl); err != nil {
		t.Fatalf("SendMessage to gone-1 before its deletion: %v", err)
	}
	if _, err := admin.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: created.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	if err := send(created.QueueUrl); err == nil {
		t.Fatal("SendMessage to the deleted gone-1 succeeded")
	}
	if err := send(aws.String(s.RequestsURL)); err == nil {
		t.Fatal("SendMessage to the request queue succeeded; the policy grants gone-* only")
	}
	var sends []awsstack.Call
	for _, c := range s.Recorder.Calls() {
		if c.AccessKeyID == keys.AccessKeyID && c.Action == "sqs:SendMessage" {
			sends = append(sends, c)
		}
	}
	if len(sends) != 3 {
		t.Fatalf("recorded %d sends as replier, want 3: %+v", len(sends), sends)
	}
	for i, want := range []struct {
		status       int
		queueDeleted bool
		denied       bool
	}{{200, false, false}, {403, true, false}, {403, false, true}} {
		c := sends[i]
		if c.Status != want.status || c.QueueDeleted != want.queueDeleted || c.Denied() != want.denied {
			t.Errorf("send %d on %s: status %d, queue deleted %v, denied %v; want %d, %v, %v",
				i, c.Resource, c.Status, c.QueueDeleted, c.Denied(), want.status, want.queueDeleted, want.denied)
		}
	}
}
