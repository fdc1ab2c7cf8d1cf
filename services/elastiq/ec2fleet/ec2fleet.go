// Package ec2fleet is the elastiq.Fleet on Amazon EC2: the worker instances
// the scaler starts, launches, stops and terminates.
//
// The workers are the instances carrying every tag in Config.Tags (by
// default elastiq:role=worker and elastiq:stack=<stack>). List finds them
// with DescribeInstances, filtered on those tags and on the states an
// instance passes through before it is terminated; Launch runs new ones
// from a launch template and tags them at launch, so the next List sees
// them. Start, Stop and Terminate act only on instances of the fleet: an ID
// that does not exist or does not carry the tags fails the whole call with
// elastiq.ErrNotFound (wrapped), before anything is changed, so a bug in
// the scaler cannot stop or terminate another machine of the account.
//
// Launch is idempotent per token in two ways: the token is RunInstances'
// ClientToken (EC2 itself returns the first call's instances to a retry),
// and it is also put on the instances as the tag elastiq:launch-token,
// which Launch looks up before it launches. The tag makes a retry
// launch nothing on servers that ignore ClientToken (moto does).
//
// Every AWS call is bounded by Config.Timeout.
package ec2fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/elastiq/elastiq/services/elastiq"
)

// Tag keys the fleet uses.
const (
	// TagRole marks an instance's role; workers have "worker".
	TagRole = "elastiq:role"
	// TagStack names the deployment an instance belongs to, so two stacks
	// in one account do not manage each other's workers.
	TagStack = "elastiq:stack"
	// TagLaunchToken holds the token of the Launch that created an
	// instance.
	TagLaunchToken = "elastiq:launch-token"
	// RoleWorker is TagRole's value on workers.
	RoleWorker = "worker"
)

// Defaults for Config.
const (
	DefaultTimeout = 30 * time.Second
	// DefaultLaunchTemplateVersion makes RunInstances use the template's
	// default version.
	DefaultLaunchTemplateVersion = "$Default"
)

// maxTokenLen is RunInstances' limit on ClientToken.
const maxTokenLen = 64

// activeStates are the states List reports: every state but terminated.
var activeStates = []string{
	string(types.InstanceStateNamePending),
	string(types.InstanceStateNameRunning),
	string(types.InstanceStateNameStopping),
	string(types.InstanceStateNameStopped),
	string(types.InstanceStateNameShuttingDown),
}

// WorkerTags are the default Config.Tags of the workers of stack.
func WorkerTags(stack string) map[string]string {
	return map[string]string{TagRole: RoleWorker, TagStack: stack}
}

// Config configures a Fleet.
type Config struct {
	// Tags identify the workers: List reports the instances that carry all
	// of them and Launch puts them on new instances. Required; see
	// WorkerTags.
	Tags map[string]string
	// LaunchTemplateID or LaunchTemplateName (at most one) names the
	// launch template new workers are run from. Without either the fleet
	// can list, start, stop and terminate workers but not launch them.
	LaunchTemplateID   string
	LaunchTemplateName string
	// LaunchTemplateVersion is a version number, "$Latest" or "$Default"
	// (default).
	LaunchTemplateVersion string
	// Timeout bounds each AWS call (each page of a listing). Default
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives the fleet's actions; default none.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if len(c.Tags) == 0 {
		return errors.New("no worker tags: the fleet would manage every instance in the account")
	}
	for k := range c.Tags {
		if k == "" || strings.HasPrefix(k, "aws:") || k == TagLaunchToken {
			return fmt.Errorf("worker tag key %q: empty, reserved or %s", k, TagLaunchToken)
		}
	}
	if c.LaunchTemplateID != "" && c.LaunchTemplateName != "" {
		return errors.New("want at most one of LaunchTemplateID and LaunchTemplateName")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout %v: want >= 0", c.Timeout)
	}
	return nil
}

// ec2API is the part of the EC2 API the fleet uses; *ec2.Client has it.
type ec2API interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
}

// Fleet is the EC2 worker fleet. It keeps no state of its own: every call
// asks EC2. It is safe for concurrent use.
type Fleet struct {
	api ec2API
	cfg Config
	log *slog.Logger
}

var _ elastiq.Fleet = (*Fleet)(nil)

// New returns the fleet described by cfg, reached with awsCfg (region,
// credentials, and BaseEndpoint for an AWS-compatible server).
func New(awsCfg aws.Config, cfg Config) (*Fleet, error) {
	return newFleet(ec2.NewFromConfig(awsCfg), cfg)
}

func newFleet(api ec2API, cfg Config) (*Fleet, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new ec2 fleet: %w", err)
	}
	cfg.Tags = maps.Clone(cfg.Tags)
	cfg.LaunchTemplateVersion = cmp.Or(cfg.LaunchTemplateVersion, DefaultLaunchTemplateVersion)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fleet{api: api, cfg: cfg, log: logger.With("component", "ec2fleet")}, nil
}

// List returns the workers that are not terminated, ordered by launch time
// and then ID.
func (f *Fleet) List(ctx context.Context) ([]elastiq.Instance, error) {
	out, err := f.describe(ctx, nil, stateFilter(activeStates))
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

// Launch runs n new workers from the launch template, tagged as workers.
// A retry with a token already used returns the instances that token
// launched, in whatever state they are now, and launches nothing; a retry
// asking for a different n fails.
func (f *Fleet) Launch(ctx context.Context, n int, token string) ([]elastiq.Instance, error) {
	if n < 1 {
		return nil, fmt.Errorf("launch %d instances: want at least 1", n)
	}
	if err := checkToken(token); err != nil {
		return nil, fmt.Errorf("launch %d instances: %w", n, err)
	}
	if f.cfg.LaunchTemplateID == "" && f.cfg.LaunchTemplateName == "" {
		return nil, fmt.Errorf("launch %d instances: no launch template configured", n)
	}
	if token != "" {
		// Terminated instances count: the token was spent on them.
		prev, err := f.describe(ctx, nil, []types.Filter{tagFilter(TagLaunchToken, token)})
		if err != nil {
			return nil, fmt.Errorf("launch %d instances: look up token %s: %w", n, token, err)
		}
		if len(prev) > 0 {
			if len(prev) != n {
				return nil, fmt.Errorf("launch %d instances: token %s already launched %d", n, token, len(prev))
			}
			f.log.Info("launch retried: token already used", "token", token, "ids", ids(prev))
			return prev, nil
		}
	}

	tags := maps.Clone(f.cfg.Tags)
	if token != "" {
		tags[TagLaunchToken] = token
	}
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(int32(n)),
		MaxCount: aws.Int32(int32(n)),
		LaunchTemplate: &types.LaunchTemplateSpecification{
			Version: aws.String(f.cfg.LaunchTemplateVersion),
		},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: toTags(tags)},
		},
	}
	if f.cfg.LaunchTemplateID != "" {
		in.LaunchTemplate.LaunchTemplateId = aws.String(f.cfg.LaunchTemplateID)
	} else {
		in.LaunchTemplate.LaunchTemplateName = aws.String(f.cfg.LaunchTemplateName)
	}
	if token != "" {
		in.ClientToken = aws.String(token)
	}
	callCtx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	res, err := f.api.RunInstances(callCtx, in)
	if err != nil {
		return nil, fmt.Errorf("launch %d instances: %w", n, mapError(err))
	}
	out := make([]elastiq.Instance, 0, len(res.Instances))
	for _, inst := range res.Instances {
		out = append(out, toInstance(inst))
	}
	sortInstances(out)
	f.log.Info("launched instances", "n", n, "token", token, "ids", ids(out))
	return out, nil
}

// Start starts stopped workers. Starting a running or pending one is a
// no-op; starting one that is stopping, shutting down or terminated fails
// with elastiq.ErrIncorrectState (wrapped), as on EC2.
func (f *Fleet) Start(ctx context.Context, ids []string) error {
	bad := []elastiq.InstanceState{elastiq.InstanceStopping, elastiq.InstanceShuttingDown, elastiq.InstanceTerminated}
	return f.act(ctx, "start", ids, bad, func(ctx context.Context) error {
		_, err := f.api.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids})
		return err
	})
}

// Stop stops workers. Stopping a stopped or stopping one is a no-op;
// stopping one that is shutting down or terminated fails with
// elastiq.ErrIncorrectState (wrapped), as on EC2.
func (f *Fleet) Stop(ctx context.Context, ids []string) error {
	bad := []elastiq.InstanceState{elastiq.InstanceShuttingDown, elastiq.InstanceTerminated}
	return f.act(ctx, "stop", ids, bad, func(ctx context.Context) error {
		_, err := f.api.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids})
		return err
	})
}

// Terminate terminates workers, in any state; terminating a terminated
// one is a no-op.
func (f *Fleet) Terminate(ctx context.Context, ids []string) error {
	return f.act(ctx, "terminate", ids, nil, func(ctx context.Context) error {
		_, err := f.api.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
		return err
	})
}

// act checks that ids are workers of the fleet and that none is in a bad
// state, then runs call on them. No IDs is a no-op. Checking first makes
// servers that are laxer than EC2 (moto starts terminated instances)
// behave as EC2 does.
func (f *Fleet) act(ctx context.Context, op string, ids []string, bad []elastiq.InstanceState, call func(context.Context) error) error {
	if len(ids) == 0 {
		return nil
	}
	found, err := f.describe(ctx, ids, nil)
	if err != nil {
		return fmt.Errorf("%s instances %v: %w", op, ids, err)
	}
	if missing := notIn(ids, found); len(missing) > 0 {
		return fmt.Errorf("%s instances %v: %v not in the fleet: %w", op, ids, missing, elastiq.ErrNotFound)
	}
	for _, in := range found {
		if slices.Contains(bad, in.State) {
			return fmt.Errorf("%s instances %v: %s is %s: %w", op, ids, in.ID, in.State, elastiq.ErrIncorrectState)
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	if err := call(callCtx); err != nil {
		return fmt.Errorf("%s instances %v: %w", op, ids, mapError(err))
	}
	f.log.Info(op+" instances", "ids", ids)
	return nil
}

// describe returns the workers matching ids (all when nil) and filters,
// following every page, each page bounded by the timeout.
func (f *Fleet) describe(ctx context.Context, ids []string, filters []types.Filter) ([]elastiq.Instance, error) {
	for _, k := range slices.Sorted(maps.Keys(f.cfg.Tags)) {
		filters = append(filters, tagFilter(k, f.cfg.Tags[k]))
	}
	in := &ec2.DescribeInstancesInput{InstanceIds: ids, Filters: filters}
	if len(ids) == 0 {
		in.MaxResults = aws.Int32(1000) // not allowed together with InstanceIds
	}
	var out []elastiq.Instance
	pages := ec2.NewDescribeInstancesPaginator(f.api, in)
	for pages.HasMorePages() {
		pageCtx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		page, err := pages.NextPage(pageCtx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", mapError(err))
		}
		for _, r := range page.Reservations {
			for _, inst := range r.Instances {
				out = append(out, toInstance(inst))
			}
		}
	}
	sortInstances(out)
	return out, nil
}

func tagFilter(key, value string) types.Filter {
	return types.Filter{Name: aws.String("tag:" + key), Values: []string{value}}
}

func stateFilter(states []string) []types.Filter {
	return []types.Filter{{Name: aws.String("instance-state-name"), Values: states}}
}

func toTags(m map[string]string) []types.Tag {
	tags := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

// checkToken checks a token against RunInstances' ClientToken rules: up to
// 64 printable ASCII characters (empty: no idempotency).
func checkToken(token string) error {
	if len(token) > maxTokenLen {
		return fmt.Errorf("token of %d characters: want at most %d", len(token), maxTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < '!' || c > '~' {
			return fmt.Errorf("token %q: character %d is not printable ASCII", token, i)
		}
	}
	return nil
}

// toInstance converts an SDK instance at the edge.
//
// LaunchedAt: EC2 moves LaunchTime to the latest start of a stopped
// instance, so the first launch is the earlier of LaunchTime and the
// attachment time of the primary network interface, which stays.
//
// StateSince: for pending, LaunchTime (set when the instance last left
// stopped or was launched); for stopping, stopped, shutting-down and
// terminated, the time in StateTransitionReason ("User initiated
// (2026-01-02 15:04:05 GMT)") when it has one; otherwise unknown (zero),
// since EC2 does not say when an instance became running.
func toInstance(in types.Instance) elastiq.Instance {
	out := elastiq.Instance{ID: aws.ToString(in.InstanceId)}
	if in.State != nil {
		out.State = elastiq.InstanceState(in.State.Name)
	}
	launch := aws.ToTime(in.LaunchTime)
	out.LaunchedAt = launch
	for _, ni := range in.NetworkInterfaces {
		if a := ni.Attachment; a != nil && aws.ToInt32(a.DeviceIndex) == 0 && a.AttachTime != nil {
			if at := *a.AttachTime; !at.IsZero() && (out.LaunchedAt.IsZero() || at.Before(out.LaunchedAt)) {
				out.LaunchedAt = at
			}
		}
	}
	switch out.State {
	case elastiq.InstancePending:
		out.StateSince = launch
	case elastiq.InstanceStopping, elastiq.InstanceStopped, elastiq.InstanceShuttingDown, elastiq.InstanceTerminated:
		out.StateSince = reasonTime(aws.ToString(in.StateTransitionReason))
	}
	return out
}

var reasonTimeRE = regexp.MustCompile(`\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)`)

// reasonTime returns the time in a StateTransitionReason, or zero.
func reasonTime(reason string) time.Time {
	m := reasonTimeRE.FindStringSubmatch(reason)
	if m == nil {
		return time.Time{}
	}
	t, err := time.Parse(time.DateTime, m[1])
	if err != nil {
		return time.Time{}
	}
	return t
}

func sortInstances(in []elastiq.Instance) {
	slices.SortFunc(in, func(a, b elastiq.Instance) int {
		return cmp.Or(a.LaunchedAt.Compare(b.LaunchedAt), cmp.Compare(a.ID, b.ID))
	})
}

func ids(in []elastiq.Instance) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.ID
	}
	return out
}

// notIn returns the ids that are not among found.
func notIn(ids []string, found []elastiq.Instance) []string {
	have := make(map[string]bool, len(found))
	for _, in := range found {
		have[in.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// mapError turns EC2's error codes into the domain's errors.
func mapError(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch api.ErrorCode() {
	case "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed":
		return fmt.Errorf("%w: %w", elastiq.ErrNotFound, err)
	case "IncorrectInstanceState":
		return fmt.Errorf("%w: %w", elastiq.ErrIncorrectState, err)
	}
	return err
}
