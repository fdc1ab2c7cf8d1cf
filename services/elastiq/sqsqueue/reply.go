package sqsqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Reply queues. With several web instances, each has a response queue of
// its own, <prefix><random>, which every request it sends names
// (elastiq.Request.ReplyTo), so a result comes back to the instance whose
// client waits for it. The instance creates its queue at start
// (CreateReplyQueue), marks it alive with a tag every heartbeat
// (KeepAlive; ReplyHeartbeat by default) and deletes it when it stops. A queue whose instance died
// without deleting it is deleted by SweepReplyQueues (run by the scaler,
// once per deployment) when its mark is older than the expiry: nothing
// accumulates. Its results are lost with it, but not the requests: the
// workers wrote them to output/, where any instance finds them.

// AliveTag is the tag of a reply queue that holds when its instance last
// said it was alive (Unix seconds).
const AliveTag = "elastiq:alive"

// ReplyHeartbeat is how often a web instance marks its queue alive by
// default; DefaultReplyExpiry how old a mark must be for the sweep to
// delete the queue: ten missed heartbeats.
const (
	ReplyHeartbeat     = time.Minute
	DefaultReplyExpiry = 10 * ReplyHeartbeat
)

// replyRetention is how long a result waits in a reply queue: nobody waits
// that long for one (the sync timeout is a minute), and output/ keeps it.
const replyRetention = time.Hour

// maxNameLength is SQS's limit on a queue name.
const maxNameLength = 80

// ReplyAPI is the part of the SQS client that manages reply queues;
// *sqs.Client has it.
type ReplyAPI interface {
	CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, optFns ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	DeleteQueue(ctx context.Context, in *sqs.DeleteQueueInput, optFns ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error)
	TagQueue(ctx context.Context, in *sqs.TagQueueInput, optFns ...func(*sqs.Options)) (*sqs.TagQueueOutput, error)
	ListQueues(ctx context.Context, in *sqs.ListQueuesInput, optFns ...func(*sqs.Options)) (*sqs.ListQueuesOutput, error)
	ListQueueTags(ctx context.Context, in *sqs.ListQueueTagsInput, optFns ...func(*sqs.Options)) (*sqs.ListQueueTagsOutput, error)
}

var _ ReplyAPI = (*sqs.Client)(nil)

// ValidateReplyPrefix checks that prefix can start a queue name with room
// for the random part.
func ValidateReplyPrefix(prefix string) error {
	if prefix == "" || len(prefix)+16 > maxNameLength {
		return fmt.Errorf("reply queue prefix %q: want 1 to %d characters", prefix, maxNameLength-16)
	}
	for _, r := range prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("reply queue prefix %q: only letters, digits, - and _", prefix)
		}
	}
	return nil
}

// ReplyQueue is a web instance's own response queue.
type ReplyQueue struct {
	*Queue
	api ReplyAPI
}

// CreateReplyQueue creates a queue named prefix plus 16 random hex digits,
// marked alive, and returns it once SQS serves it. opts are the Queue's.
func CreateReplyQueue(ctx context.Context, cfg aws.Config, prefix string, opts Options) (*ReplyQueue, error) {
	if err := ValidateReplyPrefix(prefix); err != nil {
		return nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	client := sqs.NewFromConfig(cfg)
	r := &ReplyQueue{api: client}
	ctx1, cancel := context.WithTimeout(ctx, callTimeout(opts))
	defer cancel()
	out, err := client.CreateQueue(ctx1, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			string(types.QueueAttributeNameVisibilityTimeout):             seconds(elastiq.DefaultVisibilityTimeout),
			string(types.QueueAttributeNameReceiveMessageWaitTimeSeconds): strconv.Itoa(int(elastiq.MaxReceiveWait / time.Second)),
			string(types.QueueAttributeNameMessageRetentionPeriod):        seconds(replyRetention),
			string(types.QueueAttributeNameSqsManagedSseEnabled):          "true",
		},
		Tags: map[string]string{AliveTag: aliveNow()},
	})
	if err != nil {
		return nil, fmt.Errorf("create reply queue %s: %w", name, mapError(err))
	}
	r.Queue = New(client, aws.ToString(out.QueueUrl), opts)
	// A new queue may take a moment to be served everywhere: a result
	// sent to it must not find it missing.
	for {
		_, err := r.Stats(ctx)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, elastiq.ErrNotFound) || ctx.Err() != nil {
			return nil, fmt.Errorf("create reply queue %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// aliveNow is AliveTag's value now.
func aliveNow() string { return strconv.FormatInt(time.Now().Unix(), 10) }

// MarkAlive tags the queue alive now. A queue that was deleted (swept while
// its instance could not mark it) fails with a wrapped elastiq.ErrNotFound.
func (r *ReplyQueue) MarkAlive(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err := r.api.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: aws.String(r.url), Tags: map[string]string{AliveTag: aliveNow()}})
	if err != nil {
		return fmt.Errorf("mark reply queue %s alive: %w", r.url, mapError(err))
	}
	return nil
}

// KeepAlive marks the queue alive every interval until ctx is done (nil)
// or the queue is found deleted (the error: the instance must not go on
// without it). Other failures go to failed and are tried again at the next
// heartbeat.
func (r *ReplyQueue) KeepAlive(ctx context.Context, interval time.Duration, failed func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := r.MarkAlive(ctx)
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, elastiq.ErrNotFound):
			return err
		default:
			failed(err)
		}
	}
}

// Delete deletes the queue, with what it holds.
func (r *ReplyQueue) Delete(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if _, err := r.api.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(r.url)}); err != nil {
		return fmt.Errorf("delete reply queue %s: %w", r.url, mapError(err))
	}
	return nil
}

// SweepReplyQueues deletes the reply queues named prefix... whose alive mark
// is older than expiry at now (or missing), and returns their URLs. A
// queue deleted meanwhile is no error. opts.Timeout bounds each call.
func SweepReplyQueues(ctx context.Context, api ReplyAPI, prefix string, expiry time.Duration, now time.Time, opts Options) ([]string, error) {
	if err := ValidateReplyPrefix(prefix); err != nil {
		return nil, err
	}
	timeout := callTimeout(opts)
	call := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return mapError(f(ctx))
	}
	var urls []string
	var next *string
	for {
		var out *sqs.ListQueuesOutput
		err := call(func(ctx context.Context) (err error) {
			out, err = api.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix), MaxResults: aws.Int32(1000), NextToken: next})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("sweep reply queues: list %s*: %w", prefix, err)
		}
		urls = append(urls, out.QueueUrls...)
		if next = out.NextToken; next == nil {
			break
		}
	}
	var deleted []string
	for _, u := range urls {
		if !strings.HasPrefix(queueName(u), prefix) {
			continue // SQS matched it; a server that did not filter
		}
		var tags map[string]string
		err := call(func(ctx context.Context) error {
			out, err := api.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(u)})
			if err == nil {
				tags = out.Tags
			}
			return err
		})
		if errors.Is(err, elastiq.ErrNotFound) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("sweep reply queues: tags of %s: %w", u, err)
		}
		if alive, err := strconv.ParseInt(tags[AliveTag], 10, 64); err == nil && now.Sub(time.Unix(alive, 0)) <= expiry {
			continue
		}
		err = call(func(ctx context.Context) error {
			_, err := api.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
			return err
		})
		if err != nil && !errors.Is(err, elastiq.ErrNotFound) {
			return deleted, fmt.Errorf("sweep reply queues: delete %s: %w", u, err)
		}
		deleted = append(deleted, u)
	}
	return deleted, nil
}

// queueName is the last path element of a queue URL.
func queueName(queueURL string) string {
	if u, err := url.Parse(queueURL); err == nil {
		return path.Base(u.Path)
	}
	return path.Base(queueURL)
}

// Replies opens the queues requests name in ReplyTo, through one client,
// each once: its Open is an elastiq.ReplyQueues.
type Replies struct {
	api    API
	opts   Options
	mu     sync.Mutex
	queues map[string]*Queue
}

// NewReplies returns Replies through api with opts for every queue.
func NewReplies(api API, opts Options) *Replies {
	return &Replies{api: api, opts: opts, queues: map[string]*Queue{}}
}

// OpenReplies is NewReplies with an SQS client made from cfg.
func OpenReplies(cfg aws.Config, opts Options) *Replies {
	return NewReplies(sqs.NewFromConfig(cfg), opts)
}

// Open returns the queue at queueURL. It makes no call: a queue that does
// not exist fails its Send with a wrapped elastiq.ErrNotFound.
func (r *Replies) Open(queueURL string) (elastiq.Queue, error) {
	u, err := url.Parse(queueURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("reply queue %q: not a queue URL", queueURL)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.queues[queueURL]
	if !ok {
		q = New(r.api, queueURL, r.opts)
		r.queues[queueURL] = q
	}
	return q, nil
}

// callTimeout is opts.Timeout or its default.
func callTimeout(opts Options) time.Duration {
	if opts.Timeout <= 0 {
		return DefaultTimeout
	}
	return opts.Timeout
}
