package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// The embedded program (make run) under hostile load, each test one target
// of issue 11, measured on the real program in its own process: its peak
// resident memory is the kernel's (VmHWM).

// elastiqProgram is bin/elastiq, built once per test, with its face flags.
type elastiqProgram struct {
	bin   string
	flags []string
}

func buildElastiq(t testing.TB) elastiqProgram {
	t.Helper()
	models, err := filepath.Abs(elastiqtest.ModelDir(t, "fr_feature.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(build(t, "./services/embedded/cmd/elastiq"), "elastiq")
	return elastiqProgram{bin: bin, flags: []string{"-models", models, "-gallery", dataset,
		"-gallery-cache", filepath.Join(t.TempDir(), "gallery-cache"), "-addr", "127.0.0.1:0", "-log-level", "warn"}}
}

// start runs the program with its data in data, env added to its
// environment, args added to its flags, and, when addressSpace > 0, that
// limit on its virtual memory (RLIMIT_AS, set by util-linux's prlimit, so
// that an allocation past it kills the program as the kernel's OOM killer
// would). It returns the process and its URL.
func (p elastiqProgram) start(t testing.TB, data string, addressSpace int64, env []string, args ...string) (*process, string) {
	t.Helper()
	path, argv := p.bin, append(append([]string{"-data", data}, p.flags...), args...)
	if addressSpace > 0 {
		prlimit, err := exec.LookPath("prlimit")
		if err != nil {
			t.Fatalf("prlimit (util-linux) is needed to limit the program's memory: %v", err)
		}
		path, argv = prlimit, append([]string{fmt.Sprintf("--as=%d", addressSpace), "--", p.bin}, argv...)
	}
	proc := start(t, "elastiq", path, env, argv)
	return proc, proc.await(t, regexp.MustCompile(`serving on (http://\S+)`))
}

// awaitResult long-polls GET /v1/recognitions/{id} until it is no longer
// pending.
func awaitResult(t *testing.T, url string, id elastiq.RequestID) elastiq.Result {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url + "/v1/recognitions/" + string(id) + "?wait=20s")
		if err != nil {
			t.Fatalf("GET %s: %v", id, err)
		}
		var res elastiq.Result
		err = jsonDecode(resp, &res)
		if err != nil {
			t.Fatalf("GET /v1/recognitions/%s: %s, %v", id, resp.Status, err)
		}
		if res.Status != elastiq.StatusPending {
			return res
		}
	}
	t.Fatalf("request %s still pending after 3 minutes", id)
	return elastiq.Result{}
}

// TestPoisonAcrossRestarts sends a request that kills the program each
// time it is handled: a decode bomb, with the decode budget off, in a
// program whose memory is limited. The program is started again after each
// death, as systemd would; after -max-receives deliveries the request is
// answered failed with a reason, and the program goes on serving.
func TestPoisonAcrossRestarts(t *testing.T) {
	p := buildElastiq(t)
	data := t.TempDir()
	// What the program maps with its models loaded, and 300 MiB more: the
	// bomb's 400 MB of pixels do not fit.
	proc, _ := p.start(t, data, 0, nil, "-sessions", "1")
	limit := elastiqtest.ProcStatus(t, proc.cmd.Process.Pid, "VmSize") + 300<<20
	proc.stop(t)

	const maxReceives = 2
	args := []string{"-sessions", "1", "-max-receives", strconv.Itoa(maxReceives), "-decode-budget", "0", "-max-decode-bytes", "4000000000"}
	bomb := image{name: "bomb.png", data: elastiqtest.DecodeBomb(t, 7071, 7071)}
	var id elastiq.RequestID
	for life := 1; life <= maxReceives; life++ {
		proc, url := p.start(t, data, limit, nil, args...)
		if life == 1 {
			id = submit(context.Background(), t, url, bomb)
		}
		select {
		case <-proc.done:
			if proc.exited == nil || !strings.Contains(proc.output(), "out of memory") {
				t.Fatalf("life %d: exited with %v; want it killed out of memory:\n%s", life, proc.exited, proc.output())
			}
		case <-time.After(3 * time.Minute):
			t.Fatalf("life %d: still running 3 minutes after the bomb", life)
		}
	}
	proc, url := p.start(t, data, limit, nil, args...)
	res := awaitResult(t, url, id)
	if res.Status != elastiq.StatusFailed || !strings.Contains(res.Error, "gave up") {
		t.Fatalf("after %d deaths, the bomb's request = %q %q; want failed, gave up", maxReceives, res.Status, res.Error)
	}
	img := workload(t)[0]
	if code, body, err := post(context.Background(), url, img); err != nil || code != http.StatusOK || body != img.label {
		t.Errorf("POST / %s after the dead letter = %d %q, %v; want 200 %q", img.name, code, body, err, img.label)
	}
	select {
	case <-proc.done:
		t.Fatalf("the program exited (%v) after the dead letter", proc.exited)
	default:
	}
}

// TestDecodeBombsUnderMemoryLimit sends 50 decode bombs at once while the
// 100 CSE546 images are sent: 25 that no worker could decode (50 MP of
// 16-bit RGBA, 550 MB), refused at upload, and 25 that fit the decode
// budget (16 MP, 176 MB) but not many at once. The program runs with a soft
// memory limit (GOMEMLIMIT, 768 MiB) and the classic policy, which launches
// a worker per queued request, so many decodes would run at once. Its peak
// resident memory stays under 1 GiB (without the decode budget: 1.37 GiB),
// the 100 are answered right, and every accepted bomb is answered.
func TestDecodeBombsUnderMemoryLimit(t *testing.T) {
	p := buildElastiq(t)
	proc, url := p.start(t, t.TempDir(), 0, []string{"GOMEMLIMIT=768MiB"}, "-sessions", "2", "-policy", "classic")
	never := image{name: "never.png", data: elastiqtest.DecodeBomb(t, 7071, 7071)}
	fits := image{name: "fits.png", data: elastiqtest.DecodeBomb(t, 4000, 4000)}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	ids := make(chan elastiq.RequestID, 25)
	for i := range 50 {
		bomb := []image{never, fits}[i%2]
		wg.Go(func() {
			resp, err := postFiles(ctx, url+"/v1/recognitions", formFile{"file", bomb})
			if err != nil {
				t.Errorf("POST %s: %v", bomb.name, err)
				return
			}
			var accepted struct{ ID elastiq.RequestID }
			err = jsonDecode(resp, &accepted)
			switch {
			case bomb.name == never.name && resp.StatusCode != http.StatusBadRequest:
				t.Errorf("POST %s = %s, want 400", bomb.name, resp.Status)
			case bomb.name == fits.name && (resp.StatusCode != http.StatusAccepted || err != nil):
				t.Errorf("POST %s = %s, %v; want 202", bomb.name, resp.Status, err)
			case bomb.name == fits.name:
				ids <- accepted.ID
			}
		})
	}
	took := burst(ctx, t, url, workload(t))
	wg.Wait()
	close(ids)
	n := 0
	for id := range ids {
		n++
		if res := awaitResult(t, url, id); res.Status != elastiq.StatusFailed || !strings.Contains(res.Error, "no face") {
			t.Errorf("bomb %s = %q %q, want failed: no face found", id, res.Status, res.Error)
		}
	}
	peak := elastiqtest.ProcStatus(t, proc.cmd.Process.Pid, "VmHWM")
	t.Logf("100 images answered in %v beside 50 bombs; %d bombs accepted and answered; peak RSS %d MiB", took, n, peak>>20)
	if peak >= 1<<30 {
		t.Errorf("peak RSS %d MiB, want under 1024", peak>>20)
	}
}

// slowClients opens n connections from the loopback address from (the
// whole of 127/8 is this machine), each either an upload that declares
// 10 MiB, sends its headers and 1 KiB and stalls, or, idle, a keep-alive
// connection after one GET /healthz. It returns the connections.
func slowClients(t testing.TB, url, from string, n int, idle bool) []net.Conn {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	req := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	if !idle {
		req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 10485760\r\n\r\n" +
			"--b\r\nContent-Disposition: form-data; name=\"myfile\"; filename=\"slow.jpg\"\r\n\r\n" + strings.Repeat("x", 1024)
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", host)
		if err != nil {
			t.Fatalf("dial from %s after %d connections: %v", from, len(conns), err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if idle { // read each answer, leaving the connection idle
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /healthz on an idle connection: %v", err)
			}
			resp.Body.Close()
		}
	}
	return conns
}

// TestSlowClients opens 2,000 stalled uploads declaring 10 MiB and 2,000
// idle keep-alive connections, then sends the 100 CSE546 images: all are
// answered right, the peak resident memory stays under 1 GiB, and every
// stalled upload is answered 408 and closed within the stall timeout. How
// long the 100 take beside the slow clients, against without them, is
// BenchmarkSlowClients's.
func TestSlowClients(t *testing.T) {
	p := buildElastiq(t)
	proc, url := p.start(t, t.TempDir(), 0, nil, "-sessions", "2", "-body-stall-timeout", "10s")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	imgs := workload(t)
	burst(ctx, t, url, imgs) // warm

	t0 := time.Now()
	stalled := slowClients(t, url, "127.0.0.2", 2000, false)
	slowClients(t, url, "127.0.0.3", 2000, true)
	took := burst(ctx, t, url, imgs)

	var closed, answered408 int
	for _, c := range stalled {
		c.SetReadDeadline(t0.Add(time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && resp.StatusCode == http.StatusRequestTimeout {
			answered408++
			_, err = c.Read(make([]byte, 1)) // then closed
		}
		if err != nil && !isTimeout(err) {
			closed++
		}
	}
	peak := elastiqtest.ProcStatus(t, proc.cmd.Process.Pid, "VmHWM")
	t.Logf("100 images answered in %v beside 4,000 slow connections; %d of 2,000 stalled uploads answered 408, %d closed; peak RSS %d MiB",
		took, answered408, closed, peak>>20)
	if answered408 != len(stalled) || closed != len(stalled) {
		t.Errorf("%d of %d stalled uploads answered 408 and %d closed, want all", answered408, len(stalled), closed)
	}
	if peak >= 1<<30 {
		t.Errorf("peak RSS %d MiB, want under 1024", peak>>20)
	}
}

// BenchmarkSlowClients: how long the 100 CSE546 images take beside 2,000
// stalled uploads and 2,000 idle connections, against without them (the
// target: at most twice as long). make bench runs it.
func BenchmarkSlowClients(b *testing.B) {
	p := buildElastiq(b)
	_, url := p.start(b, b.TempDir(), 0, nil, "-sessions", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	imgs := workload(b)
	burst(ctx, b, url, imgs) // warm
	var unloaded, loaded time.Duration
	for b.Loop() {
		unloaded += burst(ctx, b, url, imgs)
		conns := append(slowClients(b, url, "127.0.0.2", 2000, false), slowClients(b, url, "127.0.0.3", 2000, true)...)
		loaded += burst(ctx, b, url, imgs)
		for _, c := range conns {
			c.Close()
		}
	}
	b.ReportMetric(unloaded.Seconds()/float64(b.N), "s/burst-alone")
	b.ReportMetric(loaded.Seconds()/float64(b.N), "s/burst-beside-4000")
	b.ReportMetric(float64(loaded)/float64(unloaded), "loaded/alone")
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// jsonDecode decodes resp's JSON body into v and closes it.
func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
