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

// Web is the web instance's policy: the web tier's and the scaler's
// permissions as README.md ("Distributed mode") lists them, plus reading
// the bundle it installs at boot.
func Web(g Grants) Document {
	fromTemplate := map[string]string{"ec2:LaunchTemplate": g.LaunchTemplateARN}
	taggedWorkers := g.workerCondition("aws:RequestTag")
	taggedWorkers["ArnEquals"] = fromTemplate
	doc := Document{Version: Version, Statement: []Statement{
		// web tier
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
			Resource: []string{g.ResponseQueueARN, g.DeadLetterQueueARN}},
		{Sid: "AnswerDeadLetters", Effect: "Allow", Action: []string{"sqs:SendMessage"}, Resource: []string{g.ResponseQueueARN}},
		// web tier (-stack) and scaler. DescribeInstances has no
		// resource-level permissions: its only resource is "*" (the
		// action is named; the scaler filters on the stack's tags).
		{Sid: "ListInstances", Effect: "Allow", Action: []string{"ec2:DescribeInstances"}, Resource: []string{"*"}},
		// scaler: launch workers from this stack's template only, tagged
		// as this stack's workers.
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
	}}
	if g.AdminTokenParameterARN != "" {
		// The gallery's admin token, read at start. A SecureString under
		// the AWS managed key aws/ssm needs no KMS grant: that key's
		// policy lets the account use it through SSM.
		doc.Statement = append(doc.Statement, Statement{Sid: "AdminToken", Effect: "Allow",
			Action: []string{"ssm:GetParameter"}, Resource: []string{g.AdminTokenParameterARN}})
	}
	return doc
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
	return Document{Version: Version, Statement: append(st,
		Statement{Sid: "ConsumeRequests", Effect: "Allow",
			Action:   []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
			Resource: []string{g.RequestQueueARN}},
		// GetQueueAttributes: the worker opens the response queue as it
		// opens every queue, reading its attributes at start.
		Statement{Sid: "SendResponses", Effect: "Allow", Action: []string{"sqs:SendMessage", "sqs:GetQueueAttributes"},
			Resource: []string{g.ResponseQueueARN}},
		// -self-stop: a worker stops its own instance; the condition
		// keeps it to the stack's workers.
		Statement{Sid: "StopSelf", Effect: "Allow", Action: []string{"ec2:StopInstances"},
			Resource:  []string{g.Account.EC2ARN("instance/*")},
			Condition: g.workerCondition("aws:ResourceTag")},
	)}
}
