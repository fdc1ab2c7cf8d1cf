package sqsqueue

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// maxBatch is the most entries one SendMessageBatch or DeleteMessageBatch
// takes.
const maxBatch = 10

// batcher gathers Sends (or Deletes) into batch calls, one call in flight at
// a time: the entries that arrive while a call is in flight go together in
// the next one (up to ten), so a lone call waits for nothing and a burst
// shares calls. With a window, a batch also waits up to the window from its
// first entry (or until it is full) before it goes, for calls that no one
// waits on (deletes). Each batch is led by a goroutine that lives until its
// call returns.
type batcher struct {
	window time.Duration
	// flush makes the batch call and returns one error per entry.
	flush func(ctx context.Context, entries []string) []error
	// inFlight holds a token while a batch call is in flight.
	inFlight chan struct{}

	mu  sync.Mutex
	cur *batch // open to new entries; nil when none
}

type batch struct {
	entries []string
	errs    []error
	full    chan struct{} // closed when the batch reaches maxBatch
	done    chan struct{} // closed when errs are set
}

func newBatcher(window time.Duration, flush func(context.Context, []string) []error) *batcher {
	return &batcher{window: window, flush: flush, inFlight: make(chan struct{}, 1)}
}

// do adds entry to the open batch (opening one if needed) and returns its
// result. If ctx ends first, do returns ctx's error while the batch goes on:
// the entry may still be sent or deleted, as with a call whose answer was
// lost.
func (b *batcher) do(ctx context.Context, entry string) error {
	b.mu.Lock()
	bt := b.cur
	if bt == nil {
		bt = &batch{full: make(chan struct{}), done: make(chan struct{})}
		b.cur = bt
		// The batch carries other callers' entries too: the first one's
		// end does not cancel it (the call keeps the queue's timeout).
		go b.lead(context.WithoutCancel(ctx), bt)
	}
	i := len(bt.entries)
	bt.entries = append(bt.entries, entry)
	if len(bt.entries) == maxBatch {
		b.cur = nil
		close(bt.full)
	}
	b.mu.Unlock()
	select {
	case <-bt.done:
		return bt.errs[i]
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lead sends bt once its window is over (or it is full) and no other call
// is in flight.
func (b *batcher) lead(ctx context.Context, bt *batch) {
	if b.window > 0 {
		t := time.NewTimer(b.window)
		select {
		case <-t.C:
		case <-bt.full:
		}
		t.Stop()
	}
	b.inFlight <- struct{}{}
	defer func() { <-b.inFlight }()
	b.mu.Lock()
	if b.cur == bt {
		b.cur = nil
	}
	entries := bt.entries
	b.mu.Unlock()
	bt.errs = b.flush(ctx, entries)
	close(bt.done)
}

// sendBatch sends bodies with one SendMessageBatch.
func (q *Queue) sendBatch(ctx context.Context, bodies []string) []error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	entries := make([]types.SendMessageBatchRequestEntry, len(bodies))
	for i, b := range bodies {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b)}
	}
	out, err := q.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return allErrs(len(bodies), fmt.Errorf("send: %w", mapError(err)))
	}
	ok := make([]string, len(out.Successful))
	for i, s := range out.Successful {
		ok[i] = aws.ToString(s.Id)
	}
	return entryErrs(len(bodies), "send", ok, out.Failed)
}

// deleteBatch deletes the messages of receipts with one DeleteMessageBatch.
func (q *Queue) deleteBatch(ctx context.Context, receipts []string) []error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	entries := make([]types.DeleteMessageBatchRequestEntry, len(receipts))
	for i, r := range receipts {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r)}
	}
	out, err := q.api.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		return allErrs(len(receipts), fmt.Errorf("delete: %w", mapError(err)))
	}
	ok := make([]string, len(out.Successful))
	for i, s := range out.Successful {
		ok[i] = aws.ToString(s.Id)
	}
	return entryErrs(len(receipts), "delete", ok, out.Failed)
}

func allErrs(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// entryErrs turns a batch answer into one error per entry (entries are
// identified by their index): nil for the successful ones, the entry's
// error, mapped as a single call's would be, for the failed ones, and an
// error for any entry the answer does not mention.
func entryErrs(n int, op string, successful []string, failed []types.BatchResultErrorEntry) []error {
	errs := allErrs(n, fmt.Errorf("%s: the batch answer has no result for this entry", op))
	for _, id := range successful {
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < n {
			errs[i] = nil
		}
	}
	for _, f := range failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= n {
			continue
		}
		apiErr := &smithy.GenericAPIError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message)}
		if !f.SenderFault {
			apiErr.Fault = smithy.FaultServer
		}
		errs[i] = fmt.Errorf("%s: %w", op, mapError(apiErr))
	}
	return errs
}
