package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
	"github.com/elastiq/elastiq/services/worker"
)

var env = elastiqtest.Env

func TestParse(t *testing.T) {
	base := []string{"-bucket", "b", "-request-queue-url", "http://req", "-response-queue-url", "http://res"}
	t.Run("defaults", func(t *testing.T) {
		o, err := parse(append([]string{"worker"}, base...), env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		n := runtime.GOMAXPROCS(0)
		if o.classify.Backend != "face" || o.worker.Concurrency != n || o.worker.IdleTimeout != time.Minute ||
			o.worker.VisibilityTimeout != 15*time.Second || o.grace != 25*time.Second || o.selfStop || o.worker.Name != "" {
			t.Errorf("parse() = backend %q, concurrency %d, idle %v, visibility %v, grace %v, self-stop %v, name %q; "+
				"want face, %d, 1m, 15s, 25s, false, empty", o.classify.Backend, o.worker.Concurrency, o.worker.IdleTimeout,
				o.worker.VisibilityTimeout, o.grace, o.selfStop, o.worker.Name, n)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parse([]string{"worker"}, env(map[string]string{
			"ELASTIQ_BUCKET": "b", "ELASTIQ_REQUEST_QUEUE_URL": "http://req", "ELASTIQ_RESPONSE_QUEUE_URL": "http://res",
			"ELASTIQ_IDLE": "0s", "ELASTIQ_SELF_STOP": "true", "ELASTIQ_CLASSIFIER": "exec", "ELASTIQ_EXEC_COMMAND": "python3 f.py {}",
			"ELASTIQ_ENDPOINT": "http://127.0.0.1:5000",
		}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.bucket != "b" || o.requestsURL != "http://req" || o.responsesURL != "http://res" || o.worker.IdleTimeout != 0 ||
			!o.selfStop || strings.Join(o.classify.Command, " ") != "python3 f.py {}" || o.aws.Endpoint != "http://127.0.0.1:5000" {
			t.Errorf("parse() = %+v; want the environment's values", o)
		}
	})
	t.Run("no response queue", func(t *testing.T) {
		// The load-balanced layout: each request names its web
		// instance's queue.
		o, err := parse(append([]string{"worker"}, base[:4]...), env(nil), io.Discard)
		if err != nil || o.responsesURL != "" {
			t.Errorf("parse() without -response-queue-url = %q, %v; want no response queue, no error", o.responsesURL, err)
		}
	})
	t.Run("flag wins over environment", func(t *testing.T) {
		o, err := parse(append([]string{"worker", "-concurrency", "3"}, base...), env(map[string]string{"ELASTIQ_CONCURRENCY": "5"}), io.Discard)
		if err != nil || o.worker.Concurrency != 3 {
			t.Errorf("parse() concurrency = %d, %v; want 3", o.worker.Concurrency, err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "nothing", want: "missing required flags: -bucket (or ELASTIQ_BUCKET), -request-queue-url (or ELASTIQ_REQUEST_QUEUE_URL)"},
		{name: "exec without command", args: append([]string{"-classifier", "exec"}, base...), want: "-exec-command"},
		{name: "zero concurrency", args: append([]string{"-concurrency", "0"}, base...), want: "Concurrency"},
		{name: "negative grace", args: append([]string{"-grace", "-1s"}, base...), want: "-grace"},
		{name: "bad duration", args: append([]string{"-idle", "soon"}, base...), want: "soon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(append([]string{"worker"}, tc.args...), env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "classify.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// sizeLabel is an exec classifier whose label is the image's size, so a
// test sees that the worker read the input it was sent.
const sizeLabel = `echo "size-$(wc -c < "$1" | tr -d ' ')"` + "\n"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// submit stores an input and sends its request, as the web tier does.
func submit(t *testing.T, ctx context.Context, s *awsstack.Stack, name string, image []byte) elastiq.Request {
	t.Helper()
	req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: name, SubmittedAt: time.Now().UTC()}
	req.InputKey = elastiq.InputKey(req.ID)
	if err := s.Store.Put(ctx, req.InputKey, elastiq.Object{Body: image, ContentType: "image/jpeg", Metadata: elastiq.InputMetadata(req)}); err != nil {
		t.Fatal(err)
	}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Requests.Send(ctx, body); err != nil {
		t.Fatal(err)
	}
	return req
}

// response waits for the next result on the response queue and deletes it.
func response(t *testing.T, ctx context.Context, s *awsstack.Stack) elastiq.Result {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		msgs, err := s.Responses.Receive(ctx, 1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			continue
		}
		if err := s.Responses.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
			t.Fatal(err)
		}
		res, err := elastiq.DecodeResult(msgs[0].Body)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	t.Fatal("no response within 2m")
	return elastiq.Result{}
}

// output reads the durable result of a request.
func output(t *testing.T, ctx context.Context, s *awsstack.Stack, id elastiq.RequestID) elastiq.Result {
	t.Helper()
	obj, err := s.Store.Get(ctx, elastiq.OutputKey(id))
	if err != nil {
		t.Fatalf("get %s: %v", elastiq.OutputKey(id), err)
	}
	res, err := elastiq.DecodeResult(obj.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// queueEmpty checks that the request queue holds no message, visible or in
// flight: every request was deleted.
func queueEmpty(t *testing.T, ctx context.Context, s *awsstack.Stack) {
	t.Helper()
	st, err := s.Requests.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Visible != 0 || st.InFlight != 0 {
		t.Errorf("request queue stats = %+v, want empty", st)
	}
}

// cmdline is the worker's command line on stack s, then extra.
func cmdline(s *awsstack.Stack, extra ...string) []string {
	return append(append([]string{"worker"}, s.Args()...), extra...)
}

var takingRE = regexp.MustCompile(`worker (\S+): taking requests`)

// TestRunExec: a request put on the queue gets its result in output/ and on
// the response queue; the worker exits 0 by itself after -idle.
func TestRunExec(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	ctx := testCtx(t)
	req := submit(t, ctx, s, "test_00.jpg", []byte("twelve bytes"))

	p := elastiqtest.StartProgram(t, run, cmdline(s, "-classifier", "exec", "-exec-command", script(t, sizeLabel)+" {}",
		"-visibility", "30s", "-idle", "3s", "-name", "w1", "-log-level", "debug", "-metrics-addr", "127.0.0.1:0"), env(nil))
	if m := p.WaitOutput(takingRE, time.Minute); m[1] != "w1" {
		t.Errorf("worker name = %q, want w1", m[1])
	}
	metricsURL := p.WaitOutput(regexp.MustCompile(`metrics on (http://\S+)`), time.Minute)[1]
	res := response(t, ctx, s)
	// -metrics-addr: the handled request counted (read with Prometheus's
	// parser), while the worker still runs.
	elastiqtest.Eventually(t, "the request counted on /metrics", func() bool {
		resp, err := http.Get(metricsURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		for _, m := range fams["elastiq_worker_messages_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == worker.OutcomeDone && m.GetCounter().GetValue() == 1 {
					return true
				}
			}
		}
		return false
	})
	want := elastiq.Result{ID: req.ID, FileName: "test_00.jpg", Status: elastiq.StatusDone, Label: "size-12", Worker: "w1"}
	if res.ID != want.ID || res.FileName != want.FileName || res.Status != want.Status || res.Label != want.Label || res.Worker != want.Worker {
		t.Errorf("response = %+v, want %+v", res, want)
	}
	if out := output(t, ctx, s, req.ID); out.Label != "size-12" || out.Status != elastiq.StatusDone {
		t.Errorf("output/%s = %+v, want done size-12", req.ID, out)
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Errorf("run() after -idle = %v, want nil", err)
	}
	queueEmpty(t, ctx, s)
}

// TestRunSelfStop: a worker on an EC2 instance names itself after the
// instance and, once idle, stops the instance.
func TestRunSelfStop(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	ctx := testCtx(t)
	fleet, err := ec2fleet.New(s.Config, ec2fleet.Config{
		Tags: ec2fleet.WorkerTags(s.Name), LaunchTemplateID: elastiqtest.LaunchTemplate(ctx, t, s.Config)})
	if err != nil {
		t.Fatal(err)
	}
	elastiqtest.TerminateAtEnd(t, s.Config, s.Name)
	instances, err := fleet.Launch(ctx, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	me, other := instances[0].ID, instances[1].ID
	elastiqtest.Eventually(t, "the instances running", func() bool { return allIn(t, ctx, fleet, elastiq.InstanceRunning) })
	req := submit(t, ctx, s, "a.jpg", []byte("abc"))

	p := elastiqtest.StartProgram(t, run, cmdline(s, "-classifier", "exec", "-exec-command", script(t, sizeLabel),
		"-idle", "2s", "-self-stop", "-imds-endpoint", elastiqtest.IMDS(t, me)), env(nil))
	if res := response(t, ctx, s); res.ID != req.ID || res.Worker != me || res.Label != "size-3" {
		t.Errorf("response = %+v, want %s labelled size-3 by worker %s", res, req.ID, me)
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Fatalf("run() after -idle with -self-stop = %v, want nil", err)
	}
	p.WaitOutput(regexp.MustCompile(`idle; stopping instance `+me), time.Second)
	elastiqtest.Eventually(t, "the worker's own instance stopped", func() bool {
		st := states(t, ctx, fleet)
		return st[me] == elastiq.InstanceStopped
	})
	if st := states(t, ctx, fleet); st[other] != elastiq.InstanceRunning {
		t.Errorf("the other instance %s is %s, want running", other, st[other])
	}
}

func states(t *testing.T, ctx context.Context, fleet *ec2fleet.Fleet) map[string]elastiq.InstanceState {
	t.Helper()
	instances, err := fleet.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]elastiq.InstanceState{}
	for _, in := range instances {
		st[in.ID] = in.State
	}
	return st
}

func allIn(t *testing.T, ctx context.Context, fleet *ec2fleet.Fleet, want elastiq.InstanceState) bool {
	for _, s := range states(t, ctx, fleet) {
		if s != want {
			return false
		}
	}
	return true
}

// gated is an exec classifier that marks that it started, then waits for a
// go file before answering; without one it waits for a long time, until the
// worker kills it.
func gated(t *testing.T) (command, started, goFile string) {
	dir := t.TempDir()
	started, goFile = filepath.Join(dir, "started"), filepath.Join(dir, "go")
	command = script(t, fmt.Sprintf(`touch %q
i=0
while [ ! -e %q ]; do
	i=$((i+1)); [ $i -gt 6000 ] && exit 1
	sleep 0.05
done
echo finished
`, started, goFile))
	return command, started, goFile
}

func waitFile(t *testing.T, path string) {
	elastiqtest.Eventually(t, path+" created", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// TestRunSIGTERMFinishesInHand: on SIGTERM the worker finishes the request
// it holds, within the grace period, takes no new one, and exits 0.
func TestRunSIGTERMFinishesInHand(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	ctx := testCtx(t)
	command, started, goFile := gated(t)
	req := submit(t, ctx, s, "a.jpg", []byte("abc"))

	p := elastiqtest.StartProgram(t, run, cmdline(s, "-classifier", "exec", "-exec-command", command,
		"-concurrency", "2", "-idle", "0", "-grace", "2m", "-log-level", "debug"), env(nil))
	waitFile(t, started)
	p.Interrupt()
	elastiqtest.Eventually(t, "the worker draining", func() bool {
		return strings.Contains(p.Stderr.String(), "stopping: finishing the requests in hand")
	})
	// Sent after the stop: a free slot must not take it.
	late := submit(t, ctx, s, "late.jpg", []byte("late"))
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Fatalf("run() after SIGTERM = %v, want nil", err)
	}
	if res := response(t, ctx, s); res.ID != req.ID || res.Label != "finished" {
		t.Errorf("response = %+v, want %s finished", res, req.ID)
	}
	if out := output(t, ctx, s, req.ID); out.Label != "finished" {
		t.Errorf("output/%s = %+v, want finished", req.ID, out)
	}
	msgs, err := s.Requests.Receive(ctx, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Body), string(late.ID)) {
		t.Errorf("request queue after the stop holds %d messages, want only the late request %s, visible", len(msgs), late.ID)
	}
}

// TestRunSIGTERMGraceOver: a request still in hand when the grace period
// ends is released at once for another worker, not lost, and the worker
// exits 0.
func TestRunSIGTERMGraceOver(t *testing.T) {
	s := awsstack.New(t, 10*time.Minute, 5) // redelivery only through the release
	ctx := testCtx(t)
	command, started, _ := gated(t)
	req := submit(t, ctx, s, "a.jpg", []byte("abc"))

	p := elastiqtest.StartProgram(t, run, cmdline(s, "-classifier", "exec", "-exec-command", command,
		"-visibility", "10m", "-idle", "0", "-grace", "1s"), env(nil))
	waitFile(t, started)
	p.Interrupt()
	if err := p.Wait(time.Minute); err != nil {
		t.Fatalf("run() after SIGTERM = %v, want nil", err)
	}
	msgs, err := s.Requests.Receive(ctx, 10, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Body), string(req.ID)) || msgs[0].ReceiveCount != 2 {
		t.Fatalf("request queue after the grace period = %+v, want %s delivered a second time", msgs, req.ID)
	}
	if _, err := s.Store.Get(ctx, elastiq.OutputKey(req.ID)); err == nil {
		t.Errorf("output/%s exists, want none: the classification was interrupted", req.ID)
	}
}

// TestRunFace runs the worker with its default classifier, the face model on
// the CSE546 gallery, on one of the course's images.
func TestRunFace(t *testing.T) {
	models := elastiqtest.ModelDir(t, "fr_feature.onnx")
	dataset := elastiqtest.CSE546(t)
	first := elastiqtest.Workload(t)[0]
	label, image := first.Label, first.Data
	s := awsstack.New(t, 30*time.Second, 5)
	ctx := testCtx(t)
	req := submit(t, ctx, s, "test_00.jpg", image)

	p := elastiqtest.StartProgram(t, run, cmdline(s, "-models", models, "-gallery", dataset,
		"-gallery-cache", t.TempDir(), "-idle", "0"), env(nil))
	if res := response(t, ctx, s); res.ID != req.ID || res.Status != elastiq.StatusDone || res.Label != label {
		t.Errorf("response = %+v, want %s done with label %q", res, req.ID, label)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("run() after SIGTERM = %v, want nil", err)
	}
	queueEmpty(t, ctx, s)
}

// TestRunBadConfig: a bucket or queue that does not exist stops the worker
// at start with an error naming it.
func TestRunBadConfig(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "bucket", args: []string{"-bucket", "no-such-bucket-" + s.Name}, want: "bucket"},
		{name: "request queue", args: []string{"-request-queue-url", s.RequestsURL + "-gone"}, want: "request queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := cmdline(s, append([]string{"-classifier", "exec", "-exec-command", "true"}, tc.args...)...)
			err := run(t.Context(), args, env(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not found") {
				t.Errorf("run(%q) = %v, want a %s not found error", tc.args, err, tc.want)
			}
		})
	}
}
