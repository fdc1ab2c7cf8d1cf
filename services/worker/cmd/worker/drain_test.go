package main

import (
	"context"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/memqueue"
)

// The drainingQueue tests run on memqueue, the embedded queue with SQS
// semantics.

func newDrainTest(t *testing.T) (*memqueue.Queue, *drainingQueue, context.CancelFunc) {
	q := memqueue.New(memqueue.Config{VisibilityTimeout: time.Hour})
	t.Cleanup(func() { q.Close() })
	stop, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return q, newDrainingQueue(q, stop, elastiqtest.NewLogs(t).Logger()), cancel
}

func TestDrainWaitsForMessagesInHand(t *testing.T) {
	q, d, stop := newDrainTest(t)
	ctx := t.Context()
	for _, body := range []string{"a", "b", "c"} {
		if err := q.Send(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := d.Receive(ctx, 3, time.Second)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("Receive() = %d messages, %v; want 3", len(msgs), err)
	}
	if err := d.ChangeVisibility(ctx, msgs[0].ReceiptHandle, time.Minute); err != nil { // a heartbeat
		t.Fatal(err)
	}
	if got := d.InHand(); got != 3 {
		t.Errorf("InHand() after a heartbeat = %d, want 3", got)
	}
	stop()
	drained := make(chan bool, 1)
	go func() { drained <- d.Drain(time.Minute, nil) }()
	if err := d.Delete(ctx, msgs[0].ReceiptHandle); err != nil { // done
		t.Fatal(err)
	}
	if err := d.ChangeVisibility(ctx, msgs[1].ReceiptHandle, 0); err != nil { // released
		t.Fatal(err)
	}
	select {
	case <-drained:
		t.Fatalf("Drain() returned with %d messages in hand", d.InHand())
	case <-time.After(50 * time.Millisecond):
	}
	if err := d.Delete(ctx, msgs[2].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	select {
	case ok := <-drained:
		if !ok {
			t.Errorf("Drain() = false, want true: nothing left in hand")
		}
	case <-time.After(elastiqtest.Timeout):
		t.Fatal("Drain() did not return once nothing was in hand")
	}
}

func TestDrainGraceOver(t *testing.T) {
	q, d, stop := newDrainTest(t)
	ctx := t.Context()
	if err := q.Send(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if msgs, err := d.Receive(ctx, 1, time.Second); err != nil || len(msgs) != 1 {
		t.Fatalf("Receive() = %d messages, %v; want 1", len(msgs), err)
	}
	stop()
	if d.Drain(10*time.Millisecond, nil) {
		t.Errorf("Drain() with a message in hand after the grace period = true, want false")
	}
	done := make(chan struct{})
	close(done)
	if d.Drain(time.Hour, done) {
		t.Errorf("Drain() after the worker returned with a message in hand = true, want false")
	}
}

// TestReceiveAfterStop: a poll in progress at the stop runs to its end and
// its messages are released at once; later receives take nothing.
func TestReceiveAfterStop(t *testing.T) {
	q, d, stop := newDrainTest(t)
	ctx := t.Context()
	got := make(chan int, 1)
	go func() {
		msgs, err := d.Receive(ctx, 1, 10*time.Second)
		if err != nil {
			t.Errorf("Receive() = %v", err)
		}
		got <- len(msgs)
	}()
	elastiqtest.Eventually(t, "the poll in progress", d.busy)
	stop()
	if err := q.Send(ctx, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 0 {
		t.Errorf("Receive() in progress at the stop = %d messages, want 0", n)
	}
	if d.busy() {
		t.Errorf("busy() after the poll = true, want false")
	}
	msgs, err := q.Receive(ctx, 1, 0)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "late" || msgs[0].ReceiveCount != 2 {
		t.Errorf("the queue after the stop = %+v, %v; want the late message, visible, delivered once before", msgs, err)
	}
	if err := q.ChangeVisibility(ctx, msgs[0].ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	if msgs, err := d.Receive(ctx, 1, 10*time.Millisecond); err != nil || len(msgs) != 0 {
		t.Errorf("Receive() after the stop = %d messages, %v; want none", len(msgs), err)
	}
}
