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
// one in flight at a time, and every one succeeds.
func TestBatchedSends(t *testing.T) {
	api := &fakeAPI{batchDelay: 20 * time.Millisecond}
	q := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{BatchSends: true})
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
	// The first call takes what has arrived (maybe only one); the rest
	// gather while it is in flight: 3 full or nearly full batches after
	// it, or one more if the scheduler is slow.
	if total != 25 || len(api.batches) > 5 || api.maxInFlight > 1 {
		t.Errorf("batches = %v (at most %d at once), want 25 entries in at most 5 calls, one at a time",
			api.batches, api.maxInFlight)
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
			if err := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{BatchSends: true}).
				Send(ctx, []byte(fmt.Sprint(i))); err == nil || !errors.Is(err, api.err) {
				t.Errorf("Send with the batch call failing = %v, want %v", err, api.err)
			}
		})
	}
	wg.Wait()
}

// TestBatchFirstCancelled: the caller that opened a batch may give up; the
// others' entries still go, in the same call.
func TestBatchFirstCancelled(t *testing.T) {
	api := &fakeAPI{}
	q := sqsqueue.New(api, "https://sqs.test/q", sqsqueue.Options{DeleteWindow: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- q.Delete(ctx, "first") }()
	time.Sleep(10 * time.Millisecond) // the first opens the batch
	second := make(chan error, 1)
	go func() { second <- q.Delete(t.Context(), "second") }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first Delete = %v, want context.Canceled", err)
	}
	if err := <-second; err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if len(api.batches) != 1 || api.batches[0] != 2 {
		t.Errorf("batches = %v, want one of 2", api.batches)
	}
}
