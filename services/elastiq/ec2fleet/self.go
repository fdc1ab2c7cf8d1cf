package ec2fleet

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/elastiq/elastiq/services/elastiq"
)

// Self is the EC2 instance this process runs on. A worker that has been
// idle long enough, with no message in hand, stops its own instance with
// Stop; the scaler starts it again when work arrives.
//
// The instance ID comes from the instance metadata service with IMDSv2
// only: a session token from PUT /latest/api/token, then GET
// /latest/meta-data/instance-id with that token. The fallback to IMDSv1 is
// off, so an instance that allowed it would still not be read without a
// token.
type Self struct {
	imds    metadataAPI
	ec2     selfAPI
	timeout time.Duration
	log     *slog.Logger
}

// SelfConfig configures a Self.
type SelfConfig struct {
	// IMDSEndpoint is the metadata service's URL. Default: the SDK's
	// (AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254).
	IMDSEndpoint string
	// Timeout bounds each call to the metadata service and to EC2.
	// Default DefaultTimeout.
	Timeout time.Duration
	// Logger receives the stop; default none.
	Logger *slog.Logger
}

// metadataAPI is the part of the IMDS client Self uses; *imds.Client has it.
type metadataAPI interface {
	GetMetadata(context.Context, *imds.GetMetadataInput, ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
}

// selfAPI is the part of the EC2 API Self uses; *ec2.Client has it.
type selfAPI interface {
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// NewSelf returns the instance this process runs on, reached with awsCfg
// (region, credentials, BaseEndpoint for an AWS-compatible server).
func NewSelf(awsCfg aws.Config, cfg SelfConfig) (*Self, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("new ec2 self: timeout %v: want >= 0", cfg.Timeout)
	}
	md := imds.NewFromConfig(awsCfg, func(o *imds.Options) {
		o.EnableFallback = aws.FalseTernary
		if cfg.IMDSEndpoint != "" {
			o.Endpoint = cfg.IMDSEndpoint
		}
	})
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Self{
		imds:    md,
		ec2:     ec2.NewFromConfig(awsCfg),
		timeout: cmp.Or(cfg.Timeout, DefaultTimeout),
		log:     logger.With("component", "ec2self"),
	}, nil
}

// InstanceID returns this instance's ID from the metadata service.
func (s *Self) InstanceID(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.imds.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		return "", fmt.Errorf("instance id from imds: %w", err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 256))
	if err != nil {
		return "", fmt.Errorf("instance id from imds: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !strings.HasPrefix(id, "i-") {
		return "", fmt.Errorf("instance id from imds: %q is not an instance ID", id)
	}
	return id, nil
}

// Stop stops this instance (StopInstances on its own ID) and returns the
// ID. The call returns once EC2 accepted the stop; the operating system is
// then shut down, so the caller should have finished its work first.
func (s *Self) Stop(ctx context.Context) (string, error) {
	id, err := s.InstanceID(ctx)
	if err != nil {
		return "", fmt.Errorf("stop self: %w", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.ec2.StopInstances(callCtx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		return id, fmt.Errorf("stop self %s: %w", id, mapError(err))
	}
	s.log.Info("stopping own instance", "id", id)
	return id, nil
}

// State returns this instance's state as EC2 reports it: shutting-down
// while it is being terminated, stopping while it is being stopped.
func (s *Self) State(ctx context.Context) (string, elastiq.InstanceState, error) {
	id, err := s.InstanceID(ctx)
	if err != nil {
		return "", "", fmt.Errorf("own state: %w", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.ec2.DescribeInstances(callCtx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return id, "", fmt.Errorf("own state %s: %w", id, mapError(err))
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) == id {
				return id, toInstance(in).State, nil
			}
		}
	}
	return id, "", fmt.Errorf("own state %s: %w", id, elastiq.ErrNotFound)
}
