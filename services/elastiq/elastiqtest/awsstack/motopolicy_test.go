package awsstack

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestMotoPolicy(t *testing.T) {
	in := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["ec2:StopInstances"],"Resource":["arn:aws:ec2:us-east-1:1:instance/*"],"Condition":{"StringEquals":{"aws:ResourceTag/k":"v"}}},
		{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::b"]},
		{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"arn:aws:sqs:us-east-1:1:q"},
		{"Effect":"Allow","Action":["ssm:GetParameter"],"Resource":["arn:aws:ssm:us-east-1:1:parameter/elastiq/dev/admin-token"]},
		{"Effect":"Allow","Action":["sqs:CreateQueue","sqs:DeleteQueue"],"Resource":["arn:aws:sqs:us-east-1:1:dev-reply-*"]}]}`
	out, err := MotoPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Action, Resource []string
			Condition        map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("MotoPolicy() = %s: %v", out, err)
	}
	want := []struct{ action, resource []string }{
		{[]string{"ec2:StopInstances"}, []string{"*"}},
		{[]string{"s3:ListBucket", "s3:HeadBucket"}, []string{"arn:aws:s3:::b"}},
		{[]string{"sqs:SendMessage", "sqs:SendMessageBatch"}, []string{"arn:aws:sqs:us-east-1:1:q"}},
		{[]string{"ssm:GetParameter"}, []string{"*"}},
		{[]string{"sqs:DeleteQueue"}, []string{"arn:aws:sqs:us-east-1:1:dev-reply-*"}},
		{[]string{"sqs:CreateQueue"}, []string{"*"}},
	}
	if len(doc.Statement) != len(want) {
		t.Fatalf("MotoPolicy() = %s, want %d statements", out, len(want))
	}
	for i, w := range want {
		s := doc.Statement[i]
		if !reflect.DeepEqual(s.Action, w.action) || !reflect.DeepEqual(s.Resource, w.resource) {
			t.Errorf("statement %d = %v on %v, want %v on %v", i, s.Action, s.Resource, w.action, w.resource)
		}
	}
	if doc.Statement[0].Condition == nil {
		t.Error("the condition was dropped; it stays (moto ignores it)")
	}
	if _, err := MotoPolicy("{"); err == nil {
		t.Error("MotoPolicy(bad JSON) = nil error")
	}
}
