package embedded

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/diskstore"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

// TestClassicContracts sends the course's workload, 100 images at once, with
// both of its clients' contracts, and checks that every answer is the label
// of its own image, under each scaling policy.
func TestClassicContracts(t *testing.T) {
	imgs := loadWorkload(t)
	for _, pol := range []string{policy.NameBacklog, policy.NameClassic} {
		t.Run(pol, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Policy.Policy = pol
			h := start(t, cfg, newContentClassifier(imgs), nil)
			for _, tt := range []struct {
				field string
				want  func(image) string
			}{
				{field: "myfile", want: func(img image) string { return img.label }},
				{field: "inputFile", want: func(img image) string {
					return strings.TrimSuffix(img.name, ".jpg") + ":" + img.label
				}},
			} {
				var wg sync.WaitGroup
				for _, img := range imgs {
					wg.Go(func() {
						code, body, err := h.post("/", tt.field, img.name, img.data)
						if err != nil || code != http.StatusOK || body != tt.want(img) {
							t.Errorf("POST / %s=%s = %d %q, %v; want 200 %q", tt.field, img.name, code, body, err, tt.want(img))
						}
					})
				}
				wg.Wait()
			}
			// The scaler launched workers, and never more than the maximum.
			instances, err := h.s.Fleet.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if n := len(instances); n == 0 || n > cfg.Policy.Max {
				t.Errorf("fleet has %d instances, want 1..%d", n, cfg.Policy.Max)
			}
		})
	}
}

func TestAsyncAPI(t *testing.T) {
	imgs := loadWorkload(t)
	h := start(t, testConfig(t), newContentClassifier(imgs), nil)
	ids := make([]elastiq.RequestID, 10)
	for i := range ids {
		ids[i] = h.submit(imgs[i])
	}
	for i, id := range ids {
		r := h.await(id)
		if r.Status != elastiq.StatusDone || r.Label != imgs[i].label || r.Worker == "" {
			t.Errorf("GET %s (%s) = %+v, want done %q with a worker", id, imgs[i].name, r, imgs[i].label)
		}
	}
}

// TestBadInputNotEnqueued checks that refused uploads leave no trace: nothing
// stored, nothing queued.
func TestBadInputNotEnqueued(t *testing.T) {
	imgs := loadWorkload(t)
	h := start(t, testConfig(t), newContentClassifier(imgs), nil)
	for _, tt := range []struct {
		name  string
		field string
		data  []byte
		code  int
	}{
		{name: "wrong field", field: "image", data: imgs[0].data, code: http.StatusBadRequest},
		{name: "empty file", field: "myfile", data: nil, code: http.StatusBadRequest},
		{name: "not an image", field: "myfile", data: []byte("hello, world"), code: http.StatusBadRequest},
		{name: "truncated jpeg", field: "myfile", data: imgs[0].data[:len(imgs[0].data)/2], code: http.StatusBadRequest},
		{name: "too large", field: "myfile", data: make([]byte, 11<<20), code: http.StatusRequestEntityTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := h.post("/", tt.field, "x.jpg", tt.data)
			if err != nil || code != tt.code || body == "" {
				t.Errorf("POST / = %d %q, %v; want %d with a message", code, body, err, tt.code)
			}
		})
	}
	keys, err := h.s.Store.List(t.Context(), elastiq.InputPrefix)
	if err != nil || len(keys) != 0 {
		t.Errorf("inputs stored = %v, %v; want none", keys, err)
	}
	if st, err := h.s.Requests.Stats(t.Context()); err != nil || st != (elastiq.QueueStats{}) {
		t.Errorf("request queue = %+v, %v; want empty", st, err)
	}
}

func TestClassifierErrorIsAnswered(t *testing.T) {
	imgs := loadWorkload(t)
	c := newContentClassifier(imgs)
	delete(c.labels, sha256.Sum256(imgs[0].data)) // does not know test_00's face
	h := start(t, testConfig(t), c, nil)
	code, body, err := h.post("/", "myfile", imgs[0].name, imgs[0].data)
	if err != nil || code != http.StatusInternalServerError || !strings.Contains(body, "no face found") {
		t.Errorf("POST / unknown face = %d %q, %v; want 500 naming the classifier's error", code, body, err)
	}
	r := h.await(h.submit(imgs[0]))
	if r.Status != elastiq.StatusFailed || !strings.Contains(r.Error, "no face found") {
		t.Errorf("GET = %+v, want failed with the classifier's error", r)
	}
}

// TestWorkerCrashMidMessage cuts a worker instance off while it holds a
// message (no heartbeat, no delete, no release: as if the machine died) and
// terminates it. The message becomes visible again after the visibility
// timeout, the scaler launches a replacement, and the waiting client still
// gets its answer.
func TestWorkerCrashMidMessage(t *testing.T) {
	imgs := loadWorkload(t)
	c := newContentClassifier(imgs)
	held := make(chan struct{})
	c.hook = func(ctx context.Context, n int64) error {
		if n == 1 {
			close(held)
			<-ctx.Done() // hangs until the instance is terminated
			return ctx.Err()
		}
		return nil
	}
	var mu sync.Mutex
	queues := map[string]*cuttableQueue{}
	var holder string
	h := start(t, testConfig(t), c, func(s *Stack) {
		s.workerQueue = func(id string, q elastiq.Queue) elastiq.Queue {
			cq := &cuttableQueue{Queue: q, instance: id, received: func(id string) {
				mu.Lock()
				if holder == "" {
					holder = id
				}
				mu.Unlock()
			}}
			mu.Lock()
			queues[id] = cq
			mu.Unlock()
			return cq
		}
	})

	type answer struct {
		code int
		body string
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		code, body, err := h.post("/", "myfile", imgs[3].name, imgs[3].data)
		answers <- answer{code, body, err}
	}()
	select {
	case <-held:
	case <-time.After(testTimeout):
		t.Fatal("no worker took the request")
	}
	mu.Lock()
	crashed := holder
	queues[crashed].cut.Store(true)
	mu.Unlock()
	if err := h.s.Fleet.Terminate(t.Context(), []string{crashed}); err != nil {
		t.Fatalf("Terminate(%s): %v", crashed, err)
	}

	var a answer
	select {
	case a = <-answers:
	case <-time.After(testTimeout):
		t.Fatal("no answer after the worker crashed")
	}
	if a.err != nil || a.code != http.StatusOK || a.body != imgs[3].label {
		t.Errorf("POST / = %d %q, %v; want 200 %q", a.code, a.body, a.err, imgs[3].label)
	}
	out, err := h.s.Store.List(t.Context(), elastiq.OutputPrefix)
	if err != nil || len(out) != 1 {
		t.Fatalf("outputs = %v, %v; want one", out, err)
	}
	obj, err := h.s.Store.Get(t.Context(), out[0])
	if err != nil {
		t.Fatal(err)
	}
	res, err := elastiq.DecodeResult(obj.Body)
	if err != nil || res.Worker == crashed || res.Worker == "" {
		t.Errorf("output = %+v, %v; want it written by an instance other than the crashed %s", res, err, crashed)
	}
	if res.Deliveries != 2 {
		t.Errorf("output's deliveries = %d, want 2: the crashed instance's, then the one that answered", res.Deliveries)
	}
	if r := h.await(res.ID); r.Deliveries != 2 {
		t.Errorf("GET /v1/recognitions/%s deliveries = %d, want 2", res.ID, r.Deliveries)
	}
}

// TestDuplicateDeliveryOneResult delivers one request twice (as SQS may) and
// checks that it yields one stored result and one answer.
func TestDuplicateDeliveryOneResult(t *testing.T) {
	imgs := loadWorkload(t)
	c := newContentClassifier(imgs)
	gate := make(chan struct{})
	c.hook = func(ctx context.Context, _ int64) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := start(t, testConfig(t), c, nil)
	id := h.submit(imgs[5])
	key := elastiq.InputKey(id)
	obj, err := h.s.Store.Head(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := elastiq.RequestFromInput(key, obj)
	if err != nil {
		t.Fatal(err)
	}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.Requests.Send(t.Context(), body); err != nil {
		t.Fatal(err)
	}
	close(gate)

	r := h.await(id)
	if r.Status != elastiq.StatusDone || r.Label != imgs[5].label {
		t.Errorf("GET %s = %+v, want done %q", id, r, imgs[5].label)
	}
	elastiqtest.Eventually(t, "both deliveries finished", func() bool {
		rq, err1 := h.s.Requests.Stats(t.Context())
		rs, err2 := h.s.Responses.Stats(t.Context())
		return err1 == nil && err2 == nil && rq == (elastiq.QueueStats{}) && rs == (elastiq.QueueStats{})
	})
	out, err := h.s.Store.List(t.Context(), elastiq.OutputPrefix)
	if err != nil || len(out) != 1 || out[0] != elastiq.OutputKey(id) {
		t.Errorf("outputs = %v, %v; want just %s", out, err, elastiq.OutputKey(id))
	}
}

// stuckClassifier never answers: each classification waits for its
// context to end.
func stuckClassifier(imgs []image) *contentClassifier {
	c := newContentClassifier(imgs)
	c.hook = func(ctx context.Context, _ int64) error {
		<-ctx.Done()
		return ctx.Err()
	}
	return c
}

// TestRestartRecovery accepts requests, stops the stack before any is
// classified, and starts a new stack on the same data: every accepted request
// is answered.
func TestRestartRecovery(t *testing.T) {
	imgs := loadWorkload(t)
	cfg := testConfig(t)
	cfg.WorkerGrace = 100 * time.Millisecond // the stuck workers are cut off at the stop

	first := start(t, cfg, stuckClassifier(imgs), nil)
	ids := make([]elastiq.RequestID, 5)
	for i := range ids {
		ids[i] = first.submit(imgs[i])
	}
	if err := first.stop(); err != nil {
		t.Fatalf("first stack: Run() = %v", err)
	}
	out, err := first.s.Store.List(context.Background(), elastiq.OutputPrefix)
	if err == nil && len(out) != 0 {
		t.Fatalf("outputs before restart = %v, want none", out)
	}

	second := start(t, cfg, newContentClassifier(imgs), nil)
	for i, id := range ids {
		r := second.await(id)
		if r.Status != elastiq.StatusDone || r.Label != imgs[i].label {
			t.Errorf("after restart GET %s = %+v, want done %q", id, r, imgs[i].label)
		}
	}
}

// TestStopWhileStarting: a stop that arrives while the stack is still
// starting (reading the store back, before it serves) is a clean stop, as
// systemd expects of a SIGTERM at any time; the requests it had not
// re-enqueued are re-enqueued at the next start.
func TestStopWhileStarting(t *testing.T) {
	imgs := loadWorkload(t)
	cfg := testConfig(t)
	cfg.WorkerGrace = 100 * time.Millisecond // the stuck worker is cut off at the stop
	first := start(t, cfg, stuckClassifier(imgs), nil)
	id := first.submit(imgs[0]) // accepted, never answered
	if err := first.stop(); err != nil {
		t.Fatalf("first stack: Run() = %v", err)
	}

	s, err := New(cfg, Deps{Classifier: newContentClassifier(imgs)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the stop came before Run could read the store
	if err := s.Run(ctx, ln); err != nil {
		t.Fatalf("Run() stopped while starting = %v, want nil", err)
	}

	second := start(t, cfg, newContentClassifier(imgs), nil)
	if r := second.await(id); r.Status != elastiq.StatusDone || r.Label != imgs[0].label {
		t.Errorf("after the interrupted start GET %s = %+v, want done %q", id, r, imgs[0].label)
	}
}

// TestStopDrainsWorkers: stopping the stack lets a worker finish the request
// it holds (within WorkerGrace), as a distributed worker does on SIGTERM, so
// the result is stored and nothing is left to redo after a restart.
func TestStopDrainsWorkers(t *testing.T) {
	imgs := loadWorkload(t)
	cfg := testConfig(t)
	slow := newContentClassifier(imgs)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	slow.hook = func(ctx context.Context, _ int64) error {
		started <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := start(t, cfg, slow, nil)
	id := h.submit(imgs[0])
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("the worker never started classifying")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	time.Sleep(50 * time.Millisecond) // the stop under way, the request in hand
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the stack did not stop")
	}
	store, err := diskstore.Open(filepath.Join(cfg.DataDir, "objects"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	obj, err := store.Get(context.Background(), elastiq.OutputKey(id))
	if err != nil {
		t.Fatalf("output/%s after the stop: %v, want the finished result", id, err)
	}
	if res, err := elastiq.DecodeResult(obj.Body); err != nil || res.Status != elastiq.StatusDone || res.Label != imgs[0].label {
		t.Errorf("output/%s = %+v, %v; want done %q", id, res, err, imgs[0].label)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*Config)
	}{
		{name: "no data dir", modify: func(c *Config) { c.DataDir = "" }},
		{name: "zero visibility", modify: func(c *Config) { c.VisibilityTimeout = 0 }},
		{name: "no receives", modify: func(c *Config) { c.MaxReceives = 0 }},
		{name: "negative boot", modify: func(c *Config) { c.BootDelay = -time.Second }},
		{name: "bad web", modify: func(c *Config) { c.Web.MaxUploadBytes = 0 }},
		{name: "negative grace", modify: func(c *Config) { c.WorkerGrace = -time.Second }},
		{name: "bad classic max", modify: func(c *Config) { c.Policy.Policy, c.Policy.Max = policy.NameClassic, 0 }},
		{name: "bad backlog max", modify: func(c *Config) { c.Policy.Max = 0 }},
		{name: "unknown policy", modify: func(c *Config) { c.Policy.Policy = "magic" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Errorf("Validate() = nil, want an error")
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v, want nil", err)
	}
}

func ExampleDefaultConfig() {
	cfg := DefaultConfig()
	fmt.Println(cfg.Policy.Policy, cfg.Policy.Max, cfg.VisibilityTimeout)
	// Output: backlog 19 15s
}
