package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		keys    map[string]string
		want    func(c Config) bool // nil: an error is wanted
		wantErr string              // part of the error
	}{
		{
			name: "defaults",
			keys: map[string]string{"clientCidr": "0.0.0.0/0"},
			want: func(c Config) bool {
				return c.WebInstanceType == "t3.micro" && c.WorkerInstanceType == "t3.small" && c.MaxWorkers == 19 &&
					c.WorkerIdleStop == time.Minute && c.TerminateStoppedAfter == 2*time.Minute && c.Policy == "backlog" &&
					c.MaxReceives == 5 && c.HTTPPort == 80 && c.SSHCIDR == "" && !c.ForceDestroy && c.LifecycleDays == 0 &&
					c.WorkerAMI == ""
			},
		},
		{
			name: "every key",
			keys: map[string]string{
				"webInstanceType": "t3.small", "workerInstanceType": "c5.large", "maxWorkers": "5",
				"workerIdleStop": "90s", "terminateStoppedAfter": "10m", "policy": "backlog", "maxReceives": "3",
				"clientCidr": "198.51.100.0/24", "httpPort": "8080", "sshCidr": "203.0.113.7/32", "keyName": "me",
				"forceDestroy": "true", "lifecycleDays": "3", "workerAmi": "ami-0abc",
			},
			want: func(c Config) bool {
				return c.WebInstanceType == "t3.small" && c.WorkerInstanceType == "c5.large" && c.MaxWorkers == 5 &&
					c.WorkerIdleStop == 90*time.Second && c.TerminateStoppedAfter == 10*time.Minute && c.MaxReceives == 3 &&
					c.ClientCIDR == "198.51.100.0/24" && c.HTTPPort == 8080 && c.SSHCIDR == "203.0.113.7/32" &&
					c.KeyName == "me" && c.ForceDestroy && c.LifecycleDays == 3 && c.WorkerAMI == "ami-0abc" && c.Policy == "backlog"
			},
		},
		{name: "no client cidr", keys: map[string]string{}, wantErr: "elastiq:clientCidr"},
		{name: "ipv6 client cidr", keys: map[string]string{"clientCidr": "::/0"}, wantErr: "elastiq:clientCidr"},
		{name: "host bits", keys: map[string]string{"clientCidr": "10.1.2.3/8"}, wantErr: "elastiq:clientCidr"},
		{name: "bad ssh cidr", keys: map[string]string{"clientCidr": "0.0.0.0/0", "sshCidr": "me"}, wantErr: "elastiq:sshCidr"},
		{name: "max workers text", keys: map[string]string{"clientCidr": "0.0.0.0/0", "maxWorkers": "many"}, wantErr: "elastiq:maxWorkers"},
		{name: "no workers", keys: map[string]string{"clientCidr": "0.0.0.0/0", "maxWorkers": "0"}, wantErr: "elastiq:maxWorkers"},
		{name: "idle without unit", keys: map[string]string{"clientCidr": "0.0.0.0/0", "workerIdleStop": "60"}, wantErr: "elastiq:workerIdleStop"},
		{name: "never idle", keys: map[string]string{"clientCidr": "0.0.0.0/0", "workerIdleStop": "0s"}, wantErr: "elastiq:workerIdleStop"},
		{name: "terminate at once", keys: map[string]string{"clientCidr": "0.0.0.0/0", "terminateStoppedAfter": "0s"}, wantErr: "elastiq:terminateStoppedAfter"},
		{name: "policy", keys: map[string]string{"clientCidr": "0.0.0.0/0", "policy": "magic"}, wantErr: "elastiq:policy"},
		{name: "port", keys: map[string]string{"clientCidr": "0.0.0.0/0", "httpPort": "70000"}, wantErr: "elastiq:httpPort"},
		{name: "receives", keys: map[string]string{"clientCidr": "0.0.0.0/0", "maxReceives": "0"}, wantErr: "elastiq:maxReceives"},
		{name: "force destroy", keys: map[string]string{"clientCidr": "0.0.0.0/0", "forceDestroy": "yes please"}, wantErr: "elastiq:forceDestroy"},
		{name: "lifecycle", keys: map[string]string{"clientCidr": "0.0.0.0/0", "lifecycleDays": "-1"}, wantErr: "elastiq:lifecycleDays"},
		{name: "ami", keys: map[string]string{"clientCidr": "0.0.0.0/0", "workerAmi": "my-image"}, wantErr: "elastiq:workerAmi"},
		{
			name: "load-balanced defaults",
			keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "loadBalanced"},
			want: func(c Config) bool {
				return c.Layout == layoutLoadBalanced && c.WebMinInstances == 2 && c.WebMaxInstances == 4 && c.CertificateARN == "" &&
					c.CacheNodeType == "cache.t4g.micro" && c.CacheNodes == 1 && c.ScalerInstanceType == "t3.micro"
			},
		},
		{name: "layout", keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "two"}, wantErr: "elastiq:layout"},
		{name: "no web instances", keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "loadBalanced", "webMinInstances": "0"}, wantErr: "elastiq:webMinInstances"},
		{name: "max under min", keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "loadBalanced", "webMinInstances": "3", "webMaxInstances": "2"}, wantErr: "elastiq:webMaxInstances"},
		{name: "certificate", keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "loadBalanced", "certificateArn": "mine"}, wantErr: "elastiq:certificateArn"},
		{name: "http on 443 with a certificate", keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "loadBalanced", "certificateArn": "arn:aws:acm:us-east-1:1:certificate/x", "httpPort": "443"}, wantErr: "elastiq:httpPort"},
		{name: "cache nodes", keys: map[string]string{"clientCidr": "0.0.0.0/0", "layout": "loadBalanced", "cacheNodes": "0"}, wantErr: "elastiq:cacheNodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(func(k string) string { return tt.keys[k] })
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig(%v) = %v, want an error about %s", tt.keys, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig(%v): %v", tt.keys, err)
			}
			if !tt.want(c) {
				t.Errorf("parseConfig(%v) = %+v: not the expected settings", tt.keys, c)
			}
		})
	}
}

// TestDevStack runs the program as `pulumi up` on the dev stack would, with
// the keys of the repository's Pulumi.dev.yaml (through PULUMI_CONFIG, as the
// CLI passes them), under mocks and with a stand-in build.
func TestDevStack(t *testing.T) {
	m, root := runStackFile(t, "dev")
	if _, err := os.Stat(filepath.Join(root, "Pulumi.yaml")); err != nil {
		t.Errorf("run found the repository at %q: %v", root, err)
	}
	web, _ := m.one(t, typeInstance, "elastiq-dev-web").Inputs["userData"].(string)
	for _, want := range []string{"ELASTIQ_MAX_WORKERS=19", "ELASTIQ_TERMINATE_AFTER=2m0s", "ELASTIQ_STACK=elastiq-dev"} {
		if !strings.Contains(web, want) {
			t.Errorf("dev web user data does not contain %s", want)
		}
	}
	if got := m.one(t, typeBucket, "elastiq-dev").Inputs["forceDestroy"]; got != true {
		t.Errorf("dev bucket forceDestroy = %v, want true", got)
	}
}

// runStackFile runs the program as `pulumi up` on the stack would, with
// the keys of the repository's Pulumi.<stack>.yaml (through PULUMI_CONFIG,
// as the CLI passes them), under mocks and with a stand-in build. It
// returns the mocks and the repository root the program found.
func runStackFile(t *testing.T, stack string) (*mocks, string) {
	t.Helper()
	file := "Pulumi." + stack + ".yaml"
	b, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Fatalf("read the %s stack's config: %v", stack, err)
	}
	var doc struct {
		Config map[string]string `yaml:"config"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	env, err := json.Marshal(doc.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(pulumi.EnvConfig, string(env))
	m := &mocks{}
	var root string
	err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		return run(ctx, func(r string) buildFunc {
			root = r
			return fakeBuild(t, stack)
		})
	}, pulumi.WithMocks("elastiq", stack, m))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return m, root
}

func TestStackName(t *testing.T) {
	tests := []struct {
		name, project, stack, want string
	}{
		{name: "plain", project: "elastiq", stack: "dev", want: "elastiq-dev"},
		{name: "case and symbols", project: "Elastiq", stack: "my_Stack.2", want: "elastiq-my-stack-2"},
		{name: "organization stack", project: "elastiq", stack: "org/dev", want: "elastiq-org-dev"},
		{name: "long", project: "elastiq", stack: strings.Repeat("x", 60), want: "elastiq-" + strings.Repeat("x", maxStackName-len("elastiq-"))},
		{name: "no trailing dash", project: "elastiq", stack: strings.Repeat("x", maxStackName-len("elastiq-")-1) + "--y", want: "elastiq-" + strings.Repeat("x", maxStackName-len("elastiq-")-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stackName(tt.project, tt.stack); got != tt.want {
				t.Errorf("stackName(%q, %q) = %q, want %q", tt.project, tt.stack, got, tt.want)
			}
		})
	}
}
