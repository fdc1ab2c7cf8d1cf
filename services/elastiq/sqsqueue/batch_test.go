package sqsqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
)

// TestBatchedSends: 25 Sends made at once share batch calls of at most ten,
// and every one succeeds.
func TestBatchedSends(t *testing.T) {
	api := &fakeAPI{}
	q := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{SendWindow: 200 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make([]error, 25)
	for i := range errs {
		wg.Go(func() { errs[i] = q.Send(t.Context(), []byte(fmt.Sprint(i))) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Send: %v", err)
	}
	total := 0
	for _, n := range api.batches {
		if n > 10 {
			t.Errorf("a batch of %d, want at most 10", n)
		}
		total += n
	}
	// Three full or nearly full batches; a slow scheduler may split one.
	if total != 25 || len(api.batches) > 4 {
		t.Errorf("batches = %v, want 25 entries in 3 or 4 calls", api.batches)
	}
}

// TestBatchEntryErrors: each caller gets its own entry's result, mapped as
// a single call's error would be; a failed call fails every entry.
func TestBatchEntryErrors(t *testing.T) {
	api := &fakeAPI{fail: map[string]string{"1": "ReceiptHandleIsInvalid"}}
	q := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{DeleteWindow: time.Hour})
	// A window of an hour: the batch goes when full, so entry i is the
	// i-th Delete to join it, whichever goroutine made it.
	var mu sync.Mutex
	var invalid, ok int
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			err := q.Delete(t.Context(), fmt.Sprint("r", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, elastiq.ErrInvalidReceipt):
				invalid++
			default:
				t.Errorf("Delete: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 9 || invalid != 1 {
		t.Errorf("%d deleted, %d invalid receipts; want 9 and 1", ok, invalid)
	}

	api.err = errors.New("network down")
	api.fail = nil
	for i := range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{SendWindow: 10 * time.Millisecond}).
				Send(ctx, []byte(fmt.Sprint(i))); err == nil || !errors.Is(err, api.err) {
				t.Errorf("Send with the batch call failing = %v, want %v", err, api.err)
			}
		})
	}
	wg.Wait()
}

// TestBatchLeaderCancelled: the caller that leads a batch may give up; the
// others' entries still go.
func TestBatchLeaderCancelled(t *testing.T) {
	api := &fakeAPI{}
	q := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{SendWindow: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	leader := make(chan error, 1)
	go func() { leader <- q.Send(ctx, []byte("leader")) }()
	time.Sleep(10 * time.Millisecond) // the leader opens the batch
	follower := make(chan error, 1)
	go func() { follower <- q.Send(t.Context(), []byte("follower")) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader's Send = %v, want context.Canceled", err)
	}
	if err := <-follower; err != nil {
		t.Errorf("follower's Send = %v, want nil", err)
	}
	if len(api.batches) != 1 || api.batches[0] != 2 {
		t.Errorf("batches = %v, want one of 2", api.batches)
	}
}
