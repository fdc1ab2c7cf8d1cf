// Package awsconfig loads the AWS configuration of elastiq's distributed
// programs: the SDK's default chain (environment, shared config and
// credentials files, the instance profile on EC2), with the region and an
// endpoint override for AWS-compatible servers (moto_server, LocalStack) from
// flags.
package awsconfig

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Flags are the AWS settings every distributed program takes.
type Flags struct {
	// Region overrides the default chain's region (AWS_REGION, the shared
	// config file, or the instance's region on EC2).
	Region string
	// Endpoint sends every AWS call to this URL instead of AWS's own
	// endpoints: an AWS-compatible server.
	Endpoint string
}

// Register adds -region and -endpoint to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Region, "region", f.Region, "AWS region (default: the SDK's chain: AWS_REGION, ~/.aws/config, the instance's region)")
	fs.StringVar(&f.Endpoint, "endpoint", f.Endpoint, "send AWS calls to this AWS-compatible endpoint (e.g. http://127.0.0.1:5000 for moto_server)")
}

// PathStyle reports whether S3 should use path-style addressing, as
// AWS-compatible servers on a plain host:port need.
func (f Flags) PathStyle() bool { return f.Endpoint != "" }

// Load loads the configuration. A region is required.
func (f Flags) Load(ctx context.Context) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if f.Region != "" {
		opts = append(opts, config.WithRegion(f.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("load AWS config: no region: set -region or AWS_REGION")
	}
	if f.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(f.Endpoint)
	}
	return cfg, nil
}
