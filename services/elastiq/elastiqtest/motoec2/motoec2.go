// Package motoec2 sets up and cleans up EC2 on the AWS-compatible test
// server (moto), where an instance is only a record: a launch template to
// launch the workers from, and the termination of a stack's instances. It
// does not use package testing, so the demo program (cmd/distributed) can
// use it as the tests do, and so can ec2fleet's own tests, which
// elastiqtest's helpers cannot serve (elastiqtest imports ec2fleet's users).
package motoec2

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Template is a launch template made by LaunchTemplate.
type Template struct {
	ID, Name string
	// ImageID is the image it launches.
	ImageID string
}

// LaunchTemplate creates a launch template named name of a t3.micro from
// one of the server's Amazon Linux images.
func LaunchTemplate(ctx context.Context, cfg aws.Config, name string) (Template, error) {
	client := ec2.NewFromConfig(cfg)
	// Listing all of moto's 1000-odd images takes a second; ask for a few.
	images, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"amazon"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"amzn2-ami-hvm-*-x86_64-gp2"}}},
	})
	if err == nil && len(images.Images) == 0 {
		images, err = client.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	}
	if err != nil {
		return Template{}, fmt.Errorf("launch template: DescribeImages: %w", err)
	}
	if len(images.Images) == 0 {
		return Template{}, errors.New("launch template: the server has no image to launch")
	}
	image := aws.ToString(images.Images[0].ImageId)
	lt, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String(name),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: aws.String(image), InstanceType: types.InstanceTypeT3Micro},
	})
	if err != nil {
		return Template{}, fmt.Errorf("launch template: CreateLaunchTemplate: %w", err)
	}
	return Template{ID: aws.ToString(lt.LaunchTemplate.LaunchTemplateId),
		Name: aws.ToString(lt.LaunchTemplate.LaunchTemplateName), ImageID: image}, nil
}

// TerminateStacks terminates every instance tagged elastiq:stack with one
// of stacks that is not terminated yet. (The tag key is ec2fleet.TagStack;
// this package does not import ec2fleet, whose tests use it.)
func TerminateStacks(ctx context.Context, cfg aws.Config, stacks ...string) error {
	client := ec2.NewFromConfig(cfg)
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:elastiq:stack"), Values: stacks},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}},
	}})
	if err != nil {
		return fmt.Errorf("terminate the instances of %v: %w", stacks, err)
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
		return fmt.Errorf("terminate the instances of %v: %w", stacks, err)
	}
	return nil
}
