package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/elastiq/elastiq/infra/deploy"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The account, region and lookups the mocks answer with.
const (
	mockAccount = "123456789012"
	mockRegion  = "us-east-1"
	mockVPC     = "vpc-0default"
	mockAL2023  = "ami-0al2023"
	mockIP      = "203.0.113.10"
	mockLT      = "lt-0123456789abcdef0"
	// The load-balanced layout's.
	mockPrivateIP   = "172.31.7.9"
	mockBalancerDNS = "elastiq-test-lb-1a2b3c4-123456789.us-east-1.elb.amazonaws.com"
)

// mocks is a test double of the Pulumi engine and the AWS provider (the
// Pulumi CLI and the provider plugin are not installed here): it records
// every resource's inputs, answers the program's invokes, and adds the
// outputs AWS would compute (names, ARNs, URLs, IDs, the public IP).
type mocks struct {
	mu        sync.Mutex
	resources []mockResource
	invokes   []pulumi.MockCallArgs
}

var _ pulumi.MockResourceMonitor = (*mocks)(nil)

// mockResource is one registered resource.
type mockResource struct {
	Type    string
	Name    string
	ID      string
	Custom  bool
	Inputs  map[string]any
	Outputs map[string]any
	// DeleteBeforeReplace and IgnoreChanges are the resource options.
	DeleteBeforeReplace bool
	IgnoreChanges       []string
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	out := args.Inputs.Mappable()
	id := args.Name + "-id"
	physical := args.Name + "-1a2b3c4" // Pulumi's auto-naming
	switch args.TypeToken {
	case "aws:s3/bucketV2:BucketV2":
		id = physical
		out["bucket"] = physical
		out["arn"] = "arn:aws:s3:::" + physical
	case "aws:sqs/queue:Queue":
		id = "https://sqs." + mockRegion + ".amazonaws.com/" + mockAccount + "/" + physical
		out["name"] = physical
		out["url"] = id
		out["arn"] = "arn:aws:sqs:" + mockRegion + ":" + mockAccount + ":" + physical
	case "aws:iam/role:Role":
		id = physical
		out["name"] = physical
		out["arn"] = "arn:aws:iam::" + mockAccount + ":role/" + physical
	case "aws:iam/instanceProfile:InstanceProfile":
		id = physical
		out["name"] = physical
		out["arn"] = "arn:aws:iam::" + mockAccount + ":instance-profile/" + physical
	case "aws:ec2/securityGroup:SecurityGroup":
		id = "sg-" + args.Name
	case "aws:ec2/launchTemplate:LaunchTemplate":
		id = mockLT
		if !strings.HasSuffix(args.Name, "-worker") {
			id = "lt-" + args.Name
		}
		out["arn"] = "arn:aws:ec2:" + mockRegion + ":" + mockAccount + ":launch-template/" + id
		out["latestVersion"] = 1
	case "aws:ec2/instance:Instance":
		id = "i-0123456789abcdef0"
		out["publicIp"] = mockIP
		out["privateIp"] = mockPrivateIP
	case "aws:lb/loadBalancer:LoadBalancer":
		id = "arn:aws:elasticloadbalancing:" + mockRegion + ":" + mockAccount + ":loadbalancer/app/" + physical + "/0123"
		out["arn"] = id
		out["dnsName"] = mockBalancerDNS
	case "aws:lb/targetGroup:TargetGroup":
		id = "arn:aws:elasticloadbalancing:" + mockRegion + ":" + mockAccount + ":targetgroup/" + physical + "/4567"
		out["arn"] = id
	case "aws:lb/listener:Listener":
		id = "arn:aws:elasticloadbalancing:" + mockRegion + ":" + mockAccount + ":listener/app/" + physical
		out["arn"] = id
	case "aws:elasticache/subnetGroup:SubnetGroup":
		id = physical
		out["name"] = physical
	case "aws:elasticache/cluster:Cluster":
		id = physical
		n, _ := out["numCacheNodes"].(float64)
		var nodes []any
		for i := range int(n) {
			nodes = append(nodes, map[string]any{"id": fmt.Sprintf("%04d", i+1), "address": fmt.Sprintf("%s.%04d.cache.amazonaws.com", physical, i+1), "port": float64(11211)})
		}
		out["cacheNodes"] = nodes
	case "aws:autoscaling/group:Group":
		id = physical
		out["name"] = physical
	case "aws:ssm/parameter:Parameter":
		id, _ = out["name"].(string)
		out["arn"] = "arn:aws:ssm:" + mockRegion + ":" + mockAccount + ":parameter" + id
	case "aws:s3/bucketObjectv2:BucketObjectv2":
		id, _ = out["key"].(string)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resources = append(m.resources, mockResource{
		Type: args.TypeToken, Name: args.Name, ID: id, Custom: args.Custom,
		Inputs: args.Inputs.Mappable(), Outputs: out,
		DeleteBeforeReplace: args.RegisterRPC.GetDeleteBeforeReplace(),
		IgnoreChanges:       args.RegisterRPC.GetIgnoreChanges(),
	})
	return id, resource.NewPropertyMapFromMap(out), nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	m.mu.Lock()
	m.invokes = append(m.invokes, args)
	m.mu.Unlock()
	var out map[string]any
	switch args.Token {
	case "aws:index/getPartition:getPartition":
		out = map[string]any{"partition": "aws", "id": "aws", "dnsSuffix": "amazonaws.com"}
	case "aws:index/getRegion:getRegion":
		out = map[string]any{"name": mockRegion, "id": mockRegion}
	case "aws:index/getCallerIdentity:getCallerIdentity":
		out = map[string]any{"accountId": mockAccount, "id": mockAccount}
	case "aws:ec2/getVpc:getVpc":
		out = map[string]any{"id": mockVPC, "cidrBlock": "172.31.0.0/16"}
	case "aws:ec2/getAmi:getAmi":
		out = map[string]any{"id": mockAL2023, "imageId": mockAL2023, "architecture": "x86_64"}
	case "aws:ec2/getSubnets:getSubnets":
		out = map[string]any{"id": mockRegion, "ids": []any{"subnet-a", "subnet-b", "subnet-c"}}
	default:
		return nil, fmt.Errorf("mocks: no invoke %s", args.Token)
	}
	return resource.NewPropertyMapFromMap(out), nil
}

// ofType returns the custom resources of type token.
func (m *mocks) ofType(token string) []mockResource {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rs []mockResource
	for _, r := range m.resources {
		if r.Type == token {
			rs = append(rs, r)
		}
	}
	return rs
}

// one returns the resource of type token named name, failing the test if
// there is none.
func (m *mocks) one(t *testing.T, token, name string) mockResource {
	t.Helper()
	for _, r := range m.ofType(token) {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no resource %s named %s", token, name)
	return mockResource{}
}

// deployed is a run of newStack under the mocks.
type deployed struct {
	*mocks
	Name    string
	Bundle  deploy.Bundle
	Outputs map[string]string
}

// deployStack runs newStack(cfg) as project "elastiq", stack "test" under
// mocks and resolves its outputs.
func deployStack(t *testing.T, cfg Config) deployed {
	t.Helper()
	d := deployed{mocks: &mocks{}, Outputs: map[string]string{}}
	var mu sync.Mutex
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		st, err := newStack(ctx, cfg)
		if err != nil {
			return err
		}
		d.Name = st.Name
		d.Bundle = st.Deployment.Bundle
		for name, in := range st.outputs() {
			out := pulumi.ToOutput(in)
			out.ApplyT(func(v any) any {
				mu.Lock()
				defer mu.Unlock()
				d.Outputs[name] = fmt.Sprint(v)
				return nil
			})
		}
		return nil
	}, pulumi.WithMocks("elastiq", "test", d.mocks))
	if err != nil {
		t.Fatalf("newStack: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return d
}

// fakeBuild is a stand-in for deploy.Build: it writes the bundle's four
// files with the given content prefix (a different prefix is a code change)
// and returns them with their hashes.
func fakeBuild(t *testing.T, version string) buildFunc {
	dir := t.TempDir()
	return func(ctx context.Context) (deploy.Bundle, error) {
		var b deploy.Bundle
		for _, f := range []struct {
			dst  *deploy.File
			name string
		}{{&b.Web, deploy.WebName}, {&b.Scaler, deploy.ScalerName}, {&b.Worker, deploy.WorkerName}, {&b.Models, deploy.ModelsName}} {
			content := []byte(version + " " + f.name)
			path := filepath.Join(dir, f.name)
			if err := os.WriteFile(path, content, 0o644); err != nil {
				return deploy.Bundle{}, err
			}
			sum := sha256.Sum256(content)
			*f.dst = deploy.File{
				Object: deploy.Object{Name: f.name, SHA256: hex.EncodeToString(sum[:])},
				Path:   path,
				Size:   int64(len(content)),
			}
		}
		return b, nil
	}
}

// testConfig is the configuration of Pulumi.dev.yaml's keys plus overrides,
// with a stand-in build of version v1.
func testConfig(t *testing.T, overrides map[string]string) Config {
	t.Helper()
	keys := map[string]string{
		"maxWorkers":            "19",
		"webInstanceType":       "t3.micro",
		"workerInstanceType":    "t3.small",
		"workerIdleStop":        "60s",
		"terminateStoppedAfter": "2m",
		"clientCidr":            "0.0.0.0/0",
		"forceDestroy":          "true",
		"lifecycleDays":         "7",
	}
	for k, v := range overrides {
		keys[k] = v
	}
	cfg, err := parseConfig(func(k string) string { return keys[k] })
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	cfg.Build = fakeBuild(t, "v1")
	return cfg
}

// workerImages are the two ways workers run: Amazon Linux 2023 installing
// the bundle at boot, and the image ami/ baked (elastiq:workerAmi).
var workerImages = []struct {
	name      string
	overrides map[string]string
	image     string // the launch template's
	baked     bool
}{
	{name: "amazon linux workers", image: mockAL2023},
	{name: "baked workers", overrides: map[string]string{"workerAmi": testWorkerAMI}, image: testWorkerAMI, baked: true},
}
