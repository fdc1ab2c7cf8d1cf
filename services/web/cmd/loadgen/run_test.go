package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testDataset is the CSE546 workload committed at the repository root.
const testDataset = "../../../../datasets/cse546-faces"

// datasetDir returns the workload folder. If it is missing the test fails,
// unless the run asked for unit tests only (go test -short, make test-unit).
func datasetDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(testDataset, "labels.csv")); err != nil {
		if testing.Short() {
			t.Skipf("dataset missing (%v): -short, unit tests only", err)
		}
		t.Fatalf("dataset missing (%v): run the tests from a full checkout of the repository", err)
	}
	return testDataset
}

// fakeService is a test double of the web tier's upload contract: it reads the
// uploaded file, looks its label up by content hash in the dataset, and
// answers "Paul" to field myfile or "test_00:Paul" to field inputFile.
// answer, if set, may replace the answer for a file.
type fakeService struct {
	t       *testing.T
	labels  map[[sha256.Size]byte]string
	answer  func(file, correct string) (status int, body string) // nil: always correct
	health  func() int                                           // nil: always 200
	metrics func() string                                        // GET /metrics; nil: 404
	posts   sync.Map                                             // file name -> *atomic.Int64
}

var _ http.Handler = (*fakeService)(nil)

func newFakeService(t *testing.T, dataset string) *fakeService {
	t.Helper()
	rows := readCSV(t, filepath.Join(dataset, "labels.csv"))
	labels := make(map[[sha256.Size]byte]string)
	for _, row := range rows[1:] {
		data, err := os.ReadFile(filepath.Join(dataset, "face_images_100", row[0]+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		labels[sha256.Sum256(data)] = row[1]
	}
	return &fakeService{t: t, labels: labels}
}

func (s *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/healthz":
		status := http.StatusOK
		if s.health != nil {
			status = s.health()
		}
		w.WriteHeader(status)
	case r.Method == http.MethodGet && r.URL.Path == "/metrics" && s.metrics != nil:
		fmt.Fprint(w, s.metrics())
	case r.Method == http.MethodPost && r.URL.Path == "/":
		s.upload(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *fakeService) upload(w http.ResponseWriter, r *http.Request) {
	field := fieldMyfile
	file, hdr, err := r.FormFile(field)
	if err != nil {
		field = fieldInputFile
		file, hdr, err = r.FormFile(field)
	}
	if err != nil {
		http.Error(w, "no file: "+err.Error(), http.StatusBadRequest)
		return
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	count, _ := s.posts.LoadOrStore(hdr.Filename, new(atomic.Int64))
	count.(*atomic.Int64).Add(1)

	label, ok := s.labels[sha256.Sum256(data)]
	if !ok {
		http.Error(w, "unknown image "+hdr.Filename, http.StatusUnprocessableEntity)
		return
	}
	answer := label
	if field == fieldInputFile {
		answer = strings.TrimSuffix(hdr.Filename, filepath.Ext(hdr.Filename)) + ":" + label
	}
	status := http.StatusOK
	if s.answer != nil {
		status, answer = s.answer(hdr.Filename, answer)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, answer)
}

// start serves svc on a loopback port until the test ends and returns its URL.
func (s *fakeService) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

// answerFor answers status and body to uploads of file, and correctly to the others.
func answerFor(file string, status int, body string) func(string, string) (int, string) {
	return func(f, correct string) (int, string) {
		if f == file {
			return status, body
		}
		return http.StatusOK, correct
	}
}

// postsOf is how many uploads of file the service received.
func (s *fakeService) postsOf(file string) int64 {
	if c, ok := s.posts.Load(file); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// runOutput is what a call of run printed and returned.
type runOutput struct {
	err            error
	stdout, stderr string
}

// runLoadgen calls run against url with the given flags and environment.
func runLoadgen(t *testing.T, env map[string]string, args ...string) runOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"loadgen"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	out := runOutput{err: err, stdout: stdout.String(), stderr: stderr.String()}
	t.Logf("run(%q) = %v\nstdout:\n%s\nstderr:\n%s", args, err, out.stdout, out.stderr)
	return out
}

// mustRun is runLoadgen for a run that must succeed.
func mustRun(t *testing.T, env map[string]string, args ...string) runOutput {
	t.Helper()
	out := runLoadgen(t, env, args...)
	if out.err != nil {
		t.Fatalf("run() = %v, want nil", out.err)
	}
	return out
}

// lastJSON decodes the JSON report, the last line of stdout.
func lastJSON(t *testing.T, stdout string) report {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var rep report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("decode JSON summary %q: %v", lines[len(lines)-1], err)
	}
	return rep
}

func TestRunAllCorrect(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	url := svc.start(t)

	// The dataset comes from the environment here, as from `make demo`.
	out := mustRun(t, map[string]string{datasetEnv: dataset}, "-url", url, "-json")
	for _, want := range []string{
		"requests     100 to " + url + "/ (field myfile, 100 at a time)",
		"answers      100 correct, 0 wrong, 0 failed; 100/100 received",
		"total time   ", "throughput   ", "latency      p50 ",
	} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("stdout does not contain %q", want)
		}
	}
	if strings.Contains(out.stdout, "problems") {
		t.Errorf("stdout lists problems, want none")
	}
	rep := lastJSON(t, out.stdout)
	if got := rep.Total; got.Requests != 100 || got.Correct != 100 || got.Received != 100 || got.Wrong != 0 || got.Failed != 0 {
		t.Errorf("JSON total = %+v, want 100 requests, 100 correct and received", got)
	}
	if got := rep.Total.Latency; got.P50 <= 0 || got.P50 > got.P95 || got.P95 > got.P99 || got.P99 > got.Max {
		t.Errorf("JSON latency = %+v, want 0 < p50 <= p95 <= p99 <= max", got)
	}
	for i := range 100 {
		if file := fmt.Sprintf("test_%02d.jpg", i); svc.postsOf(file) != 1 {
			t.Errorf("service received %s %d times, want 1", file, svc.postsOf(file))
		}
	}
	if !strings.Contains(out.stderr, "100/100 done (100%)") {
		t.Errorf("stderr has no final progress line")
	}
}

// The default concurrency sends the whole set at once, like the course's
// client: the service holds every request until all 100 are in flight.
func TestRunSendsAllAtOnce(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	var arrived atomic.Int64
	allIn := make(chan struct{})
	svc.answer = func(file, correct string) (int, string) {
		if arrived.Add(1) == 100 {
			close(allIn)
		}
		select {
		case <-allIn:
			return http.StatusOK, correct
		case <-time.After(time.Minute):
			return http.StatusServiceUnavailable, fmt.Sprintf("only %d requests in flight", arrived.Load())
		}
	}
	url := svc.start(t)

	mustRun(t, nil, "-url", url, "-dataset", dataset)
}

func TestRunWrongAnswer(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	svc.answer = answerFor("test_07.jpg", http.StatusOK, "Nobody")
	url := svc.start(t)

	out := runLoadgen(t, nil, "-url", url, "-dataset", dataset)
	if out.err == nil || !strings.Contains(out.err.Error(), "1 of 100 answers wrong or missing") {
		t.Errorf("run() = %v, want error about 1 of 100 answers", out.err)
	}
	for _, want := range []string{
		"answers      99 correct, 1 wrong, 0 failed; 100/100 received",
		"problems     (first 1 of 1)",
		`test_07.jpg  wrong   HTTP 200 "Nobody", want "Ranil"`,
	} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("stdout does not contain %q", want)
		}
	}
}

func TestRunServerError(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	svc.answer = answerFor("test_13.jpg", http.StatusInternalServerError, "classifier crashed")
	url := svc.start(t)

	out := runLoadgen(t, nil, "-url", url, "-dataset", dataset, "-json")
	if out.err == nil {
		t.Fatalf("run() = nil, want an error")
	}
	for _, want := range []string{
		"answers      99 correct, 0 wrong, 1 failed; 99/100 received",
		`test_13.jpg  failed  HTTP 500 "classifier crashed", want "German"`,
	} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("stdout does not contain %q", want)
		}
	}
	rep := lastJSON(t, out.stdout)
	want := problem{Image: "test_13.jpg", Verdict: "failed", Status: 500, Body: "classifier crashed", Want: "German"}
	if len(rep.Total.Problems) != 1 || rep.Total.Problems[0] != want {
		t.Errorf("JSON problems = %+v, want [%+v]", rep.Total.Problems, want)
	}
}

// A request that gets no answer within -timeout is missing, and fails the run.
func TestRunTimeout(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	release := make(chan struct{})
	svc.answer = func(file, correct string) (int, string) {
		if file == "test_42.jpg" {
			<-release
		}
		return http.StatusOK, correct
	}
	url := svc.start(t)
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for the handler

	out := runLoadgen(t, nil, "-url", url, "-dataset", dataset, "-timeout", "2s")
	if out.err == nil {
		t.Fatalf("run() = nil, want an error")
	}
	for _, want := range []string{
		"answers      99 correct, 0 wrong, 1 failed; 99/100 received",
		"test_42.jpg  failed  error: post test_42.jpg: no answer within 2s: context deadline exceeded",
	} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("stdout does not contain %q", want)
		}
	}
}

// An interrupted run (Ctrl-C) stops, still prints what it got, and fails.
func TestRunInterrupted(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	svc.answer = func(file, correct string) (int, string) {
		if file == "test_00.jpg" {
			cancel()
		}
		return http.StatusOK, correct
	}
	url := svc.start(t)

	var stdout, stderr bytes.Buffer
	args := []string{"loadgen", "-url", url, "-dataset", dataset, "-c", "1", "-repeat", "3", "-json"}
	err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("run() = %v, want interrupted: context canceled", err)
	}
	rep := lastJSON(t, stdout.String())
	// One at a time, the first request cancels the run: the rest of the round
	// fails without being sent and no further round starts.
	if len(rep.Rounds) != 1 || rep.Total.Requests != 100 || rep.Total.Failed < 99 {
		t.Errorf("JSON report = %d rounds, total %+v; want 1 round of 100 requests with at least 99 failed", len(rep.Rounds), rep.Total)
	}
	if got := svc.postsOf("test_01.jpg"); got != 0 {
		t.Errorf("service received test_01.jpg %d times after the interrupt, want 0", got)
	}
}

// Rounds reuse the connections of the first: the client keeps as many idle
// connections per host as it has requests in flight.
func TestRunReusesConnections(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	srv := httptest.NewUnstartedServer(svc)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	mustRun(t, nil, "-url", srv.URL, "-dataset", dataset, "-repeat", "3")
	// 100 connections serve all three rounds (plus the health probe's).
	// net/http's default of 2 idle connections per host would need about 300.
	// A connection is put back in the pool just after its answer is read, so
	// allow a few to be opened anew when a round starts at once.
	t.Logf("%d connections", conns.Load())
	if got := conns.Load(); got > 120 {
		t.Errorf("service saw %d connections for 3 rounds of 100 requests, want about 100", got)
	}
}

func TestRunInputFile(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(file, correct string) (int, string)
		wantErr bool
		want    string
	}{
		{
			name:   "name and label",
			answer: nil,
			want:   "answers      100 correct, 0 wrong, 0 failed; 100/100 received",
		},
		{
			// test_10 is the same image as test_00, so the label is right,
			// but the answer belongs to another request.
			name:    "answer for another image",
			answer:  answerFor("test_10.jpg", http.StatusOK, "test_00:Paul"),
			wantErr: true,
			want:    `test_10.jpg  wrong   HTTP 200 "test_00:Paul", want "test_10:Paul"`,
		},
		{
			name:    "bare label",
			answer:  answerFor("test_03.jpg", http.StatusOK, "German"),
			wantErr: true,
			want:    `test_03.jpg  wrong   HTTP 200 "German", want "test_03:German"`,
		},
	}
	dataset := datasetDir(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newFakeService(t, dataset)
			svc.answer = tt.answer
			url := svc.start(t)

			out := runLoadgen(t, nil, "-url", url, "-dataset", dataset, "-field", "inputFile")
			if (out.err != nil) != tt.wantErr {
				t.Errorf("run() = %v, want error: %v", out.err, tt.wantErr)
			}
			if !strings.Contains(out.stdout, tt.want) {
				t.Errorf("stdout does not contain %q", tt.want)
			}
		})
	}
}

// -n above the number of images cycles through them; -repeat sends the set
// again, round after round; -timeline records every request.
func TestRunCyclesAndRepeats(t *testing.T) {
	dataset := datasetDir(t)
	svc := newFakeService(t, dataset)
	url := svc.start(t)
	timeline := filepath.Join(t.TempDir(), "timeline.csv")

	out := runLoadgen(t, nil, "-url", url, "-dataset", dataset,
		"-n", "250", "-c", "7", "-repeat", "2", "-json", "-timeline", timeline)
	if out.err != nil {
		t.Fatalf("run() = %v, want nil", out.err)
	}
	// 250 requests per round: test_00..test_49 three times, the rest twice.
	for file, want := range map[string]int64{"test_00.jpg": 6, "test_49.jpg": 6, "test_50.jpg": 4, "test_99.jpg": 4} {
		if got := svc.postsOf(file); got != want {
			t.Errorf("service received %s %d times, want %d", file, got, want)
		}
	}
	rep := lastJSON(t, out.stdout)
	if len(rep.Rounds) != 2 || rep.Rounds[1].Correct != 250 || rep.Total.Correct != 500 || rep.Concurrency != 7 {
		t.Errorf("JSON report = %d rounds, round 2 correct %v, total correct %d, concurrency %d; want 2, 250, 500, 7",
			len(rep.Rounds), rep.Rounds, rep.Total.Correct, rep.Concurrency)
	}
	for _, want := range []string{"round 2/2  250/250 correct", "answers      500 correct, 0 wrong, 0 failed; 500/500 received"} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("stdout does not contain %q", want)
		}
	}

	rows := readCSV(t, timeline)
	if len(rows) != 501 {
		t.Fatalf("timeline has %d rows, want a header and 500", len(rows))
	}
	if got, want := rows[0], []string{"round", "seq", "image", "start_ms", "end_ms", "status", "verdict"}; !equal(got, want) {
		t.Errorf("timeline header = %q, want %q", got, want)
	}
	if got := rows[251]; got[0] != "2" || got[1] != "0" || got[2] != "test_00.jpg" || got[5] != "200" || got[6] != "correct" {
		t.Errorf("timeline row 251 = %q, want round 2, seq 0, test_00.jpg, 200, correct", got)
	}
}

func equal(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

func TestRunWaitReady(t *testing.T) {
	dataset := datasetDir(t)

	t.Run("ready after a few probes", func(t *testing.T) {
		svc := newFakeService(t, dataset)
		var probes atomic.Int64
		svc.health = func() int {
			if probes.Add(1) <= 3 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}
		url := svc.start(t)

		mustRun(t, nil, "-url", url, "-dataset", dataset)
		if got := probes.Load(); got != 4 {
			t.Errorf("service was probed %d times, want 4", got)
		}
	})

	t.Run("never ready", func(t *testing.T) {
		svc := newFakeService(t, dataset)
		svc.health = func() int { return http.StatusServiceUnavailable }
		url := svc.start(t)

		out := runLoadgen(t, nil, "-url", url, "-dataset", dataset, "-wait-ready", "1s")
		if out.err == nil || !strings.Contains(out.err.Error(), "not ready within 1s (last: HTTP 503)") {
			t.Errorf("run() = %v, want a not-ready error", out.err)
		}
		if got := svc.postsOf("test_00.jpg"); got != 0 {
			t.Errorf("service received %d uploads before it was ready, want 0", got)
		}
	})

	t.Run("no health endpoint", func(t *testing.T) {
		svc := newFakeService(t, dataset)
		svc.health = func() int { return http.StatusNotFound }
		url := svc.start(t)

		mustRun(t, nil, "-url", url, "-dataset", dataset)
	})
}

func TestRunBadConfig(t *testing.T) {
	dataset := datasetDir(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "unknown field", args: []string{"-field", "file"}, wantErr: `-field "file"`},
		{name: "no concurrency", args: []string{"-c", "0"}, wantErr: "-c 0"},
		{name: "negative n", args: []string{"-n", "-1"}, wantErr: "-n -1"},
		{name: "no rounds", args: []string{"-repeat", "0"}, wantErr: "-repeat 0"},
		{name: "zero timeout", args: []string{"-timeout", "0s"}, wantErr: "-timeout 0s"},
		{name: "not http", args: []string{"-url", "ftp://host/"}, wantErr: "parse -url"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-concurrency", "3"}, wantErr: "flag provided but not defined"},
		{name: "no images", args: []string{"-images", t.TempDir()}, wantErr: "no .jpg/.jpeg/.png images"},
		{name: "no labels", args: []string{"-labels", "missing.csv"}, wantErr: "read labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-dataset", dataset, "-url", "http://127.0.0.1:1/", "-wait-ready", "0"}, tt.args...)
			out := runLoadgen(t, nil, args...)
			if out.err == nil || !strings.Contains(out.err.Error(), tt.wantErr) {
				t.Errorf("run(%q) = %v, want error containing %q", tt.args, out.err, tt.wantErr)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	out := runLoadgen(t, nil, "-h")
	if out.err != nil {
		t.Errorf("run(-h) = %v, want nil", out.err)
	}
	if !strings.Contains(out.stderr, "-wait-ready") {
		t.Errorf("-h does not list -wait-ready")
	}
}
