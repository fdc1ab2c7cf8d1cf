// Package sqsqueue is an elastiq.Queue on Amazon SQS (or an SQS-compatible
// server such as moto), through aws-sdk-go-v2.
//
// The queue uses seven SQS calls, declared as the small interface API so
// that tests can put a double in place of the SDK client. SDK types stay inside
// this package: callers see elastiq.Message, elastiq.QueueStats and errors
// that wrap elastiq.ErrInvalidReceipt or elastiq.ErrNotFound.
//
// Every call is bounded by Options.Timeout; a long-polling Receive gets its
// wait on top of it.
//
// Sends and Deletes can be batched (Options.BatchSends, DeleteWindow):
// one batch call at a time, SendMessageBatch or DeleteMessageBatch of up to
// ten, carries what was asked while the previous one was in flight, each
// caller still getting its own result. A lone Send waits for nothing; a
// burst of them shares calls, which SQS bills as one request each.
package sqsqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/elastiq/elastiq/services/elastiq"
)

// SQS limits.
const (
	// MaxVisibility is the longest visibility timeout SQS allows.
	MaxVisibility = 12 * time.Hour
)

// DefaultDeleteWindow is the programs' default -delete-window: how long a
// Delete, which no answer waits on, may wait for others to share its batch
// call.
const DefaultDeleteWindow = 250 * time.Millisecond

// DeleteWindowUsage is the -delete-window flag's usage text.
const DeleteWindowUsage = "how long a delete of an SQS message may wait for others to share a batch call (0: no wait)"

// DefaultTimeout bounds each call when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// API is the part of the SQS client the queue uses; *sqs.Client has it.
type API interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

var _ API = (*sqs.Client)(nil)

// Options configure a Queue. The zero value is usable.
type Options struct {
	// Timeout bounds each SQS call, retries included. A Receive may take
	// its wait longer. Default DefaultTimeout.
	Timeout time.Duration
	// BatchSends sends in batch calls, one at a time, what was sent while
	// the previous call was in flight (see the package comment).
	BatchSends bool
	// DeleteWindow, when positive, batches the Deletes the same way, each
	// batch also waiting up to DeleteWindow for more. Zero: one call each.
	DeleteWindow time.Duration
}

// Queue is one SQS queue. It is safe for concurrent use and holds no
// goroutines, so it needs no Close.
type Queue struct {
	api     API
	url     string
	timeout time.Duration
	// sends and deletes batch the calls; nil without a window.
	sends, deletes *batcher
}

var _ elastiq.Queue = (*Queue)(nil)

// New returns the queue at queueURL, reached through api. It makes no call.
func New(api API, queueURL string, opts Options) *Queue {
	q := &Queue{api: api, url: queueURL, timeout: callTimeout(opts)}
	if opts.BatchSends {
		q.sends = newBatcher(0, q.sendBatch)
	}
	if opts.DeleteWindow > 0 {
		q.deletes = newBatcher(opts.DeleteWindow, q.deleteBatch)
	}
	return q
}

// Open returns the queue at queueURL with an SQS client made from cfg, after
// checking that the queue exists (a missing queue is a wrapped
// elastiq.ErrNotFound).
func Open(ctx context.Context, cfg aws.Config, queueURL string, opts Options) (*Queue, error) {
	q := New(sqs.NewFromConfig(cfg), queueURL, opts)
	if _, err := q.Stats(ctx); err != nil {
		return nil, fmt.Errorf("open queue %s: %w", queueURL, err)
	}
	return q, nil
}

// URL is the queue's URL.
func (q *Queue) URL() string { return q.url }

// Send enqueues one message body. SQS takes bodies of valid Unicode text
// (XML characters) only; the elastiq messages are JSON.
func (q *Queue) Send(ctx context.Context, body []byte) error {
	if q.sends != nil {
		return q.sends.do(ctx, string(body))
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	_, err := q.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(q.url),
		MessageBody: aws.String(string(body)),
	})
	if err != nil {
		return fmt.Errorf("send: %w", mapError(err))
	}
	return nil
}

// Receive returns up to max (at most elastiq.MaxReceiveBatch) messages, long-polling up to
// wait for the first one. SQS waits in whole seconds up to elastiq.MaxReceiveWait: a wait
// is rounded up to the next second (so a short wait never becomes a busy
// loop of short polls) and cut at elastiq.MaxReceiveWait; zero asks for a short poll.
func (q *Queue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	if max < 1 {
		return nil, fmt.Errorf("receive: max %d: want at least 1", max)
	}
	secs := waitSeconds(wait)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+q.timeout)
	defer cancel()
	out, err := q.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(q.url),
		MaxNumberOfMessages:         int32(min(max, elastiq.MaxReceiveBatch)),
		WaitTimeSeconds:             secs,
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		return nil, fmt.Errorf("receive: %w", mapError(err))
	}
	if len(out.Messages) == 0 {
		return nil, nil
	}
	msgs := make([]elastiq.Message, len(out.Messages))
	for i, m := range out.Messages {
		if msgs[i], err = toMessage(m); err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
	}
	return msgs, nil
}

// waitSeconds is wait as SQS's WaitTimeSeconds: whole seconds, rounded up,
// 0..20.
func waitSeconds(wait time.Duration) int32 {
	if wait <= 0 {
		return 0
	}
	if wait >= elastiq.MaxReceiveWait {
		return int32(elastiq.MaxReceiveWait / time.Second)
	}
	return int32(ceilSeconds(wait))
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

func toMessage(m types.Message) (elastiq.Message, error) {
	msg := elastiq.Message{
		ID:            aws.ToString(m.MessageId),
		Body:          []byte(aws.ToString(m.Body)),
		ReceiptHandle: aws.ToString(m.ReceiptHandle),
	}
	if msg.ReceiptHandle == "" {
		return elastiq.Message{}, fmt.Errorf("message %s: no receipt handle", msg.ID)
	}
	name := string(types.MessageSystemAttributeNameApproximateReceiveCount)
	s, ok := m.Attributes[name]
	if !ok {
		return elastiq.Message{}, fmt.Errorf("message %s: no %s attribute", msg.ID, name)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return elastiq.Message{}, fmt.Errorf("message %s: %s %q: want a positive integer", msg.ID, name, s)
	}
	msg.ReceiveCount = n
	return msg, nil
}

// Delete removes a received message. A receipt handle SQS rejects as
// invalid is a wrapped elastiq.ErrInvalidReceipt. SQS accepts a handle of a
// message that was already deleted, and may accept one that is no longer
// the newest (the message then may or may not be deleted); see the package
// tests for what moto does.
func (q *Queue) Delete(ctx context.Context, receiptHandle string) error {
	if q.deletes != nil {
		return q.deletes.do(ctx, receiptHandle)
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	_, err := q.api.DeleteMessage(ctx, &sqs.DeleteMessageInput{
		QueueUrl:      aws.String(q.url),
		ReceiptHandle: aws.String(receiptHandle),
	})
	if err != nil {
		return fmt.Errorf("delete: %w", mapError(err))
	}
	return nil
}

// ChangeVisibility makes a received message invisible for timeout from now
// (whole seconds, rounded up, at most MaxVisibility); zero makes it visible
// at once. A message that is no longer in flight under this handle (deleted,
// or visible again) is a wrapped elastiq.ErrInvalidReceipt.
func (q *Queue) ChangeVisibility(ctx context.Context, receiptHandle string, timeout time.Duration) error {
	if timeout < 0 || timeout > MaxVisibility {
		return fmt.Errorf("change visibility: timeout %v: want 0..%v", timeout, MaxVisibility)
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	_, err := q.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(q.url),
		ReceiptHandle:     aws.String(receiptHandle),
		VisibilityTimeout: int32(ceilSeconds(timeout)),
	})
	if err != nil {
		return fmt.Errorf("change visibility: %w", mapError(err))
	}
	return nil
}

// Stats reports SQS's approximate counts: ApproximateNumberOfMessages
// (visible) and ApproximateNumberOfMessagesNotVisible (in flight).
func (q *Queue) Stats(ctx context.Context) (elastiq.QueueStats, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	out, err := q.api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return elastiq.QueueStats{}, fmt.Errorf("stats: %w", mapError(err))
	}
	var st elastiq.QueueStats
	for _, a := range []struct {
		name types.QueueAttributeName
		dst  *int
	}{
		{name: types.QueueAttributeNameApproximateNumberOfMessages, dst: &st.Visible},
		{name: types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, dst: &st.InFlight},
	} {
		if *a.dst, err = intAttribute(out.Attributes, a.name); err != nil {
			return elastiq.QueueStats{}, fmt.Errorf("stats: %w", err)
		}
	}
	return st, nil
}

func intAttribute(attrs map[string]string, name types.QueueAttributeName) (int, error) {
	s, ok := attrs[string(name)]
	if !ok {
		return 0, fmt.Errorf("no %s attribute", name)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a non-negative integer", name, s)
	}
	return n, nil
}

// mapError wraps the elastiq error an SQS error stands for, keeping the SQS
// error in the chain too:
//   - ReceiptHandleIsInvalid, MessageNotInflight, and InvalidParameterValue
//     about the ReceiptHandle (what SQS answers ChangeMessageVisibility for an
//     expired or unknown handle) -> elastiq.ErrInvalidReceipt;
//   - QueueDoesNotExist (AWS.SimpleQueueService.NonExistentQueue) ->
//     elastiq.ErrNotFound.
func mapError(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	var (
		invalid    *types.ReceiptHandleIsInvalid
		notInflght *types.MessageNotInflight
		noQueue    *types.QueueDoesNotExist
	)
	switch {
	case errors.As(err, &invalid), errors.As(err, &notInflght),
		apiErr.ErrorCode() == "ReceiptHandleIsInvalid",
		apiErr.ErrorCode() == "MessageNotInflight",
		apiErr.ErrorCode() == "InvalidParameterValue" && strings.Contains(apiErr.ErrorMessage(), "ReceiptHandle"):
		return fmt.Errorf("%w: %w", elastiq.ErrInvalidReceipt, err)
	case errors.As(err, &noQueue),
		apiErr.ErrorCode() == "AWS.SimpleQueueService.NonExistentQueue":
		return fmt.Errorf("%w: %w", elastiq.ErrNotFound, err)
	}
	return err
}
