// Package e2e runs elastiq's programs as separate processes, the way they are
// deployed: the distributed mode (web, scaler and workers over SQS, S3, EC2
// and memcached, here moto_server and memcached on loopback) and, for
// comparison in the same run, the embedded all-in-one program.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	iampolicy "github.com/elastiq/elastiq/infra/iam"
	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
	"github.com/elastiq/elastiq/services/embedded/motofleet"
	"github.com/elastiq/elastiq/services/web"
)

var (
	repoRoot = filepath.Join("..", "..", "..")
	dataset  = filepath.Join(repoRoot, "datasets", "cse546-faces")
)

// TestDistributedMode runs the programs as they are deployed: web and
// scaler as one IAM principal (they share the web instance's role), each
// worker as another, on a moto server that enforces IAM, each principal with
// the policy document the Pulumi program attaches to its role (infra/iam,
// for this stack's ARNs). The scaler's EC2 instances become worker processes
// (motofleet). In turn:
//
//   - the backlog policy's warm pool: launched with the queue empty, its
//     workers initialise and stop their instances;
//   - scale-out from zero running workers: the course's 100 images at once,
//     every answer checked, the warm pool started and more launched, the
//     web program reporting each request to the scaler (-scaler-url);
//   - workers stop their own instances when idle, and the scaler starts a
//     stopped one for the next request;
//   - a worker killed (SIGKILL) while it holds a request: its instance's
//     worker is started again, as systemd does, and answers the request
//     after the visibility timeout;
//   - a request that kills its worker on every delivery goes to the
//     dead-letter queue and is answered as failed;
//   - the scaler terminates the stopped workers beyond the warm pool.
//
// No call of any program is denied, and every action each policy grants is
// used by its program (checkPolicyUse), so dropping any one of them from
// the deployment would make a call fail here. It times the 100 requests in
// distributed mode and through the embedded program, in the same run.
func TestDistributedMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every program; not in -short")
	}
	const (
		visibility  = 5 * time.Second
		maxReceives = 2
	)
	d := deploy(t, visibility, maxReceives, true, oneWeb)
	if d == nil {
		return // listing the actions only
	}
	st, bin, faceFlags := d.st, d.bin, d.faceFlags
	webKeys, workerKeys := d.webKeys, d.workerKeys
	images := workload(t)
	// The scaler runs the backlog policy, as the dev stack does, with a
	// warm pool of 2 and the fleet runner's timings; the web program
	// reports each accepted request to it.
	const warmPool = 2
	scaler := start(t, "scaler", filepath.Join(bin, "scaler"), webKeys.Env(), []string{"-endpoint", st.Endpoint,
		"-request-queue-url", st.RequestsURL, "-stack", st.Name, "-launch-template-id", d.template,
		"-policy", "backlog", "-warm-pool", fmt.Sprint(warmPool), "-max-workers", "3", "-terminate-after", "20s",
		"-interval", "500ms", "-launch-ready", "2s", "-start-ready", "1s", "-service-time", "100ms",
		"-target-latency", "2s", "-addr", "127.0.0.1:0", "-log-level", "info"})
	nudges := scaler.await(t, regexp.MustCompile(`serving the web tier on (http://\S+)`))
	web, url := d.startWeb(t, "-scaler-url", nudges, "-log-level", "info", "-admin-token-ssm-parameter", galleryTokenParameter)

	// The worker image: what each instance runs, chosen when its worker
	// process starts (face recognition, or a classifier that hangs or
	// kills its worker, for the failure steps).
	var mode atomic.Value
	mode.Store("face")
	logs := t.TempDir()
	fleet := d.startFleet(t, visibility, &mode, logs)

	// A denied call fails the test at once, with what was denied.
	ctx := watchDenials(t, st, webKeys, workerKeys)

	// The warm pool: launched with the queue empty, the workers start,
	// find nothing and stop their instances, initialised.
	allStopped := func(n int) func() bool {
		return func() bool {
			workers := fleet.Workers()
			return len(workers) == n && !slices.ContainsFunc(workers, func(w motofleet.Worker) bool {
				return w.State != elastiq.InstanceStopped || w.PID != 0
			})
		}
	}
	waitFor(ctx, t, "the warm pool launched, initialised and stopped", time.Minute, allStopped(warmPool))
	warmStarts := fleet.Starts()

	// Scale-out from zero running workers: the warm pool is started, and
	// more are launched.
	before := len(st.Recorder.Calls())
	distributed := burst(ctx, t, url, images)
	burstCalls := st.Recorder.Calls()[before:]
	logCallsPerRequest(t, burstCalls, len(images), webKeys, workerKeys)
	t.Logf("distributed mode (web, scaler, up to 3 workers on moto under IAM + memcached): 100 requests in %v, "+
		"%d worker processes started (%d for the warm pool)", distributed, fleet.Starts(), warmStarts)
	if !slices.ContainsFunc(burstCalls, func(c awsstack.Call) bool {
		return c.AccessKeyID == webKeys.AccessKeyID && c.Action == "ec2:StartInstances" && c.Status == http.StatusOK
	}) {
		t.Error("the scaler started no stopped worker for the burst; want the warm pool started")
	}

	// A verification, through the queue to the running workers (under IAM
	// too): the same photo twice is the same person, two people are not.
	if v := verify(ctx, t, url, images[0], images[0]); !v.Same || v.Similarity < 0.9 {
		t.Errorf("POST /v1/verify of %s with itself = %+v, want the same person", images[0].name, v)
	}
	if v := verify(ctx, t, url, images[0], images[2]); v.Same {
		t.Errorf("POST /v1/verify of %s (%s) and %s (%s) = %+v, want different people", images[0].name, images[0].label,
			images[2].name, images[2].label, v)
	}

	checkGallery(ctx, t, url, url)

	// Idle workers stop their own instances; the next request starts one.
	waitFor(ctx, t, "every idle worker stopped its instance", time.Minute, func() bool {
		workers := fleet.Workers()
		return len(workers) > 0 && allStopped(len(workers))()
	})
	checkDashboard(t, url, len(images)+2+galleryRequests) // the burst, the two verifications, the gallery's

	mode.Store("hang")
	img := images[7]
	id := submit(ctx, t, url, img)
	// The worker that takes it holds it past its visibility timeout (its
	// heartbeat extends it), and the request reads as pending meanwhile.
	var holder string
	waitFor(ctx, t, "a worker holds the request past its visibility timeout", 2*time.Minute, func() bool {
		if !slices.ContainsFunc(st.Recorder.Calls(), func(c awsstack.Call) bool {
			return c.AccessKeyID == workerKeys.AccessKeyID && c.Action == "sqs:ChangeMessageVisibility" && c.Status == http.StatusOK
		}) {
			return false
		}
		for _, w := range fleet.Workers() {
			if w.State == elastiq.InstanceRunning && w.PID != 0 {
				holder = w.ID
			}
		}
		return holder != ""
	})
	if res := recognition(t, url, id); res.Status != elastiq.StatusPending {
		t.Errorf("GET /v1/recognitions/%s while a worker holds it = %+v, want pending", id, res)
	}
	// Kill it: the instance's worker is started again and answers.
	mode.Store("face")
	if err := fleet.Kill(holder); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(ctx, t, "the request answered after its worker was killed", 2*time.Minute, func() bool {
		return recognition(t, url, id).Status != elastiq.StatusPending
	})
	if res := recognition(t, url, id); res.Status != elastiq.StatusDone || res.Label != img.label ||
		res.Threshold == nil || len(res.Faces) == 0 || res.Faces[0].Label != img.label {
		t.Errorf("GET /v1/recognitions/%s after its worker was killed = %+v, want done, %q, with its face and threshold", id, res, img.label)
	}
	t.Logf("answered %v after its worker was killed (visibility timeout %v)", time.Since(killed), visibility)
	followRequest(t, id, web, logs)

	// A request that kills its worker on every delivery: answered as
	// failed once the queue gives up on it.
	deadLetter(ctx, t, fleet, &mode, url, maxReceives)

	// The scaler terminates the stopped workers beyond the warm pool.
	waitFor(ctx, t, "the scaler terminated the stopped workers beyond the warm pool", time.Minute, allStopped(warmPool))
	outputs, err := st.Store.List(t.Context(), elastiq.OutputPrefix)
	if err != nil {
		t.Fatal(err)
	}
	// The burst, the two verifications, the gallery's, the killed worker's
	// and the dead-lettered requests.
	if want := len(images) + 4 + galleryRequests; len(outputs) != want {
		t.Errorf("outputs = %d, want %d: one per request", len(outputs), want)
	}
	checkPolicyUse(t, st, webKeys, d.webPolicy, webUnused)
	checkPolicyUse(t, st, workerKeys, d.workerPolicy, workerUnused)

	// The same burst through the embedded program, for comparison.
	embedded := start(t, "elastiq", filepath.Join(bin, "elastiq"), nil, append([]string{
		"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-log-level", "warn"}, faceFlags...))
	embeddedURL := embedded.await(t, regexp.MustCompile(`serving on (http://\S+)`))
	t.Logf("embedded mode (one process): 100 requests in %v", burst(t.Context(), t, embeddedURL, images))
}

// deadLetter sends url a request that kills its worker on every delivery
// (the fleet's workers restarted in crash mode) and expects it answered as
// failed once the queue gives up on it, after maxReceives deliveries; the
// workers are then restarted in face mode.
func deadLetter(ctx context.Context, t *testing.T, fleet *motofleet.Runner, mode *atomic.Value, url string, maxReceives int) {
	t.Helper()
	restart := func(m string) {
		mode.Store(m)
		for _, w := range fleet.Workers() {
			if w.PID != 0 {
				fleet.Kill(w.ID) // restarted in mode m
			}
		}
	}
	restart("crash")
	// An image too large to travel in its request (-inline-max), so that
	// its worker reads it from input/.
	code, body, err := post(ctx, url, noise(t, 256))
	failIfDone(ctx, t)
	if err != nil || code == http.StatusOK || !strings.Contains(body, "could not recognise") {
		t.Errorf("POST / of a request that kills its worker = %d %q, %v; want a failure after %d deliveries", code, body, err, maxReceives)
	}
	restart("face")
}

// startFleet turns the scaler's EC2 instances into worker processes
// (motofleet) under the worker keys, logging into logs. mode is what each
// runs, read when its process starts: "face" (the face classifier), "hang"
// (a classifier that never answers) or "crash" (one that kills its
// worker).
func (d *deployment) startFleet(t *testing.T, visibility time.Duration, mode *atomic.Value, logs string) *motofleet.Runner {
	t.Helper()
	scripts := t.TempDir()
	hang := script(t, scripts, "hang.sh", "sleep 600")
	crash := script(t, scripts, "crash.sh", "kill -9 $PPID")
	fleet, err := motofleet.Start(motofleet.Config{
		AWS: d.st.Config, Stack: d.st.Name, LaunchReady: time.Second, StartReady: 300 * time.Millisecond,
		RestartDelay: time.Second, StopGrace: 30 * time.Second,
		Command: func(id, imds string) *exec.Cmd {
			args := append(d.queueArgs(), "-self-stop", "-imds-endpoint", imds, "-idle", "2s",
				"-visibility", visibility.String(), "-log-level", "info")
			switch m := mode.Load().(string); m {
			case "hang", "crash":
				args = append(args, "-classifier", "exec", "-exec-command", map[string]string{"hang": hang, "crash": crash}[m]+" {}", "-exec-timeout", "10m")
			default:
				args = append(args, d.faceFlags...)
			}
			cmd := exec.Command(filepath.Join(d.bin, "worker"), args...)
			cmd.Env = append(os.Environ(), d.workerKeys.Env()...)
			f, err := os.OpenFile(filepath.Join(logs, id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err == nil {
				cmd.Stdout, cmd.Stderr = f, f
			}
			return cmd
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := fleet.Close(ctx); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			dumpLogs(t, logs)
		}
	})
	return fleet
}

// deployment is the distributed mode on this machine: the stack on a moto
// server that enforces IAM, a user for each role with the policy the
// Pulumi program attaches to it (infra/iam, for this stack's ARNs), the
// programs built. The programs are the caller's to start (startWeb).
type deployment struct {
	layout                  layout
	st                      *awsstack.Enforcing
	template                string // the workers' launch template
	webPolicy, workerPolicy iampolicy.Document
	webKeys, workerKeys     awsstack.Keys
	// The scaler's own policy and user (loadBalanced; with oneWeb it
	// signs with the web keys).
	scalerPolicy iampolicy.Document
	scalerKeys   awsstack.Keys
	bin          string   // the built programs
	faceFlags    []string // a worker's classifier flags
	memcached    string
}

// layout is how the web tier and the scaler are deployed.
type layout int

const (
	// oneWeb is the dev stack: one web instance, which runs the scaler
	// too, consuming the one response queue.
	oneWeb layout = iota
	// loadBalanced is the prod stack: web instances each with a response
	// queue of its own (-reply-queue-prefix), and the scaler on an
	// instance of its own, with its own role.
	loadBalanced
)

// replyPrefix is the name prefix of the web instances' own queues.
func (d *deployment) replyPrefix() string { return d.st.Name + "-reply-" }

// deploy stands up the deployment, on a moto that enforces IAM when
// enforce. With EnvDropAction "list", it prints the policies' actions
// (listActions) and returns nil.
func deploy(tb testing.TB, visibility time.Duration, maxReceives int, enforce bool, lay layout) *deployment {
	tb.Helper()
	models, err := filepath.Abs(elastiqtest.ModelDir(tb, "fr_feature.onnx"))
	if err != nil {
		tb.Fatal(err)
	}
	memcached := elastiqtest.Memcached(tb)
	newStack := awsstack.NewUnenforced
	if enforce {
		newStack = awsstack.NewEnforcing
	}
	st := newStack(tb, visibility, maxReceives)
	template, image := launchTemplate(tb, st.Config)
	grants := iampolicy.Grants{
		Account:            iampolicy.Account{Partition: "aws", Region: st.Region, ID: st.Account},
		Stack:              st.Name,
		BucketARN:          st.BucketARN,
		RequestQueueARN:    st.RequestsARN,
		ResponseQueueARN:   st.ResponsesARN,
		DeadLetterQueueARN: st.DeadLetterARN,
		WorkerImageID:      image,
		WorkerRoleARN:      "arn:aws:iam::" + st.Account + ":role/" + st.Name + "-worker",
	}
	grants.LaunchTemplateARN = grants.Account.EC2ARN("launch-template/" + template)
	// The gallery's admin token, as the Pulumi program delivers it: an SSM
	// SecureString the web program reads at start with its own keys.
	grants.AdminTokenParameterARN = adminTokenParameter(tb, st)
	d := &deployment{layout: lay, st: st, template: template}
	if lay == loadBalanced {
		grants.ResponseQueueARN, grants.ReplyQueuePrefix, grants.SeparateScaler = "", d.replyPrefix(), true
	}
	if os.Getenv(EnvDropAction) == "list" {
		if lay == loadBalanced {
			listActions(map[string]iampolicy.Document{"web": iampolicy.Web(grants), "worker": iampolicy.Worker(grants),
				"scaler": iampolicy.Scaler(grants)},
				map[string]map[string]string{"web": lbWebUnused, "worker": lbWorkerUnused, "scaler": merge(lbScalerUnused, webMotoBlind)})
			return nil
		}
		listActions(map[string]iampolicy.Document{"web": iampolicy.Web(grants), "worker": iampolicy.Worker(grants)},
			map[string]map[string]string{"web": merge(webUnused, webMotoBlind), "worker": workerUnused})
		return nil
	}
	d.webPolicy = dropAction(tb, "web", iampolicy.Web(grants))
	d.workerPolicy = dropAction(tb, "worker", iampolicy.Worker(grants))
	d.webKeys = st.User(tb, "web", policyJSON(tb, d.webPolicy))
	d.workerKeys = st.User(tb, "worker", policyJSON(tb, d.workerPolicy))
	d.scalerKeys = d.webKeys
	if lay == loadBalanced {
		d.scalerPolicy = dropAction(tb, "scaler", iampolicy.Scaler(grants))
		d.scalerKeys = st.User(tb, "scaler", policyJSON(tb, d.scalerPolicy))
	}
	d.bin = build(tb, "./services/web/cmd/web", "./services/worker/cmd/worker",
		"./services/scaler/cmd/scaler", "./services/embedded/cmd/elastiq")
	cache := filepath.Join(tb.TempDir(), "gallery-cache")
	d.faceFlags = []string{"-models", models, "-gallery", dataset, "-gallery-cache", cache, "-sessions", "1"}
	d.memcached = memcached
	return d
}

// startWeb starts the web program, with args added to its flags (logging
// warnings only, unless they say otherwise), and returns it and its URL.
func (d *deployment) startWeb(tb testing.TB, args ...string) (*process, string) {
	tb.Helper()
	web := start(tb, "web", filepath.Join(d.bin, "web"), d.webKeys.Env(), append(append(d.webArgs(),
		"-addr", "127.0.0.1:0", "-memcached", d.memcached, "-dead-letter-queue-url", d.st.DeadLetterURL,
		"-stack", d.st.Name, "-log-level", "warn"), args...))
	return web, web.await(tb, regexp.MustCompile(`serving on (http://\S+)`))
}

// queueArgs point a web program or a worker at the stack: its endpoint,
// bucket and request queue, and where results go: the response queue
// (oneWeb), or each web instance's own (loadBalanced: the workers send
// where each request says).
func (d *deployment) queueArgs() []string {
	args := []string{"-endpoint", d.st.Endpoint, "-bucket", d.st.Bucket, "-request-queue-url", d.st.RequestsURL}
	if d.layout == oneWeb {
		args = append(args, "-response-queue-url", d.st.ResponsesURL)
	}
	return args
}

// webArgs are queueArgs for a web program.
func (d *deployment) webArgs() []string {
	if d.layout == loadBalanced {
		return append(d.queueArgs(), "-reply-queue-prefix", d.replyPrefix())
	}
	return d.queueArgs()
}

// build compiles the programs into a temporary folder.
func build(t testing.TB, pkgs ...string) string {
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// process is a program running in its own process for the test.
type process struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr, for failures
	lines  chan string  // stdout lines
	done   chan struct{}
	exited error
}

// start runs a program with env added to the test's environment.
func start(t testing.TB, name, path string, env, args []string) *process {
	p := &process{name: name, cmd: exec.Command(path, args...), lines: make(chan string, 100), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &lockedWriter{p: p}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.exited = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// await waits for a stdout line matching re and returns its first group.
func (p *process) await(t testing.TB, re *regexp.Regexp) string {
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				if len(m) > 1 {
					return m[1]
				}
				return m[0]
			}
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.exited, re, p.output())
		case <-deadline:
			t.Fatalf("%s did not print %q in 2m:\n%s", p.name, re, p.output())
		}
	}
}

// stop ends the process as systemd would (SIGTERM) and expects a clean exit.
func (p *process) stop(t testing.TB) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.exited != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", p.name, p.exited)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s still running a minute after SIGTERM", p.name)
	}
}

// kill ends the process at once, as a crashed machine would.
func (p *process) kill(t testing.TB) {
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

type lockedWriter struct{ p *process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

type image struct {
	name, label string
	data        []byte
}

func workload(t testing.TB) []image {
	var imgs []image
	for _, img := range elastiqtest.Workload(t) {
		imgs = append(imgs, image{name: img.Name, label: img.Label, data: img.Data})
	}
	return imgs
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 5 * time.Minute}

func post(ctx context.Context, url string, img image) (int, string, error) {
	resp, err := postFiles(ctx, url+"/", formFile{"myfile", img})
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// formFile is an image in a form field.
type formFile struct {
	field string
	img   image
}

// postFiles posts files as a multipart form to url.
func postFiles(ctx context.Context, url string, files ...formFile) (*http.Response, error) {
	return postFilesAuth(ctx, url, "", files...)
}

// postFilesAuth is postFiles with an Authorization header (when not empty).
func postFilesAuth(ctx context.Context, url, auth string, files ...formFile) (*http.Response, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		fw, err := mw.CreateFormFile(f.field, f.img.name)
		if err != nil {
			return nil, err
		}
		fw.Write(f.img.data)
	}
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return client.Do(req)
}

// burst sends every image at once and checks every answer; it returns how
// long the whole burst took. It fails at once when ctx ends (a denial).
func burst(ctx context.Context, t testing.TB, url string, images []image) time.Duration {
	t.Helper()
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, img := range images {
		wg.Go(func() {
			code, body, err := post(ctx, url, img)
			if ctx.Err() == nil && (err != nil || code != http.StatusOK || body != img.label) {
				t.Errorf("POST / %s = %d %q, %v; want 200 %q", img.name, code, body, err, img.label)
			}
		})
	}
	wg.Wait()
	failIfDone(ctx, t)
	return time.Since(t0)
}

// failIfDone fails the test with ctx's cause when ctx has ended.
func failIfDone(ctx context.Context, t testing.TB) {
	t.Helper()
	if ctx.Err() != nil {
		t.Fatal(context.Cause(ctx))
	}
}

// waitFor polls cond every 100 ms (each poll may cost calls to moto, which
// serves one at a time) until it holds, and fails the test after timeout or
// when ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		failIfDone(ctx, t)
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submit sends img to POST /v1/recognitions and returns the request's ID.
// verify posts two images to POST /v1/verify and returns the answer.
func verify(ctx context.Context, t *testing.T, url string, first, second image) web.Verified {
	t.Helper()
	resp, err := postFiles(ctx, url+"/v1/verify", formFile{"first", first}, formFile{"second", second})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v web.Verified
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/verify %s %s: %s, %v", first.name, second.name, resp.Status, err)
	}
	return v
}

func submit(ctx context.Context, t *testing.T, url string, img image) elastiq.RequestID {
	resp, err := postFiles(ctx, url+"/v1/recognitions", formFile{"file", img})
	if err != nil {
		failIfDone(ctx, t)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var accepted struct{ ID elastiq.RequestID }
	if err := json.NewDecoder(resp.Body).Decode(&accepted); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/recognitions %s = %s, %v", img.name, resp.Status, err)
	}
	return accepted.ID
}

// followRequest greps the programs' logs for the ID of a request whose
// first worker was killed: the web program's and every worker's tell its
// story: accepted, started by the worker that was killed (delivery 1),
// started again and handled by another (delivery 2), received.
func followRequest(t *testing.T, id elastiq.RequestID, web *process, workerLogs string) {
	t.Helper()
	wants := []string{`msg="request accepted"`, `msg="request started"`, `receive_count=1`, `msg="request handled"`,
		`receive_count=2`, `msg="result received"`, `deliveries=2`}
	var lines []string
	complete := func() bool {
		lines = lines[:0]
		logs := []string{web.output()}
		files, _ := filepath.Glob(filepath.Join(workerLogs, "*.log"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			logs = append(logs, string(b))
		}
		for _, log := range logs {
			for line := range strings.Lines(log) {
				if strings.Contains(line, string(id)) {
					lines = append(lines, strings.TrimSpace(line))
				}
			}
		}
		return !slices.ContainsFunc(wants, func(w string) bool {
			return !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) })
		})
	}
	// The worker logs after its delete, which may come after the answer.
	for deadline := time.Now().Add(30 * time.Second); !complete(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("want lines with %q for request %s; the lines with its ID:\n%s", wants, id, strings.Join(lines, "\n"))
			return
		}
	}
	slices.Sort(lines) // by time: each line starts with it
	t.Logf("grep %s in the logs of the web program and the workers:\n%s", id, strings.Join(lines, "\n"))
}

// checkDashboard reads the web program's dashboard timeline after the burst
// of n: the requests it counted, and what it read from the fleet (EC2 under
// IAM) and from the scaler program (its report over -scaler-url): the
// decisions that started the warm pool and the fleet's cost.
func checkDashboard(t *testing.T, url string, n int) {
	t.Helper()
	var s web.DashboardSeries
	waitFor(t.Context(), t, "a dashboard sample after the workers stopped", time.Minute, func() bool {
		resp, err := client.Get(url + "/dashboard/series")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatalf("GET /dashboard/series: %s, %v", resp.Status, err)
		}
		if len(s.Points) == 0 {
			return false
		}
		last := s.Points[len(s.Points)-1]
		return last.Running != nil && *last.Running == 0 && *last.Stopped > 0
	})
	accepted, done := 0, 0
	for _, p := range s.Points {
		accepted += p.Accepted
		done += p.Done
	}
	if accepted != n || done != n {
		t.Errorf("dashboard: %d accepted and %d done, want %d and %d", accepted, done, n, n)
	}
	for source, err := range s.Sources {
		if err != "" {
			t.Errorf("dashboard: source %s: %s", source, err)
		}
	}
	if !slices.ContainsFunc(s.Events, func(e elastiq.ScalingEvent) bool { return e.Start > 0 && e.Reason != "" }) {
		t.Errorf("dashboard: events %+v, want the scaler's start of the warm pool with its reason", s.Events)
	}
	if last := s.Points[len(s.Points)-1]; last.CostDollars == nil || *last.CostDollars <= 0 || *last.BilledSeconds < 60 {
		t.Errorf("dashboard: cost %v, billed seconds %v; want the scaler's figures, at least one minute billed",
			last.CostDollars, last.BilledSeconds)
	}
}

// recognition reads GET /v1/recognitions/{id}.
func recognition(t *testing.T, url string, id elastiq.RequestID) elastiq.Result {
	resp, err := client.Get(url + "/v1/recognitions/" + string(id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res elastiq.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("GET /v1/recognitions/%s: %s, %v", id, resp.Status, err)
	}
	return res
}
