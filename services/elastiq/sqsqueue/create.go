package sqsqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Defaults of CreateOptions.
const (
	DefaultMaxReceives = 5
	// DeadLetterSuffix is appended to a queue's name to name its
	// dead-letter queue.
	DeadLetterSuffix = "-dlq"
	// deadLetterRetention is SQS's longest retention, so dead letters stay
	// for inspection as long as possible.
	deadLetterRetention = 14 * 24 * time.Hour
)

// CreateOptions configure CreateWithDeadLetter. The zero value is usable.
type CreateOptions struct {
	// Visibility is the queue's visibility timeout (whole seconds).
	// Default elastiq.DefaultVisibilityTimeout.
	Visibility time.Duration
	// MaxReceives is the redrive policy's maxReceiveCount: a message
	// received that many times without being deleted goes to the
	// dead-letter queue on its next receive. Default DefaultMaxReceives.
	MaxReceives int
	// Timeout bounds each call. Default DefaultTimeout.
	Timeout time.Duration
}

// Queues are the URLs of a queue and of its dead-letter queue.
type Queues struct {
	URL           string
	DeadLetterURL string
}

// CreateWithDeadLetter creates the standard queue name with a dead-letter
// queue name+DeadLetterSuffix and a redrive policy between them, and returns
// their URLs. It is for tests and for developing the distributed mode
// against a local SQS-compatible server; in AWS the Pulumi program creates
// the queues. Creating queues that exist with the same attributes returns
// them (SQS's CreateQueue is idempotent); different attributes are an error.
func CreateWithDeadLetter(ctx context.Context, cfg aws.Config, name string, opts CreateOptions) (Queues, error) {
	if opts.Visibility == 0 {
		opts.Visibility = elastiq.DefaultVisibilityTimeout
	}
	if opts.MaxReceives == 0 {
		opts.MaxReceives = DefaultMaxReceives
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Visibility < 0 || opts.Visibility > MaxVisibility {
		return Queues{}, fmt.Errorf("create queue %s: visibility %v: want 0..%v", name, opts.Visibility, MaxVisibility)
	}
	if opts.MaxReceives < 1 || opts.MaxReceives > 1000 {
		return Queues{}, fmt.Errorf("create queue %s: max receives %d: want 1..1000", name, opts.MaxReceives)
	}
	api := sqs.NewFromConfig(cfg)
	call := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		return f(ctx)
	}
	create := func(name string, attrs map[string]string) (string, error) {
		var url string
		err := call(func(ctx context.Context) error {
			out, err := api.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
			if err != nil {
				return fmt.Errorf("create queue %s: %w", name, mapError(err))
			}
			url = aws.ToString(out.QueueUrl)
			return nil
		})
		return url, err
	}

	var qs Queues
	var err error
	dlqName := name + DeadLetterSuffix
	if qs.DeadLetterURL, err = create(dlqName, map[string]string{
		string(types.QueueAttributeNameMessageRetentionPeriod): seconds(deadLetterRetention),
	}); err != nil {
		return Queues{}, err
	}
	var dlqARN string
	err = call(func(ctx context.Context) error {
		out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(qs.DeadLetterURL),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return fmt.Errorf("queue arn of %s: %w", dlqName, mapError(err))
		}
		dlqARN = out.Attributes[string(types.QueueAttributeNameQueueArn)]
		if dlqARN == "" {
			return fmt.Errorf("queue arn of %s: empty", dlqName)
		}
		return nil
	})
	if err != nil {
		return Queues{}, err
	}
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": dlqARN,
		"maxReceiveCount":     strconv.Itoa(opts.MaxReceives),
	})
	if err != nil {
		return Queues{}, fmt.Errorf("create queue %s: redrive policy: %w", name, err)
	}
	if qs.URL, err = create(name, map[string]string{
		string(types.QueueAttributeNameVisibilityTimeout): seconds(opts.Visibility),
		string(types.QueueAttributeNameRedrivePolicy):     string(redrive),
	}); err != nil {
		return Queues{}, err
	}
	return qs, nil
}

// seconds formats d as whole seconds, rounded up.
func seconds(d time.Duration) string {
	return strconv.FormatInt(ceilSeconds(d), 10)
}
