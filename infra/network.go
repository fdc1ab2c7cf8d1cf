package main

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/elastiq/elastiq/infra/deploy"
)

// network is the stack's security groups in the account's default VPC: the
// web instance accepts HTTP from the clients (and SSH when configured), and
// from them too Prometheus scrapes of the scaler's metrics port; the
// workers accept only scrapes of theirs. Both reach out only on HTTPS and
// HTTP (AWS APIs, the package repositories).
type network struct {
	pulumi.ResourceState

	VPCID  string
	Web    *ec2.SecurityGroup
	Worker *ec2.SecurityGroup
}

type networkArgs struct {
	Tags       map[string]string
	HTTPPort   int
	ClientCIDR string
	// SSHCIDR "" opens no SSH.
	SSHCIDR string
	// LoadBalanced: the web tier's groups are the front door's
	// (frontdoor.go); only the workers' is made here, and Web is nil.
	LoadBalanced bool
}

func newNetwork(ctx *pulumi.Context, name string, args networkArgs, opts ...pulumi.ResourceOption) (*network, error) {
	n := &network{}
	if err := ctx.RegisterComponentResource("elastiq:infra:Network", name, n, opts...); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	vpc, err := ec2.LookupVpc(ctx, &ec2.LookupVpcArgs{Default: pulumi.BoolRef(true)}, pulumi.Parent(n))
	if err != nil {
		return nil, fmt.Errorf("network %s: default vpc: %w", name, err)
	}
	n.VPCID = vpc.Id
	egress := ec2.SecurityGroupEgressArray{}
	for _, out := range []struct {
		port int
		what string
	}{{443, "https"}, {80, "http"}} {
		egress = append(egress, tcpRule[ec2.SecurityGroupEgressArgs](out.port, "0.0.0.0/0", out.what))
	}
	ingress := ec2.SecurityGroupIngressArray{
		tcpRule[ec2.SecurityGroupIngressArgs](args.HTTPPort, args.ClientCIDR, "clients"),
	}
	ingress = append(ingress, tcpRule[ec2.SecurityGroupIngressArgs](deploy.ScalerMetricsPort, args.ClientCIDR, "prometheus: scaler /metrics"))
	if args.SSHCIDR != "" {
		ingress = append(ingress, tcpRule[ec2.SecurityGroupIngressArgs](22, args.SSHCIDR, "ssh"))
	}
	workerIngress := ec2.SecurityGroupIngressArray{
		tcpRule[ec2.SecurityGroupIngressArgs](deploy.WorkerMetricsPort, args.ClientCIDR, "prometheus: worker /metrics"),
	}
	group := func(suffix, description string, ingress ec2.SecurityGroupIngressArray) (*ec2.SecurityGroup, error) {
		sg, err := ec2.NewSecurityGroup(ctx, name+"-"+suffix, &ec2.SecurityGroupArgs{
			Description: pulumi.String(description),
			VpcId:       pulumi.String(vpc.Id),
			Ingress:     ingress,
			Egress:      egress,
			Tags:        pulumi.ToStringMap(args.Tags),
		}, pulumi.Parent(n))
		if err != nil {
			return nil, fmt.Errorf("security group %s-%s: %w", name, suffix, err)
		}
		return sg, nil
	}
	outputs := pulumi.Map{}
	if !args.LoadBalanced {
		if n.Web, err = group("web", "elastiq web tier: HTTP from the clients", ingress); err != nil {
			return nil, err
		}
		outputs["webSecurityGroupId"] = n.Web.ID()
	}
	if n.Worker, err = group("worker", "elastiq workers: metrics scrapes from the clients only", workerIngress); err != nil {
		return nil, err
	}
	outputs["workerSecurityGroupId"] = n.Worker.ID()
	if err := ctx.RegisterResourceOutputs(n, outputs); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	return n, nil
}

// rule is a security group rule's arguments, ingress or egress.
type rule interface {
	ec2.SecurityGroupIngressArgs | ec2.SecurityGroupEgressArgs
}

// tcpRule is the rule for TCP port from cidr.
func tcpRule[R rule](port int, cidr, description string) *R {
	return &R{
		Protocol:    pulumi.String("tcp"),
		FromPort:    pulumi.Int(port),
		ToPort:      pulumi.Int(port),
		CidrBlocks:  pulumi.StringArray{pulumi.String(cidr)},
		Description: pulumi.String(description),
	}
}
