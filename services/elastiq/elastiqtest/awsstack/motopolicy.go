package awsstack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// motoAliases are the actions moto checks under another name than AWS: AWS
// authorizes HeadBucket as s3:ListBucket and the batch calls as the single
// ones, moto under the call's own name.
var motoAliases = map[string][]string{
	"s3:ListBucket":               {"s3:HeadBucket"},
	"sqs:SendMessage":             {"sqs:SendMessageBatch"},
	"sqs:DeleteMessage":           {"sqs:DeleteMessageBatch"},
	"sqs:ChangeMessageVisibility": {"sqs:ChangeMessageVisibilityBatch"},
}

// MotoPolicy translates an IAM policy document, as AWS reads it, into one
// that moto 5 evaluates the same way for the calls elastiq makes:
//   - moto authorizes every EC2 and SSM call against the resource "*", so
//     the Resource of a statement that names only EC2 and SSM actions
//     becomes "*"
//     (what it scoped, and its Condition, which moto ignores anyway, stay
//     covered by the unit tests of the policy);
//   - an action that moto checks under another name (motoAliases) is
//     granted under both;
//   - moto authorizes sqs:CreateQueue against "*" (the queue it makes does
//     not exist yet; AWS names it), so a statement's sqs:CreateQueue is
//     granted on "*" in a statement of its own (which queues it may make
//     stays covered by the unit tests of the policy).
//
// No action is added that AWS would not grant, and none is dropped.
func MotoPolicy(policy string) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "", fmt.Errorf("policy: %w", err)
	}
	statements, _ := doc["Statement"].([]any)
	var creates []any
	for _, s := range statements {
		st, ok := s.(map[string]any)
		if !ok {
			return "", fmt.Errorf("policy: a statement is %T, not an object", s)
		}
		actions := stringList(st["Action"])
		starOnly := len(actions) > 0
		var out []string
		for _, a := range actions {
			if a == "sqs:CreateQueue" {
				creates = append(creates, map[string]any{"Effect": st["Effect"], "Action": []string{a}, "Resource": []string{"*"}})
				continue
			}
			starOnly = starOnly && (strings.HasPrefix(a, "ec2:") || strings.HasPrefix(a, "ssm:"))
			out = append(out, a)
			for _, alias := range motoAliases[a] {
				if !slices.Contains(actions, alias) {
					out = append(out, alias)
				}
			}
		}
		st["Action"] = out
		if starOnly {
			st["Resource"] = []string{"*"}
		} else if r, ok := st["Resource"]; ok {
			st["Resource"] = stringList(r)
		}
	}
	if len(creates) > 0 {
		doc["Statement"] = append(statements, creates...)
	}
	b, err := json.Marshal(doc)
	return string(b), err
}

// stringList reads an Action or Resource element: a string or a list.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
