package main

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	iampolicy "github.com/elastiq/elastiq/infra/iam"
)

// access is the stack's IAM: a role and an instance profile for the web
// instance (web tier and scaler) and for the workers, each with one inline
// policy of least privilege (iam.Web and iam.Worker of infra/iam), and in
// the load-balanced layout one for the scaler's own instance (iam.Scaler).
//
// It is made in two steps, because the web policy names the worker launch
// template, which needs the worker instance profile: newAccess makes the
// roles and profiles, grant their policies.
type access struct {
	pulumi.ResourceState

	WebRole       *iam.Role
	WorkerRole    *iam.Role
	WebProfile    *iam.InstanceProfile
	WorkerProfile *iam.InstanceProfile
	// WebPolicy and WorkerPolicy are nil until grant.
	WebPolicy    *iam.RolePolicy
	WorkerPolicy *iam.RolePolicy
	// The scaler's own (nil unless it runs apart).
	ScalerRole    *iam.Role
	ScalerProfile *iam.InstanceProfile
	ScalerPolicy  *iam.RolePolicy

	name string
}

func newAccess(ctx *pulumi.Context, name string, tags map[string]string, scalerApart bool, opts ...pulumi.ResourceOption) (*access, error) {
	a := &access{name: name}
	if err := ctx.RegisterComponentResource("elastiq:infra:Access", name, a, opts...); err != nil {
		return nil, fmt.Errorf("access %s: %w", name, err)
	}
	trust, err := iampolicy.AssumeRole().JSON()
	if err != nil {
		return nil, fmt.Errorf("access %s: %w", name, err)
	}
	role := func(suffix, description string) (*iam.Role, *iam.InstanceProfile, error) {
		n := name + "-" + suffix
		r, err := iam.NewRole(ctx, n, &iam.RoleArgs{
			Description:      pulumi.String(description),
			AssumeRolePolicy: pulumi.String(trust),
			Tags:             pulumi.ToStringMap(tags),
		}, pulumi.Parent(a))
		if err != nil {
			return nil, nil, fmt.Errorf("role %s: %w", n, err)
		}
		p, err := iam.NewInstanceProfile(ctx, n, &iam.InstanceProfileArgs{
			Role: r.Name,
			Tags: pulumi.ToStringMap(tags),
		}, pulumi.Parent(a))
		if err != nil {
			return nil, nil, fmt.Errorf("instance profile %s: %w", n, err)
		}
		return r, p, nil
	}
	webRole := "elastiq web tier and scaler"
	if scalerApart {
		webRole = "elastiq web tier"
		if a.ScalerRole, a.ScalerProfile, err = role("scaler", "elastiq scaler"); err != nil {
			return nil, err
		}
	}
	if a.WebRole, a.WebProfile, err = role("web", webRole); err != nil {
		return nil, err
	}
	if a.WorkerRole, a.WorkerProfile, err = role("worker", "elastiq workers"); err != nil {
		return nil, err
	}
	return a, nil
}

// grant attaches the roles' policies, rendered from g (a grants), and
// completes the component.
func (a *access) grant(ctx *pulumi.Context, g pulumi.AnyOutput) error {
	policy := func(suffix string, role *iam.Role, doc func(iampolicy.Grants) iampolicy.Document) (*iam.RolePolicy, error) {
		n := a.name + "-" + suffix
		p, err := iam.NewRolePolicy(ctx, n, &iam.RolePolicyArgs{
			Role: role.Name,
			Policy: g.ApplyT(func(v any) (string, error) {
				return doc(v.(iampolicy.Grants)).JSON()
			}).(pulumi.StringOutput),
		}, pulumi.Parent(a))
		if err != nil {
			return nil, fmt.Errorf("role policy %s: %w", n, err)
		}
		return p, nil
	}
	var err error
	if a.WebPolicy, err = policy("web", a.WebRole, iampolicy.Web); err != nil {
		return err
	}
	if a.WorkerPolicy, err = policy("worker", a.WorkerRole, iampolicy.Worker); err != nil {
		return err
	}
	outputs := pulumi.Map{"webRoleArn": a.WebRole.Arn, "workerRoleArn": a.WorkerRole.Arn}
	if a.ScalerRole != nil {
		if a.ScalerPolicy, err = policy("scaler", a.ScalerRole, iampolicy.Scaler); err != nil {
			return err
		}
		outputs["scalerRoleArn"] = a.ScalerRole.Arn
	}
	if err := ctx.RegisterResourceOutputs(a, outputs); err != nil {
		return fmt.Errorf("access %s: %w", a.name, err)
	}
	return nil
}
