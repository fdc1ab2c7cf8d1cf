package main

import (
	"context"
	"fmt"

	"github.com/elastiq/elastiq/infra/deploy"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// buildFunc builds the deployment bundle: deploy.Build in the program, a
// stand-in in the tests (the real build takes minutes).
type buildFunc func(ctx context.Context) (deploy.Bundle, error)

// deployment is the bundle the instances install at boot, uploaded to the
// stack's bucket under deploy/<sha256>/<name>: a change of any file is a
// new key, which changes the user data that names it, which replaces the
// instances that run it.
type deployment struct {
	pulumi.ResourceState

	Bundle deploy.Bundle
	// Objects are the uploaded files by name (deploy.WebName, ...).
	Objects map[string]*s3.BucketObjectv2
}

type deploymentArgs struct {
	Bucket *s3.BucketV2
	Bundle deploy.Bundle
	// WorkerBaked leaves out the worker and its models, which the baked
	// worker image already holds.
	WorkerBaked bool
}

func newDeployment(ctx *pulumi.Context, name string, args deploymentArgs, opts ...pulumi.ResourceOption) (*deployment, error) {
	d := &deployment{Bundle: args.Bundle, Objects: map[string]*s3.BucketObjectv2{}}
	if err := ctx.RegisterComponentResource("elastiq:infra:Deployment", name, d, opts...); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", name, err)
	}
	files := []deploy.File{args.Bundle.Web, args.Bundle.Scaler}
	if !args.WorkerBaked {
		files = append(files, args.Bundle.Worker, args.Bundle.Models)
	}
	keys := pulumi.StringMap{}
	for _, f := range files {
		n := name + "-" + f.Name
		obj, err := s3.NewBucketObjectv2(ctx, n, &s3.BucketObjectv2Args{
			Bucket:      args.Bucket.ID(),
			Key:         pulumi.String(f.Key()),
			Source:      pulumi.NewFileAsset(f.Path),
			ContentType: pulumi.String("application/octet-stream"),
		}, pulumi.Parent(d))
		if err != nil {
			return nil, fmt.Errorf("bundle object %s: %w", n, err)
		}
		d.Objects[f.Name] = obj
		keys[f.Name] = obj.Key
	}
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{"keys": keys}); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", name, err)
	}
	return d, nil
}

// dependencies are the objects as resources an instance waits for.
func (d *deployment) dependencies() []pulumi.Resource {
	var rs []pulumi.Resource
	for _, f := range d.Bundle.Files() {
		if obj, ok := d.Objects[f.Name]; ok {
			rs = append(rs, obj)
		}
	}
	return rs
}
