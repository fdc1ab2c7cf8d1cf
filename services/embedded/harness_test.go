package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// testTimeout bounds every wait in these tests; generous, for a loaded
// 2-core machine. Nothing here asserts speed.
const testTimeout = 60 * time.Second

// image is one CSE546 workload image with its expected label.
type image struct {
	name  string // test_00.jpg
	data  []byte
	label string
}

// loadWorkload reads the 100 CSE546 images and their labels.
func loadWorkload(t testing.TB) []image {
	t.Helper()
	var imgs []image
	for _, img := range elastiqtest.Workload(t) {
		imgs = append(imgs, image{name: img.Name, data: img.Data, label: img.Label})
	}
	return imgs
}

// contentClassifier is a test double for the face model: it labels an image
// by looking its exact bytes up in the workload, so these pipeline tests do
// not depend on the model files. Before answering it calls hook, if set,
// which may block (to hold a message in flight) or fail.
type contentClassifier struct {
	labels map[[32]byte]string
	calls  atomic.Int64
	hook   func(ctx context.Context, n int64) error
}

var _ elastiq.Classifier = (*contentClassifier)(nil)

func newContentClassifier(imgs []image) *contentClassifier {
	c := &contentClassifier{labels: make(map[[32]byte]string)}
	for _, img := range imgs {
		c.labels[sha256.Sum256(img.data)] = img.label
	}
	return c
}

func (c *contentClassifier) Classify(ctx context.Context, img []byte) (string, error) {
	n := c.calls.Add(1)
	if c.hook != nil {
		if err := c.hook(ctx, n); err != nil {
			return "", err
		}
	}
	label, ok := c.labels[sha256.Sum256(img)]
	if !ok {
		return "", errors.New("no face found")
	}
	return label, nil
}

// testConfig is the stack for tests: data in a temporary folder, short
// timeouts so redelivery happens within a test's patience.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.VisibilityTimeout = 2 * time.Second
	cfg.Worker.IdleTimeout = 30 * time.Second
	cfg.Scaler.Interval = 100 * time.Millisecond
	cfg.Web.SyncTimeout = testTimeout
	return cfg
}

type harness struct {
	t      testing.TB
	s      *Stack
	url    string
	client *http.Client
	stop   func() error
	logs   *elastiqtest.Logs // the stack's, info and above
}

// start runs a stack on a loopback port and waits for /healthz. setup, if
// not nil, may adjust the stack before it runs.
func start(t testing.TB, cfg Config, c elastiq.Classifier, setup func(*Stack)) *harness {
	t.Helper()
	logs := elastiqtest.NewLogs(t)
	return startLogged(t, cfg, c, setup, logs, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
}

// startLogged is start with the stack logging to log; logs, if not nil,
// is what the harness reports.
func startLogged(t testing.TB, cfg Config, c elastiq.Classifier, setup func(*Stack), logs *elastiqtest.Logs, log *slog.Logger) *harness {
	t.Helper()
	s, err := New(cfg, Deps{Classifier: c, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if setup != nil {
		setup(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	var once sync.Once
	var runErr error
	h := &harness{
		t:      t,
		s:      s,
		logs:   logs,
		url:    "http://" + ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}},
		stop: func() error {
			once.Do(func() { cancel(); runErr = <-done })
			return runErr
		},
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	elastiqtest.Eventually(t, "healthz answers", func() bool {
		resp, err := h.client.Get(h.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return h
}

func multipartBody(field, fileName string, data []byte) (*bytes.Buffer, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, fileName)
	if err != nil {
		panic(err)
	}
	fw.Write(data)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// post uploads data in form field field to path and returns status and body.
func (h *harness) post(path, field, fileName string, data []byte) (int, string, error) {
	code, body, _, err := h.postHeader(path, field, fileName, data)
	return code, body, err
}

// postHeader is post that also returns the answer's header.
func (h *harness) postHeader(path, field, fileName string, data []byte) (int, string, http.Header, error) {
	body, ct := multipartBody(field, fileName, data)
	resp, err := h.client.Post(h.url+path, ct, body)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

type accepted struct {
	ID        elastiq.RequestID `json:"id"`
	StatusURL string            `json:"status_url"`
}

type recognition struct {
	ID     elastiq.RequestID `json:"id"`
	Status elastiq.Status    `json:"status"`
	Label  string            `json:"label"`
	Error  string            `json:"error"`
	Worker string            `json:"worker"`
	// Deliveries to a worker before the answer.
	Deliveries int `json:"deliveries"`
}

// submit posts img to the async API and returns its ID.
func (h *harness) submit(img image) elastiq.RequestID {
	h.t.Helper()
	code, body, err := h.post("/v1/recognitions", "file", img.name, img.data)
	if err != nil || code != http.StatusAccepted {
		h.t.Fatalf("POST /v1/recognitions %s = %d %q, %v; want 202", img.name, code, body, err)
	}
	var a accepted
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		h.t.Fatalf("POST /v1/recognitions: %v in %q", err, body)
	}
	return a.ID
}

// await long-polls the status of id until it is no longer pending.
func (h *harness) await(id elastiq.RequestID) recognition {
	h.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		resp, err := h.client.Get(fmt.Sprintf("%s/v1/recognitions/%s?wait=10s", h.url, id))
		if err != nil {
			h.t.Fatalf("GET %s: %v", id, err)
		}
		var r recognition
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			h.t.Fatalf("GET %s = %d, %v; want 200 with JSON", id, resp.StatusCode, err)
		}
		if r.Status != elastiq.StatusPending {
			return r
		}
	}
	h.t.Fatalf("request %s still pending after %v", id, testTimeout)
	return recognition{}
}

// cuttableQueue is a request queue as one worker instance sees it; once cut,
// every call fails, as if the instance had crashed or lost its network.
type cuttableQueue struct {
	elastiq.Queue
	instance string
	cut      atomic.Bool
	received func(instance string)
}

var errCut = errors.New("test: instance cut off")

func (q *cuttableQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	if q.cut.Load() {
		return nil, errCut
	}
	msgs, err := q.Queue.Receive(ctx, max, wait)
	if len(msgs) > 0 && q.received != nil {
		q.received(q.instance)
	}
	return msgs, err
}

func (q *cuttableQueue) Delete(ctx context.Context, receipt string) error {
	if q.cut.Load() {
		return errCut
	}
	return q.Queue.Delete(ctx, receipt)
}

func (q *cuttableQueue) ChangeVisibility(ctx context.Context, receipt string, d time.Duration) error {
	if q.cut.Load() {
		return errCut
	}
	return q.Queue.ChangeVisibility(ctx, receipt, d)
}

func (q *cuttableQueue) Send(ctx context.Context, body []byte) error {
	if q.cut.Load() {
		return errCut
	}
	return q.Queue.Send(ctx, body)
}
