package ec2fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/elastiq/elastiq/services/elastiq"
)

func TestToInstance(t *testing.T) {
	launch := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	restart := launch.Add(5 * time.Hour)
	eni := func(index int32, at time.Time) []types.InstanceNetworkInterface {
		return []types.InstanceNetworkInterface{{Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(index), AttachTime: aws.Time(at)}}}
	}
	tests := []struct {
		name string
		in   types.Instance
		want elastiq.Instance
	}{
		{
			name: "pending: since launch",
			in:   types.Instance{InstanceId: aws.String("i-1"), State: &types.InstanceState{Name: types.InstanceStateNamePending}, LaunchTime: aws.Time(launch)},
			want: elastiq.Instance{ID: "i-1", State: elastiq.InstancePending, LaunchedAt: launch, StateSince: launch},
		},
		{
			name: "running: since unknown",
			in:   types.Instance{InstanceId: aws.String("i-2"), State: &types.InstanceState{Name: types.InstanceStateNameRunning}, LaunchTime: aws.Time(launch)},
			want: elastiq.Instance{ID: "i-2", State: elastiq.InstanceRunning, LaunchedAt: launch},
		},
		{
			name: "stopped: since the reason's GMT time",
			in: types.Instance{InstanceId: aws.String("i-3"), State: &types.InstanceState{Name: types.InstanceStateNameStopped}, LaunchTime: aws.Time(launch),
				StateTransitionReason: aws.String("User initiated (2026-03-01 12:30:05 GMT)")},
			want: elastiq.Instance{ID: "i-3", State: elastiq.InstanceStopped, LaunchedAt: launch, StateSince: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC)},
		},
		{
			name: "terminated: moto's UTC reason",
			in: types.Instance{InstanceId: aws.String("i-4"), State: &types.InstanceState{Name: types.InstanceStateNameTerminated}, LaunchTime: aws.Time(launch),
				StateTransitionReason: aws.String("User initiated (2026-03-01 12:30:05 UTC)")},
			want: elastiq.Instance{ID: "i-4", State: elastiq.InstanceTerminated, LaunchedAt: launch, StateSince: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC)},
		},
		{
			name: "stopped by the instance itself: no time",
			in: types.Instance{InstanceId: aws.String("i-5"), State: &types.InstanceState{Name: types.InstanceStateNameStopped}, LaunchTime: aws.Time(launch),
				StateTransitionReason: aws.String("Client.InstanceInitiatedShutdown: Instance initiated shutdown")},
			want: elastiq.Instance{ID: "i-5", State: elastiq.InstanceStopped, LaunchedAt: launch},
		},
		{
			name: "restarted: launched when the primary interface was attached",
			in: types.Instance{InstanceId: aws.String("i-6"), State: &types.InstanceState{Name: types.InstanceStateNamePending}, LaunchTime: aws.Time(restart),
				NetworkInterfaces: eni(0, launch)},
			want: elastiq.Instance{ID: "i-6", State: elastiq.InstancePending, LaunchedAt: launch, StateSince: restart},
		},
		{
			name: "a secondary interface attached earlier does not count",
			in: types.Instance{InstanceId: aws.String("i-7"), State: &types.InstanceState{Name: types.InstanceStateNameRunning}, LaunchTime: aws.Time(restart),
				NetworkInterfaces: eni(1, launch)},
			want: elastiq.Instance{ID: "i-7", State: elastiq.InstanceRunning, LaunchedAt: restart},
		},
		{
			name: "no state, no times",
			in:   types.Instance{InstanceId: aws.String("i-8")},
			want: elastiq.Instance{ID: "i-8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toInstance(tt.in); got != tt.want {
				t.Errorf("toInstance(%s) = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "ok by id", cfg: Config{Tags: WorkerTags("s"), LaunchTemplateID: "lt-1"}},
		{name: "ok by name", cfg: Config{Tags: WorkerTags("s"), LaunchTemplateName: "workers"}},
		{name: "no tags", cfg: Config{LaunchTemplateID: "lt-1"}, wantErr: "no worker tags"},
		{name: "aws tag", cfg: Config{Tags: map[string]string{"aws:x": "y"}, LaunchTemplateID: "lt-1"}, wantErr: "reserved"},
		{name: "token tag", cfg: Config{Tags: map[string]string{TagLaunchToken: "y"}, LaunchTemplateID: "lt-1"}, wantErr: TagLaunchToken},
		{name: "no template: list only", cfg: Config{Tags: WorkerTags("s")}},
		{name: "both templates", cfg: Config{Tags: WorkerTags("s"), LaunchTemplateID: "lt-1", LaunchTemplateName: "w"}, wantErr: "at most one"},
		{name: "negative timeout", cfg: Config{Tags: WorkerTags("s"), LaunchTemplateID: "lt-1", Timeout: -1}, wantErr: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newFleet(&pagedEC2{}, tt.cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("newFleet(%+v) = %v, want error containing %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

func TestLaunchWithoutTemplate(t *testing.T) {
	api := &pagedEC2{}
	f, err := newFleet(api, Config{Tags: WorkerTags("s")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Launch(t.Context(), 1, "tok"); err == nil || !strings.Contains(err.Error(), "no launch template") {
		t.Errorf("Launch() without a template = %v, want an error saying so", err)
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{name: "empty", token: "", ok: true},
		{name: "uuid", token: "0b6f0f3c-3f7e-4c9a-9a57-2d6f1e3c1a7b", ok: true},
		{name: "64 characters", token: strings.Repeat("t", 64), ok: true},
		{name: "65 characters", token: strings.Repeat("t", 65)},
		{name: "space", token: "a b"},
		{name: "non-ASCII", token: "tök"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkToken(tt.token); (err == nil) != tt.ok {
				t.Errorf("checkToken(%q) = %v, want ok %v", tt.token, err, tt.ok)
			}
		})
	}
}

func TestMapError(t *testing.T) {
	tests := []struct {
		code string
		want error
	}{
		{code: "InvalidInstanceID.NotFound", want: elastiq.ErrNotFound},
		{code: "InvalidInstanceID.Malformed", want: elastiq.ErrNotFound},
		{code: "IncorrectInstanceState", want: elastiq.ErrIncorrectState},
		{code: "UnauthorizedOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			apiErr := &smithy.GenericAPIError{Code: tt.code, Message: "m"}
			err := mapError(fmt.Errorf("operation error: %w", apiErr))
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("mapError(%s) = %v, want %v", tt.code, err, tt.want)
			}
			for _, other := range []error{elastiq.ErrNotFound, elastiq.ErrIncorrectState} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("mapError(%s) = %v, want not %v", tt.code, err, other)
				}
			}
			var got smithy.APIError
			if !errors.As(err, &got) || got.ErrorCode() != tt.code {
				t.Errorf("mapError(%s) = %v, lost the API error", tt.code, err)
			}
		})
	}
}

// pagedEC2 is a test double of the EC2 API: DescribeInstances answers
// with fixed pages chained by NextToken, and records each call's input and
// whether its context had a deadline. The other calls are unused.
type pagedEC2 struct {
	ec2API
	pages     [][]types.Instance
	inputs    []ec2.DescribeInstancesInput
	deadlines []time.Duration
}

var _ ec2API = (*pagedEC2)(nil)

func (p *pagedEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	p.inputs = append(p.inputs, *in)
	dl, ok := ctx.Deadline()
	if !ok {
		return nil, errors.New("pagedEC2: call without a deadline")
	}
	p.deadlines = append(p.deadlines, time.Until(dl))
	page := 0
	if in.NextToken != nil {
		fmt.Sscanf(*in.NextToken, "page-%d", &page)
	}
	out := &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: p.pages[page]}}}
	if page+1 < len(p.pages) {
		out.NextToken = aws.String(fmt.Sprintf("page-%d", page+1))
	}
	return out, nil
}

func TestListFollowsPagesWithFiltersAndTimeouts(t *testing.T) {
	running := &types.InstanceState{Name: types.InstanceStateNameRunning}
	at := func(min int) *time.Time { return aws.Time(time.Date(2026, 3, 1, 10, min, 0, 0, time.UTC)) }
	api := &pagedEC2{pages: [][]types.Instance{
		{{InstanceId: aws.String("i-c"), State: running, LaunchTime: at(3)}},
		{}, // EC2 may return an empty page with a NextToken
		{{InstanceId: aws.String("i-a"), State: running, LaunchTime: at(1)}, {InstanceId: aws.String("i-b"), State: running, LaunchTime: at(1)}},
	}}
	const timeout = 7 * time.Second
	f, err := newFleet(api, Config{Tags: WorkerTags("prod"), LaunchTemplateID: "lt-1", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got, want := ids(list), []string{"i-a", "i-b", "i-c"}; !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v (all pages, by launch time then ID)", got, want)
	}
	if len(api.inputs) != 3 {
		t.Fatalf("DescribeInstances called %d times, want 3 (one per page)", len(api.inputs))
	}
	for i, d := range api.deadlines {
		if d > timeout {
			t.Errorf("page %d: deadline %v away, want at most the Timeout %v", i, d, timeout)
		}
	}
	filters := map[string][]string{}
	for _, f := range api.inputs[0].Filters {
		filters[aws.ToString(f.Name)] = f.Values
	}
	want := map[string][]string{
		"tag:" + TagRole:      {RoleWorker},
		"tag:" + TagStack:     {"prod"},
		"instance-state-name": {"pending", "running", "stopping", "stopped", "shutting-down"},
	}
	for name, values := range want {
		if !slices.Equal(filters[name], values) {
			t.Errorf("filter %s = %v, want %v", name, filters[name], values)
		}
	}
	if len(filters) != len(want) {
		t.Errorf("filters = %v, want only %v", filters, want)
	}
}
