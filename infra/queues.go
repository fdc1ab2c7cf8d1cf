package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sqs"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Queue settings: the queue contract the services are written for.
const (
	visibilitySeconds      = int(elastiq.DefaultVisibilityTimeout / time.Second)
	receiveWaitSeconds     = int(elastiq.MaxReceiveWait / time.Second)
	deadLetterRetentionSec = 14 * 24 * 3600 // SQS's longest: dead letters stay for inspection
)

// queues are the request queue (web tier to workers), the response queue
// (workers to web tier) and the request queue's dead-letter queue, all
// standard queues encrypted with SQS-managed keys.
type queues struct {
	pulumi.ResourceState

	Requests *sqs.Queue
	// Responses is nil when each web instance makes its own (ReplyQueues).
	Responses   *sqs.Queue
	DeadLetters *sqs.Queue
}

type queuesArgs struct {
	Tags map[string]string
	// MaxReceives is the redrive policy's maxReceiveCount.
	MaxReceives int
	// ReplyQueues: the web instances make response queues of their own
	// (the load-balanced layout), so there is no shared one.
	ReplyQueues bool
}

func newQueues(ctx *pulumi.Context, name string, args queuesArgs, opts ...pulumi.ResourceOption) (*queues, error) {
	q := &queues{}
	if err := ctx.RegisterComponentResource("elastiq:infra:Queues", name, q, opts...); err != nil {
		return nil, fmt.Errorf("queues %s: %w", name, err)
	}
	parent := pulumi.Parent(q)
	queue := func(suffix string, a *sqs.QueueArgs) (*sqs.Queue, error) {
		a.VisibilityTimeoutSeconds = pulumi.Int(visibilitySeconds)
		a.ReceiveWaitTimeSeconds = pulumi.Int(receiveWaitSeconds)
		a.SqsManagedSseEnabled = pulumi.Bool(true)
		a.Tags = pulumi.ToStringMap(args.Tags)
		queue, err := sqs.NewQueue(ctx, name+"-"+suffix, a, parent)
		if err != nil {
			return nil, fmt.Errorf("queue %s-%s: %w", name, suffix, err)
		}
		return queue, nil
	}
	var err error
	if q.DeadLetters, err = queue("dead-letters", &sqs.QueueArgs{
		MessageRetentionSeconds: pulumi.Int(deadLetterRetentionSec),
	}); err != nil {
		return nil, err
	}
	redrive := q.DeadLetters.Arn.ApplyT(func(arn string) (string, error) {
		b, err := json.Marshal(map[string]any{"deadLetterTargetArn": arn, "maxReceiveCount": args.MaxReceives})
		return string(b), err
	}).(pulumi.StringOutput)
	if q.Requests, err = queue("requests", &sqs.QueueArgs{RedrivePolicy: redrive}); err != nil {
		return nil, err
	}
	outputs := pulumi.Map{"requestQueueUrl": q.Requests.Url, "deadLetterQueueUrl": q.DeadLetters.Url}
	if !args.ReplyQueues {
		if q.Responses, err = queue("responses", &sqs.QueueArgs{}); err != nil {
			return nil, err
		}
		outputs["responseQueueUrl"] = q.Responses.Url
	}
	if err := ctx.RegisterResourceOutputs(q, outputs); err != nil {
		return nil, fmt.Errorf("queues %s: %w", name, err)
	}
	return q, nil
}
