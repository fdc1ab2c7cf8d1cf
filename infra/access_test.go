package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	iampolicy "github.com/elastiq/elastiq/infra/iam"
)

// parsedStatement is a policy statement as IAM reads it: Action and Resource
// may each be a string or a list.
type parsedStatement struct {
	Sid       string
	Effect    string
	Principal map[string]any
	Action    []string
	Resource  []string
	Condition map[string]map[string]any
}

// parsePolicy parses a policy document the way IAM would, failing on
// anything it does not expect.
func parsePolicy(t *testing.T, doc string) []parsedStatement {
	t.Helper()
	var raw struct {
		Version   string
		Statement []map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatalf("policy %s: %v", doc, err)
	}
	if raw.Version != iampolicy.Version {
		t.Errorf("policy Version = %q, want %q", raw.Version, iampolicy.Version)
	}
	strs := func(m json.RawMessage) []string {
		if m == nil {
			return nil
		}
		var one string
		if json.Unmarshal(m, &one) == nil {
			return []string{one}
		}
		var list []string
		if err := json.Unmarshal(m, &list); err != nil {
			t.Fatalf("policy %s: %s: want a string or a list of strings", doc, m)
		}
		return list
	}
	var sts []parsedStatement
	for _, s := range raw.Statement {
		for k := range s {
			if !slices.Contains([]string{"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}, k) {
				t.Errorf("policy statement has %s (NotAction, NotResource...): want only allow-lists", k)
			}
		}
		st := parsedStatement{Action: strs(s["Action"]), Resource: strs(s["Resource"])}
		for k, dst := range map[string]any{"Sid": &st.Sid, "Effect": &st.Effect, "Principal": &st.Principal, "Condition": &st.Condition} {
			if s[k] != nil {
				if err := json.Unmarshal(s[k], dst); err != nil {
					t.Fatalf("policy statement %s: %v", k, err)
				}
			}
		}
		sts = append(sts, st)
	}
	return sts
}

// grantsOf are the permissions README.md ("Distributed mode") lists for the
// programs, action by action, on symbolic resources (see symbol), plus
// s3:GetObject on deploy/ for an instance that installs the bundle. The web
// instance runs the web tier and the scaler; workers always run -self-stop.
func grantsOf(role string, fetchesBundle bool) map[string][]string {
	g := map[string][]string{}
	if role == "web" {
		g = map[string][]string{
			"s3:ListBucket":          {"bucket"},
			"s3:PutObject":           {"input/*", "output/*"},
			"s3:GetObject":           {"input/*", "output/*"},
			"s3:DeleteObject":        {"gallery/faces/*", "input/*"},
			"sqs:SendMessage":        {"requests", "responses"},
			"sqs:GetQueueAttributes": {"requests", "responses", "dead-letters"},
			"sqs:ReceiveMessage":     {"responses", "dead-letters"},
			"sqs:DeleteMessage":      {"responses", "dead-letters"},
			"ec2:DescribeInstances":  {"*"},
			"ec2:RunInstances":       {"template", "image", "instance/*", "volume/*", "network-interface/*", "security-group/*", "subnet/*"},
			"ec2:CreateTags":         {"instance/*", "volume/*"},
			"ec2:StartInstances":     {"instance/*"},
			"ec2:TerminateInstances": {"instance/*"},
			"iam:PassRole":           {"worker-role"},
		}
	} else {
		g = map[string][]string{
			"s3:ListBucket":               {"bucket"},
			"s3:GetObject":                {"gallery/faces/*", "input/*", "output/*"},
			"s3:PutObject":                {"gallery/faces/*", "output/*"},
			"sqs:ReceiveMessage":          {"requests"},
			"sqs:DeleteMessage":           {"requests"},
			"sqs:ChangeMessageVisibility": {"requests"},
			"sqs:GetQueueAttributes":      {"requests", "responses"},
			"sqs:SendMessage":             {"responses"},
			"ec2:StopInstances":           {"instance/*"},
		}
	}
	if fetchesBundle {
		g["s3:GetObject"] = append(g["s3:GetObject"], "deploy/*")
	}
	for a := range g {
		slices.Sort(g[a])
	}
	return g
}

var actionName = regexp.MustCompile(`^(s3|sqs|ec2|iam):[A-Z][A-Za-z]+$`)

func TestPolicies(t *testing.T) {
	for _, tt := range workerImages {
		t.Run(tt.name, func(t *testing.T) {
			d := deployStack(t, testConfig(t, tt.overrides))
			bucketARN := fmt.Sprint(d.one(t, typeBucket, testStack).Outputs["arn"])
			queueARN := func(name string) string {
				return fmt.Sprint(d.one(t, typeQueue, testStack+"-"+name).Outputs["arn"])
			}
			workerRole := d.one(t, typeRole, testStack+"-worker")
			ec2Prefix := "arn:aws:ec2:" + mockRegion + ":" + mockAccount + ":"
			// symbol names the stack's resources; anything else is
			// not scoped to the stack.
			symbol := map[string]string{
				bucketARN: "bucket", bucketARN + "/input/*": "input/*", bucketARN + "/output/*": "output/*",
				bucketARN + "/deploy/*": "deploy/*", bucketARN + "/gallery/faces/*": "gallery/faces/*", "*": "*",
				queueARN("requests"): "requests", queueARN("responses"): "responses", queueARN("dead-letters"): "dead-letters",
				testLaunchTmplAR: "template", fmt.Sprint(workerRole.Outputs["arn"]): "worker-role",
				"arn:aws:ec2:" + mockRegion + "::image/" + tt.image: "image",
			}
			for _, r := range []string{"instance/*", "volume/*", "network-interface/*", "security-group/*", "subnet/*"} {
				symbol[ec2Prefix+r] = r
			}
			for _, role := range []string{"web", "worker"} {
				t.Run(role, func(t *testing.T) {
					r := d.one(t, typeRole, testStack+"-"+role)
					trust := parsePolicy(t, fmt.Sprint(r.Inputs["assumeRolePolicy"]))
					if len(trust) != 1 || !slices.Equal(trust[0].Action, []string{"sts:AssumeRole"}) ||
						trust[0].Principal["Service"] != "ec2.amazonaws.com" {
						t.Errorf("%s role trust = %+v, want EC2 assuming it", role, trust)
					}
					p := d.one(t, typeRolePolicy, testStack+"-"+role)
					if p.Inputs["role"] != r.Outputs["name"] {
						t.Errorf("policy %s is on role %v, want %v", p.Name, p.Inputs["role"], r.Outputs["name"])
					}
					got := map[string][]string{}
					for _, st := range parsePolicy(t, fmt.Sprint(p.Inputs["policy"])) {
						checkStatement(t, st, symbol, ec2Prefix+"instance/*")
						for _, a := range st.Action {
							for _, res := range st.Resource {
								got[a] = append(got[a], symbol[res])
							}
						}
					}
					want := grantsOf(role, role == "web" || !tt.baked)
					actions := maps.Clone(want)
					maps.Copy(actions, got)
					for _, a := range slices.Sorted(maps.Keys(actions)) {
						slices.Sort(got[a])
						if !slices.Equal(got[a], want[a]) {
							t.Errorf("%s role: %s on %v, want on %v", role, a, got[a], want[a])
						}
					}
				})
			}
		})
	}
}

// checkStatement checks one statement of an instance role's policy: an
// allow with named actions (no wildcard), resources among scoped ("*" only
// for ec2:DescribeInstances, which has no other), and instances only under a
// condition that limits them to the stack's workers.
func checkStatement(t *testing.T, st parsedStatement, symbol map[string]string, instances string) {
	t.Helper()
	if st.Effect != "Allow" {
		t.Errorf("%s: Effect %q, want Allow", st.Sid, st.Effect)
	}
	if len(st.Action) == 0 {
		t.Errorf("%s: no action", st.Sid)
	}
	for _, a := range st.Action {
		if strings.Contains(a, "*") || !actionName.MatchString(a) {
			t.Errorf("%s: action %q, want one named action", st.Sid, a)
		}
	}
	if len(st.Resource) == 0 {
		t.Errorf("%s: no resource", st.Sid)
	}
	for _, r := range st.Resource {
		switch {
		case r == "*":
			if !slices.Equal(st.Action, []string{"ec2:DescribeInstances"}) {
				t.Errorf(`%s: resource "*" for %v, want it only for ec2:DescribeInstances`, st.Sid, st.Action)
			}
		case symbol[r] == "":
			t.Errorf("%s: resource %s is not one of the stack's", st.Sid, r)
		}
		if r == instances || strings.HasSuffix(r, ":volume/*") {
			checkInstanceCondition(t, st)
		}
	}
}

// checkInstanceCondition: a statement on all instances (or volumes) of the
// account must be limited to this stack's workers: by their tags, by the
// tags a launch puts on them (and its template), or to tagging at launch.
func checkInstanceCondition(t *testing.T, st parsedStatement) {
	t.Helper()
	eq := st.Condition["StringEquals"]
	tagged := func(prefix string) bool {
		for k, v := range workerTags(testStack) {
			if eq[prefix+"/"+k] != v {
				return false
			}
		}
		return true
	}
	switch {
	case slices.Equal(st.Action, []string{"ec2:CreateTags"}):
		if eq["ec2:CreateAction"] != "RunInstances" {
			t.Errorf("%s: CreateTags without ec2:CreateAction = RunInstances: %v", st.Sid, st.Condition)
		}
	case slices.Equal(st.Action, []string{"ec2:RunInstances"}):
		if st.Condition["ArnEquals"]["ec2:LaunchTemplate"] != testLaunchTmplAR {
			t.Errorf("%s: RunInstances not limited to the stack's launch template: %v", st.Sid, st.Condition)
		}
		if slices.ContainsFunc(st.Resource, func(r string) bool { return strings.HasSuffix(r, ":instance/*") }) && !tagged("aws:RequestTag") {
			t.Errorf("%s: RunInstances without the worker tags on the request: %v", st.Sid, st.Condition)
		}
	default:
		if !tagged("aws:ResourceTag") {
			t.Errorf("%s: %v on instances without the stack's worker tags: %v", st.Sid, st.Action, st.Condition)
		}
	}
}
