package main

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The bucket's prefixes: the uploaded images, the results, and the
// deployment bundle.
const (
	inputPrefix  = "input/"
	outputPrefix = "output/"
)

// storage is the bucket of the inputs, outputs and deployment bundle: no
// public access, encrypted at rest, optionally expiring old inputs and outputs.
type storage struct {
	pulumi.ResourceState

	Bucket            *s3.BucketV2
	PublicAccessBlock *s3.BucketPublicAccessBlock
	Encryption        *s3.BucketServerSideEncryptionConfigurationV2
	// Lifecycle is nil when nothing expires.
	Lifecycle *s3.BucketLifecycleConfigurationV2
}

type storageArgs struct {
	Tags          map[string]string
	ForceDestroy  bool
	LifecycleDays int
}

func newStorage(ctx *pulumi.Context, name string, args storageArgs, opts ...pulumi.ResourceOption) (*storage, error) {
	s := &storage{}
	if err := ctx.RegisterComponentResource("elastiq:infra:Storage", name, s, opts...); err != nil {
		return nil, fmt.Errorf("storage %s: %w", name, err)
	}
	parent := pulumi.Parent(s)
	var err error
	s.Bucket, err = s3.NewBucketV2(ctx, name, &s3.BucketV2Args{
		ForceDestroy: pulumi.Bool(args.ForceDestroy),
		Tags:         pulumi.ToStringMap(args.Tags),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	s.PublicAccessBlock, err = s3.NewBucketPublicAccessBlock(ctx, name, &s3.BucketPublicAccessBlockArgs{
		Bucket:                s.Bucket.ID(),
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("public access block %s: %w", name, err)
	}
	// SSE-S3: encrypted at rest with no KMS key, so the roles need no KMS
	// permission.
	s.Encryption, err = s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name, &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: s.Bucket.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{
			&s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
				ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
					SseAlgorithm: pulumi.String("AES256"),
				},
			},
		},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("encryption %s: %w", name, err)
	}
	if args.LifecycleDays > 0 {
		var rules s3.BucketLifecycleConfigurationV2RuleArray
		for _, prefix := range []string{inputPrefix, outputPrefix} {
			rules = append(rules, &s3.BucketLifecycleConfigurationV2RuleArgs{
				Id:     pulumi.String("expire-" + prefix[:len(prefix)-1]),
				Status: pulumi.String("Enabled"),
				Filter: &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String(prefix)},
				Expiration: &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{
					Days: pulumi.Int(args.LifecycleDays),
				},
			})
		}
		s.Lifecycle, err = s3.NewBucketLifecycleConfigurationV2(ctx, name, &s3.BucketLifecycleConfigurationV2Args{
			Bucket: s.Bucket.ID(),
			Rules:  rules,
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("lifecycle %s: %w", name, err)
		}
	}
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{
		"bucket": s.Bucket.Bucket,
		"arn":    s.Bucket.Arn,
	}); err != nil {
		return nil, fmt.Errorf("storage %s: %w", name, err)
	}
	return s, nil
}
