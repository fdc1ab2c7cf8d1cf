package sqsqueue_test

// Unit tests with a test double of the SQS client: error mapping, input and
// output conversion, and call timeouts. What SQS itself does is tested in
// integration_test.go against moto.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
)

// fakeAPI is a test double of the SQS client. Every call records its input
// and how long its context had left, and returns err if set, else the
// canned output.
type fakeAPI struct {
	err      error
	messages []types.Message
	attrs    map[string]string

	receive   *sqs.ReceiveMessageInput
	change    *sqs.ChangeMessageVisibilityInput
	remaining time.Duration // until the last call's context deadline

	mu          sync.Mutex
	batches     []int             // entries of each batch call, in order
	fail        map[string]string // batch entry ID -> error code to fail it with
	batchDelay  time.Duration     // each batch call takes this long
	inFlight    int
	maxInFlight int // the most batch calls in flight at once
}

var _ sqsqueue.API = (*fakeAPI)(nil)

func (f *fakeAPI) called(ctx context.Context) error {
	f.remaining = 0
	if d, ok := ctx.Deadline(); ok {
		f.remaining = time.Until(d)
	}
	return f.err
}

func (f *fakeAPI) SendMessage(ctx context.Context, _ *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if err := f.called(ctx); err != nil {
		return nil, err
	}
	return &sqs.SendMessageOutput{MessageId: aws.String("m1")}, nil
}

func (f *fakeAPI) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.receive = in
	if err := f.called(ctx); err != nil {
		return nil, err
	}
	return &sqs.ReceiveMessageOutput{Messages: f.messages}, nil
}

func (f *fakeAPI) DeleteMessage(ctx context.Context, _ *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	if err := f.called(ctx); err != nil {
		return nil, err
	}
	return &sqs.DeleteMessageOutput{}, nil
}

func (f *fakeAPI) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.change = in
	if err := f.called(ctx); err != nil {
		return nil, err
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (f *fakeAPI) GetQueueAttributes(ctx context.Context, _ *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if err := f.called(ctx); err != nil {
		return nil, err
	}
	return &sqs.GetQueueAttributesOutput{Attributes: f.attrs}, nil
}

func (f *fakeAPI) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = aws.ToString(e.Id)
	}
	ok, failed, err := f.batch(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := &sqs.SendMessageBatchOutput{Failed: failed}
	for _, id := range ok {
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: aws.String(id)})
	}
	return out, nil
}

func (f *fakeAPI) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	ids := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = aws.ToString(e.Id)
	}
	ok, failed, err := f.batch(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := &sqs.DeleteMessageBatchOutput{Failed: failed}
	for _, id := range ok {
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: aws.String(id)})
	}
	return out, nil
}

// batch records a batch call of the entries ids and splits them by f.fail.
func (f *fakeAPI) batch(ctx context.Context, ids []string) (ok []string, failed []types.BatchResultErrorEntry, err error) {
	f.mu.Lock()
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.mu.Unlock()
	time.Sleep(f.batchDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	f.batches = append(f.batches, len(ids))
	if err := f.called(ctx); err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		if code, bad := f.fail[id]; bad {
			failed = append(failed, types.BatchResultErrorEntry{Id: aws.String(id), Code: aws.String(code), SenderFault: true})
		} else {
			ok = append(ok, id)
		}
	}
	return ok, failed, nil
}

// ops calls each Queue method once.
var ops = []struct {
	name string
	call func(ctx context.Context, q *sqsqueue.Queue) error
}{
	{name: "Send", call: func(ctx context.Context, q *sqsqueue.Queue) error { return q.Send(ctx, []byte("x")) }},
	{name: "Receive", call: func(ctx context.Context, q *sqsqueue.Queue) error { _, err := q.Receive(ctx, 1, 0); return err }},
	{name: "Delete", call: func(ctx context.Context, q *sqsqueue.Queue) error { return q.Delete(ctx, "h") }},
	{name: "ChangeVisibility", call: func(ctx context.Context, q *sqsqueue.Queue) error {
		return q.ChangeVisibility(ctx, "h", time.Second)
	}},
	{name: "Stats", call: func(ctx context.Context, q *sqsqueue.Queue) error { _, err := q.Stats(ctx); return err }},
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // nil: neither ErrInvalidReceipt nor ErrNotFound
	}{
		{name: "ReceiptHandleIsInvalid", err: &types.ReceiptHandleIsInvalid{Message: aws.String("The input receipt handle is invalid.")}, want: elastiq.ErrInvalidReceipt},
		{name: "MessageNotInflight", err: &types.MessageNotInflight{}, want: elastiq.ErrInvalidReceipt},
		{name: "expired receipt (AWS)", err: &smithy.GenericAPIError{
			Code:    "InvalidParameterValue",
			Message: "Value AQEB for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.",
		}, want: elastiq.ErrInvalidReceipt},
		{name: "other InvalidParameterValue", err: &smithy.GenericAPIError{
			Code:    "InvalidParameterValue",
			Message: "Value 50000 for parameter VisibilityTimeout is invalid.",
		}},
		{name: "QueueDoesNotExist", err: &types.QueueDoesNotExist{}, want: elastiq.ErrNotFound},
		{name: "NonExistentQueue code", err: &smithy.GenericAPIError{Code: "AWS.SimpleQueueService.NonExistentQueue"}, want: elastiq.ErrNotFound},
		{name: "throttled", err: &types.RequestThrottled{}},
		{name: "not an API error", err: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		for _, op := range ops {
			t.Run(tt.name+"/"+op.name, func(t *testing.T) {
				q := sqsqueue.New(&fakeAPI{err: tt.err}, "url", sqsqueue.Options{})
				err := op.call(t.Context(), q)
				if !errors.Is(err, tt.err) {
					t.Errorf("%s() = %v, want the SDK error %v in the chain", op.name, err, tt.err)
				}
				for _, sentinel := range []error{elastiq.ErrInvalidReceipt, elastiq.ErrNotFound} {
					if got := errors.Is(err, sentinel); got != (sentinel == tt.want) {
						t.Errorf("errors.Is(%s() = %v, %v) = %t, want %t", op.name, err, sentinel, got, !got)
					}
				}
			})
		}
	}
}

func TestReceiveInput(t *testing.T) {
	const timeout = 3 * time.Second
	tests := []struct {
		name     string
		max      int
		wait     time.Duration
		wantMax  int32
		wantWait int32
	}{
		{name: "short poll", max: 1, wait: 0, wantMax: 1, wantWait: 0},
		{name: "sub-second wait rounds up", max: 5, wait: time.Millisecond, wantMax: 5, wantWait: 1},
		{name: "fraction rounds up", max: 10, wait: 1500 * time.Millisecond, wantMax: 10, wantWait: 2},
		{name: "max wait", max: 10, wait: 20 * time.Second, wantMax: 10, wantWait: 20},
		{name: "wait cut at 20 s, max at 10", max: 25, wait: time.Minute, wantMax: 10, wantWait: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{}
			q := sqsqueue.New(f, "url", sqsqueue.Options{Timeout: timeout})
			if _, err := q.Receive(t.Context(), tt.max, tt.wait); err != nil {
				t.Fatalf("Receive: %v", err)
			}
			in := f.receive
			if in.MaxNumberOfMessages != tt.wantMax || in.WaitTimeSeconds != tt.wantWait {
				t.Errorf("Receive(%d, %v) sent MaxNumberOfMessages %d WaitTimeSeconds %d, want %d and %d",
					tt.max, tt.wait, in.MaxNumberOfMessages, in.WaitTimeSeconds, tt.wantMax, tt.wantWait)
			}
			if aws.ToString(in.QueueUrl) != "url" {
				t.Errorf("QueueUrl = %q, want %q", aws.ToString(in.QueueUrl), "url")
			}
			if len(in.MessageSystemAttributeNames) != 1 || in.MessageSystemAttributeNames[0] != types.MessageSystemAttributeNameApproximateReceiveCount {
				t.Errorf("MessageSystemAttributeNames = %v, want [ApproximateReceiveCount]", in.MessageSystemAttributeNames)
			}
			// The call's deadline is the poll plus the timeout.
			poll := time.Duration(tt.wantWait) * time.Second
			if f.remaining <= poll || f.remaining > poll+timeout {
				t.Errorf("Receive(..., %v) call had %v left, want in (%v, %v]", tt.wait, f.remaining, poll, poll+timeout)
			}
		})
	}
	t.Run("max 0", func(t *testing.T) {
		q := sqsqueue.New(&fakeAPI{}, "url", sqsqueue.Options{})
		if _, err := q.Receive(t.Context(), 0, 0); err == nil {
			t.Errorf("Receive(0, 0) = nil error, want one")
		}
	})
}

func TestCallTimeout(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{name: "default", timeout: 0, want: sqsqueue.DefaultTimeout},
		{name: "set", timeout: 2 * time.Second, want: 2 * time.Second},
	} {
		for _, op := range ops {
			t.Run(tt.name+"/"+op.name, func(t *testing.T) {
				f := &fakeAPI{attrs: map[string]string{"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}}
				q := sqsqueue.New(f, "url", sqsqueue.Options{Timeout: tt.timeout})
				if err := op.call(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				if f.remaining <= 0 || f.remaining > tt.want {
					t.Errorf("%s call had %v left, want in (0, %v]", op.name, f.remaining, tt.want)
				}
			})
		}
	}
}

func TestReceiveConversion(t *testing.T) {
	msg := func(count string) types.Message {
		m := types.Message{MessageId: aws.String("id-1"), Body: aws.String(`{"a":1}`), ReceiptHandle: aws.String("rh-1")}
		if count != "" {
			m.Attributes = map[string]string{"ApproximateReceiveCount": count}
		}
		return m
	}
	tests := []struct {
		name    string
		in      types.Message
		want    elastiq.Message
		wantErr bool
	}{
		{name: "ok", in: msg("3"), want: elastiq.Message{ID: "id-1", Body: []byte(`{"a":1}`), ReceiptHandle: "rh-1", ReceiveCount: 3}},
		{name: "no receive count", in: msg(""), wantErr: true},
		{name: "bad receive count", in: msg("many"), wantErr: true},
		{name: "zero receive count", in: msg("0"), wantErr: true},
		{name: "no receipt handle", in: types.Message{MessageId: aws.String("id-1"), Attributes: map[string]string{"ApproximateReceiveCount": "1"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := sqsqueue.New(&fakeAPI{messages: []types.Message{tt.in}}, "url", sqsqueue.Options{})
			got, err := q.Receive(t.Context(), 1, 0)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Receive() = %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if len(got) != 1 || got[0].ID != tt.want.ID || string(got[0].Body) != string(tt.want.Body) ||
				got[0].ReceiptHandle != tt.want.ReceiptHandle || got[0].ReceiveCount != tt.want.ReceiveCount {
				t.Fatalf("Receive() = %+v, want [%+v]", got, tt.want)
			}
		})
	}
}

func TestStatsConversion(t *testing.T) {
	tests := []struct {
		name    string
		attrs   map[string]string
		want    elastiq.QueueStats
		wantErr bool
	}{
		{name: "ok", attrs: map[string]string{"ApproximateNumberOfMessages": "7", "ApproximateNumberOfMessagesNotVisible": "2"}, want: elastiq.QueueStats{Visible: 7, InFlight: 2}},
		{name: "missing in flight", attrs: map[string]string{"ApproximateNumberOfMessages": "7"}, wantErr: true},
		{name: "not a number", attrs: map[string]string{"ApproximateNumberOfMessages": "x", "ApproximateNumberOfMessagesNotVisible": "2"}, wantErr: true},
		{name: "negative", attrs: map[string]string{"ApproximateNumberOfMessages": "-1", "ApproximateNumberOfMessagesNotVisible": "2"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := sqsqueue.New(&fakeAPI{attrs: tt.attrs}, "url", sqsqueue.Options{})
			got, err := q.Stats(t.Context())
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Stats() = %+v, %v; want %+v, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestChangeVisibilityInput(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    int32
		wantErr bool
	}{
		{name: "release", timeout: 0, want: 0},
		{name: "rounds up", timeout: 1100 * time.Millisecond, want: 2},
		{name: "max", timeout: sqsqueue.MaxVisibility, want: 43200},
		{name: "over max", timeout: sqsqueue.MaxVisibility + time.Second, wantErr: true},
		{name: "negative", timeout: -time.Second, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{}
			q := sqsqueue.New(f, "url", sqsqueue.Options{})
			err := q.ChangeVisibility(t.Context(), "rh", tt.timeout)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ChangeVisibility(%v) = nil, want an error", tt.timeout)
				}
				return
			}
			if err != nil {
				t.Fatalf("ChangeVisibility(%v): %v", tt.timeout, err)
			}
			if f.change.VisibilityTimeout != tt.want || aws.ToString(f.change.ReceiptHandle) != "rh" {
				t.Errorf("ChangeVisibility(%v) sent VisibilityTimeout %d receipt %q, want %d and %q",
					tt.timeout, f.change.VisibilityTimeout, aws.ToString(f.change.ReceiptHandle), tt.want, "rh")
			}
		})
	}
}
