package ec2fleet

// Integration tests against moto_server's EC2 API (scripts/test-servers.sh
// starts it and sets ELASTIQ_TEST_AWS_ENDPOINT). Each test makes its own
// launch template and tags its workers with a stack name of its own, so
// tests sharing one server do not see each other's instances.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/motoec2"
	"github.com/elastiq/elastiq/services/elastiq/internal/awstest"
)

// testEnv is one test's view of the EC2 server: a raw client for setup and
// checks, and a launch template.
type testEnv struct {
	awsCfg   aws.Config
	client   *ec2.Client
	template motoec2.Template
	stack    string
}

// newTestEnv marks the test parallel: each has its own stack.
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	t.Parallel()
	awsCfg := awstest.Config(t)
	client := ec2.NewFromConfig(awsCfg)
	ctx := testCtx(t)
	name := awstest.Name(t)
	lt, err := motoec2.LaunchTemplate(ctx, awsCfg, name)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the server as it was: terminate what the test launched (the
	// stack's instances and its "-other" stack's).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := motoec2.TerminateStacks(ctx, awsCfg, name, name+"-other"); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	return &testEnv{awsCfg: awsCfg, client: client, template: lt, stack: name}
}

// fleet returns a fleet of this test's stack on its launch template.
func (e *testEnv) fleet(t *testing.T, edit func(*Config)) *Fleet {
	t.Helper()
	cfg := Config{
		Tags:             WorkerTags(e.stack),
		LaunchTemplateID: e.template.ID,
		Timeout:          time.Minute,
		Logger:           elastiqtest.NewLogs(t).Logger(),
	}
	if edit != nil {
		edit(&cfg)
	}
	f, err := New(e.awsCfg, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return f
}

// describe returns the instance as the server has it.
func (e *testEnv) describe(t *testing.T, id string) types.Instance {
	t.Helper()
	out, err := e.client.DescribeInstances(testCtx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("DescribeInstances(%s): %v", id, err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) == id {
				return in
			}
		}
	}
	t.Fatalf("DescribeInstances(%s): not returned", id)
	return types.Instance{}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// states returns the fleet's instances as id -> state.
func states(t *testing.T, f *Fleet) map[string]elastiq.InstanceState {
	t.Helper()
	list, err := f.List(testCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := make(map[string]elastiq.InstanceState, len(list))
	for _, in := range list {
		out[in.ID] = in.State
	}
	return out
}

// waitStates polls List until every id is in one of want (or, with no want,
// is gone from the list). Real EC2 passes through pending, stopping and
// shutting-down; moto jumps to the end state.
func waitStates(t *testing.T, f *Fleet, ids []string, want ...elastiq.InstanceState) {
	t.Helper()
	var last map[string]elastiq.InstanceState
	elastiqtest.Eventually(t, fmt.Sprintf("%v to be %v", ids, want), func() bool {
		last = states(t, f)
		for _, id := range ids {
			st, ok := last[id]
			if ok != (len(want) > 0) || ok && !slices.Contains(want, st) {
				t.Logf("List: %v", last)
				return false
			}
		}
		return true
	})
}

func TestLifecycle(t *testing.T) {
	env := newTestEnv(t)
	f := env.fleet(t, nil)
	ctx := testCtx(t)

	if list, err := f.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List of a new stack = %v, %v, want none", list, err)
	}

	before := time.Now().Add(-time.Minute) // the server's clock may differ a little
	launched, err := f.Launch(ctx, 2, "lifecycle-"+env.stack)
	if err != nil {
		t.Fatalf("Launch(2): %v", err)
	}
	if len(launched) != 2 {
		t.Fatalf("Launch(2) returned %d instances, want 2", len(launched))
	}
	ids := []string{launched[0].ID, launched[1].ID}
	for _, in := range launched {
		if in.State != elastiq.InstancePending && in.State != elastiq.InstanceRunning {
			t.Errorf("Launch: %s is %s, want pending or running", in.ID, in.State)
		}
		if in.LaunchedAt.Before(before) {
			t.Errorf("Launch: %s LaunchedAt = %v, want after %v", in.ID, in.LaunchedAt, before)
		}
		raw := env.describe(t, in.ID)
		tags := map[string]string{}
		for _, tag := range raw.Tags {
			tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		want := WorkerTags(env.stack)
		want[TagLaunchToken] = "lifecycle-" + env.stack
		for k, v := range want {
			if tags[k] != v {
				t.Errorf("tags of %s = %v, want %s=%s", in.ID, tags, k, v)
			}
		}
		if got := raw.InstanceType; got != types.InstanceTypeT3Micro {
			t.Errorf("instance type of %s = %s, want the template's %s", in.ID, got, types.InstanceTypeT3Micro)
		}
	}
	waitStates(t, f, ids, elastiq.InstanceRunning)

	if err := f.Stop(ctx, ids); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitStates(t, f, ids, elastiq.InstanceStopped)
	list, err := f.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, in := range list {
		if in.StateSince.Before(before) {
			t.Errorf("stopped %s: StateSince = %v, want the stop time from StateTransitionReason", in.ID, in.StateSince)
		}
	}
	if err := f.Stop(ctx, ids); err != nil {
		t.Errorf("Stop(stopped) = %v, want nil (no-op)", err)
	}

	if err := f.Start(ctx, ids[:1]); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitStates(t, f, ids[:1], elastiq.InstanceRunning)
	if got := states(t, f)[ids[1]]; got != elastiq.InstanceStopped {
		t.Errorf("after Start(%s): %s is %s, want stopped", ids[0], ids[1], got)
	}

	if err := f.Terminate(ctx, ids); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	waitStates(t, f, ids) // gone from the active states
	if got := env.describe(t, ids[0]).State.Name; got != types.InstanceStateNameTerminated && got != types.InstanceStateNameShuttingDown {
		t.Errorf("after Terminate: %s is %s, want shutting-down or terminated", ids[0], got)
	}
	if err := f.Terminate(ctx, ids); err != nil {
		t.Errorf("Terminate(terminated) = %v, want nil (no-op)", err)
	}
	waitStates(t, f, ids)
	for _, op := range []struct {
		name string
		call func(context.Context, []string) error
	}{{"Start", f.Start}, {"Stop", f.Stop}} {
		if err := op.call(ctx, ids[:1]); !errors.Is(err, elastiq.ErrIncorrectState) {
			t.Errorf("%s(terminated) = %v, want ErrIncorrectState", op.name, err)
		}
	}
	if got := env.describe(t, ids[0]).State.Name; got != types.InstanceStateNameTerminated {
		t.Errorf("after Start(terminated): %s is %s, want terminated", ids[0], got)
	}
}

func TestNoIDsIsNoOp(t *testing.T) {
	env := newTestEnv(t)
	f := env.fleet(t, nil)
	for name, call := range map[string]func(context.Context, []string) error{"Start": f.Start, "Stop": f.Stop, "Terminate": f.Terminate} {
		if err := call(testCtx(t), nil); err != nil {
			t.Errorf("%s(no ids) = %v, want nil", name, err)
		}
	}
}

func TestTagsSeparateFleets(t *testing.T) {
	env := newTestEnv(t)
	ctx := testCtx(t)
	mine := env.fleet(t, nil)
	other := env.fleet(t, func(c *Config) { c.Tags = WorkerTags(env.stack + "-other") })
	notWorker := env.fleet(t, func(c *Config) { c.Tags = map[string]string{TagRole: "web", TagStack: env.stack} })

	a, err := mine.Launch(ctx, 1, "")
	if err != nil {
		t.Fatalf("Launch(mine): %v", err)
	}
	b, err := other.Launch(ctx, 1, "")
	if err != nil {
		t.Fatalf("Launch(other stack): %v", err)
	}
	c, err := notWorker.Launch(ctx, 1, "")
	if err != nil {
		t.Fatalf("Launch(web role): %v", err)
	}
	// And one with no tags at all.
	run, err := env.client.RunInstances(ctx, &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(env.template.ID)},
	})
	if err != nil {
		t.Fatalf("RunInstances(untagged): %v", err)
	}
	untagged := aws.ToString(run.Instances[0].InstanceId)
	t.Cleanup(func() {
		env.client.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{untagged}})
	})

	got := slices.Collect(maps.Keys(states(t, mine)))
	if want := []string{a[0].ID}; !slices.Equal(got, want) {
		t.Errorf("List(mine) = %v, want %v (not %s of another stack, %s of another role, %s untagged)", got, want, b[0].ID, c[0].ID, untagged)
	}

	for _, foreign := range []string{b[0].ID, c[0].ID, untagged} {
		for name, call := range map[string]func(context.Context, []string) error{"Start": mine.Start, "Stop": mine.Stop, "Terminate": mine.Terminate} {
			if err := call(ctx, []string{a[0].ID, foreign}); !errors.Is(err, elastiq.ErrNotFound) {
				t.Errorf("%s(mine, foreign %s) = %v, want ErrNotFound", name, foreign, err)
			}
		}
		if st := env.describe(t, foreign).State.Name; st != types.InstanceStateNameRunning && st != types.InstanceStateNamePending {
			t.Errorf("foreign %s is %s after the refused calls, want still running", foreign, st)
		}
	}
	if st := env.describe(t, a[0].ID).State.Name; st != types.InstanceStateNameRunning && st != types.InstanceStateNamePending {
		t.Errorf("%s is %s after the refused calls, want still running: a refused call must change nothing", a[0].ID, st)
	}
}

func TestUnknownIDs(t *testing.T) {
	env := newTestEnv(t)
	f := env.fleet(t, nil)
	ctx := testCtx(t)
	launched, err := f.Launch(ctx, 1, "")
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	known := launched[0].ID
	tests := []struct {
		name string
		ids  []string
	}{
		{name: "unknown", ids: []string{"i-0123456789abcdef0"}},
		{name: "malformed", ids: []string{"not-an-id"}},
		{name: "known and unknown", ids: []string{known, "i-0123456789abcdef0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, call := range map[string]func(context.Context, []string) error{"Start": f.Start, "Stop": f.Stop, "Terminate": f.Terminate} {
				if err := call(ctx, tt.ids); !errors.Is(err, elastiq.ErrNotFound) {
					t.Errorf("%s(%v) = %v, want ErrNotFound", name, tt.ids, err)
				}
			}
		})
	}
	if st := env.describe(t, known).State.Name; st != types.InstanceStateNameRunning && st != types.InstanceStateNamePending {
		t.Errorf("%s is %s after calls that named an unknown ID, want still running", known, st)
	}
}

func TestLaunchTokenIsIdempotent(t *testing.T) {
	// moto ignores ClientToken (a repeated RunInstances launches again), so
	// this passes there only through the launch-token tag lookup; on EC2
	// both guard the retry.
	env := newTestEnv(t)
	f := env.fleet(t, nil)
	ctx := testCtx(t)
	token := "tok-" + env.stack

	first, err := f.Launch(ctx, 2, token)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	again, err := f.Launch(ctx, 2, token)
	if err != nil {
		t.Fatalf("Launch(same token): %v", err)
	}
	if got, want := ids(again), ids(first); !slices.Equal(got, want) {
		t.Errorf("Launch(same token) = %v, want the first call's %v", got, want)
	}
	if _, err := f.Launch(ctx, 3, token); err == nil {
		t.Errorf("Launch(3, token used for 2) = nil error, want one")
	}
	if n := len(states(t, f)); n != 2 {
		t.Errorf("List after retries = %d instances, want 2", n)
	}

	// The token stays spent after its instances are terminated.
	if err := f.Terminate(ctx, ids(first)); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	waitStates(t, f, ids(first))
	if again, err := f.Launch(ctx, 2, token); err != nil || !slices.Equal(ids(again), ids(first)) {
		t.Errorf("Launch(same token) after terminate = %v, %v, want %v, nil", ids(again), err, ids(first))
	}
	if n := len(states(t, f)); n != 0 {
		t.Errorf("List after a retry of a terminated launch = %d instances, want 0", n)
	}

	other, err := f.Launch(ctx, 1, token+"-2")
	if err != nil {
		t.Fatalf("Launch(new token): %v", err)
	}
	if slices.Contains(ids(first), other[0].ID) {
		t.Errorf("Launch(new token) = %v, want a new instance", ids(other))
	}
}

func TestLaunchTemplateByNameAndVersion(t *testing.T) {
	env := newTestEnv(t)
	ctx := testCtx(t)
	v2, err := env.client.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId:   aws.String(env.template.ID),
		SourceVersion:      aws.String("1"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{InstanceType: types.InstanceTypeT3Small},
	})
	if err != nil {
		t.Fatalf("CreateLaunchTemplateVersion: %v", err)
	}
	if n := aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber); n != 2 {
		t.Fatalf("new version = %d, want 2", n)
	}
	tests := []struct {
		name    string
		version string
		want    types.InstanceType
	}{
		{name: "default version", version: "", want: types.InstanceTypeT3Micro},
		{name: "version 1", version: "1", want: types.InstanceTypeT3Micro},
		{name: "latest", version: "$Latest", want: types.InstanceTypeT3Small},
		{name: "version 2", version: "2", want: types.InstanceTypeT3Small},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := env.fleet(t, func(c *Config) {
				c.LaunchTemplateID = ""
				c.LaunchTemplateName = env.template.Name
				c.LaunchTemplateVersion = tt.version
			})
			launched, err := f.Launch(ctx, 1, "")
			if err != nil {
				t.Fatalf("Launch: %v", err)
			}
			if got := env.describe(t, launched[0].ID).InstanceType; got != tt.want {
				t.Errorf("Launch from %s version %q: instance type %s, want %s", env.template.Name, tt.version, got, tt.want)
			}
		})
	}
}

func TestLaunchFromMissingTemplate(t *testing.T) {
	env := newTestEnv(t)
	f := env.fleet(t, func(c *Config) {
		c.LaunchTemplateID = ""
		c.LaunchTemplateName = env.stack + "-missing"
	})
	if got, err := f.Launch(testCtx(t), 1, ""); err == nil {
		t.Errorf("Launch from a missing template = %v, nil, want an error", ids(got))
	}
}
