// Package e2e runs elastiq's programs as separate processes, the way they are
// deployed: the distributed mode (web, scaler and workers over SQS, S3, EC2
// and memcached, here moto_server and memcached on loopback) and, for
// comparison in the same run, the embedded all-in-one program.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest/awsstack"
)

var (
	repoRoot = filepath.Join("..", "..", "..")
	dataset  = filepath.Join(repoRoot, "datasets", "cse546-faces")
)

// TestDistributedMode starts web, scaler and two worker processes against
// moto_server and memcached, sends the course's 100 images at once and
// checks every answer; then it kills a worker process while it holds a
// request (SIGKILL: no release, no delete) and shows that the request is
// still answered, by another worker, after the visibility timeout. It times
// the 100 requests in distributed mode and through the embedded program, in
// the same run.
func TestDistributedMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every program; not in -short")
	}
	models, err := filepath.Abs(elastiqtest.ModelDir(t, "fr_feature.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	elastiqtest.AWSEnv(t)
	memcached := elastiqtest.Memcached(t)
	const visibility = 5 * time.Second
	st := awsstack.New(t, visibility, 5)
	template := elastiqtest.LaunchTemplate(t.Context(), t, st.Config)
	bin := build(t, "./services/web/cmd/web", "./services/worker/cmd/worker",
		"./services/scaler/cmd/scaler", "./services/embedded/cmd/elastiq")
	cache := filepath.Join(t.TempDir(), "gallery-cache")
	faceFlags := []string{"-models", models, "-gallery", dataset, "-gallery-cache", cache, "-sessions", "1"}
	images := workload(t)

	web := start(t, "web", filepath.Join(bin, "web"), append(st.Args(),
		"-addr", "127.0.0.1:0", "-memcached", memcached, "-dead-letter-queue-url", st.DeadLetterURL,
		"-stack", st.Name, "-log-level", "warn"))
	url := web.await(t, regexp.MustCompile(`serving on (http://\S+)`))
	start(t, "scaler", filepath.Join(bin, "scaler"), []string{"-endpoint", st.Endpoint,
		"-request-queue-url", st.RequestsURL, "-stack", st.Name, "-launch-template-id", template,
		"-max-workers", "19", "-log-level", "warn"}).await(t, regexp.MustCompile(`scaler: managing`))
	worker := func(name string, extra ...string) *process {
		args := append(st.Args(), "-name", name, "-idle", "0", "-visibility", visibility.String(), "-log-level", "warn")
		p := start(t, name, filepath.Join(bin, "worker"), append(args, extra...))
		p.await(t, regexp.MustCompile(`taking requests`))
		return p
	}
	w1 := worker("worker-1", faceFlags...)
	w2 := worker("worker-2", faceFlags...)

	distributed := burst(t, url, images)
	t.Logf("distributed mode (web, scaler, 2 workers on moto + memcached): 100 requests in %v", distributed)

	// The scaler saw the queue and launched instances for the stack in the
	// (simulated) EC2 of moto.
	elastiqtest.Eventually(t, "the scaler launched workers", func() bool {
		return metric(t, url, `elastiq_fleet_instances{state="running"}`) > 0 ||
			metric(t, url, `elastiq_fleet_instances{state="pending"}`) > 0
	})

	// Kill a worker mid-message. Only the holder runs while the request is
	// taken: its classifier hangs, so it holds the message until killed.
	w1.stop(t)
	w2.stop(t)
	hang := filepath.Join(t.TempDir(), "hang.sh")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nsleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	holder := worker("worker-holder", "-classifier", "exec", "-exec-command", hang+" {}", "-exec-timeout", "10m")
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, 1)
	img := images[7]
	go func() {
		code, body, err := post(url, img)
		answers <- answer{code, body, err}
	}()
	elastiqtest.Eventually(t, "the holder took the request", func() bool {
		stats, err := st.Requests.Stats(t.Context())
		return err == nil && stats.InFlight == 1 && stats.Visible == 0
	})
	holder.kill(t)
	killed := time.Now()
	worker("worker-3", faceFlags...)

	select {
	case a := <-answers:
		if a.err != nil || a.code != http.StatusOK || a.body != img.label {
			t.Errorf("POST / %s after the holder was killed = %d %q, %v; want 200 %q", img.name, a.code, a.body, a.err, img.label)
		}
		t.Logf("answered %v after the holder was killed (visibility timeout %v)", time.Since(killed), visibility)
	case <-time.After(2 * time.Minute):
		t.Fatal("no answer after the holder was killed")
	}
	outputs, err := st.Store.List(t.Context(), elastiq.OutputPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(outputs) != len(images)+1 {
		t.Errorf("outputs = %d, want %d: one per request", len(outputs), len(images)+1)
	}

	// The same burst through the embedded program, for comparison.
	embedded := start(t, "elastiq", filepath.Join(bin, "elastiq"), append([]string{
		"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-log-level", "warn"}, faceFlags...))
	embeddedURL := embedded.await(t, regexp.MustCompile(`serving on (http://\S+)`))
	t.Logf("embedded mode (one process): 100 requests in %v", burst(t, embeddedURL, images))
}

// build compiles the programs into a temporary folder.
func build(t *testing.T, pkgs ...string) string {
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

func start(t *testing.T, name, path string, args []string) *process {
	p := &process{name: name, cmd: exec.Command(path, args...), lines: make(chan string, 100), done: make(chan struct{})}
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
func (p *process) await(t *testing.T, re *regexp.Regexp) string {
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
func (p *process) stop(t *testing.T) {
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
func (p *process) kill(t *testing.T) {
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

func workload(t *testing.T) []image {
	var imgs []image
	for _, img := range elastiqtest.Workload(t) {
		imgs = append(imgs, image{name: img.Name, label: img.Label, data: img.Data})
	}
	return imgs
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 5 * time.Minute}

func post(url string, img image) (int, string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("myfile", img.name)
	if err != nil {
		return 0, "", err
	}
	fw.Write(img.data)
	mw.Close()
	resp, err := client.Post(url+"/", mw.FormDataContentType(), &body)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// burst sends every image at once and checks every answer; it returns how
// long the whole burst took.
func burst(t *testing.T, url string, images []image) time.Duration {
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, img := range images {
		wg.Go(func() {
			code, body, err := post(url, img)
			if err != nil || code != http.StatusOK || body != img.label {
				t.Errorf("POST / %s = %d %q, %v; want 200 %q", img.name, code, body, err, img.label)
			}
		})
	}
	wg.Wait()
	return time.Since(t0)
}

// metric reads one sample of the web tier's /metrics.
func metric(t *testing.T, url, name string) float64 {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		if line := sc.Text(); len(line) > len(name) && line[:len(name)] == name {
			if _, err := fmt.Sscan(line[len(name):], &v); err == nil {
				return v
			}
		}
	}
	return 0
}
