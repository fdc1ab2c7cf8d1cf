package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/elastiq/elastiq/services/elastiq"
)

// What the load-balanced layout's policies grant that
// TestLoadBalancedWebTier does not use, keyed and explained as webUnused.
var (
	lbWebUnused = map[string]string{
		"Bundle s3:GetObject":    webUnused["Bundle s3:GetObject"],
		"Inputs s3:DeleteObject": webUnused["Inputs s3:DeleteObject"],
		"Inputs s3:GetObject": sometimes + "a GET of a request still pending reads its input's metadata (a HEAD); the " +
			"awaits on another web program during the kill burst start while their requests are usually pending",
	}
	lbScalerUnused = map[string]string{
		"Bundle s3:GetObject":         "the scaler instance's boot script reads the bundle (infra/deploy), not a program",
		"TagOnLaunch ec2:CreateTags":  webUnused["TagOnLaunch ec2:CreateTags"],
		"PassWorkerRole iam:PassRole": webUnused["PassWorkerRole iam:PassRole"],
	}
	lbWorkerUnused = map[string]string{
		"ConsumeRequests sqs:ChangeMessageVisibility": sometimes + "a worker extends a request's visibility when it holds " +
			"one for half the visibility timeout, which a burst may or may not make it do; TestDistributedMode's hung " +
			"worker always does",
	}
)

// TestLoadBalancedWebTier runs the load-balanced layout (the prod stack) as
// processes on this machine: three web programs, each with a response
// queue of its own (-reply-queue-prefix), the scaler apart under a role of
// its own, and the workers, on a moto server that enforces each program's
// IAM policy, with one memcached the web programs share. A client spreads
// its requests over the three, as the load balancer does. In turn:
//
//   - the course's 100 images, then 1,000, spread over the three: every
//     answer right;
//   - a person enrolled (then deleted) through one web program is named
//     (then no longer) in a photo sent through another right after;
//   - a burst in which one web program is killed (SIGKILL) after it has
//     accepted 30 requests: every request it accepted is answered, by ID,
//     by another, and the other two answer all of theirs;
//   - the dead program's queue is swept by the scaler;
//   - a request that kills its worker on every delivery is answered as
//     failed from the dead-letter queue, to its own web program;
//   - a web program stopped (SIGTERM) deletes its queue.
//
// No call of any program is denied, and each policy's every grant is used
// (checkPolicyUse), except those listed above.
func TestLoadBalancedWebTier(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every program; not in -short")
	}
	const (
		visibility  = 5 * time.Second
		maxReceives = 2
		webs        = 3
	)
	d := deploy(t, visibility, maxReceives, true, loadBalanced)
	if d == nil {
		return
	}
	images := workload(t)
	scaler := start(t, "scaler", filepath.Join(d.bin, "scaler"), d.scalerKeys.Env(), []string{"-endpoint", d.st.Endpoint,
		"-request-queue-url", d.st.RequestsURL, "-stack", d.st.Name, "-launch-template-id", d.template,
		"-policy", "backlog", "-warm-pool", "0", "-max-workers", "3", "-terminate-after", "10s",
		"-interval", "500ms", "-launch-ready", "2s", "-start-ready", "1s", "-service-time", "100ms",
		"-target-latency", "2s", "-addr", "127.0.0.1:0", "-log-level", "info",
		"-reply-queue-prefix", d.replyPrefix(), "-reply-queue-expiry", "10s"})
	nudges := scaler.await(t, regexp.MustCompile(`serving the web tier on (http://\S+)`))
	var procs []*process
	var urls []string
	for range webs {
		p, url := d.startWeb(t, "-scaler-url", nudges, "-log-level", "info", "-reply-queue-heartbeat", "1s",
			"-admin-token-ssm-parameter", galleryTokenParameter)
		procs, urls = append(procs, p), append(urls, url)
	}
	var mode atomic.Value
	mode.Store("face")
	logs := t.TempDir()
	fleet := d.startFleet(t, visibility, &mode, logs)
	ctx := watchDenials(t, d.st, d.webKeys, d.workerKeys, d.scalerKeys)

	api := sqs.NewFromConfig(d.st.Config)
	replyQueues := func() []string {
		out, err := api.ListQueues(t.Context(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String(d.replyPrefix())})
		if err != nil {
			t.Fatal(err)
		}
		return out.QueueUrls
	}
	if q := replyQueues(); len(q) != webs {
		t.Fatalf("reply queues of %d web programs = %v, want %d", webs, q, webs)
	}

	t.Logf("100 requests at once, spread over %d web programs: %v", webs, spread(ctx, t, urls, images, len(images)))
	// The gallery managed through one, a recognition through another
	// named with the change as soon as it is answered.
	checkGallery(ctx, t, urls[0], urls[1])

	var thousand []image
	for range 10 {
		thousand = append(thousand, images...)
	}
	// A hundred at a time: moto serves one call at a time, and a thousand
	// uploads at once would time out there, not in the programs.
	t.Logf("1,000 requests, 100 at a time, spread over %d web programs: %v", webs, spread(ctx, t, urls, thousand, 100))

	// One web program killed mid-burst: the requests it accepted are
	// answered by another; the others' are unaffected.
	// Each request it accepts is awaited at once on another, by ID.
	killed, accepted, refused := killMidBurst(ctx, t, procs[0], urls, thousand[:300], 100, 30, func(id elastiq.RequestID, label string) {
		res := awaitResult(t, urls[1], id)
		if res.Status != elastiq.StatusDone || res.Label != label {
			t.Errorf("GET %s (accepted by the killed web program) on another = %s %q, want done %q", id, res.Status, res.Label, label)
		}
	})
	t.Logf("web program killed after accepting %d requests (%d more refused); all answered by another, and the other two answered theirs", accepted, refused)
	waitFor(ctx, t, "the killed web program's queue swept by the scaler", time.Minute, func() bool {
		return len(replyQueues()) == webs-1
	})
	t.Logf("its queue swept %v after the kill", time.Since(killed))

	// A request that kills its worker on every delivery: answered as
	// failed from the dead-letter queue, on its own web program's queue.
	deadLetter(ctx, t, fleet, &mode, urls[2], maxReceives)

	// Idle workers stop, and the scaler terminates them (no warm pool).
	waitFor(ctx, t, "the scaler terminated every idle worker", 2*time.Minute, func() bool { return len(fleet.Workers()) == 0 })

	// A web program stopped deletes its queue.
	procs[1].stop(t)
	if q := replyQueues(); len(q) != webs-2 {
		t.Errorf("reply queues after a web program stopped = %v, want %d", q, webs-2)
	}
	checkPolicyUse(t, d.st, d.webKeys, d.webPolicy, lbWebUnused)
	checkPolicyUse(t, d.st, d.scalerKeys, d.scalerPolicy, lbScalerUnused)
	checkPolicyUse(t, d.st, d.workerKeys, d.workerPolicy, lbWorkerUnused)
}

// spread sends the images, inFlight at a time, the i-th to
// urls[i%len(urls)], checks every answer, and returns how long it took.
func spread(ctx context.Context, t *testing.T, urls []string, images []image, inFlight int) time.Duration {
	t.Helper()
	t0 := time.Now()
	var wg sync.WaitGroup
	slots := make(chan struct{}, inFlight)
	for i, img := range images {
		url := urls[i%len(urls)]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			code, body, err := post(ctx, url, img)
			if ctx.Err() == nil && (err != nil || code != http.StatusOK || body != img.label) {
				t.Errorf("POST / %s on %s = %d %q, %v; want 200 %q", img.name, url, code, body, err, img.label)
			}
		})
	}
	wg.Wait()
	failIfDone(ctx, t)
	return time.Since(t0)
}

// killMidBurst sends images at once, the i-th to urls[i%len(urls)]: to
// urls[0] (victim's) through the asynchronous API, to the others as POST /,
// whose answers it checks, inFlight at a time. It kills victim (SIGKILL)
// once it has accepted after requests, and calls check, in a goroutine of
// its own, with each request victim accepted. It returns, once every check
// has, when it killed victim, and how many requests victim accepted and
// refused (connections refused once it was dead).
func killMidBurst(ctx context.Context, t *testing.T, victim *process, urls []string, images []image, inFlight, after int,
	check func(id elastiq.RequestID, label string)) (time.Time, int, int) {
	t.Helper()
	var (
		mu       sync.Mutex
		accepted int
		refused  int
		killed   time.Time
		once     sync.Once
		wg       sync.WaitGroup
		slots    = make(chan struct{}, inFlight)
	)
	for i, img := range images {
		url := urls[i%len(urls)]
		slots <- struct{}{}
		if i%len(urls) != 0 {
			wg.Go(func() {
				defer func() { <-slots }()
				code, body, err := post(ctx, url, img)
				if ctx.Err() == nil && (err != nil || code != http.StatusOK || body != img.label) {
					t.Errorf("POST / %s on %s, beside the killed web program = %d %q, %v; want 200 %q", img.name, url, code, body, err, img.label)
				}
			})
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			resp, err := postFiles(ctx, url+"/v1/recognitions", formFile{"file", img})
			var got struct{ ID elastiq.RequestID }
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusAccepted {
					err = fmt.Errorf("%s", resp.Status)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused++
				return
			}
			accepted++
			wg.Go(func() { check(got.ID, img.label) })
			if accepted == after {
				once.Do(func() {
					victim.kill(t)
					killed = time.Now()
				})
			}
		})
	}
	wg.Wait()
	failIfDone(ctx, t)
	if killed.IsZero() {
		t.Fatalf("the web program accepted %d of its requests, not the %d it was to be killed after", accepted, after)
	}
	return killed, accepted, refused
}
