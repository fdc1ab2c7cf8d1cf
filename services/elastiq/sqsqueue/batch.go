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

// batcher gathers the Sends (or Deletes) that callers make within a window
// into one batch call. It runs no goroutine of its own: the first caller of
// a batch leads it, waiting out the window (or until the batch is full, or
// its context ends), then makes the call and hands each caller its entry's
// result. The others wait for that.
type batcher struct {
	window time.Duration
	// flush makes the batch call and returns one error per entry.
	flush func(ctx context.Context, entries []string) []error

	mu  sync.Mutex
	cur *batch // open to new entries; nil when none
}

type batch struct {
	entries []string
	errs    []error
	full    chan struct{} // closed when the batch reaches maxBatch
	done    chan struct{} // closed when errs are set
}

// do adds entry to the open batch (opening one if needed) and returns its
// result. If ctx ends first, do returns ctx's error while the batch goes on:
// the entry may still be sent or deleted, as with a call whose answer was
// lost.
func (b *batcher) do(ctx context.Context, entry string) error {
	b.mu.Lock()
	bt, lead := b.cur, false
	if bt == nil {
		bt = &batch{full: make(chan struct{}), done: make(chan struct{})}
		b.cur, lead = bt, true
	}
	i := len(bt.entries)
	bt.entries = append(bt.entries, entry)
	if len(bt.entries) == maxBatch {
		b.cur = nil
		close(bt.full)
	}
	b.mu.Unlock()

	if lead {
		t := time.NewTimer(b.window)
		select {
		case <-t.C:
		case <-bt.full:
		case <-ctx.Done():
		}
		t.Stop()
		b.mu.Lock()
		if b.cur == bt {
			b.cur = nil
		}
		b.mu.Unlock()
		// The batch carries other callers' entries: the leader's own end
		// does not cancel it (the call keeps its timeout).
		bt.errs = b.flush(context.WithoutCancel(ctx), bt.entries)
		close(bt.done)
	}
	select {
	case <-bt.done:
		return bt.errs[i]
	case <-ctx.Done():
		return ctx.Err()
	}
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
