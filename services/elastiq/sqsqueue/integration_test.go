package sqsqueue_test

// Integration tests against an SQS-compatible server (moto) on loopback,
// started by scripts/test-servers.sh; see internal/awstest.
//
// Where moto and AWS differ, the test pins what moto does and says what AWS
// does, so a change in either shows up here.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
)

// patience bounds every wait for something that should happen soon, with
// room for a loaded 2-core machine.
const patience = 30 * time.Second

// newQueues creates a queue with a dead-letter queue for this test, and
// deletes both when it ends.
func newQueues(t *testing.T, opts sqsqueue.CreateOptions) (q, dlq *sqsqueue.Queue) {
	t.Helper()
	ctx := t.Context()
	cfg := awstest.Config(t)
	qs, err := sqsqueue.CreateWithDeadLetter(ctx, cfg, awstest.Name(t), opts)
	if err != nil {
		t.Fatalf("CreateWithDeadLetter: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		api := sqs.NewFromConfig(cfg)
		for _, u := range []string{qs.URL, qs.DeadLetterURL} {
			if _, err := api.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
				t.Errorf("delete queue %s: %v", u, err)
			}
		}
	})
	if q, err = sqsqueue.Open(ctx, cfg, qs.URL, sqsqueue.Options{}); err != nil {
		t.Fatalf("Open(%s): %v", qs.URL, err)
	}
	if dlq, err = sqsqueue.Open(ctx, cfg, qs.DeadLetterURL, sqsqueue.Options{}); err != nil {
		t.Fatalf("Open(%s): %v", qs.DeadLetterURL, err)
	}
	return q, dlq
}

func send(t *testing.T, q *sqsqueue.Queue, body string) {
	t.Helper()
	if err := q.Send(t.Context(), []byte(body)); err != nil {
		t.Fatalf("Send(%q): %v", body, err)
	}
}

// receiveOne long-polls until one message arrives, or fails the test.
func receiveOne(t *testing.T, q *sqsqueue.Queue) elastiq.Message {
	t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		msgs, err := q.Receive(t.Context(), 1, 5*time.Second)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(msgs) > 1 {
			t.Fatalf("Receive(1, ...) returned %d messages, want at most 1", len(msgs))
		}
		if len(msgs) == 1 {
			return msgs[0]
		}
	}
	t.Fatalf("Receive: no message within %v", patience)
	return elastiq.Message{}
}

// receiveNone checks that a long poll of wait ends with no message.
func receiveNone(t *testing.T, q *sqsqueue.Queue, wait time.Duration) {
	t.Helper()
	msgs, err := q.Receive(t.Context(), elastiq.MaxReceiveBatch, wait)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Receive(..., %v) = %d messages (first %q, count %d), want none", wait, len(msgs), msgs[0].Body, msgs[0].ReceiveCount)
	}
}

func wantStats(t *testing.T, q *sqsqueue.Queue, want elastiq.QueueStats) {
	t.Helper()
	got, err := q.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
}

func wantMessage(t *testing.T, m elastiq.Message, body string, count int) {
	t.Helper()
	if string(m.Body) != body || m.ReceiveCount != count {
		t.Fatalf("message = body %q count %d, want body %q count %d", m.Body, m.ReceiveCount, body, count)
	}
	if m.ID == "" || m.ReceiptHandle == "" {
		t.Fatalf("message = ID %q receipt %q, want both set", m.ID, m.ReceiptHandle)
	}
}

func TestSendReceiveDelete(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{})
	body := `{"id":"01","note":"ünïcode ✓"}`
	send(t, q, body)

	m := receiveOne(t, q)
	wantMessage(t, m, body, 1)
	// moto's counts are exact; AWS's are approximate.
	wantStats(t, q, elastiq.QueueStats{Visible: 0, InFlight: 1})

	if err := q.Delete(t.Context(), m.ReceiptHandle); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantStats(t, q, elastiq.QueueStats{})
	receiveNone(t, q, time.Second)
}

func TestVisibilityExpiryRedelivers(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{Visibility: time.Second})
	send(t, q, "again")
	first := receiveOne(t, q)
	wantMessage(t, first, "again", 1)

	// Not deleted: after one second it is delivered again, with a new
	// receipt handle and a higher receive count.
	second := receiveOne(t, q)
	wantMessage(t, second, "again", 2)
	if second.ID != first.ID {
		t.Errorf("redelivered ID = %q, want %q", second.ID, first.ID)
	}
	if second.ReceiptHandle == first.ReceiptHandle {
		t.Errorf("redelivery has the same receipt handle %q, want a new one", first.ReceiptHandle)
	}
	if err := q.Delete(t.Context(), second.ReceiptHandle); err != nil {
		t.Fatalf("Delete(newest receipt): %v", err)
	}
	wantStats(t, q, elastiq.QueueStats{})
}

func TestChangeVisibility(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{Visibility: 2 * time.Second})
	send(t, q, "long job")
	m := receiveOne(t, q)

	// Extend well past the queue's 2 s: a long poll that outlasts the 2 s
	// stays empty and the message stays in flight.
	if err := q.ChangeVisibility(t.Context(), m.ReceiptHandle, time.Minute); err != nil {
		t.Fatalf("ChangeVisibility(1m): %v", err)
	}
	receiveNone(t, q, 4*time.Second)
	wantStats(t, q, elastiq.QueueStats{Visible: 0, InFlight: 1})

	// Zero releases it at once.
	if err := q.ChangeVisibility(t.Context(), m.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	wantStats(t, q, elastiq.QueueStats{Visible: 1, InFlight: 0})
	again := receiveOne(t, q)
	wantMessage(t, again, "long job", 2)

	if err := q.ChangeVisibility(t.Context(), again.ReceiptHandle, sqsqueue.MaxVisibility+time.Second); err == nil {
		t.Errorf("ChangeVisibility(%v) = nil, want an error", sqsqueue.MaxVisibility+time.Second)
	}
}

func TestReceiveCountToDeadLetter(t *testing.T) {
	t.Parallel()
	const maxReceives = 3
	q, dlq := newQueues(t, sqsqueue.CreateOptions{MaxReceives: maxReceives})
	send(t, q, "poison")

	// Received maxReceives times and released each time (as a worker that
	// keeps failing would, only faster than waiting for the timeout).
	var id string
	for i := 1; i <= maxReceives; i++ {
		m := receiveOne(t, q)
		wantMessage(t, m, "poison", i)
		id = m.ID
		if err := q.ChangeVisibility(t.Context(), m.ReceiptHandle, 0); err != nil {
			t.Fatalf("ChangeVisibility(0) after receive %d: %v", i, err)
		}
	}
	// The next receive moves it to the dead-letter queue instead of
	// delivering it.
	receiveNone(t, q, time.Second)
	wantStats(t, q, elastiq.QueueStats{})

	dead := receiveOne(t, dlq)
	if string(dead.Body) != "poison" || dead.ID != id {
		t.Fatalf("dead letter = ID %q body %q, want ID %q body %q", dead.ID, dead.Body, id, "poison")
	}
	// moto keeps the receive count it had on the source queue and counts
	// on; AWS does the same (the count is the message's, not the queue's).
	if dead.ReceiveCount <= maxReceives {
		t.Errorf("dead letter ReceiveCount = %d, want > %d", dead.ReceiveCount, maxReceives)
	}
}

func TestLongPollReturnsWhenMessageArrives(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{})

	// An empty long poll waits (whatever the load, never less than asked).
	start := time.Now()
	receiveNone(t, q, time.Second)
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("empty Receive(..., 1s) returned after %v, want it to wait at least 1s", waited)
	}

	// A message sent while a 20 s poll waits is returned by that poll. A
	// short poll would have returned empty before the send.
	sent := make(chan error, 1)
	timer := time.AfterFunc(time.Second, func() { sent <- q.Send(context.Background(), []byte("wake up")) })
	defer timer.Stop()
	msgs, err := q.Receive(t.Context(), 1, elastiq.MaxReceiveWait)
	if err != nil {
		t.Fatalf("Receive(1, 20s): %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if len(msgs) != 1 || string(msgs[0].Body) != "wake up" {
		t.Fatalf("Receive(1, 20s) = %d messages, want the one sent during the poll", len(msgs))
	}
}

func TestReceiveBatch(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{})
	const n = 25
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("msg-%02d", i)
		send(t, q, want[i])
	}

	// Asking for more than SQS allows is clamped to elastiq.MaxReceiveBatch (SQS itself
	// rejects MaxNumberOfMessages > 10).
	var got []string
	var sizes []int
	seen := make(map[string]bool)
	deadline := time.Now().Add(patience)
	for len(seen) < n && time.Now().Before(deadline) {
		msgs, err := q.Receive(t.Context(), 25, 5*time.Second)
		if err != nil {
			t.Fatalf("Receive(25, 5s): %v", err)
		}
		sizes = append(sizes, len(msgs))
		for _, m := range msgs {
			got = append(got, string(m.Body))
			seen[string(m.Body)] = true
		}
	}
	slices.Sort(got)
	// A standard queue delivers at least once: a duplicate is legal (moto
	// served one once, under load), a missing message is not.
	if uniq := slices.Compact(slices.Clone(got)); !slices.Equal(uniq, want) {
		t.Fatalf("received %q, want each of %q", got, want)
	} else if len(uniq) != len(got) {
		t.Logf("received %d duplicates (at-least-once delivery): %q", len(got)-len(uniq), got)
	}
	if slices.Max(sizes) > elastiq.MaxReceiveBatch {
		t.Errorf("batch sizes %v, want none above %d", sizes, elastiq.MaxReceiveBatch)
	}
	// moto fills every batch it can; AWS may return fewer (it samples a
	// subset of its servers), but with 25 waiting messages not all ones.
	if sizes[0] != elastiq.MaxReceiveBatch {
		t.Errorf("first batch size = %d (all %v), want %d", sizes[0], sizes, elastiq.MaxReceiveBatch)
	}
	wantStats(t, q, elastiq.QueueStats{Visible: 0, InFlight: n})
}

// TestStaleReceipt pins how moto treats receipt handles that are no longer
// current. The worker relies only on what AWS and moto share: a garbage or
// deleted handle is ErrInvalidReceipt, and a redelivered message is deleted
// by its newest handle.
func TestStaleReceipt(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{})
	send(t, q, "stale")
	old := receiveOne(t, q)
	if err := q.ChangeVisibility(t.Context(), old.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0): %v", err)
	}
	current := receiveOne(t, q)
	wantMessage(t, current, "stale", 2)

	// moto accepts the old handle for ChangeMessageVisibility and applies it
	// to the message. AWS answers InvalidParameterValue ("... ReceiptHandle
	// is invalid. Reason: ..."), which Queue maps to ErrInvalidReceipt.
	if err := q.ChangeVisibility(t.Context(), old.ReceiptHandle, time.Minute); err != nil {
		t.Errorf("moto: ChangeVisibility(old handle) = %v, want nil", err)
	}
	// moto deletes the message by its old handle. AWS documents that a
	// delete with an old handle succeeds but may leave the message.
	if err := q.Delete(t.Context(), old.ReceiptHandle); err != nil {
		t.Errorf("moto: Delete(old handle) = %v, want nil", err)
	}
	wantStats(t, q, elastiq.QueueStats{})

	// Deleting an already deleted message succeeds, in moto and AWS alike.
	if err := q.Delete(t.Context(), current.ReceiptHandle); err != nil {
		t.Errorf("Delete(handle of a deleted message) = %v, want nil", err)
	}
	// Changing the visibility of a deleted message is an invalid receipt
	// (moto: ReceiptHandleIsInvalid; AWS: InvalidParameterValue).
	if err := q.ChangeVisibility(t.Context(), current.ReceiptHandle, time.Minute); !errors.Is(err, elastiq.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(handle of a deleted message) = %v, want ErrInvalidReceipt", err)
	}
	// A handle SQS never issued is ReceiptHandleIsInvalid in both.
	if err := q.Delete(t.Context(), "garbage"); !errors.Is(err, elastiq.ErrInvalidReceipt) {
		t.Errorf("Delete(garbage) = %v, want ErrInvalidReceipt", err)
	}
	if err := q.ChangeVisibility(t.Context(), "garbage", time.Minute); !errors.Is(err, elastiq.ErrInvalidReceipt) {
		t.Errorf("ChangeVisibility(garbage) = %v, want ErrInvalidReceipt", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	q, _ := newQueues(t, sqsqueue.CreateOptions{})
	wantStats(t, q, elastiq.QueueStats{})
	for i := range 3 {
		send(t, q, fmt.Sprint(i))
	}
	wantStats(t, q, elastiq.QueueStats{Visible: 3})
	receiveOne(t, q)
	wantStats(t, q, elastiq.QueueStats{Visible: 2, InFlight: 1})
}

func TestOpenMissingQueue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := awstest.Config(t)
	url := awstest.Endpoint(t) + "/123456789012/" + awstest.Name(t)
	_, err := sqsqueue.Open(ctx, cfg, url, sqsqueue.Options{})
	if !errors.Is(err, elastiq.ErrNotFound) {
		t.Fatalf("Open(missing queue) = %v, want ErrNotFound", err)
	}
}

func TestCreateWithDeadLetterIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := awstest.Config(t)
	name := awstest.Name(t)
	opts := sqsqueue.CreateOptions{Visibility: 7 * time.Second, MaxReceives: 4}
	first, err := sqsqueue.CreateWithDeadLetter(ctx, cfg, name, opts)
	if err != nil {
		t.Fatalf("CreateWithDeadLetter: %v", err)
	}
	again, err := sqsqueue.CreateWithDeadLetter(ctx, cfg, name, opts)
	if err != nil {
		t.Fatalf("CreateWithDeadLetter again: %v", err)
	}
	if again != first {
		t.Errorf("CreateWithDeadLetter again = %+v, want %+v", again, first)
	}

	out, err := sqs.NewFromConfig(cfg).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(first.URL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout, types.QueueAttributeNameRedrivePolicy},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	if got := out.Attributes["VisibilityTimeout"]; got != "7" {
		t.Errorf("VisibilityTimeout = %q, want %q", got, "7")
	}
	var redrive struct {
		Target      string          `json:"deadLetterTargetArn"`
		MaxReceives json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(out.Attributes["RedrivePolicy"]), &redrive); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", out.Attributes["RedrivePolicy"], err)
	}
	// AWS answers maxReceiveCount as a number, moto as it was given (a
	// string here); both mean 4.
	if got := strings.Trim(string(redrive.MaxReceives), `"`); got != "4" {
		t.Errorf("RedrivePolicy maxReceiveCount = %s, want 4", redrive.MaxReceives)
	}
	if want := ":" + name + sqsqueue.DeadLetterSuffix; !strings.HasSuffix(redrive.Target, want) {
		t.Errorf("RedrivePolicy deadLetterTargetArn = %q, want suffix %q", redrive.Target, want)
	}
}

// TestBatchedSendDelete: on the server, Sends and Deletes made at once go in
// batch calls and each does what a single call would; a garbage receipt in a
// batch fails alone, as ErrInvalidReceipt.
func TestBatchedSendDelete(t *testing.T) {
	t.Parallel()
	plain, _ := newQueues(t, sqsqueue.CreateOptions{})
	q, err := sqsqueue.Open(t.Context(), awstest.Config(t), plain.URL(),
		sqsqueue.Options{BatchSends: true, DeleteWindow: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 25
	want := make([]string, n)
	var wg sync.WaitGroup
	for i := range want {
		want[i] = fmt.Sprintf("msg-%02d", i)
		wg.Go(func() {
			if err := q.Send(t.Context(), []byte(want[i])); err != nil {
				t.Errorf("Send(%s): %v", want[i], err)
			}
		})
	}
	wg.Wait()

	var got []elastiq.Message
	deadline := time.Now().Add(patience)
	for len(got) < n && time.Now().Before(deadline) {
		msgs, err := q.Receive(t.Context(), 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	bodies := make([]string, len(got))
	for i, m := range got {
		bodies[i] = string(m.Body)
	}
	slices.Sort(bodies)
	if !slices.Equal(bodies, want) {
		t.Fatalf("received %q, want each of %q once", bodies, want)
	}

	var invalid error
	for _, m := range got {
		wg.Go(func() {
			if err := q.Delete(t.Context(), m.ReceiptHandle); err != nil {
				t.Errorf("Delete(%s): %v", m.Body, err)
			}
		})
	}
	wg.Go(func() { invalid = q.Delete(t.Context(), "garbage") })
	wg.Wait()
	if !errors.Is(invalid, elastiq.ErrInvalidReceipt) {
		t.Errorf("Delete(garbage) in a batch = %v, want ErrInvalidReceipt", invalid)
	}
	wantStats(t, q, elastiq.QueueStats{})
}
