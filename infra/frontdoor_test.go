package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	iampolicy "github.com/elastiq/elastiq/infra/iam"
)

// Resource types of the load-balanced layout.
const (
	typeBalancer    = "aws:lb/loadBalancer:LoadBalancer"
	typeTargetGroup = "aws:lb/targetGroup:TargetGroup"
	typeListener    = "aws:lb/listener:Listener"
	typeGroup       = "aws:autoscaling/group:Group"
	typeCache       = "aws:elasticache/cluster:Cluster"
	typeSGRule      = "aws:ec2/securityGroupRule:SecurityGroupRule"
)

// loadBalanced is testConfig in the load-balanced layout, plus overrides.
func loadBalanced(t *testing.T, overrides map[string]string) Config {
	keys := map[string]string{"layout": layoutLoadBalanced}
	for k, v := range overrides {
		keys[k] = v
	}
	return testConfig(t, keys)
}

// decodedUserData is a launch template's user data, decoded.
func decodedUserData(t *testing.T, r mockResource) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(fmt.Sprint(r.Inputs["userData"]))
	if err != nil {
		t.Fatalf("%s user data: %v", r.Name, err)
	}
	return string(b)
}

// TestLoadBalancedLayout: the load balancer in front of the web instances'
// Auto Scaling group across the default subnets, health checked on
// /healthz; each web instance with its own reply queue, the shared cache's
// nodes and the scaler's address; the scaler on an instance of its own; no
// shared response queue; the url the load balancer's.
func TestLoadBalancedLayout(t *testing.T) {
	d := deployStack(t, loadBalanced(t, nil))
	if len(d.ofType(typeInstance)) != 1 || d.ofType(typeInstance)[0].Name != testStack+"-scaler" {
		t.Fatalf("instances = %v, want the scaler's alone (the web instances are the group's)", d.ofType(typeInstance))
	}
	for _, q := range d.ofType(typeQueue) {
		if strings.HasSuffix(q.Name, "-responses") {
			t.Errorf("queue %s: want no shared response queue (each web instance makes its own)", q.Name)
		}
	}

	lbr := d.one(t, typeBalancer, testStack+"-lb")
	if lbr.Inputs["loadBalancerType"] != "application" || lbr.Inputs["internal"] != false || lbr.Inputs["idleTimeout"] != float64(balancerIdleTimeout) {
		t.Errorf("load balancer = %v, want an internet-facing application load balancer, idle timeout %d", lbr.Inputs, balancerIdleTimeout)
	}
	if subnets, _ := lbr.Inputs["subnets"].([]any); len(subnets) != 3 {
		t.Errorf("load balancer subnets = %v, want the three default subnets", lbr.Inputs["subnets"])
	}
	tg := d.one(t, typeTargetGroup, testStack+"-web")
	if at(tg.Inputs, "healthCheck", "path") != "/healthz" || at(tg.Inputs, "healthCheck", "matcher") != "200" || tg.Inputs["port"] != float64(80) {
		t.Errorf("target group = %v, want HTTP 80 health checked on /healthz", tg.Inputs)
	}
	http := d.one(t, typeListener, testStack+"-http")
	if at(http.Inputs, "defaultActions", "0", "type") != "forward" || at(http.Inputs, "defaultActions", "0", "targetGroupArn") != tg.Outputs["arn"] || http.Inputs["port"] != float64(80) {
		t.Errorf("HTTP listener = %v, want port 80 forwarding to the web instances", http.Inputs)
	}
	if len(d.ofType(typeListener)) != 1 {
		t.Errorf("listeners = %d, want HTTP alone without a certificate", len(d.ofType(typeListener)))
	}

	group := d.one(t, typeGroup, testStack+"-web")
	webLT := d.one(t, typeTemplate, testStack+"-web")
	for key, want := range map[string]any{
		"minSize": float64(2), "maxSize": float64(4), "healthCheckType": "ELB", "waitForElbCapacity": float64(2),
	} {
		if group.Inputs[key] != want {
			t.Errorf("web group %s = %v, want %v", key, group.Inputs[key], want)
		}
	}
	if subnets, _ := group.Inputs["vpcZoneIdentifiers"].([]any); len(subnets) != 3 {
		t.Errorf("web group subnets = %v, want the three availability zones' default subnets", group.Inputs["vpcZoneIdentifiers"])
	}
	if arns, _ := group.Inputs["targetGroupArns"].([]any); len(arns) != 1 || arns[0] != tg.Outputs["arn"] {
		t.Errorf("web group targets = %v, want the target group", group.Inputs["targetGroupArns"])
	}
	if at(group.Inputs, "launchTemplate", "id") != webLT.ID {
		t.Errorf("web group template = %v, want %s", group.Inputs["launchTemplate"], webLT.ID)
	}
	if at(group.Inputs, "instanceRefresh", "strategy") != "Rolling" || at(group.Inputs, "instanceRefresh", "preferences", "minHealthyPercentage") != float64(100) {
		t.Errorf("web group instance refresh = %v, want rolling with 100%% kept healthy", group.Inputs["instanceRefresh"])
	}

	policy := d.one(t, "aws:autoscaling/policy:Policy", testStack+"-web-cpu")
	if policy.Inputs["autoscalingGroupName"] != group.Outputs["name"] || policy.Inputs["policyType"] != "TargetTrackingScaling" ||
		at(policy.Inputs, "targetTrackingConfiguration", "predefinedMetricSpecification", "predefinedMetricType") != "ASGAverageCPUUtilization" ||
		at(policy.Inputs, "targetTrackingConfiguration", "targetValue") != float64(webTargetCPU) {
		t.Errorf("web scaling policy = %v, want target tracking of the group's CPU at %d%%", policy.Inputs, webTargetCPU)
	}

	cache := d.one(t, typeCache, testStack+"-cache")
	if cache.Inputs["engine"] != "memcached" || cache.Inputs["nodeType"] != defaultCacheNodeType || cache.Inputs["numCacheNodes"] != float64(1) {
		t.Errorf("cache = %v, want one %s memcached node", cache.Inputs, defaultCacheNodeType)
	}
	web := decodedUserData(t, webLT)
	node := fmt.Sprint(at(cache.Outputs, "cacheNodes", "0", "address")) + ":11211"
	for _, want := range []string{"ELASTIQ_REPLY_QUEUE_PREFIX=" + testStack + "-reply-", "ELASTIQ_MEMCACHED=" + node,
		"ELASTIQ_SCALER_URL=http://" + mockPrivateIP + ":8081", d.Bundle.Web.Key()} {
		if !strings.Contains(web, want) {
			t.Errorf("web instances' user data does not contain %s", want)
		}
	}
	for _, not := range []string{"ELASTIQ_RESPONSE_QUEUE_URL", "dnf install -y memcached", d.Bundle.Scaler.Key()} {
		if strings.Contains(web, not) {
			t.Errorf("web instances' user data contains %s", not)
		}
	}
	scaler, _ := d.one(t, typeInstance, testStack+"-scaler").Inputs["userData"].(string)
	for _, want := range []string{"ELASTIQ_ADDR=0.0.0.0:8081", "ELASTIQ_REPLY_QUEUE_PREFIX=" + testStack + "-reply-", d.Bundle.Scaler.Key()} {
		if !strings.Contains(scaler, want) {
			t.Errorf("scaler's user data does not contain %s", want)
		}
	}
	worker := decodedUserData(t, d.one(t, typeTemplate, testStack+"-worker"))
	if strings.Contains(worker, "ELASTIQ_RESPONSE_QUEUE_URL") {
		t.Error("workers' user data names a response queue; want none (each request names its own)")
	}

	if d.Outputs["url"] != "http://"+mockBalancerDNS+"/" || d.Outputs["webGroupName"] == "" {
		t.Errorf("outputs = %v, want url the load balancer's, and the web group's name", d.Outputs)
	}
	if _, ok := d.Outputs["responseQueueUrl"]; ok {
		t.Error("outputs have a responseQueueUrl; want none")
	}
}

// TestLoadBalancedSecurityGroups: the clients reach the load balancer
// only; the web instances take HTTP from the load balancer only, memcached
// the web instances only, the scaler's port the web instances only.
func TestLoadBalancedSecurityGroups(t *testing.T) {
	d := deployStack(t, loadBalanced(t, nil))
	sg := func(suffix string) string { return d.one(t, typeSG, testStack+"-"+suffix).ID }
	lbSG, webSG, cacheSG, scalerSG := sg("lb"), sg("web"), sg("cache"), sg("scaler")
	type side struct {
		port int
		from string // a CIDR or a group ID
	}
	ingress := map[string][]side{}
	for _, r := range d.ofType(typeSGRule) {
		if r.Inputs["type"] != "ingress" {
			continue
		}
		from := fmt.Sprint(r.Inputs["sourceSecurityGroupId"])
		if cidrs, ok := r.Inputs["cidrBlocks"].([]any); ok {
			from = fmt.Sprint(cidrs...)
		}
		g := fmt.Sprint(r.Inputs["securityGroupId"])
		ingress[g] = append(ingress[g], side{int(r.Inputs["fromPort"].(float64)), from})
	}
	for _, tt := range []struct {
		name  string
		group string
		want  []side
	}{
		{"load balancer", lbSG, []side{{80, "0.0.0.0/0"}}},
		{"web instances", webSG, []side{{80, lbSG}}},
		{"cache", cacheSG, []side{{11211, webSG}}},
		{"scaler", scalerSG, []side{{8081, webSG}, {9102, "0.0.0.0/0"}}},
	} {
		got := ingress[tt.group]
		slices.SortFunc(got, func(a, b side) int { return a.port - b.port })
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s ingress = %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, g := range d.ofType(typeSG) {
		if g.Inputs["ingress"] != nil && g.Name != testStack+"-worker" {
			t.Errorf("security group %s has inline ingress rules %v; want them all as separate rules", g.Name, g.Inputs["ingress"])
		}
	}
}

// TestLoadBalancedHTTPS: with a certificate the load balancer serves HTTPS
// on 443 with it, its HTTP port redirects there, and the url is https.
func TestLoadBalancedHTTPS(t *testing.T) {
	const cert = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d"
	d := deployStack(t, loadBalanced(t, map[string]string{"certificateArn": cert}))
	https := d.one(t, typeListener, testStack+"-https")
	if https.Inputs["port"] != float64(443) || https.Inputs["protocol"] != "HTTPS" || https.Inputs["certificateArn"] != cert ||
		https.Inputs["sslPolicy"] != tlsPolicy || at(https.Inputs, "defaultActions", "0", "type") != "forward" {
		t.Errorf("HTTPS listener = %v, want 443 with the certificate, forwarding", https.Inputs)
	}
	http := d.one(t, typeListener, testStack+"-http")
	if at(http.Inputs, "defaultActions", "0", "type") != "redirect" || at(http.Inputs, "defaultActions", "0", "redirect", "protocol") != "HTTPS" ||
		at(http.Inputs, "defaultActions", "0", "redirect", "statusCode") != "HTTP_301" {
		t.Errorf("HTTP listener = %v, want a permanent redirect to HTTPS", http.Inputs)
	}
	if d.Outputs["url"] != "https://"+mockBalancerDNS+"/" {
		t.Errorf("url = %s, want https on the load balancer", d.Outputs["url"])
	}
}

// TestLoadBalancedPolicies: three roles, each with its document of the
// load-balanced layout: the web role makes its own queue and launches
// nothing, the scaler role launches workers and sweeps queues, the worker
// role replies on the web instances' queues.
func TestLoadBalancedPolicies(t *testing.T) {
	d := deployStack(t, loadBalanced(t, nil))
	replies := "arn:aws:sqs:" + mockRegion + ":" + mockAccount + ":" + testStack + "-reply-*"
	doc := func(role string) iampolicy.Document {
		p := d.one(t, typeRolePolicy, testStack+"-"+role)
		if p.Inputs["role"] != d.one(t, typeRole, testStack+"-"+role).Outputs["name"] {
			t.Errorf("policy %s is not on role %s", p.Name, role)
		}
		var doc iampolicy.Document
		if err := json.Unmarshal([]byte(fmt.Sprint(p.Inputs["policy"])), &doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	allows := func(d iampolicy.Document, action, resource string) bool {
		for _, st := range d.Statement {
			if slices.Contains(st.Action, action) && slices.Contains(st.Resource, resource) {
				return true
			}
		}
		return false
	}
	grants := func(d iampolicy.Document, action string) bool {
		return slices.ContainsFunc(d.Statement, func(st iampolicy.Statement) bool { return slices.Contains(st.Action, action) })
	}
	web, scaler, worker := doc("web"), doc("scaler"), doc("worker")
	if !allows(web, "sqs:CreateQueue", replies) || !allows(web, "sqs:DeleteQueue", replies) || grants(web, "ec2:RunInstances") {
		t.Error("web role: want its reply queue's actions and no launches")
	}
	if !grants(scaler, "ec2:RunInstances") || !allows(scaler, "sqs:ListQueues", "*") || !allows(scaler, "sqs:DeleteQueue", replies) || grants(scaler, "sqs:SendMessage") {
		t.Error("scaler role: want launches and the sweep of reply queues, no sends")
	}
	if !allows(worker, "sqs:SendMessage", replies) {
		t.Errorf("worker role: want sqs:SendMessage on %s", replies)
	}
	profile := d.one(t, typeProfile, testStack+"-scaler")
	if d.one(t, typeInstance, testStack+"-scaler").Inputs["iamInstanceProfile"] != profile.Outputs["name"] {
		t.Error("the scaler instance does not run with the scaler's profile")
	}
}

// TestProdStack runs the program as `pulumi up` on the prod stack would,
// with the keys of the repository's Pulumi.prod.yaml: the load-balanced
// layout, two cache nodes across zones.
func TestProdStack(t *testing.T) {
	m, _ := runStackFile(t, "prod")
	cache := m.one(t, typeCache, "elastiq-prod-cache")
	if cache.Inputs["numCacheNodes"] != float64(2) || cache.Inputs["azMode"] != "cross-az" {
		t.Errorf("prod cache = %v, want two nodes across zones", cache.Inputs)
	}
	if g := m.one(t, typeGroup, "elastiq-prod-web"); g.Inputs["minSize"] != float64(2) {
		t.Errorf("prod web group min = %v, want 2", g.Inputs["minSize"])
	}
	if got := m.one(t, typeBucket, "elastiq-prod").Inputs["forceDestroy"]; got != false {
		t.Errorf("prod bucket forceDestroy = %v, want false", got)
	}
}

// TestLoadBalancedCodeChange: a new bundle is new user data for the web
// instances' template (a new version, which the group's instance refresh
// rolls out) and for the scaler (replaced); the same bundle changes
// neither, and the load balancer, hence the url, is the same resource.
func TestLoadBalancedCodeChange(t *testing.T) {
	cfg := loadBalanced(t, nil)
	v1 := deployStack(t, cfg)
	cfg.Build = fakeBuild(t, "v2")
	v2 := deployStack(t, cfg)
	same := deployStack(t, loadBalanced(t, nil))
	web := func(d deployed) string { return decodedUserData(t, d.one(t, typeTemplate, testStack+"-web")) }
	scaler := func(d deployed) any { return d.one(t, typeInstance, testStack+"-scaler").Inputs["userData"] }
	if web(v1) == web(v2) || scaler(v1) == scaler(v2) {
		t.Error("a new bundle leaves the web instances' or the scaler's user data as it was: nothing would roll")
	}
	if web(v1) != web(same) || scaler(v1) != scaler(same) {
		t.Error("the same bundle changes the user data: every update would roll the instances")
	}
	if r := v1.one(t, typeInstance, testStack+"-scaler"); !r.DeleteBeforeReplace {
		t.Error("the scaler is not replaced delete-before-create: two scalers would act on one fleet")
	}
	// The load balancer's inputs do not depend on the bundle: an update
	// changes nothing about it, so its DNS name, the url, stays.
	for _, typ := range []string{typeBalancer, typeListener, typeTargetGroup} {
		a, b := v1.ofType(typ), v2.ofType(typ)
		if len(a) != len(b) {
			t.Fatalf("%s: %d and %d resources for two bundles", typ, len(a), len(b))
		}
		for i := range a {
			if !reflect.DeepEqual(a[i].Inputs, b[i].Inputs) {
				t.Errorf("%s %s: inputs differ between two bundles (%v, %v): it would be updated or replaced", typ, a[i].Name, a[i].Inputs, b[i].Inputs)
			}
		}
	}
}
