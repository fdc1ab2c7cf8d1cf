package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

var env = elastiqtest.Env

func TestParse(t *testing.T) {
	base := []string{"-request-queue-url", "http://q", "-stack", "s", "-launch-template-name", "lt"}
	t.Run("defaults", func(t *testing.T) {
		o, err := parse(append([]string{"scaler"}, base...), env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(o.policy)
		if err != nil || p.Name() != policy.NameBacklog || o.policy.Max != 19 || o.scaler.Interval != time.Second ||
			o.fleet.LaunchTemplateVersion != "$Default" || o.fleet.Tags[ec2fleet.TagStack] != "s" {
			t.Errorf("parse() = policy %v (%v), max %d, interval %v, version %q, tags %v; want backlog, 19, 1s, $Default, stack s",
				p, err, o.policy.Max, o.scaler.Interval, o.fleet.LaunchTemplateVersion, o.fleet.Tags)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parse([]string{"scaler"}, env(map[string]string{
			"ELASTIQ_REQUEST_QUEUE_URL": "http://q", "ELASTIQ_STACK": "prod", "ELASTIQ_LAUNCH_TEMPLATE_ID": "lt-1",
			"ELASTIQ_MAX_WORKERS": "4", "ELASTIQ_INTERVAL": "3s", "ELASTIQ_REGION": "eu-west-1",
		}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.queueURL != "http://q" || o.stack != "prod" || o.fleet.LaunchTemplateID != "lt-1" || o.policy.Max != 4 ||
			o.scaler.Interval != 3*time.Second || o.aws.Region != "eu-west-1" {
			t.Errorf("parse() = %+v; want the environment's values", o)
		}
	})
	t.Run("flag wins over environment", func(t *testing.T) {
		o, err := parse(append([]string{"scaler", "-max-workers", "7"}, base...), env(map[string]string{"ELASTIQ_MAX_WORKERS": "4"}), io.Discard)
		if err != nil || o.policy.Max != 7 {
			t.Errorf("parse() max = %d, %v; want 7", o.policy.Max, err)
		}
	})
	t.Run("backlog policy", func(t *testing.T) {
		o, err := parse(append([]string{"scaler", "-policy", "backlog", "-max-workers", "6", "-terminate-after", "5m",
			"-warm-pool", "2", "-launch-ready", "90s"}, base...), env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(o.policy)
		b, _ := p.(policy.Backlog)
		if err != nil || p.Name() != "backlog" || b.Config().Max != 6 || b.Config().TerminateAfter != 5*time.Minute ||
			b.Config().WarmPool != 2 || b.Config().LaunchReady != 90*time.Second {
			t.Errorf("parse() = policy %v (%v), backlog %+v; want backlog, max 6, 5m, warm pool 2, launch ready 90s", p, err, b.Config())
		}
	})
	t.Run("classic policy", func(t *testing.T) {
		o, err := parse(append([]string{"scaler", "-policy", "classic"}, base...), env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(o.policy)
		c, _ := p.(policy.Classic)
		if err != nil || c.Config().Max != 19 || c.Config().TerminateAfter != 2*time.Minute {
			t.Errorf("parse() = policy %v (%v), classic %+v; want classic, max 19, 2m", p, err, c.Config())
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown policy", args: append([]string{"-policy", "magic"}, base...), want: "-policy"},
		{name: "no queue", args: []string{"-stack", "s", "-launch-template-id", "lt-1"}, want: "-request-queue-url (or ELASTIQ_REQUEST_QUEUE_URL)"},
		{name: "no stack", args: []string{"-request-queue-url", "http://q", "-launch-template-id", "lt-1"}, want: "-stack (or ELASTIQ_STACK)"},
		{name: "no template", args: []string{"-request-queue-url", "http://q", "-stack", "s"}, want: "exactly one of -launch-template-id and -launch-template-name"},
		{name: "two templates", args: append([]string{"-launch-template-id", "lt-1"}, base...), want: "exactly one of"},
		{name: "zero workers", args: append([]string{"-max-workers", "0"}, base...), want: "Max"},
		{name: "zero interval", args: append([]string{"-interval", "0s"}, base...), want: "Interval"},
		{name: "stray argument", args: append(base, "now"), want: "now"},
		{name: "bad reply prefix", args: append([]string{"-reply-queue-prefix", "web/1"}, base...), want: "reply queue prefix"},
		{name: "zero reply expiry", args: append([]string{"-reply-queue-expiry", "0s"}, base...), want: "-reply-queue-expiry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(append([]string{"scaler"}, tc.args...), env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestRunScalesOutAndIn runs the scaler against moto: queued requests get
// workers launched for them, tagged for the stack; once the queue is idle
// and the workers have stopped themselves, they are terminated.
func TestRunScalesOutAndIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// The test's own view of the stack's fleet, to check and to stop workers
	// as they would stop themselves.
	endpoint, name, template, queues, queue, fleet := newScalerStack(t, ctx)

	p := elastiqtest.StartProgram(t, run, []string{"scaler", "-endpoint", endpoint, "-request-queue-url", queues.URL,
		"-stack", name, "-launch-template-id", template, "-policy", "classic", "-max-workers", "3", "-terminate-after", "2s",
		"-interval", "100ms", "-log-level", "debug"}, env(nil))
	p.WaitOutput(regexp.MustCompile(`managing the workers of stack \S+ \(0 now, at most 3, classic policy\)`), time.Minute)

	for range 2 {
		if err := queue.Send(ctx, []byte(`{"id":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	elastiqtest.Eventually(t, "two workers launched for two queued requests", func() bool {
		ids = activeIDs(t, ctx, fleet)
		return len(ids) == 2
	})

	// The workers take the requests, then stop themselves when the queue
	// is empty.
	for taken := 0; taken < 2; {
		msgs, err := queue.Receive(ctx, 2, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := queue.Delete(ctx, m.ReceiptHandle); err != nil {
				t.Fatal(err)
			}
			taken++
		}
	}
	if got := activeIDs(t, ctx, fleet); len(got) != 2 {
		t.Errorf("after the queue emptied, active workers = %v, want the 2 launched %v (the scaler never stops workers)", got, ids)
	}
	if err := fleet.Stop(ctx, ids); err != nil {
		t.Fatal(err)
	}
	elastiqtest.Eventually(t, "the stopped workers terminated after -terminate-after with an idle queue", func() bool {
		instances, err := fleet.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range instances {
			if in.State != elastiq.InstanceShuttingDown && in.State != elastiq.InstanceTerminated {
				return false
			}
		}
		return true
	})
	if err := p.Stop(); err != nil {
		t.Errorf("run() after SIGTERM = %v, want nil", err)
	}
	if logs := p.Stderr.String(); !strings.Contains(logs, "terminate") {
		t.Errorf("scaler logs do not mention a termination:\n%s", logs)
	}
}

// newScalerStack makes, on the test server, the queues and the launch
// template of a stack for the scaler to manage, and returns the endpoint,
// the stack's name, the template's ID, the queues, the request queue and the
// test's own view of the stack's fleet. The stack's instances are
// terminated at the end of the test.
func newScalerStack(t *testing.T, ctx context.Context) (endpoint, name, template string, queues sqsqueue.Queues,
	queue *sqsqueue.Queue, fleet *ec2fleet.Fleet) {
	t.Helper()
	endpoint = elastiqtest.AWSEnv(t)
	awsCfg := elastiqtest.AWSConfig(t)
	name = elastiqtest.UniqueName(t)
	queues, err := sqsqueue.CreateWithDeadLetter(ctx, awsCfg, name, sqsqueue.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	template = elastiqtest.LaunchTemplate(ctx, t, awsCfg)
	if fleet, err = ec2fleet.New(awsCfg, ec2fleet.Config{Tags: ec2fleet.WorkerTags(name), LaunchTemplateID: template}); err != nil {
		t.Fatal(err)
	}
	elastiqtest.TerminateAtEnd(t, awsCfg, name)
	if queue, err = sqsqueue.Open(ctx, awsCfg, queues.URL, sqsqueue.Options{}); err != nil {
		t.Fatal(err)
	}
	return endpoint, name, template, queues, queue, fleet
}

// activeIDs returns the fleet's running and pending workers.
func activeIDs(t *testing.T, ctx context.Context, fleet *ec2fleet.Fleet) []string {
	t.Helper()
	instances, err := fleet.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range instances {
		if in.State == elastiq.InstanceRunning || in.State == elastiq.InstancePending {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

func TestRunBadConfig(t *testing.T) {
	endpoint := elastiqtest.AWSEnv(t)
	err := run(t.Context(), []string{"scaler", "-endpoint", endpoint, "-request-queue-url", endpoint + "/123456789012/no-such-queue",
		"-stack", "s", "-launch-template-name", "lt"}, env(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "request queue") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("run() with a missing queue = %v, want a request queue not found error", err)
	}
}

// TestRunTerminatesWorkersWithHost: with -terminate-workers-with-host, a
// scaler stopped while its own instance is running leaves the workers alone,
// and one stopped while its instance is being terminated (pulumi destroy)
// terminates them, so none outlive the deployment.
func TestRunTerminatesWorkersWithHost(t *testing.T) {
	endpoint := elastiqtest.AWSEnv(t)
	awsCfg := elastiqtest.AWSConfig(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	name := elastiqtest.UniqueName(t)
	queues, err := sqsqueue.CreateWithDeadLetter(ctx, awsCfg, name, sqsqueue.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	template := elastiqtest.LaunchTemplate(ctx, t, awsCfg)
	workers, err := ec2fleet.New(awsCfg, ec2fleet.Config{Tags: ec2fleet.WorkerTags(name), LaunchTemplateID: template})
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := ec2fleet.New(awsCfg, ec2fleet.Config{Tags: map[string]string{"elastiq:test-host": name}, LaunchTemplateID: template})
	if err != nil {
		t.Fatal(err)
	}
	host, err := hosts.Launch(ctx, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	launched, err := workers.Launch(ctx, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"scaler", "-endpoint", endpoint, "-request-queue-url", queues.URL, "-stack", name,
		"-launch-template-id", template, "-policy", "classic", "-interval", "100ms", "-terminate-workers-with-host",
		"-imds-endpoint", elastiqtest.IMDS(t, host[0].ID)}

	stopScaler := func() {
		p := elastiqtest.StartProgram(t, run, args, env(nil))
		p.WaitOutput(regexp.MustCompile(`managing the workers of stack`), time.Minute)
		p.Interrupt()
		if err := p.Wait(time.Minute); err != nil {
			t.Fatalf("run() after SIGTERM = %v, want nil", err)
		}
	}
	stopScaler()
	if got := activeIDs(t, ctx, workers); len(got) != 2 {
		t.Fatalf("after stopping the scaler on a running host, active workers = %v, want the 2 launched", got)
	}

	if err := hosts.Terminate(ctx, []string{host[0].ID}); err != nil {
		t.Fatal(err)
	}
	stopScaler()
	if got := activeIDs(t, ctx, workers); len(got) != 0 {
		t.Errorf("after stopping the scaler on a terminating host, active workers = %v, want none of %v", got, launched)
	}
}

// TestRunTakesNudges: with -addr, a POST /nudge from the web tier makes the
// scaler look at once: with an interval of an hour, the worker for a queued
// request is launched only because of the nudge.
func TestRunTakesNudges(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	endpoint, name, template, queues, queue, fleet := newScalerStack(t, ctx)
	p := elastiqtest.StartProgram(t, run, []string{"scaler", "-endpoint", endpoint, "-request-queue-url", queues.URL,
		"-stack", name, "-launch-template-id", template, "-policy", "classic", "-max-workers", "3",
		"-interval", "1h", "-addr", "127.0.0.1:0", "-log-level", "debug", "-metrics-addr", "127.0.0.1:0"}, env(nil))
	url := p.WaitOutput(regexp.MustCompile(`serving the web tier on (http://\S+)`), time.Minute)[1]
	metricsURL := p.WaitOutput(regexp.MustCompile(`metrics on (http://\S+)`), time.Minute)[1]
	// The evaluation at start, on the empty queue, is done: the next one
	// is an hour away, unless nudged.
	elastiqtest.Eventually(t, "the first evaluation", func() bool { return strings.Contains(p.Stderr.String(), "scaling decision") })

	if err := queue.Send(ctx, []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if ids := activeIDs(t, ctx, fleet); len(ids) != 0 {
		t.Fatalf("workers %v launched before any nudge, with an interval of an hour", ids)
	}
	resp, err := http.Post(url+"/nudge?n=1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /nudge = %s, want 204", resp.Status)
	}
	elastiqtest.Eventually(t, "a worker launched after the nudge", func() bool { return len(activeIDs(t, ctx, fleet)) == 1 })
	// -metrics-addr: the nudge and the launch counted, read with
	// Prometheus's parser.
	resp, err = http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	if got := fams["elastiq_scaler_nudged_requests_total"].GetMetric()[0].GetCounter().GetValue(); got != 1 {
		t.Errorf("elastiq_scaler_nudged_requests_total = %v, want 1", got)
	}
	launched := 0.0
	for _, m := range fams["elastiq_scaler_instances_total"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "launch" {
			launched = m.GetCounter().GetValue()
		}
	}
	if launched != 1 {
		t.Errorf("elastiq_scaler_instances_total{action=launch} = %v, want 1", launched)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("run() after SIGTERM = %v, want nil", err)
	}
}
