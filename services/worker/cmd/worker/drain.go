package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// drainingQueue is the request queue as the worker sees it, so that a stop
// (SIGTERM, when EC2 stops or terminates the instance) lets the worker finish
// the messages it holds without taking new ones. The worker package has one
// context for both: cancelling it releases the messages in hand unfinished.
// So the program keeps that context alive through a grace period and cuts
// the worker off from the queue instead:
//
//   - once stop is done, Receive takes nothing new: a long poll in
//     progress runs to its end (cutting it short could leave the messages
//     SQS hands to it invisible until their visibility timeout), the
//     messages it brings back are released at once (visibility 0), and
//     later calls wait out their wait as on an empty queue;
//   - a message is in hand from the Receive that returned it until the
//     worker deletes it (done) or releases it (visibility 0), the last queue
//     call the worker makes for a message;
//   - Drain waits until no message is in hand and no poll is in progress.
//
// A message whose handling failed transiently is left to its visibility
// timeout by the worker with no further call, so Drain cannot see that it
// is done and waits out the grace period; the message is redelivered either
// way. No path deletes a message without its result stored and sent.
type drainingQueue struct {
	elastiq.Queue
	stop context.Context
	log  *slog.Logger

	mu      sync.Mutex
	inHand  map[string]bool // receipt handles
	polls   int             // Receive calls in progress
	changed chan struct{}   // a message or a poll ended (capacity 1)
}

func newDrainingQueue(q elastiq.Queue, stop context.Context, log *slog.Logger) *drainingQueue {
	return &drainingQueue{Queue: q, stop: stop, log: log, inHand: map[string]bool{}, changed: make(chan struct{}, 1)}
}

// Receive receives from the queue until stop is done, and nothing after.
func (q *drainingQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	if q.stop.Err() != nil {
		return nil, emptyPoll(ctx, wait)
	}
	q.mu.Lock()
	q.polls++
	q.mu.Unlock()
	msgs, err := q.Queue.Receive(ctx, max, wait)

	q.mu.Lock()
	q.polls--
	stopped := q.stop.Err() != nil
	if !stopped {
		for _, m := range msgs {
			q.inHand[m.ReceiptHandle] = true
		}
	}
	q.mu.Unlock()
	q.signal()
	if !stopped {
		return msgs, err
	}
	q.release(msgs)
	return nil, err
}

// release makes messages received after the stop visible again at once.
func (q *drainingQueue) release(msgs []elastiq.Message) {
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(q.stop), 5*time.Second)
		err := q.Queue.ChangeVisibility(ctx, m.ReceiptHandle, 0)
		cancel()
		if err == nil {
			q.log.Info("stopping: released a message received after the stop", "message", m.ID)
		} else {
			q.log.Warn("stopping: release a message received after the stop; it returns after its visibility timeout",
				"message", m.ID, "err", err)
		}
	}
}

func (q *drainingQueue) Delete(ctx context.Context, receiptHandle string) error {
	err := q.Queue.Delete(ctx, receiptHandle)
	q.letGo(receiptHandle)
	return err
}

func (q *drainingQueue) ChangeVisibility(ctx context.Context, receiptHandle string, timeout time.Duration) error {
	err := q.Queue.ChangeVisibility(ctx, receiptHandle, timeout)
	if timeout == 0 {
		q.letGo(receiptHandle)
	}
	return err
}

func (q *drainingQueue) letGo(receiptHandle string) {
	q.mu.Lock()
	delete(q.inHand, receiptHandle)
	q.mu.Unlock()
	q.signal()
}

func (q *drainingQueue) signal() {
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

// InHand is how many received messages the worker has neither deleted nor
// released.
func (q *drainingQueue) InHand() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inHand)
}

// busy reports whether a message is in hand or a poll in progress.
func (q *drainingQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inHand) > 0 || q.polls > 0
}

// Drain waits until no message is in hand and no poll is in progress, for
// at most grace, or until done is closed (the worker returned). It reports
// whether no message is left in hand.
func (q *drainingQueue) Drain(grace time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(grace)
	defer t.Stop()
	for q.busy() {
		select {
		case <-q.changed:
		case <-done:
			return q.InHand() == 0
		case <-t.C:
			return q.InHand() == 0
		}
	}
	return true
}

// emptyPoll waits as a long poll of an empty queue does: wait, or until ctx
// is done.
func emptyPoll(ctx context.Context, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
