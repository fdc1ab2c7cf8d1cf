package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/ec2fleet"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
	"github.com/elastiq/elastiq/services/elastiq/memcached"
	"github.com/elastiq/elastiq/services/elastiq/sqsqueue"
	"github.com/elastiq/elastiq/services/web"
)

var env = elastiqtest.Env

func TestParse(t *testing.T) {
	base := []string{"-bucket", "b", "-request-queue-url", "http://req", "-response-queue-url", "http://res", "-memcached", "127.0.0.1:11211"}
	t.Run("defaults", func(t *testing.T) {
		o, err := parse(append([]string{"web"}, base...), env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		d := web.DefaultConfig()
		if o.addr != "127.0.0.1:8080" || o.web.CacheTTL != d.CacheTTL || o.web.SyncTimeout != d.SyncTimeout ||
			o.web.MaxUploadBytes != d.MaxUploadBytes || o.deadLettersURL != "" || o.stack != "" {
			t.Errorf("parse() = %+v; want the web package's defaults on 127.0.0.1:8080, no dead letters, no stack", o)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parse([]string{"web"}, env(map[string]string{
			"ELASTIQ_BUCKET": "b", "ELASTIQ_REQUEST_QUEUE_URL": "http://req", "ELASTIQ_RESPONSE_QUEUE_URL": "http://res",
			"ELASTIQ_MEMCACHED": " 10.0.0.1:11211, 10.0.0.2:11211 ,", "ELASTIQ_DEAD_LETTER_QUEUE_URL": "http://dlq",
			"ELASTIQ_SYNC_TIMEOUT": "5s", "ELASTIQ_STACK": "prod", "ELASTIQ_ADDR": ":80",
		}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.bucket != "b" || o.requestsURL != "http://req" || o.responsesURL != "http://res" || o.deadLettersURL != "http://dlq" ||
			o.web.SyncTimeout != 5*time.Second || o.stack != "prod" || o.addr != ":80" ||
			!slices.Equal(o.servers(), []string{"10.0.0.1:11211", "10.0.0.2:11211"}) {
			t.Errorf("parse() = %+v, servers %q; want the environment's values", o, o.servers())
		}
	})
	t.Run("flag wins over environment", func(t *testing.T) {
		o, err := parse(append([]string{"web", "-cache-ttl", "1m"}, base...), env(map[string]string{"ELASTIQ_CACHE_TTL": "5m"}), io.Discard)
		if err != nil || o.web.CacheTTL != time.Minute {
			t.Errorf("parse() cache TTL = %v, %v; want 1m", o.web.CacheTTL, err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "nothing", want: "missing required flags: -bucket (or ELASTIQ_BUCKET), -request-queue-url (or ELASTIQ_REQUEST_QUEUE_URL), " +
			"-memcached (or ELASTIQ_MEMCACHED)"},
		{name: "no memcached", args: base[:6], want: "missing required flags: -memcached (or ELASTIQ_MEMCACHED)"},
		{name: "no response queue", args: append(slices.Clone(base[:4]), base[6:]...), want: "set one of -response-queue-url"},
		{name: "both response queues", args: append([]string{"-reply-queue-prefix", "web-"}, base...), want: "set one of -response-queue-url"},
		{name: "bad reply prefix", args: append([]string{"-reply-queue-prefix", "web.1"}, append(slices.Clone(base[:4]), base[6:]...)...), want: "reply queue prefix"},
		{name: "zero heartbeat", args: append([]string{"-reply-queue-heartbeat", "0s"}, base...), want: "-reply-queue-heartbeat"},
		{name: "zero sync timeout", args: append([]string{"-sync-timeout", "0s"}, base...), want: "SyncTimeout"},
		{name: "zero upload", args: append([]string{"-max-upload", "0"}, base...), want: "MaxUploadBytes"},
		{name: "bad duration", args: append([]string{"-cache-ttl", "forever"}, base...), want: "forever"},
		{name: "stray argument", args: append(base, "serve"), want: "serve"},
		{name: "scaler URL without scheme", args: append([]string{"-scaler-url", "127.0.0.1:8081"}, base...), want: "-scaler-url"},
		{name: "scaler URL with a path", args: append([]string{"-scaler-url", "http://127.0.0.1:8081/nudge"}, base...), want: "-scaler-url"},
		{name: "inline too large", args: append([]string{"-inline-max", "300000"}, base...), want: "InlineMaxBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(append([]string{"web"}, tc.args...), env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// startWorker runs a test double of the worker tier on the stack's real
// queues and bucket until the test ends: it answers every request with the
// label Paul, writing output/<id> and the response (on the queue the request
// names, if any) as a worker does, so these
// tests need neither the worker program nor a classifier.
func startWorker(t *testing.T, s *awsstack.Stack) {
	replies := sqsqueue.OpenReplies(s.Config, sqsqueue.Options{})
	t.Cleanup(elastiqtest.Start(t, "fake worker", func(ctx context.Context) error {
		for {
			msgs, err := s.Requests.Receive(ctx, 10, time.Second)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				t.Errorf("fake worker: receive: %v", err)
				return err
			}
			for _, m := range msgs {
				req, err := elastiq.DecodeRequest(m.Body)
				if err != nil {
					t.Errorf("fake worker: %v", err)
					continue
				}
				now := time.Now()
				body, err := elastiq.EncodeResult(elastiq.Result{ID: req.ID, FileName: req.FileName, Status: elastiq.StatusDone,
					Label: "Paul", Worker: "fake-worker", SubmittedAt: req.SubmittedAt, StartedAt: now, FinishedAt: now})
				if err == nil {
					err = s.Store.Put(ctx, elastiq.OutputKey(req.ID), elastiq.Object{Body: body, ContentType: "application/json"})
				}
				if err == nil {
					to := elastiq.Queue(s.Responses)
					if req.ReplyTo != "" {
						to, err = replies.Open(req.ReplyTo)
					}
					if err == nil {
						err = to.Send(ctx, body)
					}
				}
				if err == nil {
					err = s.Requests.Delete(ctx, m.ReceiptHandle)
				}
				if err != nil && ctx.Err() == nil {
					t.Errorf("fake worker: answer %s: %v", req.ID, err)
				}
			}
		}
	}))
}

var servingRE = regexp.MustCompile(`serving on (http://\S+)`)

// startWeb runs the program on the stack and returns its URL.
func startWeb(t *testing.T, s *awsstack.Stack, extra ...string) (*elastiqtest.Program, string) {
	args := append(append([]string{"web", "-addr", "127.0.0.1:0", "-memcached", elastiqtest.Memcached(t)}, s.Args()...), extra...)
	p := elastiqtest.StartProgram(t, run, args, env(nil))
	return p, p.WaitOutput(servingRE, time.Minute)[1]
}

func pngImage(t *testing.T) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// post uploads img as field of a multipart form and returns the status and
// body of the answer.
func post(t *testing.T, url, field, name string, img []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile(field, name)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(img)
	mw.Close()
	resp, err := http.Post(url, mw.FormDataContentType(), &body)
	return answer(t, resp, err)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	return answer(t, resp, err)
}

// answer reads the status and body of resp.
func answer(t *testing.T, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestRunRecognize serves the course's contract through the real queues,
// bucket and memcached, with a worker answering on the other side.
func TestRunRecognize(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	startWorker(t, s)
	p, url := startWeb(t, s, "-sync-timeout", "1m")

	if code, body := get(t, url+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", code, body)
	}
	img := pngImage(t)
	if code, body := post(t, url+"/", "myfile", "test_00.png", img); code != http.StatusOK || body != "Paul" {
		t.Errorf("POST / myfile = %d %q, want 200 Paul", code, body)
	}
	if code, body := post(t, url+"/", "inputFile", "test_01.png", img); code != http.StatusOK || body != "test_01:Paul" {
		t.Errorf("POST / inputFile = %d %q, want 200 test_01:Paul", code, body)
	}

	// The asynchronous API, and the result in the shared cache.
	code, body := post(t, url+"/v1/recognitions", "file", "test_02.png", img)
	var acc web.Accepted
	if err := json.Unmarshal([]byte(body), &acc); code != http.StatusAccepted || err != nil {
		t.Fatalf("POST /v1/recognitions = %d %q (%v), want 202 with an ID", code, body, err)
	}
	var rec web.Recognition
	code, body = get(t, url+web.StatusPath(acc.ID)+"?wait=30s")
	if err := json.Unmarshal([]byte(body), &rec); code != http.StatusOK || err != nil || rec.Status != elastiq.StatusDone || rec.Label != "Paul" {
		t.Errorf("GET %s = %d %q, want 200 done Paul", web.StatusPath(acc.ID), code, body)
	}
	cache, err := memcached.New(memcached.Config{Servers: []string{elastiqtest.Memcached(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	elastiqtest.Eventually(t, "the result in memcached", func() bool {
		v, err := cache.Get(t.Context(), web.ResultCacheKey(acc.ID))
		return err == nil && bytes.Contains(v, []byte(`"label":"Paul"`))
	})

	if err := p.Stop(); err != nil {
		t.Errorf("run() after SIGTERM = %v, want nil", err)
	}
}

// TestRunReplyQueues: two web programs behind one address (as behind a
// load balancer) each make a response queue of their own, get their own
// clients' results on it, and delete it when they stop.
func TestRunReplyQueues(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	startWorker(t, s)
	prefix := s.Name + "-reply-"
	var urls []string
	var procs []*elastiqtest.Program
	for range 2 {
		args := append([]string{"web", "-addr", "127.0.0.1:0", "-memcached", elastiqtest.Memcached(t), "-reply-queue-prefix", prefix},
			s.Args()[:6]...) // the endpoint, the bucket, the request queue
		p := elastiqtest.StartProgram(t, run, args, env(nil))
		procs, urls = append(procs, p), append(urls, p.WaitOutput(servingRE, time.Minute)[1])
	}
	api := sqs.NewFromConfig(s.Config)
	queues := func() []string {
		out, err := api.ListQueues(t.Context(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		return out.QueueUrls
	}
	if q := queues(); len(q) != 2 {
		t.Fatalf("reply queues of two web programs = %v, want 2", q)
	}
	img := pngImage(t)
	for i, url := range urls {
		if code, body := post(t, url+"/", "myfile", fmt.Sprintf("test_%02d.png", i), img); code != http.StatusOK || body != "Paul" {
			t.Errorf("POST / on web %d = %d %q, want 200 Paul", i, code, body)
		}
	}
	if err := procs[0].Stop(); err != nil {
		t.Errorf("run() after SIGTERM = %v, want nil", err)
	}
	if q := queues(); len(q) != 1 {
		t.Errorf("reply queues after one web program stopped = %v, want 1", q)
	}
	if code, body := post(t, urls[1]+"/", "myfile", "test_09.png", img); code != http.StatusOK || body != "Paul" {
		t.Errorf("POST / on the other web program = %d %q, want 200 Paul", code, body)
	}
}

// TestRunDeadLetters: a request that lands on the dead-letter queue is
// answered as failed.
func TestRunDeadLetters(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	_, url := startWeb(t, s, "-dead-letter-queue-url", s.DeadLetterURL)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	code, body := post(t, url+"/v1/recognitions", "file", "doomed.png", pngImage(t))
	var acc web.Accepted
	if err := json.Unmarshal([]byte(body), &acc); code != http.StatusAccepted || err != nil {
		t.Fatalf("POST /v1/recognitions = %d %q (%v), want 202 with an ID", code, body, err)
	}
	// What SQS's redrive policy does after too many receives: move the
	// request to the dead-letter queue.
	msgs, err := s.Requests.Receive(ctx, 1, 10*time.Second)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive() request = %v, %v; want the request", msgs, err)
	}
	if err := s.DeadLetters.Send(ctx, msgs[0].Body); err != nil {
		t.Fatal(err)
	}
	if err := s.Requests.Delete(ctx, msgs[0].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	var rec web.Recognition
	code, body = get(t, url+web.StatusPath(acc.ID)+"?wait=30s")
	if err := json.Unmarshal([]byte(body), &rec); code != http.StatusOK || err != nil || rec.Status != elastiq.StatusFailed || rec.Error == "" {
		t.Errorf("GET %s = %d %q, want 200 failed with an error", web.StatusPath(acc.ID), code, body)
	}
}

// TestRunMetricsShowsWorkers: with -stack, /metrics counts the stack's
// worker instances.
func TestRunMetricsShowsWorkers(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	fleet, err := ec2fleet.New(s.Config, ec2fleet.Config{
		Tags: ec2fleet.WorkerTags(s.Name), LaunchTemplateID: elastiqtest.LaunchTemplate(ctx, t, s.Config)})
	if err != nil {
		t.Fatal(err)
	}
	elastiqtest.TerminateAtEnd(t, s.Config, s.Name)
	if _, err := fleet.Launch(ctx, 2, ""); err != nil {
		t.Fatal(err)
	}
	_, url := startWeb(t, s, "-stack", s.Name)
	want := regexp.MustCompile(`(?m)^elastiq_fleet_instances\{state="(running|pending)"\} 2$`)
	elastiqtest.Eventually(t, "/metrics counting the 2 workers", func() bool {
		code, body := get(t, url+"/metrics")
		return code == http.StatusOK && want.MatchString(body) && strings.Contains(body, `elastiq_web_metrics_source_up{source="fleet"} 1`)
	})
}

// TestRunBadConfig: a bucket or queue that does not exist stops the program
// at start with an error naming it.
func TestRunBadConfig(t *testing.T) {
	s := awsstack.New(t, 30*time.Second, 5)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "bucket", args: []string{"-bucket", "no-such-bucket-" + s.Name}, want: "bucket"},
		{name: "response queue", args: []string{"-response-queue-url", s.ResponsesURL + "-gone"}, want: "response queue"},
		{name: "dead-letter queue", args: []string{"-dead-letter-queue-url", s.DeadLetterURL + "-gone"}, want: "dead-letter queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"web", "-addr", "127.0.0.1:0", "-memcached", "127.0.0.1:1"}, s.Args()...), tc.args...)
			err := run(t.Context(), args, env(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not found") {
				t.Errorf("run(%q) = %v, want a %s not found error", tc.args, err, tc.want)
			}
		})
	}
}
