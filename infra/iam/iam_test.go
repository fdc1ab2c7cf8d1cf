package iam

import (
	"encoding/json"
	"slices"
	"testing"
)

var testGrants = Grants{
	Account:            Account{Partition: "aws", Region: "us-east-1", ID: "123456789012"},
	Stack:              "dev",
	BucketARN:          "arn:aws:s3:::b",
	RequestQueueARN:    "arn:aws:sqs:us-east-1:123456789012:req",
	ResponseQueueARN:   "arn:aws:sqs:us-east-1:123456789012:res",
	DeadLetterQueueARN: "arn:aws:sqs:us-east-1:123456789012:req-dlq",
	LaunchTemplateARN:  "arn:aws:ec2:us-east-1:123456789012:launch-template/lt-1",
	WorkerImageID:      "ami-1",
	WorkerRoleARN:      "arn:aws:iam::123456789012:role/worker",
}

// allows reports whether d allows action on resource, ignoring conditions.
func allows(d Document, action, resource string) bool {
	for _, st := range d.Statement {
		if st.Effect == "Allow" && slices.Contains(st.Action, action) && slices.Contains(st.Resource, resource) {
			return true
		}
	}
	return false
}

// TestQueueAttributes: every program opens each queue it uses by reading
// its attributes (sqsqueue.Open), so each role may read the attributes of
// every queue its programs open.
func TestQueueAttributes(t *testing.T) {
	g := testGrants
	for _, tt := range []struct {
		name   string
		doc    Document
		queues []string
	}{
		{name: "web and scaler", doc: Web(g), queues: []string{g.RequestQueueARN, g.ResponseQueueARN, g.DeadLetterQueueARN}},
		{name: "worker", doc: Worker(g), queues: []string{g.RequestQueueARN, g.ResponseQueueARN}},
	} {
		for _, q := range tt.queues {
			if !allows(tt.doc, "sqs:GetQueueAttributes", q) {
				t.Errorf("%s policy: sqs:GetQueueAttributes on %s not allowed", tt.name, q)
			}
		}
	}
}

func TestJSON(t *testing.T) {
	for name, d := range map[string]Document{"web": Web(testGrants), "worker": Worker(testGrants), "trust": AssumeRole()} {
		s, err := d.JSON()
		if err != nil {
			t.Fatalf("%s: JSON() = %v", name, err)
		}
		var back Document
		if err := json.Unmarshal([]byte(s), &back); err != nil || back.Version != Version || len(back.Statement) != len(d.Statement) {
			t.Errorf("%s: JSON() = %s, %v; want a %s document with %d statements", name, s, err, Version, len(d.Statement))
		}
	}
}

// TestGallery: the web role deletes faces and reads the admin token's
// parameter when there is one, the worker role reads and writes faces;
// neither more.
func TestGallery(t *testing.T) {
	g := testGrants
	faces := g.BucketARN + "/gallery/faces/*"
	if !allows(Web(g), "s3:DeleteObject", faces) || allows(Web(g), "s3:PutObject", faces) || allows(Web(g), "s3:GetObject", faces) {
		t.Error("web policy: want s3:DeleteObject on gallery/faces/* and no other object action there")
	}
	if !allows(Worker(g), "s3:GetObject", faces) || !allows(Worker(g), "s3:PutObject", faces) || allows(Worker(g), "s3:DeleteObject", faces) {
		t.Error("worker policy: want s3:GetObject and s3:PutObject on gallery/faces/*, no delete")
	}
	param := "arn:aws:ssm:us-east-1:123456789012:parameter/elastiq/dev/admin-token"
	if allows(Web(g), "ssm:GetParameter", param) {
		t.Error("web policy reads an admin token parameter that was not configured")
	}
	g.AdminTokenParameterARN = param
	if !allows(Web(g), "ssm:GetParameter", param) || allows(Worker(g), "ssm:GetParameter", param) {
		t.Error("with a token parameter: want ssm:GetParameter on it for the web role only")
	}
}

// TestLoadBalancedLayout: with the web instances' own response queues and
// the scaler on an instance of its own, the web role manages its queue and
// launches nothing, the scaler role launches workers and sweeps dead
// instances' queues, and the workers send results on the reply queues; no
// role names a shared response queue.
func TestLoadBalancedLayout(t *testing.T) {
	g := testGrants
	g.ResponseQueueARN, g.ReplyQueuePrefix, g.SeparateScaler = "", "dev-reply-", true
	replies := "arn:aws:sqs:us-east-1:123456789012:dev-reply-*"
	web, scaler, worker := Web(g), Scaler(g), Worker(g)
	for _, a := range []string{"sqs:CreateQueue", "sqs:TagQueue", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:DeleteQueue", "sqs:SendMessage"} {
		if !allows(web, a, replies) {
			t.Errorf("web policy: %s on %s not allowed", a, replies)
		}
	}
	for _, a := range []string{"ec2:RunInstances", "ec2:StartInstances", "iam:PassRole", "sqs:ListQueues"} {
		for _, st := range web.Statement {
			if slices.Contains(st.Action, a) {
				t.Errorf("web policy with a separate scaler: %s allowed (%s)", a, st.Sid)
			}
		}
	}
	if !allows(scaler, "ec2:RunInstances", g.LaunchTemplateARN) || !allows(scaler, "sqs:GetQueueAttributes", g.RequestQueueARN) ||
		!allows(scaler, "sqs:ListQueues", "*") || !allows(scaler, "sqs:DeleteQueue", replies) || !allows(scaler, "sqs:ListQueueTags", replies) {
		t.Error("scaler policy: want launches from the template, the request queue's depth and the sweep of reply queues")
	}
	if allows(scaler, "sqs:SendMessage", g.RequestQueueARN) || allows(scaler, "s3:PutObject", g.BucketARN+"/input/*") {
		t.Error("scaler policy: sends requests or writes inputs; want neither")
	}
	if !allows(worker, "sqs:SendMessage", replies) {
		t.Errorf("worker policy: sqs:SendMessage on %s not allowed", replies)
	}
	for name, d := range map[string]Document{"web": web, "scaler": scaler, "worker": worker} {
		for _, st := range d.Statement {
			if slices.Contains(st.Resource, "") {
				t.Errorf("%s policy: %s names an empty resource (the shared response queue)", name, st.Sid)
			}
		}
	}
}
