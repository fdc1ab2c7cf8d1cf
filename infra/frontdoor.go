package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/elasticache"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/elastiq/elastiq/infra/deploy"
)

// frontDoor is the load-balanced layout's web tier (elastiq:layout
// loadBalanced), in the account's default VPC, across its availability
// zones:
//   - an Application Load Balancer, the one address clients use (the
//     stack's url, the same across `pulumi up`): HTTP on httpPort, or with a
//     certificate HTTPS on 443 and a redirect from httpPort;
//   - an Auto Scaling group of web instances (webMinInstances to
//     webMaxInstances, kept near webTargetCPU by a target-tracking policy,
//     spread over the zones), each with a response queue of its own, health
//     checked by the load balancer on /healthz and replaced when unhealthy;
//     a new bundle is rolled out by an instance refresh that starts new
//     instances before it stops old ones;
//   - ElastiCache memcached, the result cache the web instances share;
//   - the scaler on an instance of its own: exactly one, so that no two
//     scalers act on one fleet (see README "Deploy to AWS").
//
// Security groups: the load balancer takes the clients (clientCidr); the
// web instances take HTTP from the load balancer only; memcached takes the
// web instances only; the scaler takes the web instances' reports only (and
// the clients' Prometheus scrapes, as in the single layout).
type frontDoor struct {
	pulumi.ResourceState

	Subnets []string
	// Security groups of the load balancer, the web instances, the
	// scaler and the cache; their rules are separate resources, as some
	// name each other.
	BalancerGroup, WebGroup, ScalerGroup, CacheGroup *ec2.SecurityGroup
	Rules                                            []*ec2.SecurityGroupRule

	CacheSubnets *elasticache.SubnetGroup
	Cache        *elasticache.Cluster
	Scaler       *ec2.Instance

	Balancer *lb.LoadBalancer
	Targets  *lb.TargetGroup
	// HTTP is the listener on httpPort; HTTPS, with a certificate, on 443
	// (nil without one).
	HTTP, HTTPS *lb.Listener

	WebTemplate *ec2.LaunchTemplate
	Web         *autoscaling.Group
	// WebScaling keeps the web instances' CPU near webTargetCPU, between
	// the group's bounds.
	WebScaling *autoscaling.Policy
}

// Front door settings.
const (
	// balancerIdleTimeout exceeds the web tier's sync timeout (60 s), so
	// a POST / that waits for its result is not cut off by the balancer.
	balancerIdleTimeout = 75
	// deregistrationDelay lets a web instance taken out of service finish
	// the requests it holds (a sync POST / waits up to 60 s).
	deregistrationDelay = 75
	// webWarmup is how long a new web instance takes to boot and install
	// the web tier before its health counts.
	webWarmup = 180
	// tlsPolicy is the HTTPS listener's: TLS 1.3 and 1.2 only.
	tlsPolicy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
	// webTargetCPU is the web instances' average CPU (percent) the group
	// adds and removes instances to keep: the web tier's work is CPU
	// (multipart, image headers) and connections, and it leaves room for
	// a burst while new instances boot.
	webTargetCPU = 50
)

// newFrontDoor makes the front door of st (its queues, bucket, access,
// workers' template and bundle already made), with Web instances from
// image.
func (st *stack) newFrontDoor(ctx *pulumi.Context, cfg Config, bundle deploy.Bundle, image string) (*frontDoor, error) {
	name := st.Name
	f := &frontDoor{}
	if err := ctx.RegisterComponentResource("elastiq:infra:FrontDoor", name, f); err != nil {
		return nil, fmt.Errorf("front door %s: %w", name, err)
	}
	parent := pulumi.Parent(f)
	subnets, err := ec2.GetSubnets(ctx, &ec2.GetSubnetsArgs{Filters: []ec2.GetSubnetsFilter{
		{Name: "vpc-id", Values: []string{st.Network.VPCID}},
		{Name: "default-for-az", Values: []string{"true"}},
	}}, pulumi.Parent(f))
	if err != nil {
		return nil, fmt.Errorf("front door %s: default subnets: %w", name, err)
	}
	if len(subnets.Ids) < 2 {
		return nil, fmt.Errorf("front door %s: the default VPC has %d default subnets; a load balancer needs two availability zones", name, len(subnets.Ids))
	}
	f.Subnets = subnets.Ids
	if err := f.newGroups(ctx, name, cfg, st.Network.VPCID, parent); err != nil {
		return nil, err
	}

	// The shared cache.
	if f.CacheSubnets, err = elasticache.NewSubnetGroup(ctx, name+"-cache", &elasticache.SubnetGroupArgs{
		Description: pulumi.String("elastiq " + name + ": the web tier's result cache"),
		SubnetIds:   pulumi.ToStringArray(f.Subnets),
		Tags:        pulumi.ToStringMap(resourceTags(name, "cache")),
	}, parent); err != nil {
		return nil, fmt.Errorf("cache subnet group %s: %w", name, err)
	}
	azMode := "single-az"
	if cfg.CacheNodes > 1 {
		azMode = "cross-az"
	}
	if f.Cache, err = elasticache.NewCluster(ctx, name+"-cache", &elasticache.ClusterArgs{
		Engine:           pulumi.String("memcached"),
		NodeType:         pulumi.String(cfg.CacheNodeType),
		NumCacheNodes:    pulumi.Int(cfg.CacheNodes),
		AzMode:           pulumi.String(azMode),
		Port:             pulumi.Int(memcachedPort),
		SubnetGroupName:  f.CacheSubnets.Name,
		SecurityGroupIds: pulumi.StringArray{f.CacheGroup.ID()},
		ApplyImmediately: pulumi.Bool(true),
		Tags:             pulumi.ToStringMap(resourceTags(name, "cache")),
	}, parent); err != nil {
		return nil, fmt.Errorf("cache %s: %w", name, err)
	}
	nodes := f.Cache.CacheNodes.ApplyT(func(ns []elasticache.ClusterCacheNode) []string {
		var out []string
		for _, n := range ns {
			if n.Address != nil && n.Port != nil {
				out = append(out, net.JoinHostPort(*n.Address, strconv.Itoa(*n.Port)))
			}
		}
		return out
	}).(pulumi.StringArrayOutput)

	// The scaler, on an instance of its own.
	config := st.webConfig(cfg, bundle)
	scalerUserData := config.ApplyT(func(c any) (string, error) { return deploy.ScalerUserData(c.(deploy.WebConfig)) }).(pulumi.StringOutput)
	if f.Scaler, err = st.newHost(ctx, hostArgs{
		Role: "scaler", InstanceType: cfg.ScalerInstanceType, Image: image, Profile: st.Access.ScalerProfile.Name,
		Group: f.ScalerGroup.ID(), UserData: scalerUserData, KeyName: cfg.KeyName,
		DependsOn: []pulumi.Resource{st.Access.ScalerPolicy, st.Access.WorkerPolicy},
	}, parent); err != nil {
		return nil, err
	}

	// The load balancer.
	if f.Balancer, err = lb.NewLoadBalancer(ctx, name+"-lb", &lb.LoadBalancerArgs{
		LoadBalancerType:        pulumi.String("application"),
		Internal:                pulumi.Bool(false),
		Subnets:                 pulumi.ToStringArray(f.Subnets),
		SecurityGroups:          pulumi.StringArray{f.BalancerGroup.ID()},
		IdleTimeout:             pulumi.Int(balancerIdleTimeout),
		DropInvalidHeaderFields: pulumi.Bool(true),
		Tags:                    pulumi.ToStringMap(resourceTags(name, "lb")),
	}, parent); err != nil {
		return nil, fmt.Errorf("load balancer %s: %w", name, err)
	}
	if f.Targets, err = lb.NewTargetGroup(ctx, name+"-web", &lb.TargetGroupArgs{
		Port:                pulumi.Int(cfg.HTTPPort),
		Protocol:            pulumi.String("HTTP"),
		TargetType:          pulumi.String("instance"),
		VpcId:               pulumi.String(st.Network.VPCID),
		DeregistrationDelay: pulumi.Int(deregistrationDelay),
		HealthCheck: &lb.TargetGroupHealthCheckArgs{
			Enabled:            pulumi.Bool(true),
			Path:               pulumi.String("/healthz"),
			Protocol:           pulumi.String("HTTP"),
			Matcher:            pulumi.String("200"),
			Interval:           pulumi.Int(10),
			Timeout:            pulumi.Int(5),
			HealthyThreshold:   pulumi.Int(2),
			UnhealthyThreshold: pulumi.Int(3),
		},
		Tags: pulumi.ToStringMap(resourceTags(name, "web-targets")),
	}, parent); err != nil {
		return nil, fmt.Errorf("target group %s: %w", name, err)
	}
	forward := lb.ListenerDefaultActionArray{&lb.ListenerDefaultActionArgs{Type: pulumi.String("forward"), TargetGroupArn: f.Targets.Arn}}
	httpAction := forward
	if cfg.CertificateARN != "" {
		if f.HTTPS, err = lb.NewListener(ctx, name+"-https", &lb.ListenerArgs{
			LoadBalancerArn: f.Balancer.Arn,
			Port:            pulumi.Int(httpsPort),
			Protocol:        pulumi.String("HTTPS"),
			CertificateArn:  pulumi.String(cfg.CertificateARN),
			SslPolicy:       pulumi.String(tlsPolicy),
			DefaultActions:  forward,
			Tags:            pulumi.ToStringMap(resourceTags(name, "https")),
		}, parent); err != nil {
			return nil, fmt.Errorf("listener %s-https: %w", name, err)
		}
		httpAction = lb.ListenerDefaultActionArray{&lb.ListenerDefaultActionArgs{
			Type: pulumi.String("redirect"),
			Redirect: &lb.ListenerDefaultActionRedirectArgs{
				Protocol: pulumi.String("HTTPS"), Port: pulumi.String(strconv.Itoa(httpsPort)), StatusCode: pulumi.String("HTTP_301"),
			},
		}}
	}
	if f.HTTP, err = lb.NewListener(ctx, name+"-http", &lb.ListenerArgs{
		LoadBalancerArn: f.Balancer.Arn,
		Port:            pulumi.Int(cfg.HTTPPort),
		Protocol:        pulumi.String("HTTP"),
		DefaultActions:  httpAction,
		Tags:            pulumi.ToStringMap(resourceTags(name, "http")),
	}, parent); err != nil {
		return nil, fmt.Errorf("listener %s-http: %w", name, err)
	}

	// The web instances: their template, and the group that keeps them.
	webUserData := pulumi.All(config, nodes, f.Scaler.PrivateIp).ApplyT(func(v []any) (string, error) {
		c := v[0].(deploy.WebConfig)
		c.Memcached, c.ScalerHost = v[1].([]string), v[2].(string)
		ud, err := deploy.WebUserData(c)
		return base64.StdEncoding.EncodeToString([]byte(ud)), err
	}).(pulumi.StringOutput)
	tags := resourceTags(name, roleWeb)
	tags[tagRole] = roleWeb
	args := launchTemplateArgs(hostTemplate{
		description:  "elastiq web instances of " + name,
		image:        image,
		instanceType: cfg.WebInstanceType,
		profileARN:   st.Access.WebProfile.Arn,
		group:        f.WebGroup.ID(),
		userData:     webUserData,
		instanceTags: tags,
		volumeTags:   resourceTags(name, roleWeb),
		tags:         resourceTags(name, "web-template"),
	})
	args.KeyName = keyName(cfg.KeyName)
	if f.WebTemplate, err = ec2.NewLaunchTemplate(ctx, name+"-web", args, parent); err != nil {
		return nil, fmt.Errorf("launch template %s-web: %w", name, err)
	}
	// The instances start their services at boot: their objects and the
	// policies come first.
	deps := append(st.Deployment.dependencies(), st.Access.WebPolicy, st.Access.WorkerPolicy)
	if f.Web, err = autoscaling.NewGroup(ctx, name+"-web", &autoscaling.GroupArgs{
		MinSize:                pulumi.Int(cfg.WebMinInstances),
		MaxSize:                pulumi.Int(cfg.WebMaxInstances),
		VpcZoneIdentifiers:     pulumi.ToStringArray(f.Subnets),
		TargetGroupArns:        pulumi.StringArray{f.Targets.Arn},
		HealthCheckType:        pulumi.String("ELB"),
		HealthCheckGracePeriod: pulumi.Int(webWarmup),
		DefaultInstanceWarmup:  pulumi.Int(webWarmup),
		// pulumi up waits until the minimum are healthy behind the
		// balancer.
		WaitForElbCapacity: pulumi.Int(cfg.WebMinInstances),
		LaunchTemplate: &autoscaling.GroupLaunchTemplateArgs{
			Id:      f.WebTemplate.ID(),
			Version: f.WebTemplate.LatestVersion.ApplyT(func(v int) string { return strconv.Itoa(v) }).(pulumi.StringOutput),
		},
		// A new template version (a new bundle) replaces the instances
		// a few at a time, new ones healthy before old ones go: no
		// moment with fewer than the minimum serving.
		InstanceRefresh: &autoscaling.GroupInstanceRefreshArgs{
			Strategy: pulumi.String("Rolling"),
			Preferences: &autoscaling.GroupInstanceRefreshPreferencesArgs{
				MinHealthyPercentage: pulumi.Int(100),
				MaxHealthyPercentage: pulumi.Int(200),
				InstanceWarmup:       pulumi.String(strconv.Itoa(webWarmup)),
			},
		},
		Tags: autoscaling.GroupTagArray{
			&autoscaling.GroupTagArgs{Key: pulumi.String("Name"), Value: pulumi.String(name + "-" + roleWeb), PropagateAtLaunch: pulumi.Bool(false)},
			&autoscaling.GroupTagArgs{Key: pulumi.String(tagStack), Value: pulumi.String(name), PropagateAtLaunch: pulumi.Bool(false)},
		},
	}, parent, pulumi.DependsOn(deps)); err != nil {
		return nil, fmt.Errorf("auto scaling group %s-web: %w", name, err)
	}
	if f.WebScaling, err = autoscaling.NewPolicy(ctx, name+"-web-cpu", &autoscaling.PolicyArgs{
		AutoscalingGroupName:    f.Web.Name,
		PolicyType:              pulumi.String("TargetTrackingScaling"),
		EstimatedInstanceWarmup: pulumi.Int(webWarmup),
		TargetTrackingConfiguration: &autoscaling.PolicyTargetTrackingConfigurationArgs{
			PredefinedMetricSpecification: &autoscaling.PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs{
				PredefinedMetricType: pulumi.String("ASGAverageCPUUtilization"),
			},
			TargetValue: pulumi.Float64(webTargetCPU),
		},
	}, parent); err != nil {
		return nil, fmt.Errorf("scaling policy %s-web-cpu: %w", name, err)
	}
	if err := ctx.RegisterResourceOutputs(f, pulumi.Map{
		"loadBalancerDnsName": f.Balancer.DnsName,
		"webGroupName":        f.Web.Name,
		"scalerPrivateIp":     f.Scaler.PrivateIp,
	}); err != nil {
		return nil, fmt.Errorf("front door %s: %w", name, err)
	}
	return f, nil
}

// memcachedPort is memcached's port.
const memcachedPort = 11211

// newGroups makes the front door's security groups and their rules.
func (f *frontDoor) newGroups(ctx *pulumi.Context, name string, cfg Config, vpc string, parent pulumi.ResourceOption) error {
	group := func(suffix, description string) (*ec2.SecurityGroup, error) {
		sg, err := ec2.NewSecurityGroup(ctx, name+"-"+suffix, &ec2.SecurityGroupArgs{
			Description: pulumi.String(description),
			VpcId:       pulumi.String(vpc),
			Tags:        pulumi.ToStringMap(resourceTags(name, suffix)),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("security group %s-%s: %w", name, suffix, err)
		}
		return sg, nil
	}
	var err error
	if f.BalancerGroup, err = group("lb", "elastiq load balancer: the clients"); err != nil {
		return err
	}
	if f.WebGroup, err = group("web", "elastiq web instances: HTTP from the load balancer only"); err != nil {
		return err
	}
	if f.ScalerGroup, err = group("scaler", "elastiq scaler: the web instances' reports"); err != nil {
		return err
	}
	if f.CacheGroup, err = group("cache", "elastiq result cache: the web instances only"); err != nil {
		return err
	}
	// Each rule is named after its group, direction and port, so that
	// adding one renames none.
	type ruleSpec struct {
		name        string
		group       *ec2.SecurityGroup
		kind        string // ingress, egress
		port        int
		cidr        string             // the other side: addresses,
		peer        *ec2.SecurityGroup // or a group
		description string
	}
	specs := []ruleSpec{
		{"lb-in", f.BalancerGroup, "ingress", cfg.HTTPPort, cfg.ClientCIDR, nil, "clients"},
		{"lb-out", f.BalancerGroup, "egress", cfg.HTTPPort, "", f.WebGroup, "to the web instances"},
		{"web-in", f.WebGroup, "ingress", cfg.HTTPPort, "", f.BalancerGroup, "from the load balancer"},
		{"web-out", f.WebGroup, "egress", 443, "0.0.0.0/0", nil, "https: AWS APIs"},
		{"web-out", f.WebGroup, "egress", 80, "0.0.0.0/0", nil, "http: package repositories"},
		{"web-out", f.WebGroup, "egress", memcachedPort, "", f.CacheGroup, "to the result cache"},
		{"web-out", f.WebGroup, "egress", deploy.ScalerPort, "", f.ScalerGroup, "to the scaler: requests accepted"},
		{"cache-in", f.CacheGroup, "ingress", memcachedPort, "", f.WebGroup, "from the web instances"},
		{"scaler-in", f.ScalerGroup, "ingress", deploy.ScalerPort, "", f.WebGroup, "from the web instances: requests accepted"},
		{"scaler-in", f.ScalerGroup, "ingress", deploy.ScalerMetricsPort, cfg.ClientCIDR, nil, "prometheus: scaler /metrics"},
		{"scaler-out", f.ScalerGroup, "egress", 443, "0.0.0.0/0", nil, "https: AWS APIs"},
		{"scaler-out", f.ScalerGroup, "egress", 80, "0.0.0.0/0", nil, "http: package repositories"},
	}
	if cfg.CertificateARN != "" {
		specs = append(specs, ruleSpec{"lb-in", f.BalancerGroup, "ingress", httpsPort, cfg.ClientCIDR, nil, "clients: https"})
	}
	if cfg.SSHCIDR != "" {
		specs = append(specs,
			ruleSpec{"web-in", f.WebGroup, "ingress", 22, cfg.SSHCIDR, nil, "ssh"},
			ruleSpec{"scaler-in", f.ScalerGroup, "ingress", 22, cfg.SSHCIDR, nil, "ssh"})
	}
	for _, r := range specs {
		args := &ec2.SecurityGroupRuleArgs{
			Type:            pulumi.String(r.kind),
			SecurityGroupId: r.group.ID(),
			Protocol:        pulumi.String("tcp"),
			FromPort:        pulumi.Int(r.port),
			ToPort:          pulumi.Int(r.port),
			Description:     pulumi.String(r.description),
		}
		if r.peer != nil {
			args.SourceSecurityGroupId = r.peer.ID()
		} else {
			args.CidrBlocks = pulumi.StringArray{pulumi.String(r.cidr)}
		}
		n := fmt.Sprintf("%s-%s-%d", name, r.name, r.port)
		rule, err := ec2.NewSecurityGroupRule(ctx, n, args, parent)
		if err != nil {
			return fmt.Errorf("security group rule %s: %w", n, err)
		}
		f.Rules = append(f.Rules, rule)
	}
	return nil
}
