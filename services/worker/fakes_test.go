package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Test doubles of the elastiq interfaces. They are deliberately simpler than
// the embedded backends: fakeQueue has no visibility timeout (a message is
// delivered once per push; a test redelivers by pushing again), never
// invalidates a receipt, and records every call so tests can assert on them.
// The object store double is the shared elastiqtest.Store.

var (
	_ elastiq.Queue      = (*fakeQueue)(nil)
	_ elastiq.Classifier = classifierFunc(nil)
)

type visibilityCall struct {
	receipt string
	timeout time.Duration
}

// fakeQueue is a test double of elastiq.Queue: a FIFO of deliveries with
// long polling, recording sends, deletes, visibility changes and receive waits.
type fakeQueue struct {
	mu          sync.Mutex
	ready       []elastiq.Message
	nextReceipt int
	wake        chan struct{}

	sent       [][]byte
	deleted    []string
	visibility []visibilityCall
	waits      []time.Duration
	// receiveErrs makes the next receiveErrs Receive calls fail.
	receiveErrs int
	// sendErr, if set, is what every Send returns (sending nothing).
	sendErr error
	// onDelete, if set, is called (without the lock) after each Delete.
	onDelete func(n int)
	batches  []int // the size of each Receive that returned messages
}

func newFakeQueue() *fakeQueue { return &fakeQueue{wake: make(chan struct{}, 1)} }

// push makes body deliverable, as a first delivery, and returns the receipt
// handle of its delivery.
func (q *fakeQueue) push(body []byte) string { return q.pushDelivery(body, 1) }

// pushDelivery makes body deliverable as its receiveCount-th delivery.
func (q *fakeQueue) pushDelivery(body []byte, receiveCount int) string {
	q.mu.Lock()
	q.nextReceipt++
	m := elastiq.Message{
		ID:            fmt.Sprintf("m%d", q.nextReceipt),
		Body:          body,
		ReceiptHandle: fmt.Sprintf("r%d", q.nextReceipt),
		ReceiveCount:  receiveCount,
	}
	q.ready = append(q.ready, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return m.ReceiptHandle
}

func (q *fakeQueue) Send(ctx context.Context, body []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sendErr != nil {
		return q.sendErr
	}
	q.sent = append(q.sent, body)
	return nil
}

func (q *fakeQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	q.mu.Lock()
	q.waits = append(q.waits, wait)
	if q.receiveErrs > 0 {
		q.receiveErrs--
		q.mu.Unlock()
		return nil, errors.New("fake receive failure")
	}
	q.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		q.mu.Lock()
		if n := min(max, len(q.ready)); n > 0 {
			msgs := append([]elastiq.Message(nil), q.ready[:n]...)
			q.ready = q.ready[n:]
			q.batches = append(q.batches, n)
			q.mu.Unlock()
			return msgs, nil
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, nil
		case <-q.wake:
		}
	}
}

func (q *fakeQueue) Delete(ctx context.Context, receipt string) error {
	q.mu.Lock()
	q.deleted = append(q.deleted, receipt)
	n, f := len(q.deleted), q.onDelete
	q.mu.Unlock()
	if f != nil {
		f(n)
	}
	return nil
}

func (q *fakeQueue) ChangeVisibility(ctx context.Context, receipt string, timeout time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.visibility = append(q.visibility, visibilityCall{receipt: receipt, timeout: timeout})
	return nil
}

func (q *fakeQueue) Stats(ctx context.Context) (elastiq.QueueStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return elastiq.QueueStats{Visible: len(q.ready)}, nil
}

func (q *fakeQueue) sentResults() ([]elastiq.Result, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []elastiq.Result
	for _, b := range q.sent {
		r, err := elastiq.DecodeResult(b)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (q *fakeQueue) deletedReceipts() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.deleted...)
}

func (q *fakeQueue) visibilityCalls() []visibilityCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]visibilityCall(nil), q.visibility...)
}

// classifierFunc is a test double of elastiq.Classifier.
type classifierFunc func(ctx context.Context, image []byte) (string, error)

func (f classifierFunc) Classify(ctx context.Context, image []byte) (string, error) {
	return f(ctx, image)
}

// blockingClassifier is a classifier double that closes started when it is
// called and then blocks until its context ends, like a worker killed
// mid-classification. It must be called once.
func blockingClassifier(started chan<- struct{}) classifierFunc {
	return func(ctx context.Context, _ []byte) (string, error) {
		close(started)
		<-ctx.Done()
		return "", ctx.Err()
	}
}

// countingClassifier wraps f and counts calls.
func countingClassifier(calls *atomic.Int64, f classifierFunc) classifierFunc {
	return func(ctx context.Context, image []byte) (string, error) {
		calls.Add(1)
		return f(ctx, image)
	}
}
