// Package iam writes the IAM policy documents of an elastiq deployment: what
// each program may do, scoped to the stack's resources. The Pulumi program
// attaches them to the instance roles; tests run the programs under the same
// documents (for the test deployment's ARNs), so a permission a program uses
// but the deployment does not grant shows up as a failure.
package iam

import (
	"encoding/json"
	"fmt"

	"github.com/elastiq/elastiq/infra/deploy"
	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
)

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Document. Action and Resource are
// always lists, so a test can check every action.
type Statement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// Version is the current policy language version.
const Version = "2012-10-17"

// JSON returns the document as IAM takes it.
func (d Document) JSON() (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("policy document: %w", err)
	}
	return string(b), nil
}

// AssumeRole lets EC2 instances take the role (through their instance
// profile).
func AssumeRole() Document {
	return Document{Version: Version, Statement: []Statement{{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "ec2.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
	}}}
}

// Account locates ARNs: the partition, region and account of the stack.
type Account struct {
	Partition string
	Region    string
	ID        string
}

// EC2ARN is the ARN of an EC2 resource ("instance/*") of the account in the
// region.
func (a Account) EC2ARN(resource string) string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:%s", a.Partition, a.Region, a.ID, resource)
}

// ImageARN is the ARN of an image: images have no account in their ARN.
func (a Account) ImageARN(id string) string {
	return fmt.Sprintf("arn:%s:ec2:%s::image/%s", a.Partition, a.Region, id)
}

// Grants are the resolved ARNs and names the roles' policies are scoped to.
type Grants struct {
	Account Account
	// Stack is the value of the workers' elastiq:stack tag.
	Stack              string
	BucketARN          string
	RequestQueueARN    string
	ResponseQueueARN   string
	DeadLetterQueueARN string
	LaunchTemplateARN  string
	// WorkerImageID is the image the launch template runs.
	WorkerImageID string
	WorkerRoleARN string
	// WorkerFetchesBundle says the workers install the bundle from
	// deploy/ (plain Amazon Linux); a baked image needs no read there.
	WorkerFetchesBundle bool
	// AdminTokenParameterARN, if set, is the SSM parameter holding the
	// gallery's admin token, which the web tier reads at start.
	AdminTokenParameterARN string
	// ReplyQueuePrefix, if set, names the web instances' own response
	// queues (the load-balanced layout, with ResponseQueueARN empty):
	// a web instance makes, tags, consumes and deletes its own, and
	// answers a dead letter on any of them; workers send results on them;
	// the scaler sweeps those whose instance died.
	ReplyQueuePrefix string
	// SeparateScaler: the scaler runs on an instance of its own, under
	// the Scaler policy, and the web role has none of its grants.
	SeparateScaler bool
}

// replyQueues is the ARN pattern of the web instances' own queues.
func (g Grants) replyQueues() string {
	return fmt.Sprintf("arn:%s:sqs:%s:%s:%s*", g.Account.Partition, g.Account.Region, g.Account.ID, g.ReplyQueuePrefix)
}

// nonEmpty is the non-empty strings of ss.
func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// objects is the ARN of the objects under prefix in the bucket.
func (g Grants) objects(prefix string) string { return g.BucketARN + "/" + prefix + "*" }

// workerCondition matches the instances carrying the stack's worker tags, as
// they exist (aws:ResourceTag) or as a request creates them
// (aws:RequestTag).
func (g Grants) workerCondition(key string) map[string]map[string]string {
	c := map[string]string{}
	for k, v := range ec2fleet.WorkerTags(g.Stack) {
		c[key+"/"+k] = v
	}
	return map[string]map[string]string{"StringEquals": c}
}

// Web is the web instances' policy: the web tier's permissions as
// README.md ("Distributed mode") lists them, plus reading the bundle each
// installs at boot, and the scaler's (Scaler) unless it runs apart
// (SeparateScaler).
func Web(g Grants) Document {
	doc := Document{Version: Version, Statement: []Statement{
		{Sid: "ListBucket", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{g.BucketARN}},
		{Sid: "Inputs", Effect: "Allow",
			Action:   []string{"s3:PutObject", "s3:GetObject", "s3:DeleteObject"},
			Resource: []string{g.objects(elastiq.InputPrefix)}},
		{Sid: "Outputs", Effect: "Allow",
			// PutObject: the dead-letter handler writes the failure answers.
			Action:   []string{"s3:GetObject", "s3:PutObject"},
			Resource: []string{g.objects(elastiq.OutputPrefix)}},
		{Sid: "Bundle", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{g.objects(deploy.KeyPrefix)}},
		// The gallery's API lists faces (ListBucket) and deletes them;
		// workers write them.
		{Sid: "GalleryDeletes", Effect: "Allow", Action: []string{"s3:DeleteObject"}, Resource: []string{g.objects(elastiq.GalleryFacesPrefix)}},
		{Sid: "SendRequests", Effect: "Allow",
			Action:   []string{"sqs:SendMessage", "sqs:GetQueueAttributes"},
			Resource: []string{g.RequestQueueARN}},
		{Sid: "ConsumeResponses", Effect: "Allow",
			Action:   []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
			Resource: nonEmpty(g.ResponseQueueARN, g.DeadLetterQueueARN)},
	}}
	if g.ResponseQueueARN != "" {
		doc.Statement = append(doc.Statement, Statement{Sid: "AnswerDeadLetters", Effect: "Allow",
			Action: []string{"sqs:SendMessage"}, Resource: []string{g.ResponseQueueARN}})
	}
	if g.ReplyQueuePrefix != "" {
		// Its own queue, made at start (tagged alive as it is made,
		// hence TagQueue), consumed, marked alive and deleted at exit;
		// and a dead letter's answer, sent on the queue of the instance
		// that accepted the request.
		doc.Statement = append(doc.Statement, Statement{Sid: "ReplyQueues", Effect: "Allow",
			Action: []string{"sqs:CreateQueue", "sqs:TagQueue", "sqs:GetQueueAttributes", "sqs:ReceiveMessage",
				"sqs:DeleteMessage", "sqs:DeleteQueue", "sqs:SendMessage"},
			Resource: []string{g.replyQueues()}})
	}
	// The web tier's -stack (instance counts on /metrics) and the scaler.
	// DescribeInstances has no resource-level permissions: its only
	// resource is "*" (the action is named; the programs filter on the
	// stack's tags).
	doc.Statement = append(doc.Statement, Statement{Sid: "ListInstances", Effect: "Allow",
		Action: []string{"ec2:DescribeInstances"}, Resource: []string{"*"}})
	if !g.SeparateScaler {
		doc.Statement = append(doc.Statement, scaler(g)...)
	}
	if g.AdminTokenParameterARN != "" {
		// The gallery's admin token, read at start. A SecureString under
		// the AWS managed key aws/ssm needs no KMS grant: that key's
		// policy lets the account use it through SSM.
		doc.Statement = append(doc.Statement, Statement{Sid: "AdminToken", Effect: "Allow",
			Action: []string{"ssm:GetParameter"}, Resource: []string{g.AdminTokenParameterARN}})
	}
	return doc
}

// Scaler is the policy of the scaler's own instance (SeparateScaler): its
// permissions as README.md lists them, plus reading the bundle it installs
// at boot.
func Scaler(g Grants) Document {
	return Document{Version: Version, Statement: append([]Statement{
		{Sid: "Bundle", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{g.objects(deploy.KeyPrefix)}},
		{Sid: "QueueDepth", Effect: "Allow", Action: []string{"sqs:GetQueueAttributes"}, Resource: []string{g.RequestQueueARN}},
		{Sid: "ListInstances", Effect: "Allow", Action: []string{"ec2:DescribeInstances"}, Resource: []string{"*"}},
	}, scaler(g)...)}
}

// scaler are the scaler's grants beyond reading the request queue's
// attributes and listing instances, which the web tier shares.
func scaler(g Grants) []Statement {
	fromTemplate := map[string]string{"ec2:LaunchTemplate": g.LaunchTemplateARN}
	taggedWorkers := g.workerCondition("aws:RequestTag")
	taggedWorkers["ArnEquals"] = fromTemplate
	st := []Statement{
		// Launch workers from this stack's template only, tagged as this
		// stack's workers.
		{Sid: "LaunchFromTemplate", Effect: "Allow", Action: []string{"ec2:RunInstances"},
			Resource: []string{
				g.LaunchTemplateARN,
				g.Account.ImageARN(g.WorkerImageID),
				g.Account.EC2ARN("volume/*"),
				g.Account.EC2ARN("network-interface/*"),
				g.Account.EC2ARN("security-group/*"),
				g.Account.EC2ARN("subnet/*"),
			},
			Condition: map[string]map[string]string{"ArnEquals": fromTemplate}},
		{Sid: "LaunchTaggedWorkers", Effect: "Allow", Action: []string{"ec2:RunInstances"},
			Resource:  []string{g.Account.EC2ARN("instance/*")},
			Condition: taggedWorkers},
		{Sid: "TagOnLaunch", Effect: "Allow", Action: []string{"ec2:CreateTags"},
			Resource:  []string{g.Account.EC2ARN("instance/*"), g.Account.EC2ARN("volume/*")},
			Condition: map[string]map[string]string{"StringEquals": {"ec2:CreateAction": "RunInstances"}}},
		// No policy stops a running worker (only a worker knows whether it
		// holds a message; workers stop themselves), so StopInstances is
		// the workers' own grant, not the scaler's.
		{Sid: "ManageWorkers", Effect: "Allow",
			Action:    []string{"ec2:StartInstances", "ec2:TerminateInstances"},
			Resource:  []string{g.Account.EC2ARN("instance/*")},
			Condition: g.workerCondition("aws:ResourceTag")},
		{Sid: "PassWorkerRole", Effect: "Allow", Action: []string{"iam:PassRole"},
			Resource:  []string{g.WorkerRoleARN},
			Condition: map[string]map[string]string{"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
	}
	if g.ReplyQueuePrefix != "" {
		// The sweep of the queues of web instances that died. ListQueues
		// has no resource-level permissions ("*"; the scaler lists by
		// the prefix).
		st = append(st,
			Statement{Sid: "ListReplyQueues", Effect: "Allow", Action: []string{"sqs:ListQueues"}, Resource: []string{"*"}},
			Statement{Sid: "SweepReplyQueues", Effect: "Allow", Action: []string{"sqs:ListQueueTags", "sqs:DeleteQueue"},
				Resource: []string{g.replyQueues()}})
	}
	return st
}

// Worker is the workers' policy, as README.md ("Distributed mode")
// lists it (with -self-stop, which the workers always run with), plus reading
// the bundle when they install it at boot.
func Worker(g Grants) Document {
	st := []Statement{
		{Sid: "ListBucket", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{g.BucketARN}},
		{Sid: "Inputs", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{g.objects(elastiq.InputPrefix)}},
		{Sid: "Outputs", Effect: "Allow", Action: []string{"s3:GetObject", "s3:PutObject"}, Resource: []string{g.objects(elastiq.OutputPrefix)}},
		// Enrolments and the seed faces are written, the gallery read.
		{Sid: "Gallery", Effect: "Allow", Action: []string{"s3:GetObject", "s3:PutObject"}, Resource: []string{g.objects(elastiq.GalleryFacesPrefix)}},
	}
	if g.WorkerFetchesBundle {
		st = append(st, Statement{Sid: "Bundle", Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{g.objects(deploy.KeyPrefix)}})
	}
	st = append(st,
		Statement{Sid: "ConsumeRequests", Effect: "Allow",
			Action:   []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
			Resource: []string{g.RequestQueueARN}},
	)
	if g.ResponseQueueARN != "" {
		// GetQueueAttributes: the worker opens the response queue as it
		// opens every queue, reading its attributes at start.
		st = append(st, Statement{Sid: "SendResponses", Effect: "Allow", Action: []string{"sqs:SendMessage", "sqs:GetQueueAttributes"},
			Resource: []string{g.ResponseQueueARN}})
	}
	if g.ReplyQueuePrefix != "" {
		// A result goes to the queue of the web instance that accepted
		// its request (it opens no queue there: no GetQueueAttributes).
		st = append(st, Statement{Sid: "SendReplies", Effect: "Allow", Action: []string{"sqs:SendMessage"},
			Resource: []string{g.replyQueues()}})
	}
	return Document{Version: Version, Statement: append(st,
		// -self-stop: a worker stops its own instance; the condition
		// keeps it to the stack's workers.
		Statement{Sid: "StopSelf", Effect: "Allow", Action: []string{"ec2:StopInstances"},
			Resource:  []string{g.Account.EC2ARN("instance/*")},
			Condition: g.workerCondition("aws:ResourceTag")},
	)}
}
