package memqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

var _ elastiq.Queue = (*Queue)(nil)

// testTimeout bounds every wait in these tests; it is a deadline for
// something that should happen at once, never a speed assertion.
const testTimeout = 30 * time.Second

// newFakeQueue makes a queue on a fake clock.
func newFakeQueue(t *testing.T, cfg Config) (*Queue, *elastiqtest.Clock) {
	t.Helper()
	clock := elastiqtest.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg.Now = clock.Now
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = 15 * time.Second
	}
	q := New(cfg)
	t.Cleanup(func() { q.Close() })
	return q, clock
}

func send(t *testing.T, q *Queue, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if err := q.Send(context.Background(), []byte(b)); err != nil {
			t.Fatalf("Send(%q) = %v", b, err)
		}
	}
}

func receive(t *testing.T, q *Queue, max int) []elastiq.Message {
	t.Helper()
	msgs, err := q.Receive(context.Background(), max, 0)
	if err != nil {
		t.Fatalf("Receive(%d, 0) = %v", max, err)
	}
	return msgs
}

func receiveOne(t *testing.T, q *Queue) elastiq.Message {
	t.Helper()
	msgs := receive(t, q, 1)
	if len(msgs) != 1 {
		t.Fatalf("Receive(1, 0) returned %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func wantStats(t *testing.T, q *Queue, want elastiq.QueueStats) {
	t.Helper()
	got, err := q.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats() = %v", err)
	}
	if got != want {
		t.Fatalf("Stats() = %+v, want %+v", got, want)
	}
}

func TestVisibilityExpiryRedelivers(t *testing.T) {
	ctx := context.Background()
	q, clock := newFakeQueue(t, Config{})
	send(t, q, "hello")

	first := receiveOne(t, q)
	if string(first.Body) != "hello" || first.ReceiveCount != 1 {
		t.Fatalf("first delivery = %q count %d, want %q count 1", first.Body, first.ReceiveCount, "hello")
	}
	wantStats(t, q, elastiq.QueueStats{Visible: 0, InFlight: 1})

	clock.Advance(14 * time.Second)
	if msgs := receive(t, q, 10); len(msgs) != 0 {
		t.Fatalf("Receive before the visibility timeout = %d messages, want 0", len(msgs))
	}
	clock.Advance(time.Second)
	wantStats(t, q, elastiq.QueueStats{Visible: 1, InFlight: 0})

	second := receiveOne(t, q)
	if second.ID != first.ID || second.ReceiveCount != 2 {
		t.Fatalf("redelivery = id %s count %d, want id %s count 2", second.ID, second.ReceiveCount, first.ID)
	}
	if second.ReceiptHandle == first.ReceiptHandle {
		t.Fatalf("redelivery reused receipt handle %q", first.ReceiptHandle)
	}
	if err := q.Delete(ctx, first.ReceiptHandle); !errors.Is(err, elastiq.ErrInvalidReceipt) {
		t.Fatalf("Delete(stale receipt) = %v, want ErrInvalidReceipt", err)
	}
	if err := q.Delete(ctx, second.ReceiptHandle); err != nil {
		t.Fatalf("Delete(current receipt) = %v", err)
	}
	wantStats(t, q, elastiq.QueueStats{})
}

func TestExpiredReceiptStaysValidUntilRedelivered(t *testing.T) {
	q, clock := newFakeQueue(t, Config{})
	send(t, q, "late")
	m := receiveOne(t, q)
	clock.Advance(time.Minute)
	wantStats(t, q, elastiq.QueueStats{Visible: 1})
	if err := q.Delete(context.Background(), m.ReceiptHandle); err != nil {
		t.Fatalf("Delete(expired but not redelivered) = %v, want nil", err)
	}
	wantStats(t, q, elastiq.QueueStats{})
}

func TestInvalidReceipts(t *testing.T) {
	ctx := context.Background()
	q, _ := newFakeQueue(t, Config{})
	send(t, q, "a")
	m := receiveOne(t, q)
	if err := q.Delete(ctx, m.ReceiptHandle); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	tests := []struct {
		name    string
		receipt string
	}{
		{name: "deleted", receipt: m.ReceiptHandle},
		{name: "empty", receipt: ""},
		{name: "garbage", receipt: "not-a-receipt"},
		{name: "unknown message", receipt: receipt(999, 1)},
		{name: "generation zero", receipt: receipt(1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := q.Delete(ctx, tt.receipt); !errors.Is(err, elastiq.ErrInvalidReceipt) {
				t.Errorf("Delete(%q) = %v, want ErrInvalidReceipt", tt.receipt, err)
			}
			if err := q.ChangeVisibility(ctx, tt.receipt, time.Second); !errors.Is(err, elastiq.ErrInvalidReceipt) {
				t.Errorf("ChangeVisibility(%q) = %v, want ErrInvalidReceipt", tt.receipt, err)
			}
		})
	}
}

func TestChangeVisibility(t *testing.T) {
	ctx := context.Background()
	t.Run("extends", func(t *testing.T) {
		q, clock := newFakeQueue(t, Config{})
		send(t, q, "slow")
		m := receiveOne(t, q)
		clock.Advance(10 * time.Second)
		if err := q.ChangeVisibility(ctx, m.ReceiptHandle, 30*time.Second); err != nil {
			t.Fatalf("ChangeVisibility(30s) = %v", err)
		}
		clock.Advance(29 * time.Second) // well past the original 15s
		if msgs := receive(t, q, 1); len(msgs) != 0 {
			t.Fatalf("Receive within the extended timeout = %d messages, want 0", len(msgs))
		}
		clock.Advance(time.Second)
		again := receiveOne(t, q)
		if again.ID != m.ID || again.ReceiveCount != 2 {
			t.Fatalf("after the extension: id %s count %d, want id %s count 2", again.ID, again.ReceiveCount, m.ID)
		}
	})
	t.Run("zero releases", func(t *testing.T) {
		q, _ := newFakeQueue(t, Config{})
		send(t, q, "release me")
		m := receiveOne(t, q)
		if err := q.ChangeVisibility(ctx, m.ReceiptHandle, 0); err != nil {
			t.Fatalf("ChangeVisibility(0) = %v", err)
		}
		wantStats(t, q, elastiq.QueueStats{Visible: 1})
		again := receiveOne(t, q)
		if again.ID != m.ID || again.ReceiveCount != 2 {
			t.Fatalf("after release: id %s count %d, want id %s count 2", again.ID, again.ReceiveCount, m.ID)
		}
		if err := q.ChangeVisibility(ctx, m.ReceiptHandle, time.Minute); !errors.Is(err, elastiq.ErrInvalidReceipt) {
			t.Fatalf("ChangeVisibility(old receipt) = %v, want ErrInvalidReceipt", err)
		}
	})
	t.Run("negative", func(t *testing.T) {
		q, _ := newFakeQueue(t, Config{})
		send(t, q, "x")
		m := receiveOne(t, q)
		if err := q.ChangeVisibility(ctx, m.ReceiptHandle, -time.Second); err == nil {
			t.Fatal("ChangeVisibility(-1s) = nil, want an error")
		}
	})
}

// waitForWaiters polls until n receivers are blocked in Receive.
func waitForWaiters(t *testing.T, q *Queue, n int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		q.mu.Lock()
		got := len(q.waiters)
		q.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d receivers waiting after %v, want %d", got, testTimeout, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type receiveResult struct {
	msgs []elastiq.Message
	err  error
}

// receiveAsync starts a long poll far longer than the test's deadline, so
// a result within the deadline means the receiver was woken.
func receiveAsync(ctx context.Context, q *Queue, max int) <-chan receiveResult {
	ch := make(chan receiveResult, 1)
	go func() {
		msgs, err := q.Receive(ctx, max, time.Hour)
		ch <- receiveResult{msgs: msgs, err: err}
	}()
	return ch
}

func awaitResult(t *testing.T, ch <-chan receiveResult) receiveResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatalf("long poll still waiting after %v", testTimeout)
		return receiveResult{}
	}
}

func TestLongPollWakesOnSend(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	ch := receiveAsync(context.Background(), q, 1)
	waitForWaiters(t, q, 1)
	send(t, q, "wake up")
	r := awaitResult(t, ch)
	if r.err != nil || len(r.msgs) != 1 || string(r.msgs[0].Body) != "wake up" {
		t.Fatalf("Receive = %d messages, %v; want %q", len(r.msgs), r.err, "wake up")
	}
}

func TestLongPollWakesOnRelease(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	send(t, q, "again")
	m := receiveOne(t, q)
	ch := receiveAsync(context.Background(), q, 1)
	waitForWaiters(t, q, 1)
	if err := q.ChangeVisibility(context.Background(), m.ReceiptHandle, 0); err != nil {
		t.Fatalf("ChangeVisibility(0) = %v", err)
	}
	r := awaitResult(t, ch)
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].ID != m.ID {
		t.Fatalf("Receive = %d messages, %v; want message %s", len(r.msgs), r.err, m.ID)
	}
}

// TestLongPollWakesOnVisibilityExpiry uses the real clock: the message must
// come back through the expiry timer, since nothing else calls the queue.
func TestLongPollWakesOnVisibilityExpiry(t *testing.T) {
	q := New(Config{VisibilityTimeout: 20 * time.Millisecond})
	defer q.Close()
	send(t, q, "expires")
	m := receiveOne(t, q)
	r := awaitResult(t, receiveAsync(context.Background(), q, 1))
	if r.err != nil || len(r.msgs) != 1 || r.msgs[0].ID != m.ID || r.msgs[0].ReceiveCount != 2 {
		t.Fatalf("Receive = %+v, %v; want message %s with count 2", r.msgs, r.err, m.ID)
	}
}

// TestWaitingReceiverGetsRedelivery: of two receivers waiting on an empty
// queue, one gets the message and lets its visibility expire; the other,
// still waiting, must be woken for the redelivery.
func TestWaitingReceiverGetsRedelivery(t *testing.T) {
	q := New(Config{VisibilityTimeout: 20 * time.Millisecond})
	defer q.Close()
	first, second := receiveAsync(context.Background(), q, 1), receiveAsync(context.Background(), q, 1)
	waitForWaiters(t, q, 2)
	send(t, q, "once")
	var got []elastiq.Message
	for _, r := range []receiveResult{awaitFirst(t, first, second), awaitFirst(t, first, second)} {
		if r.err != nil || len(r.msgs) != 1 {
			t.Fatalf("Receive = %d messages, %v; want 1", len(r.msgs), r.err)
		}
		got = append(got, r.msgs[0])
	}
	if got[0].ID != got[1].ID || got[0].ReceiveCount != 1 || got[1].ReceiveCount != 2 {
		t.Fatalf("deliveries = %+v, want one message delivered twice, counts 1 and 2", got)
	}
}

// awaitFirst returns the first result from a or b.
func awaitFirst(t *testing.T, a, b <-chan receiveResult) receiveResult {
	t.Helper()
	select {
	case r := <-a:
		return r
	case r := <-b:
		return r
	case <-time.After(testTimeout):
		t.Fatalf("long polls still waiting after %v", testTimeout)
		return receiveResult{}
	}
}

func TestManyLongPollersEachGetOne(t *testing.T) {
	const n = 20
	q, _ := newFakeQueue(t, Config{})
	chans := make([]<-chan receiveResult, n)
	for i := range chans {
		chans[i] = receiveAsync(context.Background(), q, 1)
	}
	waitForWaiters(t, q, n)
	for i := range n {
		send(t, q, fmt.Sprint(i))
	}
	seen := map[string]bool{}
	for _, ch := range chans {
		r := awaitResult(t, ch)
		if r.err != nil || len(r.msgs) != 1 {
			t.Fatalf("Receive = %d messages, %v; want 1", len(r.msgs), r.err)
		}
		seen[string(r.msgs[0].Body)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages received, want %d", len(seen), n)
	}
}

func TestLongPollReturnsEmptyAfterWait(t *testing.T) {
	q := New(Config{})
	defer q.Close()
	msgs, err := q.Receive(context.Background(), 10, 20*time.Millisecond)
	if err != nil || len(msgs) != 0 {
		t.Fatalf("Receive(empty queue, 20ms) = %d messages, %v; want none, nil", len(msgs), err)
	}
}

func TestReceiveCancelled(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	ch := receiveAsync(ctx, q, 1)
	waitForWaiters(t, q, 1)
	cancel()
	r := awaitResult(t, ch)
	if !errors.Is(r.err, context.Canceled) || len(r.msgs) != 0 {
		t.Fatalf("Receive after cancel = %d messages, %v; want context.Canceled", len(r.msgs), r.err)
	}
	// The cancelled receiver must not keep a message or a wait slot.
	send(t, q, "after")
	waitForWaiters(t, q, 0)
	if m := receiveOne(t, q); string(m.Body) != "after" {
		t.Fatalf("Receive = %q, want %q", m.Body, "after")
	}

	if _, err := q.Receive(ctx, 1, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestCloseWakesReceivers(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	ch := receiveAsync(context.Background(), q, 1)
	waitForWaiters(t, q, 1)
	q.Close()
	if r := awaitResult(t, ch); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Receive during Close = %v, want ErrClosed", r.err)
	}
	if err := q.Send(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestBatch(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	for i := range 15 {
		send(t, q, fmt.Sprint(i))
	}
	tests := []struct {
		name string
		max  int
		want int
	}{
		{name: "capped at 10", max: 20, want: 10},
		{name: "the rest", max: 10, want: 5},
		{name: "empty", max: 10, want: 0},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := receive(t, q, tt.max)
			if len(msgs) != tt.want {
				t.Fatalf("Receive(%d) = %d messages, want %d", tt.max, len(msgs), tt.want)
			}
			for _, m := range msgs {
				if seen[m.ID] {
					t.Errorf("message %s delivered twice", m.ID)
				}
				seen[m.ID] = true
			}
		})
	}
	if _, err := q.Receive(context.Background(), 0, 0); err == nil {
		t.Fatal("Receive(max 0) = nil error, want an error")
	}
}

func TestFIFOOrder(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	send(t, q, "1", "2", "3")
	var got []string
	for _, m := range receive(t, q, 10) {
		got = append(got, string(m.Body))
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("Receive order = %v, want [1 2 3]", got)
	}
}

func TestSendCopiesBody(t *testing.T) {
	q, _ := newFakeQueue(t, Config{})
	body := []byte("original")
	if err := q.Send(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	copy(body, "XXXXXXXX")
	m := receiveOne(t, q)
	if string(m.Body) != "original" {
		t.Fatalf("Body = %q after the caller changed its slice, want %q", m.Body, "original")
	}
}

func TestDeadLetter(t *testing.T) {
	ctx := context.Background()
	dlq, _ := newFakeQueue(t, Config{})
	q, clock := newFakeQueue(t, Config{MaxReceives: 2, DeadLetter: dlq})
	send(t, q, "poison")
	for want := 1; want <= 2; want++ {
		m := receiveOne(t, q)
		if m.ReceiveCount != want {
			t.Fatalf("ReceiveCount = %d, want %d", m.ReceiveCount, want)
		}
		clock.Advance(time.Minute)
	}
	if msgs := receive(t, q, 10); len(msgs) != 0 {
		t.Fatalf("third Receive = %d messages, want 0 (moved to the dead-letter queue)", len(msgs))
	}
	wantStats(t, q, elastiq.QueueStats{})
	m := receiveOne(t, dlq)
	if string(m.Body) != "poison" || m.ReceiveCount != 1 {
		t.Fatalf("dead letter = %q count %d, want %q count 1", m.Body, m.ReceiveCount, "poison")
	}
	if err := dlq.Delete(ctx, m.ReceiptHandle); err != nil {
		t.Fatal(err)
	}
}

// TestSendReceived: a message restored with its receive count goes on
// counting from it, and reaches the dead-letter queue when it is spent.
func TestSendReceived(t *testing.T) {
	ctx := context.Background()
	dlq, _ := newFakeQueue(t, Config{})
	q, clock := newFakeQueue(t, Config{MaxReceives: 3, DeadLetter: dlq})
	if err := q.SendReceived(ctx, []byte("restored"), 2); err != nil {
		t.Fatal(err)
	}
	if err := q.SendReceived(ctx, []byte("spent"), 3); err != nil {
		t.Fatal(err)
	}
	msgs := receive(t, q, 10)
	if len(msgs) != 1 || string(msgs[0].Body) != "restored" || msgs[0].ReceiveCount != 3 {
		t.Fatalf("Receive = %+v, want only %q, count 3", msgs, "restored")
	}
	clock.Advance(time.Minute)
	if msgs := receive(t, q, 10); len(msgs) != 0 {
		t.Fatalf("Receive after the last delivery = %d messages, want 0", len(msgs))
	}
	for range 2 {
		m := receiveOne(t, dlq)
		if err := dlq.Delete(ctx, m.ReceiptHandle); err != nil {
			t.Fatal(err)
		}
	}
}

// failingQueue is a test double for a dead-letter queue that is down.
type failingQueue struct{ elastiq.Queue }

var _ elastiq.Queue = failingQueue{}

func (failingQueue) Send(context.Context, []byte) error { return errors.New("dead-letter queue down") }

func TestDeadLetterFailureKeepsMessage(t *testing.T) {
	q, clock := newFakeQueue(t, Config{MaxReceives: 1, DeadLetter: failingQueue{}})
	send(t, q, "poison", "good")
	receive(t, q, 10)
	clock.Advance(time.Minute)
	if _, err := q.Receive(context.Background(), 10, 0); err == nil {
		t.Fatal("Receive with a failing dead-letter queue = nil error, want an error")
	}
	wantStats(t, q, elastiq.QueueStats{Visible: 2})
}

// TestConcurrentExactlyOnce sends from several goroutines and receives from
// several others; with a visibility timeout longer than the test and every
// delete succeeding, each message is processed exactly once.
func TestConcurrentExactlyOnce(t *testing.T) {
	const senders, perSender, receivers = 4, 250, 8
	const total = senders * perSender
	q := New(Config{VisibilityTimeout: time.Hour})
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var mu sync.Mutex
	counts := make(map[string]int, total)
	processed := 0
	done := make(chan struct{})

	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range perSender {
				if err := q.Send(ctx, fmt.Appendf(nil, "%d-%d", s, i)); err != nil {
					t.Errorf("Send = %v", err)
					return
				}
			}
		})
	}
	for range receivers {
		wg.Go(func() {
			for i := 0; ; i++ {
				msgs, err := q.Receive(ctx, 1+i%10, time.Hour)
				if err != nil {
					select {
					case <-done:
					default:
						t.Errorf("Receive = %v", err)
					}
					return
				}
				for _, m := range msgs {
					if err := q.Delete(ctx, m.ReceiptHandle); err != nil {
						t.Errorf("Delete = %v", err)
					}
					mu.Lock()
					counts[string(m.Body)]++
					processed++
					if processed == total {
						close(done)
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(counts) != total || processed != total {
		t.Fatalf("processed %d deliveries of %d distinct messages, want %d of %d", processed, len(counts), total, total)
	}
	for body, n := range counts {
		if n != 1 {
			t.Errorf("message %s processed %d times, want 1", body, n)
		}
	}
	wantStats(t, q, elastiq.QueueStats{})
}
