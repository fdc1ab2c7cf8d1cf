package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/elastiq/elastiq/infra/deploy"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	iampolicy "github.com/elastiq/elastiq/infra/iam"
)

// stack is every resource the program makes.
type stack struct {
	// Name is the deployment's name: the prefix of its resources' names and
	// the value of its elastiq:stack tag ("elastiq-dev").
	Name    string
	Account iampolicy.Account

	Storage    *storage
	Queues     *queues
	Network    *network
	Deployment *deployment
	Access     *access
	// Workers is the launch template the scaler runs workers from.
	Workers *ec2.LaunchTemplate
	// Web is the web instance of the single layout: memcached, the web
	// tier and the scaler (nil in the load-balanced layout).
	Web *ec2.Instance
	// FrontDoor is the load-balanced layout's web tier (nil in the
	// single layout).
	FrontDoor *frontDoor
	// URL is the web tier's address: the web instance's, or the load
	// balancer's.
	URL pulumi.StringOutput
	// AdminToken is the SSM parameter holding the gallery's admin token
	// (nil without elastiq:adminToken).
	AdminToken *ssm.Parameter
}

// newStack makes the whole deployment described by cfg.
func newStack(ctx *pulumi.Context, cfg Config) (*stack, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	if cfg.Build == nil {
		return nil, errors.New("stack: no bundle builder")
	}
	st := &stack{Name: stackName(ctx.Project(), ctx.Stack())}
	var err error
	if st.Account, err = lookupAccount(ctx); err != nil {
		return nil, err
	}
	tags := func(what string) map[string]string { return resourceTags(st.Name, what) }

	if st.Storage, err = newStorage(ctx, st.Name, storageArgs{
		Tags:          tags("bucket"),
		ForceDestroy:  cfg.ForceDestroy,
		LifecycleDays: cfg.LifecycleDays,
	}); err != nil {
		return nil, err
	}
	balanced := cfg.Layout == layoutLoadBalanced
	if st.Queues, err = newQueues(ctx, st.Name, queuesArgs{Tags: tags("queue"), MaxReceives: cfg.MaxReceives, ReplyQueues: balanced}); err != nil {
		return nil, err
	}
	if st.Network, err = newNetwork(ctx, st.Name, networkArgs{
		Tags:         tags("sg"),
		HTTPPort:     cfg.HTTPPort,
		ClientCIDR:   cfg.ClientCIDR,
		SSHCIDR:      cfg.SSHCIDR,
		LoadBalanced: balanced,
	}); err != nil {
		return nil, err
	}
	bundle, err := cfg.Build(ctx.Context())
	if err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	if st.Deployment, err = newDeployment(ctx, st.Name+"-deploy", deploymentArgs{
		Bucket:      st.Storage.Bucket,
		Bundle:      bundle,
		WorkerBaked: cfg.WorkerAMI != "",
	}); err != nil {
		return nil, err
	}
	if st.Access, err = newAccess(ctx, st.Name, tags("role"), balanced); err != nil {
		return nil, err
	}
	if cfg.AdminToken != "" {
		// A secret in the state; the user data names the parameter only.
		if st.AdminToken, err = ssm.NewParameter(ctx, st.Name+"-admin-token", &ssm.ParameterArgs{
			Name:        pulumi.String(adminTokenParameter(st.Name)),
			Description: pulumi.String("elastiq " + st.Name + ": the gallery's admin token (web tier)"),
			Type:        pulumi.String("SecureString"),
			Value:       pulumi.ToSecret(pulumi.String(cfg.AdminToken)).(pulumi.StringOutput),
			Tags:        pulumi.ToStringMap(tags("secret")),
		}); err != nil {
			return nil, fmt.Errorf("stack: admin token parameter: %w", err)
		}
	}
	al2023, err := ec2.LookupAmi(ctx, &ec2.LookupAmiArgs{
		MostRecent: pulumi.BoolRef(true),
		Owners:     []string{deploy.AmazonLinuxOwner},
		Filters: []ec2.GetAmiFilter{
			{Name: "name", Values: []string{deploy.AL2023NameFilter}},
			{Name: "architecture", Values: []string{"x86_64"}},
			{Name: "virtualization-type", Values: []string{"hvm"}},
			{Name: "root-device-type", Values: []string{"ebs"}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("stack: amazon linux 2023 image: %w", err)
	}
	if st.Workers, err = st.newLaunchTemplate(ctx, cfg, bundle, or(cfg.WorkerAMI, al2023.Id)); err != nil {
		return nil, err
	}
	if err := st.Access.grant(ctx, st.grants(cfg, or(cfg.WorkerAMI, al2023.Id))); err != nil {
		return nil, err
	}
	if balanced {
		if st.FrontDoor, err = st.newFrontDoor(ctx, cfg, bundle, al2023.Id); err != nil {
			return nil, err
		}
		st.URL = st.FrontDoor.Balancer.DnsName.ApplyT(func(host string) string {
			if cfg.CertificateARN != "" {
				return "https://" + host + "/"
			}
			return webURL(host, cfg.HTTPPort)
		}).(pulumi.StringOutput)
		return st, nil
	}
	if st.Web, err = st.newWebInstance(ctx, cfg, bundle, al2023.Id); err != nil {
		return nil, err
	}
	st.URL = st.Web.PublicIp.ApplyT(func(ip string) string { return webURL(ip, cfg.HTTPPort) }).(pulumi.StringOutput)
	return st, nil
}

// adminTokenParameter is the name of the stack's admin token parameter.
func adminTokenParameter(stack string) string { return "/elastiq/" + stack + "/admin-token" }

// outputs are the stack outputs.
func (st *stack) outputs() map[string]pulumi.Input {
	scaler := st.Web
	if st.FrontDoor != nil {
		scaler = st.FrontDoor.Scaler
	}
	out := map[string]pulumi.Input{
		"url":          st.URL,
		"dashboardUrl": st.URL.ApplyT(func(u string) string { return u + "dashboard" }),
		// Where Prometheus scrapes the scaler (the web tier's /metrics
		// is under url).
		"scalerMetricsUrl": scaler.PublicIp.ApplyT(func(ip string) string {
			return fmt.Sprintf("http://%s:%d/metrics", ip, deploy.ScalerMetricsPort)
		}),
		"bucket":             st.Storage.Bucket.Bucket,
		"requestQueueUrl":    st.Queues.Requests.Url,
		"deadLetterQueueUrl": st.Queues.DeadLetters.Url,
		"launchTemplateId":   st.Workers.ID(),
		"stack":              pulumi.String(st.Name),
	}
	if st.Queues.Responses != nil {
		out["responseQueueUrl"] = st.Queues.Responses.Url
	}
	if st.FrontDoor != nil {
		out["webGroupName"] = st.FrontDoor.Web.Name
	}
	return out
}

// replyQueuePrefix names the web instances' own response queues in the
// load-balanced layout.
func (st *stack) replyQueuePrefix() string { return st.Name + "-reply-" }

// responseQueueURL is the shared response queue's URL, "" when the web
// instances have their own.
func (st *stack) responseQueueURL() pulumi.StringOutput {
	if st.Queues.Responses == nil {
		return pulumi.String("").ToStringOutput()
	}
	return st.Queues.Responses.Url
}

// metadataOptions require IMDSv2 (a session token) on an instance; the hop
// limit of 1 keeps the token on the instance itself.
const (
	imdsEndpoint = "enabled"
	imdsTokens   = "required"
	imdsHops     = 1
)

// newLaunchTemplate makes the workers' launch template from image: with
// IMDSv2 only, the worker profile, the worker tags on the instances and
// their volumes, stop on shutdown from inside (a worker stopping itself),
// and each new version the default, which the scaler launches.
func (st *stack) newLaunchTemplate(ctx *pulumi.Context, cfg Config, bundle deploy.Bundle, image string) (*ec2.LaunchTemplate, error) {
	q := st.Queues
	userData := pulumi.All(st.Storage.Bucket.Bucket, q.Requests.Url, st.responseQueueURL()).ApplyT(func(v []any) (string, error) {
		ud, err := deploy.WorkerUserData(deploy.WorkerConfig{
			Region:           st.Account.Region,
			Bucket:           v[0].(string),
			RequestQueueURL:  v[1].(string),
			ResponseQueueURL: v[2].(string),
			IdleStop:         cfg.WorkerIdleStop,
			BakedImage:       cfg.WorkerAMI != "",
			Worker:           bundle.Worker.Object,
			Models:           bundle.Models.Object,
		})
		return base64.StdEncoding.EncodeToString([]byte(ud)), err
	}).(pulumi.StringOutput)
	instanceTags := resourceTags(st.Name, roleWorker)
	for k, v := range workerTags(st.Name) {
		instanceTags[k] = v
	}
	name := st.Name + "-worker"
	args := launchTemplateArgs(hostTemplate{
		description:  "elastiq workers of " + st.Name,
		image:        image,
		instanceType: cfg.WorkerInstanceType,
		profileARN:   st.Access.WorkerProfile.Arn,
		group:        st.Network.Worker.ID(),
		userData:     userData,
		instanceTags: instanceTags,
		volumeTags:   instanceTags,
		tags:         resourceTags(st.Name, "worker-template"),
	})
	args.InstanceInitiatedShutdownBehavior = pulumi.String("stop")
	lt, err := ec2.NewLaunchTemplate(ctx, name, args)
	if err != nil {
		return nil, fmt.Errorf("launch template %s: %w", name, err)
	}
	return lt, nil
}

// hostTemplate is what sets one kind of instance's launch template apart.
type hostTemplate struct {
	description, image, instanceType string
	profileARN                       pulumi.StringInput
	group                            pulumi.StringInput
	userData                         pulumi.StringInput
	instanceTags, volumeTags, tags   map[string]string
}

// launchTemplateArgs are the arguments of t's launch template, with what
// every elastiq template has: IMDSv2 only, the instances and their volumes
// tagged, and each new version the default (which the scaler launches and
// an Auto Scaling group's refresh rolls out).
func launchTemplateArgs(t hostTemplate) *ec2.LaunchTemplateArgs {
	return &ec2.LaunchTemplateArgs{
		Description:         pulumi.String(t.description),
		ImageId:             pulumi.String(t.image),
		InstanceType:        pulumi.String(t.instanceType),
		IamInstanceProfile:  &ec2.LaunchTemplateIamInstanceProfileArgs{Arn: t.profileARN},
		VpcSecurityGroupIds: pulumi.StringArray{t.group},
		MetadataOptions: &ec2.LaunchTemplateMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String(imdsEndpoint),
			HttpTokens:              pulumi.String(imdsTokens),
			HttpPutResponseHopLimit: pulumi.Int(imdsHops),
		},
		UserData:             t.userData,
		UpdateDefaultVersion: pulumi.Bool(true),
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("instance"), Tags: pulumi.ToStringMap(t.instanceTags)},
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: pulumi.ToStringMap(t.volumeTags)},
		},
		Tags: pulumi.ToStringMap(t.tags),
	}
}

// grants resolves what the roles' policies are scoped to.
func (st *stack) grants(cfg Config, workerImage string) pulumi.AnyOutput {
	q := st.Queues
	tokenARN := pulumi.String("").ToStringOutput()
	if st.AdminToken != nil {
		tokenARN = st.AdminToken.Arn
	}
	responses := pulumi.String("").ToStringOutput()
	if q.Responses != nil {
		responses = q.Responses.Arn
	}
	return pulumi.All(st.Storage.Bucket.Arn, q.Requests.Arn, responses, q.DeadLetters.Arn,
		st.Workers.Arn, st.Access.WorkerRole.Arn, tokenARN).ApplyT(func(v []any) any {
		g := iampolicy.Grants{
			AdminTokenParameterARN: v[6].(string),
			Account:                st.Account,
			Stack:                  st.Name,
			BucketARN:              v[0].(string),
			RequestQueueARN:        v[1].(string),
			ResponseQueueARN:       v[2].(string),
			DeadLetterQueueARN:     v[3].(string),
			LaunchTemplateARN:      v[4].(string),
			WorkerImageID:          workerImage,
			WorkerRoleARN:          v[5].(string),
			WorkerFetchesBundle:    cfg.WorkerAMI == "",
		}
		if cfg.Layout == layoutLoadBalanced {
			g.ReplyQueuePrefix, g.SeparateScaler = st.replyQueuePrefix(), true
		}
		return g
	}).(pulumi.AnyOutput)
}

// webConfig is what the web tier's and the scaler's user data need; in the
// load-balanced layout the caller adds the cache's nodes and the scaler's
// address.
func (st *stack) webConfig(cfg Config, bundle deploy.Bundle) pulumi.AnyOutput {
	q := st.Queues
	return pulumi.All(st.Storage.Bucket.Bucket, q.Requests.Url, st.responseQueueURL(), q.DeadLetters.Url,
		st.Workers.ID()).ApplyT(func(v []any) any {
		c := deploy.WebConfig{
			Region:              st.Account.Region,
			Bucket:              v[0].(string),
			RequestQueueURL:     v[1].(string),
			ResponseQueueURL:    v[2].(string),
			DeadLetterQueueURL:  v[3].(string),
			StackName:           st.Name,
			LaunchTemplateID:    string(v[4].(pulumi.ID)),
			Port:                cfg.HTTPPort,
			MaxWorkers:          cfg.MaxWorkers,
			Policy:              cfg.Policy,
			TerminateAfter:      cfg.TerminateStoppedAfter,
			Web:                 bundle.Web.Object,
			Scaler:              bundle.Scaler.Object,
			AdminTokenParameter: map[bool]string{true: adminTokenParameter(st.Name)}[cfg.AdminToken != ""],
		}
		if cfg.Layout == layoutLoadBalanced {
			c.ReplyQueuePrefix = st.replyQueuePrefix()
		}
		return c
	}).(pulumi.AnyOutput)
}

// newWebInstance makes the web instance of the single layout from Amazon
// Linux 2023 image, with user data that runs memcached, the web tier and
// the scaler.
func (st *stack) newWebInstance(ctx *pulumi.Context, cfg Config, bundle deploy.Bundle, image string) (*ec2.Instance, error) {
	userData := st.webConfig(cfg, bundle).ApplyT(func(c any) (string, error) {
		return deploy.WebUserData(c.(deploy.WebConfig))
	}).(pulumi.StringOutput)
	return st.newHost(ctx, hostArgs{
		Role: roleWeb, InstanceType: cfg.WebInstanceType, Image: image, Profile: st.Access.WebProfile.Name,
		Group: st.Network.Web.ID(), UserData: userData, KeyName: cfg.KeyName,
		// The scaler launches workers that need their policy.
		DependsOn: []pulumi.Resource{st.Access.WebPolicy, st.Access.WorkerPolicy},
	})
}

// hostArgs describe an instance Pulumi keeps: the single layout's web
// instance, or the load-balanced layout's scaler.
type hostArgs struct {
	Role         string
	InstanceType string
	Image        string
	Profile      pulumi.StringInput
	Group        pulumi.IDOutput
	UserData     pulumi.StringOutput
	KeyName      string
	// DependsOn are the policies its services need at boot (its bundle
	// objects are added).
	DependsOn []pulumi.Resource
}

// newHost makes an instance from an Amazon Linux 2023 image: IMDSv2 only,
// a public address (for the AWS APIs, from the default VPC), user data
// that installs and starts its services. A change of user data (a new
// bundle) replaces it, deleting it first: two scalers at once would act on
// one fleet, each up to MaxWorkers. A newer Amazon Linux image does not.
func (st *stack) newHost(ctx *pulumi.Context, a hostArgs, opts ...pulumi.ResourceOption) (*ec2.Instance, error) {
	tags := resourceTags(st.Name, a.Role)
	tags[tagRole] = a.Role
	args := &ec2.InstanceArgs{
		Ami:                      pulumi.String(a.Image),
		InstanceType:             pulumi.String(a.InstanceType),
		IamInstanceProfile:       a.Profile,
		VpcSecurityGroupIds:      pulumi.StringArray{a.Group},
		AssociatePublicIpAddress: pulumi.Bool(true),
		MetadataOptions: &ec2.InstanceMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String(imdsEndpoint),
			HttpTokens:              pulumi.String(imdsTokens),
			HttpPutResponseHopLimit: pulumi.Int(imdsHops),
		},
		UserData:                a.UserData,
		UserDataReplaceOnChange: pulumi.Bool(true),
		Tags:                    pulumi.ToStringMap(tags),
		VolumeTags:              pulumi.ToStringMap(resourceTags(st.Name, a.Role)),
	}
	args.KeyName = keyName(a.KeyName)
	deps := append(st.Deployment.dependencies(), a.DependsOn...)
	name := st.Name + "-" + a.Role
	host, err := ec2.NewInstance(ctx, name, args, append(opts, pulumi.DependsOn(deps), pulumi.IgnoreChanges([]string{"ami"}),
		pulumi.DeleteBeforeReplace(true))...)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", name, err)
	}
	return host, nil
}

// keyName is an instance's key pair name, nil for none ("").
func keyName(name string) pulumi.StringPtrInput {
	if name == "" {
		return nil
	}
	return pulumi.String(name)
}

// lookupAccount finds the partition, region and account the stack deploys to.
func lookupAccount(ctx *pulumi.Context) (iampolicy.Account, error) {
	partition, err := aws.GetPartition(ctx, nil)
	if err != nil {
		return iampolicy.Account{}, fmt.Errorf("stack: partition: %w", err)
	}
	region, err := aws.GetRegion(ctx, nil)
	if err != nil {
		return iampolicy.Account{}, fmt.Errorf("stack: region: %w", err)
	}
	caller, err := aws.GetCallerIdentity(ctx, nil)
	if err != nil {
		return iampolicy.Account{}, fmt.Errorf("stack: account: %w", err)
	}
	return iampolicy.Account{Partition: partition.Partition, Region: region.Name, ID: caller.AccountId}, nil
}

// maxStackName keeps the generated names within AWS's limits (64
// characters for an IAM role, with Pulumi's 8-character suffix and ours).
const maxStackName = 40

// stackName is the deployment's name from the Pulumi project and stack:
// lower-case letters, digits and dashes, as bucket names need.
func stackName(project, stack string) string {
	var b strings.Builder
	dash := true // no leading dash, no two in a row
	for _, r := range strings.ToLower(project + "-" + stack) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	s := b.String()
	if len(s) > maxStackName {
		s = s[:maxStackName]
	}
	return strings.TrimRight(s, "-")
}

// webURL is the web tier's URL at ip.
func webURL(ip string, port int) string {
	if port == 80 {
		return "http://" + ip + "/"
	}
	return "http://" + ip + ":" + strconv.Itoa(port) + "/"
}
