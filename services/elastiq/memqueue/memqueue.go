// Package memqueue is an in-process elastiq.Queue with the semantics of an
// SQS standard queue: at-least-once delivery, a visibility timeout after
// which an undeleted message is delivered again, a fresh receipt handle per
// delivery, long polling, receive counts and an optional dead-letter queue.
//
// It backs the embedded stack (`make run`), where it sits on the latency hot
// path, so every operation is O(1) or O(log n) in the number of messages:
// visible messages wait in a FIFO list, in-flight messages in a min-heap
// ordered by the time they become visible again. Expired messages are moved
// back lazily by every call, and a single timer armed for the earliest
// expiry wakes long-polling receivers the moment a message reappears. A Send
// wakes one waiting receiver, never all of them.
//
// A receipt handle stays valid until its message is deleted or delivered
// again: a worker whose visibility expired can still delete the message as
// long as nobody else has received it meanwhile, as with SQS.
//
// Messages live in memory only; they are lost when the process exits. The
// embedded stack re-enqueues accepted inputs that have no output on start-up,
// with the receive counts it journals (SendReceived).
package memqueue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// DefaultVisibilityTimeout is the visibility timeout when Config leaves it
// zero.
const DefaultVisibilityTimeout = elastiq.DefaultVisibilityTimeout

// ErrClosed is returned by Send and Receive once the queue is closed, and by
// a Receive that was waiting when Close was called.
var ErrClosed = errors.New("queue closed")

// Config configures a Queue. The zero value is usable.
type Config struct {
	// VisibilityTimeout is how long a received message stays invisible
	// before it is delivered again. Default DefaultVisibilityTimeout.
	VisibilityTimeout time.Duration
	// MaxReceives is the redrive policy's maximum receive count: a message
	// already received MaxReceives times is moved to DeadLetter instead of
	// being delivered again. Zero means unlimited. Like SQS's redrive
	// policy it needs a target: without DeadLetter it has no effect.
	MaxReceives int
	// DeadLetter receives the messages that exceeded MaxReceives.
	DeadLetter elastiq.Queue
	// Now is the clock; default time.Now. Tests inject a fake one and call
	// Receive again after advancing it: expiry is also checked lazily.
	Now func() time.Time
}

// Queue is an in-memory SQS-like queue, safe for concurrent use.
type Queue struct {
	visibility  time.Duration
	maxReceives int
	deadLetter  elastiq.Queue
	now         func() time.Time

	mu       sync.Mutex
	closed   bool
	done     chan struct{} // closed by Close
	byID     map[uint64]*message
	ready    readyList // visible messages, oldest first
	inflight inflightHeap
	nextID   uint64
	nextGen  uint64 // receipt generation; every delivery gets a new one

	waiters []*waiter // blocked receivers, longest waiting first
	pool    sync.Pool // of *waiter

	// expiry wakes waiters when the earliest in-flight message becomes
	// visible again; armedFor is the time it is set for (zero: not armed).
	expiry   *time.Timer
	armedFor time.Time
}

type message struct {
	seq          uint64
	id           string
	body         []byte
	receiveCount int
	gen          uint64 // generation of the current receipt; 0: none
	visibleAt    time.Time

	// In exactly one of ready (index == -1) or inflight (index >= 0).
	index      int
	prev, next *message
}

type waiter struct {
	wake   chan struct{} // buffered 1: a message may be available
	timer  *time.Timer
	queued bool // in Queue.waiters
}

// New returns an empty queue.
func New(cfg Config) *Queue {
	q := &Queue{
		visibility:  cfg.VisibilityTimeout,
		maxReceives: cfg.MaxReceives,
		deadLetter:  cfg.DeadLetter,
		now:         cfg.Now,
		done:        make(chan struct{}),
		byID:        make(map[uint64]*message),
	}
	if q.visibility <= 0 {
		q.visibility = DefaultVisibilityTimeout
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.deadLetter == nil {
		q.maxReceives = 0
	}
	q.pool.New = func() any {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return &waiter{wake: make(chan struct{}, 1), timer: t}
	}
	q.expiry = time.AfterFunc(time.Hour, q.onExpiry)
	q.expiry.Stop()
	return q
}

// Close wakes every waiting receiver, which returns ErrClosed, and makes
// further Send and Receive calls fail. Delete, ChangeVisibility and Stats
// keep working on the messages that are left. Close is idempotent.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.done)
		q.expiry.Stop()
	}
	return nil
}

// Send enqueues a copy of body.
func (q *Queue) Send(ctx context.Context, body []byte) error {
	return q.SendReceived(ctx, body, 0)
}

// SendReceived enqueues a copy of body as a message that was already
// delivered receives times: a message restored after a restart keeps its
// count, so the redrive policy (MaxReceives) still ends a message that kills
// every process receiving it.
func (q *Queue) SendReceived(ctx context.Context, body []byte, receives int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	b := make([]byte, len(body))
	copy(b, body)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("send: %w", ErrClosed)
	}
	q.nextID++
	m := &message{seq: q.nextID, id: "m-" + strconv.FormatUint(q.nextID, 10), body: b, index: -1, receiveCount: max(0, receives)}
	q.byID[m.seq] = m
	q.ready.pushBack(m)
	q.wakeLocked(1)
	return nil
}

// Receive returns up to max messages (at most elastiq.MaxReceiveBatch), waiting up to wait
// for the first one. It returns no messages and no error when the wait ends
// empty, and the context's error if ctx ends first.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("receive: max %d: want at least 1", max)
	}
	max = min(max, elastiq.MaxReceiveBatch)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	var w *waiter
	defer func() {
		if w != nil {
			q.releaseWaiter(w)
		}
	}()
	expired := wait <= 0
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, fmt.Errorf("receive: %w", ErrClosed)
		}
		now := q.now()
		q.promoteLocked(now)
		msgs, dead := q.takeLocked(now, max)
		if len(msgs) > 0 || len(dead) > 0 || expired {
			if q.ready.len > 0 {
				q.wakeLocked(1) // pass the baton: there is more to take
			}
			q.mu.Unlock()
			if len(dead) > 0 {
				if err := q.moveDead(ctx, dead); err != nil {
					q.requeue(msgs)
					return nil, fmt.Errorf("receive: %w", err)
				}
			}
			if len(msgs) > 0 || expired {
				return msgs, nil
			}
			continue
		}
		if w == nil {
			w = q.pool.Get().(*waiter)
			w.timer.Reset(wait)
		}
		w.queued = true
		q.waiters = append(q.waiters, w)
		q.armLocked(now)
		q.mu.Unlock()

		select {
		case <-w.wake:
		case <-w.timer.C:
			expired = true
		case <-ctx.Done():
			return nil, fmt.Errorf("receive: %w", ctx.Err())
		case <-q.done:
			return nil, fmt.Errorf("receive: %w", ErrClosed)
		}
	}
}

// releaseWaiter takes w off the wait list, hands on a wake-up it may have
// swallowed, and returns it to the pool.
func (q *Queue) releaseWaiter(w *waiter) {
	w.timer.Stop()
	q.mu.Lock()
	if w.queued {
		for i, x := range q.waiters {
			if x == w {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
		w.queued = false
	}
	select {
	case <-w.wake:
		if q.ready.len > 0 {
			q.wakeLocked(1)
		}
	default:
	}
	q.mu.Unlock()
	q.pool.Put(w)
}

// takeLocked delivers up to max visible messages, and takes out the ones
// that must go to the dead-letter queue instead.
func (q *Queue) takeLocked(now time.Time, max int) (msgs []elastiq.Message, dead []*message) {
	for q.ready.len > 0 && len(msgs) < max {
		m := q.ready.popFront()
		if q.maxReceives > 0 && m.receiveCount >= q.maxReceives {
			delete(q.byID, m.seq)
			dead = append(dead, m)
			continue
		}
		if msgs == nil {
			msgs = make([]elastiq.Message, 0, min(max, q.ready.len+1))
		}
		q.nextGen++
		m.gen = q.nextGen
		m.receiveCount++
		m.visibleAt = now.Add(q.visibility)
		heap.Push(&q.inflight, m)
		body := make([]byte, len(m.body))
		copy(body, m.body)
		msgs = append(msgs, elastiq.Message{
			ID:            m.id,
			Body:          body,
			ReceiptHandle: receipt(m.seq, m.gen),
			ReceiveCount:  m.receiveCount,
		})
	}
	if msgs != nil {
		q.armLocked(now) // other receivers may be waiting already
	}
	return msgs, dead
}

// moveDead sends dead to the dead-letter queue. The messages it could not
// send go back to the front of this queue, receive counts unchanged.
func (q *Queue) moveDead(ctx context.Context, dead []*message) error {
	for i, m := range dead {
		if err := q.deadLetter.Send(ctx, m.body); err != nil {
			q.mu.Lock()
			for j := len(dead) - 1; j >= i; j-- {
				q.byID[dead[j].seq] = dead[j]
				q.ready.pushFront(dead[j])
			}
			q.wakeLocked(len(dead) - i)
			q.mu.Unlock()
			return fmt.Errorf("move %s to dead-letter queue: %w", m.id, err)
		}
	}
	return nil
}

// requeue makes delivered messages visible again as if they had never been
// received: their receipts become invalid.
func (q *Queue) requeue(msgs []elastiq.Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := len(msgs) - 1; i >= 0; i-- {
		m, err := q.lookupLocked(msgs[i].ReceiptHandle)
		if err != nil {
			continue // deleted meanwhile
		}
		q.unlinkLocked(m)
		m.gen = 0
		m.receiveCount--
		q.ready.pushFront(m)
	}
	q.wakeLocked(len(msgs))
}

// Delete removes a received message for good. The receipt must be the one
// of the message's latest delivery.
func (q *Queue) Delete(ctx context.Context, receiptHandle string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m, err := q.lookupLocked(receiptHandle)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	q.unlinkLocked(m)
	delete(q.byID, m.seq)
	return nil
}

// ChangeVisibility makes a received message invisible for timeout from now,
// or visible at once when timeout is zero. It also works on a message whose
// visibility already expired, as long as nobody received it again.
func (q *Queue) ChangeVisibility(ctx context.Context, receiptHandle string, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("change visibility: %w", err)
	}
	if timeout < 0 {
		return fmt.Errorf("change visibility: timeout %v: want zero or more", timeout)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	m, err := q.lookupLocked(receiptHandle)
	if err != nil {
		return fmt.Errorf("change visibility: %w", err)
	}
	q.unlinkLocked(m)
	if timeout == 0 {
		q.ready.pushBack(m)
		q.wakeLocked(1)
		return nil
	}
	now := q.now()
	m.visibleAt = now.Add(timeout)
	heap.Push(&q.inflight, m)
	q.armLocked(now)
	return nil
}

// Stats reports the visible and in-flight counts. Unlike SQS's they are
// exact.
func (q *Queue) Stats(ctx context.Context) (elastiq.QueueStats, error) {
	if err := ctx.Err(); err != nil {
		return elastiq.QueueStats{}, fmt.Errorf("stats: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.promoteLocked(q.now())
	return elastiq.QueueStats{Visible: q.ready.len, InFlight: len(q.inflight)}, nil
}

// lookupLocked returns the message whose current receipt is h.
func (q *Queue) lookupLocked(h string) (*message, error) {
	seq, gen, ok := parseReceipt(h)
	if !ok {
		return nil, fmt.Errorf("receipt %q: %w", h, elastiq.ErrInvalidReceipt)
	}
	m := q.byID[seq]
	if m == nil || m.gen != gen {
		return nil, fmt.Errorf("receipt %q: %w", h, elastiq.ErrInvalidReceipt)
	}
	return m, nil
}

// unlinkLocked takes m out of whichever of ready and inflight holds it.
func (q *Queue) unlinkLocked(m *message) {
	if m.index >= 0 {
		heap.Remove(&q.inflight, m.index)
	} else {
		q.ready.remove(m)
	}
}

// promoteLocked moves the in-flight messages whose visibility expired by
// now back to the visible list and wakes a receiver for each.
func (q *Queue) promoteLocked(now time.Time) {
	n := 0
	for len(q.inflight) > 0 && !q.inflight[0].visibleAt.After(now) {
		m := heap.Pop(&q.inflight).(*message)
		q.ready.pushBack(m)
		n++
	}
	q.wakeLocked(n)
}

// wakeLocked wakes up to n waiting receivers, longest waiting first.
func (q *Queue) wakeLocked(n int) {
	n = min(n, len(q.waiters))
	if n <= 0 {
		return
	}
	for _, w := range q.waiters[:n] {
		w.queued = false
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	rest := copy(q.waiters, q.waiters[n:])
	clear(q.waiters[rest:])
	q.waiters = q.waiters[:rest]
}

// armLocked sets the expiry timer for the earliest in-flight message if
// someone waits for it and the timer is not already set earlier.
func (q *Queue) armLocked(now time.Time) {
	if q.closed || len(q.waiters) == 0 || len(q.inflight) == 0 {
		return
	}
	next := q.inflight[0].visibleAt
	if !q.armedFor.IsZero() && !next.Before(q.armedFor) {
		return
	}
	q.armedFor = next
	q.expiry.Reset(next.Sub(now))
}

func (q *Queue) onExpiry() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.armedFor = time.Time{}
	now := q.now()
	q.promoteLocked(now)
	q.armLocked(now)
}

// Receipt handles are "<message seq>.<generation>" in base 36; the
// generation is unique per delivery.
func receipt(seq, gen uint64) string {
	var b [32]byte
	s := strconv.AppendUint(b[:0], seq, 36)
	s = append(s, '.')
	s = strconv.AppendUint(s, gen, 36)
	return string(s)
}

func parseReceipt(h string) (seq, gen uint64, ok bool) {
	a, b, found := strings.Cut(h, ".")
	if !found {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(a, 36, 64)
	gen, err2 := strconv.ParseUint(b, 36, 64)
	return seq, gen, err1 == nil && err2 == nil && gen != 0
}

// readyList is an intrusive doubly linked FIFO of visible messages.
type readyList struct {
	head, tail *message
	len        int
}

func (l *readyList) pushBack(m *message) {
	m.index = -1
	m.prev, m.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = m
	} else {
		l.head = m
	}
	l.tail = m
	l.len++
}

func (l *readyList) pushFront(m *message) {
	m.index = -1
	m.prev, m.next = nil, l.head
	if l.head != nil {
		l.head.prev = m
	} else {
		l.tail = m
	}
	l.head = m
	l.len++
}

func (l *readyList) popFront() *message {
	m := l.head
	l.remove(m)
	return m
}

func (l *readyList) remove(m *message) {
	if m.prev != nil {
		m.prev.next = m.next
	} else {
		l.head = m.next
	}
	if m.next != nil {
		m.next.prev = m.prev
	} else {
		l.tail = m.prev
	}
	m.prev, m.next = nil, nil
	l.len--
}

// inflightHeap is a min-heap of in-flight messages by visibleAt; each
// message knows its index so it can be removed or fixed in O(log n).
type inflightHeap []*message

func (h inflightHeap) Len() int { return len(h) }
func (h inflightHeap) Less(i, j int) bool {
	if h[i].visibleAt.Equal(h[j].visibleAt) {
		return h[i].seq < h[j].seq
	}
	return h[i].visibleAt.Before(h[j].visibleAt)
}
func (h inflightHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *inflightHeap) Push(x any) {
	m := x.(*message)
	m.index = len(*h)
	*h = append(*h, m)
}
func (h *inflightHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.index = -1
	return m
}
