package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/elastiq/elastiq/infra/deploy"
)

// Resource types the tests look at.
const (
	typeBucket       = "aws:s3/bucketV2:BucketV2"
	typeAccessBlock  = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	typeEncryption   = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	typeLifecycle    = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
	typeObject       = "aws:s3/bucketObjectv2:BucketObjectv2"
	typeQueue        = "aws:sqs/queue:Queue"
	typeRole         = "aws:iam/role:Role"
	typeRolePolicy   = "aws:iam/rolePolicy:RolePolicy"
	typeProfile      = "aws:iam/instanceProfile:InstanceProfile"
	typeSG           = "aws:ec2/securityGroup:SecurityGroup"
	typeInstance     = "aws:ec2/instance:Instance"
	typeTemplate     = "aws:ec2/launchTemplate:LaunchTemplate"
	testStack        = "elastiq-test" // stackName("elastiq", "test")
	testWorkerAMI    = "ami-0baked"
	testLaunchTmplAR = "arn:aws:ec2:" + mockRegion + ":" + mockAccount + ":launch-template/" + mockLT
)

// at walks v along path (map keys, or "0", "1"... into lists) and returns
// what it finds, nil if nothing.
func at(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func TestQueues(t *testing.T) {
	d := deployStack(t, testConfig(t, nil))
	dlq := d.one(t, typeQueue, testStack+"-dead-letters")
	tests := []struct {
		name  string
		queue string
	}{
		{name: "request", queue: testStack + "-requests"},
		{name: "response", queue: testStack + "-responses"},
		{name: "dead letters", queue: testStack + "-dead-letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := d.one(t, typeQueue, tt.queue).Inputs
			for key, want := range map[string]any{
				"visibilityTimeoutSeconds": float64(15),
				"receiveWaitTimeSeconds":   float64(20),
				"sqsManagedSseEnabled":     true,
			} {
				if got := q[key]; got != want {
					t.Errorf("%s %s = %v, want %v", tt.queue, key, got, want)
				}
			}
			if q["fifoQueue"] == true {
				t.Errorf("%s is FIFO, want standard", tt.queue)
			}
		})
	}
	t.Run("redrive", func(t *testing.T) {
		policy, _ := d.one(t, typeQueue, testStack+"-requests").Inputs["redrivePolicy"].(string)
		var redrive struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
			MaxReceiveCount     int    `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(policy), &redrive); err != nil {
			t.Fatalf("request queue redrivePolicy %q: %v", policy, err)
		}
		if want := dlq.Outputs["arn"]; redrive.DeadLetterTargetArn != want {
			t.Errorf("deadLetterTargetArn = %q, want the dead-letter queue %v", redrive.DeadLetterTargetArn, want)
		}
		if redrive.MaxReceiveCount != defaultMaxReceives {
			t.Errorf("maxReceiveCount = %d, want %d", redrive.MaxReceiveCount, defaultMaxReceives)
		}
		for _, name := range []string{"-responses", "-dead-letters"} {
			if p := d.one(t, typeQueue, testStack+name).Inputs["redrivePolicy"]; p != nil {
				t.Errorf("%s redrivePolicy = %v, want none", name, p)
			}
		}
	})
}

func TestStorage(t *testing.T) {
	tests := []struct {
		name          string
		overrides     map[string]string
		forceDestroy  bool
		lifecycleDays int // 0: no lifecycle configuration
	}{
		{name: "dev", overrides: nil, forceDestroy: true, lifecycleDays: 7},
		{name: "defaults", overrides: map[string]string{"forceDestroy": "", "lifecycleDays": ""}, forceDestroy: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployStack(t, testConfig(t, tt.overrides))
			bucket := d.one(t, typeBucket, testStack)
			if got := bucket.Inputs["forceDestroy"]; got != tt.forceDestroy {
				t.Errorf("bucket forceDestroy = %v, want %v", got, tt.forceDestroy)
			}
			block := d.one(t, typeAccessBlock, testStack).Inputs
			if block["bucket"] != bucket.ID {
				t.Errorf("public access block bucket = %v, want %s", block["bucket"], bucket.ID)
			}
			for _, key := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
				if block[key] != true {
					t.Errorf("public access block %s = %v, want true", key, block[key])
				}
			}
			sse := d.one(t, typeEncryption, testStack).Inputs
			if sse["bucket"] != bucket.ID {
				t.Errorf("encryption bucket = %v, want %s", sse["bucket"], bucket.ID)
			}
			if got := at(sse, "rules", "0", "applyServerSideEncryptionByDefault", "sseAlgorithm"); got != "AES256" {
				t.Errorf("encryption sseAlgorithm = %v, want AES256", got)
			}
			lifecycles := d.ofType(typeLifecycle)
			if tt.lifecycleDays == 0 {
				if len(lifecycles) != 0 {
					t.Errorf("lifecycle configurations = %d, want none", len(lifecycles))
				}
				return
			}
			if len(lifecycles) != 1 {
				t.Fatalf("lifecycle configurations = %d, want 1", len(lifecycles))
			}
			rules, _ := lifecycles[0].Inputs["rules"].([]any)
			var prefixes []string
			for _, r := range rules {
				prefixes = append(prefixes, fmt.Sprint(at(r, "filter", "prefix")))
				if got := at(r, "expiration", "days"); got != float64(tt.lifecycleDays) {
					t.Errorf("lifecycle rule %v expiration days = %v, want %d", at(r, "id"), got, tt.lifecycleDays)
				}
				if got := at(r, "status"); got != "Enabled" {
					t.Errorf("lifecycle rule %v status = %v, want Enabled", at(r, "id"), got)
				}
			}
			if want := []string{inputPrefix, outputPrefix}; !slices.Equal(prefixes, want) {
				t.Errorf("lifecycle prefixes = %v, want %v (never deploy/)", prefixes, want)
			}
		})
	}
}

func TestSecurityGroups(t *testing.T) {
	type rule struct {
		Protocol string
		Port     int
		CIDR     string
	}
	rules := func(v any) []rule {
		list, _ := v.([]any)
		var rs []rule
		for _, r := range list {
			from, _ := at(r, "fromPort").(float64)
			to, _ := at(r, "toPort").(float64)
			if from != to {
				t.Errorf("rule %v opens ports %v..%v, want one port", r, from, to)
			}
			cidrs, _ := at(r, "cidrBlocks").([]any)
			for _, c := range cidrs {
				rs = append(rs, rule{Protocol: fmt.Sprint(at(r, "protocol")), Port: int(from), CIDR: fmt.Sprint(c)})
			}
			if len(cidrs) == 0 {
				t.Errorf("rule %v has no CIDR block", r)
			}
		}
		return rs
	}
	egress := []rule{{"tcp", 443, "0.0.0.0/0"}, {"tcp", 80, "0.0.0.0/0"}}
	// Clients reach the web tier's port (its /metrics too), and
	// Prometheus at the clients' CIDR the scaler's and the workers'
	// metrics ports; nothing else comes in but SSH when configured.
	tests := []struct {
		name          string
		overrides     map[string]string
		webIngress    []rule
		workerIngress []rule
	}{
		{
			name:          "dev",
			webIngress:    []rule{{"tcp", 80, "0.0.0.0/0"}, {"tcp", 9102, "0.0.0.0/0"}},
			workerIngress: []rule{{"tcp", 9101, "0.0.0.0/0"}},
		},
		{
			name:          "client cidr and port",
			overrides:     map[string]string{"clientCidr": "198.51.100.0/24", "httpPort": "8080"},
			webIngress:    []rule{{"tcp", 8080, "198.51.100.0/24"}, {"tcp", 9102, "198.51.100.0/24"}},
			workerIngress: []rule{{"tcp", 9101, "198.51.100.0/24"}},
		},
		{
			name:          "ssh",
			overrides:     map[string]string{"sshCidr": "203.0.113.7/32"},
			webIngress:    []rule{{"tcp", 80, "0.0.0.0/0"}, {"tcp", 9102, "0.0.0.0/0"}, {"tcp", 22, "203.0.113.7/32"}},
			workerIngress: []rule{{"tcp", 9101, "0.0.0.0/0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployStack(t, testConfig(t, tt.overrides))
			web := d.one(t, typeSG, testStack+"-web").Inputs
			worker := d.one(t, typeSG, testStack+"-worker").Inputs
			if got := rules(web["ingress"]); !slices.Equal(got, tt.webIngress) {
				t.Errorf("web ingress = %v, want %v", got, tt.webIngress)
			}
			if got := rules(worker["ingress"]); !slices.Equal(got, tt.workerIngress) {
				t.Errorf("worker ingress = %v, want %v", got, tt.workerIngress)
			}
			for name, sg := range map[string]map[string]any{"web": web, "worker": worker} {
				if got := rules(sg["egress"]); !slices.Equal(got, egress) {
					t.Errorf("%s egress = %v, want %v", name, got, egress)
				}
				if sg["vpcId"] != mockVPC {
					t.Errorf("%s vpcId = %v, want the default VPC %s", name, sg["vpcId"], mockVPC)
				}
			}
		})
	}
}

func TestInstances(t *testing.T) {
	for _, tt := range workerImages {
		t.Run(tt.name, func(t *testing.T) {
			d := deployStack(t, testConfig(t, tt.overrides))
			webInstance := d.one(t, typeInstance, testStack+"-web")
			if !webInstance.DeleteBeforeReplace {
				t.Errorf("web instance deleteBeforeReplace = false, want true (one scaler at a time)")
			}
			if !slices.Equal(webInstance.IgnoreChanges, []string{"ami"}) {
				t.Errorf("web instance ignoreChanges = %v, want [ami] (a new Amazon Linux does not replace it)", webInstance.IgnoreChanges)
			}
			web := webInstance.Inputs
			lt := d.one(t, typeTemplate, testStack+"-worker").Inputs
			for name, opts := range map[string]any{"web instance": web["metadataOptions"], "launch template": lt["metadataOptions"]} {
				if got := at(opts, "httpTokens"); got != "required" {
					t.Errorf("%s httpTokens = %v, want required (IMDSv2)", name, got)
				}
				if got := at(opts, "httpEndpoint"); got != "enabled" {
					t.Errorf("%s httpEndpoint = %v, want enabled (the worker reads its ID)", name, got)
				}
			}
			checks := []struct {
				what      string
				got, want any
			}{
				{"web ami", web["ami"], mockAL2023},
				{"web instanceType", web["instanceType"], "t3.micro"},
				{"web iamInstanceProfile", web["iamInstanceProfile"], d.one(t, typeProfile, testStack+"-web").Outputs["name"]},
				{"web vpcSecurityGroupIds", fmt.Sprint(web["vpcSecurityGroupIds"]), "[sg-" + testStack + "-web]"},
				{"web userDataReplaceOnChange", web["userDataReplaceOnChange"], true},
				{"web role tag", at(web, "tags", tagRole), roleWeb},
				{"web stack tag", at(web, "tags", tagStack), testStack},
				{"template imageId", lt["imageId"], tt.image},
				{"template instanceType", lt["instanceType"], "t3.small"},
				{"template iamInstanceProfile", at(lt, "iamInstanceProfile", "arn"), d.one(t, typeProfile, testStack+"-worker").Outputs["arn"]},
				{"template vpcSecurityGroupIds", fmt.Sprint(lt["vpcSecurityGroupIds"]), "[sg-" + testStack + "-worker]"},
				{"template instanceInitiatedShutdownBehavior", lt["instanceInitiatedShutdownBehavior"], "stop"},
				{"template updateDefaultVersion", lt["updateDefaultVersion"], true},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			specs, _ := lt["tagSpecifications"].([]any)
			tagged := map[string]bool{}
			for _, s := range specs {
				kind := fmt.Sprint(at(s, "resourceType"))
				tagged[kind] = true
				for k, v := range workerTags(testStack) {
					if got := at(s, "tags", k); got != v {
						t.Errorf("template %s tag %s = %v, want %s (the scaler finds workers by it)", kind, k, got, v)
					}
				}
			}
			if !tagged["instance"] || !tagged["volume"] {
				t.Errorf("template tags %v, want instance and volume", slices.Sorted(maps.Keys(tagged)))
			}
			checkAMILookup(t, d.mocks)
		})
	}
}

func TestTags(t *testing.T) {
	d := deployStack(t, testConfig(t, nil))
	for _, token := range []string{typeBucket, typeQueue, typeRole, typeProfile, typeSG, typeInstance, typeTemplate} {
		for _, r := range d.ofType(token) {
			if got := at(r.Inputs, "tags", tagStack); got != testStack {
				t.Errorf("%s %s tag %s = %v, want %s", token, r.Name, tagStack, got, testStack)
			}
			if token != typeTemplate && at(r.Inputs, "tags", tagRole) == roleWorker {
				t.Errorf("%s %s is tagged as a worker: the scaler could act on it", token, r.Name)
			}
		}
	}
}

func TestOutputs(t *testing.T) {
	d := deployStack(t, testConfig(t, nil))
	want := map[string]string{
		"url":                "http://" + mockIP + "/",
		"dashboardUrl":       "http://" + mockIP + "/dashboard",
		"scalerMetricsUrl":   "http://" + mockIP + ":9102/metrics",
		"bucket":             fmt.Sprint(d.one(t, typeBucket, testStack).Outputs["bucket"]),
		"requestQueueUrl":    fmt.Sprint(d.one(t, typeQueue, testStack+"-requests").Outputs["url"]),
		"responseQueueUrl":   fmt.Sprint(d.one(t, typeQueue, testStack+"-responses").Outputs["url"]),
		"deadLetterQueueUrl": fmt.Sprint(d.one(t, typeQueue, testStack+"-dead-letters").Outputs["url"]),
		"launchTemplateId":   mockLT,
		"stack":              testStack,
	}
	for name, w := range want {
		if got := d.Outputs[name]; got != w {
			t.Errorf("output %s = %q, want %q", name, got, w)
		}
	}
	for name := range d.Outputs {
		if _, ok := want[name]; !ok {
			t.Errorf("output %s: not checked", name)
		}
	}
}

// userData is the web instance's and the launch template's user data.
func userData(t *testing.T, d deployed) (web, worker string) {
	t.Helper()
	web, _ = d.one(t, typeInstance, testStack+"-web").Inputs["userData"].(string)
	enc, _ := d.one(t, typeTemplate, testStack+"-worker").Inputs["userData"].(string)
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("launch template userData: %v", err)
	}
	return web, string(b)
}

func TestUserData(t *testing.T) {
	for _, tt := range workerImages {
		t.Run(tt.name, func(t *testing.T) {
			d := deployStack(t, testConfig(t, tt.overrides))
			web, worker := userData(t, d)
			o := d.Outputs
			b := d.Bundle
			mustHave := func(what, script string, parts ...string) {
				for _, p := range parts {
					if !strings.Contains(script, p) {
						t.Errorf("%s user data does not contain %q", what, p)
					}
				}
			}
			mustNotHave := func(what, script string, parts ...string) {
				for _, p := range parts {
					if strings.Contains(script, p) {
						t.Errorf("%s user data contains %q", what, p)
					}
				}
			}
			// EC2 takes at most 16 KiB of user data; cloud-init runs
			// it as a script only with a shebang.
			for what, script := range map[string]string{"web": web, "worker": worker} {
				if len(script) > 16<<10 {
					t.Errorf("%s user data is %d bytes, want at most 16 KiB", what, len(script))
				}
				if !strings.HasPrefix(script, "#!/") {
					t.Errorf("%s user data starts %.20q, want a script", what, script)
				}
			}
			mustHave("web", web, o["bucket"], o["requestQueueUrl"], o["responseQueueUrl"], o["deadLetterQueueUrl"],
				o["launchTemplateId"], "ELASTIQ_STACK="+testStack, "ELASTIQ_MAX_WORKERS=19", "ELASTIQ_TERMINATE_AFTER=2m0s",
				"ELASTIQ_REGION="+mockRegion, "0.0.0.0:80", b.Web.Key(), b.Scaler.Key(), "memcached")
			mustHave("worker", worker, o["bucket"], o["requestQueueUrl"], o["responseQueueUrl"],
				"ELASTIQ_IDLE=1m0s", "ELASTIQ_REGION="+mockRegion)
			mustNotHave("worker", worker, o["deadLetterQueueUrl"], b.Web.Key(), b.Scaler.Key())
			uploaded := map[string]string{}
			for _, obj := range d.ofType(typeObject) {
				uploaded[fmt.Sprint(obj.Inputs["key"])] = fmt.Sprint(obj.Inputs["bucket"])
			}
			want := []deploy.File{b.Web, b.Scaler}
			if tt.baked {
				mustNotHave("worker", worker, b.Worker.Key(), b.Models.Key())
			} else {
				mustHave("worker", worker, b.Worker.Key(), b.Models.Key())
				want = append(want, b.Worker, b.Models)
			}
			for _, f := range want {
				if bucket, ok := uploaded[f.Key()]; !ok || bucket != o["bucket"] {
					t.Errorf("object %s in bucket %q, want in %s", f.Key(), bucket, o["bucket"])
				}
			}
			if len(uploaded) != len(want) {
				t.Errorf("uploaded %d objects %v, want %d", len(uploaded), slices.Sorted(maps.Keys(uploaded)), len(want))
			}
		})
	}
}

// TestCodeChangeRollsInstances: a new bundle is new object keys, hence new
// user data, hence (userDataReplaceOnChange) a new web instance and a new
// launch template version.
func TestCodeChangeRollsInstances(t *testing.T) {
	cfg := testConfig(t, nil)
	v1 := deployStack(t, cfg)
	cfg.Build = fakeBuild(t, "v2")
	v2 := deployStack(t, cfg)
	web1, worker1 := userData(t, v1)
	web2, worker2 := userData(t, v2)
	if web1 == web2 {
		t.Errorf("web user data is the same for two bundles")
	}
	if worker1 == worker2 {
		t.Errorf("worker user data is the same for two bundles")
	}
	if v1.Bundle.Web.Key() == v2.Bundle.Web.Key() {
		t.Errorf("web object key %s is the same for two bundles", v1.Bundle.Web.Key())
	}
	same := deployStack(t, testConfig(t, nil))
	if w, _ := userData(t, same); w != web1 {
		t.Errorf("web user data differs for the same bundle: instances would roll on every update")
	}
}

// checkAMILookup checks that the program looked up Amazon Linux 2023 by
// owner and name, the most recent image.
func checkAMILookup(t *testing.T, m *mocks) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, call := range m.invokes {
		if call.Token != "aws:ec2/getAmi:getAmi" {
			continue
		}
		args := call.Args.Mappable()
		if got := fmt.Sprint(args["owners"]); got != "["+deploy.AmazonLinuxOwner+"]" {
			t.Errorf("image lookup owners = %s, want [%s]", got, deploy.AmazonLinuxOwner)
		}
		if args["mostRecent"] != true {
			t.Errorf("image lookup mostRecent = %v, want true", args["mostRecent"])
		}
		filters, _ := args["filters"].([]any)
		for _, f := range filters {
			if at(f, "name") == "name" {
				if got := fmt.Sprint(at(f, "values")); got != "["+deploy.AL2023NameFilter+"]" {
					t.Errorf("image lookup name filter = %s, want [%s]", got, deploy.AL2023NameFilter)
				}
				return
			}
		}
		t.Errorf("image lookup filters = %v, want one on the name", filters)
		return
	}
	t.Errorf("no image lookup")
}
