package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// testTimeout bounds every wait in these tests; it is generous so a loaded
// machine does not fail them.
const testTimeout = 30 * time.Second

type harness struct {
	requests, responses *fakeQueue
	// replies are the web instances' own response queues, by URL.
	replies       map[string]*fakeQueue
	store         *elastiqtest.Store
	classifyCalls atomic.Int64
	worker        *Worker
}

// newHarness builds a worker over fresh doubles. The config has a short idle
// timeout so Run returns once the fake queue is drained; edit may change it.
func newHarness(t *testing.T, classify classifierFunc, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{requests: newFakeQueue(), responses: newFakeQueue(), replies: map[string]*fakeQueue{}, store: elastiqtest.NewStore()}
	cfg := DefaultConfig("w-test")
	cfg.IdleTimeout = 200 * time.Millisecond
	cfg.ErrorBackoff = time.Millisecond
	cfg.MaxErrorBackoff = 10 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	w, err := New(cfg, Deps{
		Requests:   h.requests,
		Responses:  h.responses,
		Store:      h.store,
		Classifier: countingClassifier(&h.classifyCalls, classify),
		ReplyQueues: func(url string) (elastiq.Queue, error) {
			if q, ok := h.replies[url]; ok {
				return q, nil
			}
			return nil, fmt.Errorf("open %s: %w", url, elastiq.ErrNotFound)
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.worker = w
	return h
}

// submit stores an input (unless image is nil) and returns its request
// message body, as the web tier would produce them.
func (h *harness) submit(t *testing.T, fileName string, image []byte) (elastiq.Request, []byte) {
	t.Helper()
	req := elastiq.Request{
		ID:          elastiq.NewRequestID(time.Now()),
		FileName:    fileName,
		SubmittedAt: time.Now().UTC(),
	}
	req.InputKey = elastiq.InputKey(req.ID)
	if image != nil {
		obj := elastiq.Object{Body: image, ContentType: "image/jpeg", Metadata: elastiq.InputMetadata(req)}
		if err := h.store.Put(context.Background(), req.InputKey, obj); err != nil {
			t.Fatalf("store input: %v", err)
		}
	}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatalf("EncodeRequest: %v", err)
	}
	return req, body
}

// runUntilIdle runs the worker until it stops itself and fails the test if
// it returns an error or does not stop in time.
func (h *harness) runUntilIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	if err := h.worker.Run(ctx); err != nil {
		t.Fatalf("Run() = %v, want nil (idle self-stop)", err)
	}
}

func labelByContent(ctx context.Context, image []byte) (string, error) {
	name, ok := strings.CutPrefix(string(image), "face of ")
	if !ok {
		return "", errors.New("no face found")
	}
	return name, nil
}

func TestWorkerResults(t *testing.T) {
	tests := []struct {
		name       string
		image      []byte // nil: no input stored
		wantStatus elastiq.Status
		wantLabel  string
		wantError  string
	}{
		{name: "labelled", image: []byte("face of Paul"), wantStatus: elastiq.StatusDone, wantLabel: "Paul"},
		{name: "classifier error", image: []byte("a landscape"), wantStatus: elastiq.StatusFailed,
			wantError: "classify: no face found"},
		{name: "input missing", image: nil, wantStatus: elastiq.StatusFailed, wantError: "input not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, labelByContent, nil)
			req, body := h.submit(t, "test_00.jpg", tt.image)
			receipt := h.requests.push(body)
			h.runUntilIdle(t)

			check := func(where string, got elastiq.Result) {
				t.Helper()
				if got.ID != req.ID || got.FileName != "test_00.jpg" || got.Worker != "w-test" {
					t.Errorf("%s: ID, FileName, Worker = %q, %q, %q; want %q, test_00.jpg, w-test",
						where, got.ID, got.FileName, got.Worker, req.ID)
				}
				if got.Status != tt.wantStatus || got.Label != tt.wantLabel || got.Error != tt.wantError {
					t.Errorf("%s: Status, Label, Error = %q, %q, %q; want %q, %q, %q",
						where, got.Status, got.Label, got.Error, tt.wantStatus, tt.wantLabel, tt.wantError)
				}
				if !got.SubmittedAt.Equal(req.SubmittedAt) || got.FinishedAt.Before(got.StartedAt) {
					t.Errorf("%s: SubmittedAt, StartedAt, FinishedAt = %v, %v, %v; want submitted %v, started <= finished",
						where, got.SubmittedAt, got.StartedAt, got.FinishedAt, req.SubmittedAt)
				}
			}

			out, err := h.store.Get(t.Context(), elastiq.OutputKey(req.ID))
			if err != nil {
				t.Fatalf("output: %v", err)
			}
			if out.ContentType != "application/json" {
				t.Errorf("output content type = %q, want application/json", out.ContentType)
			}
			stored, err := elastiq.DecodeResult(out.Body)
			if err != nil {
				t.Fatalf("output: %v", err)
			}
			check("output", stored)

			sent, err := h.responses.sentResults()
			if err != nil || len(sent) != 1 {
				t.Fatalf("responses = %v, %v; want 1 result", sent, err)
			}
			check("response", sent[0])

			if got := h.requests.deletedReceipts(); !slices.Equal(got, []string{receipt}) {
				t.Errorf("deleted = %q, want [%q]", got, receipt)
			}
			st := h.worker.Stats()
			wantDone, wantFailed := int64(0), int64(0)
			if tt.wantStatus == elastiq.StatusDone {
				wantDone = 1
			} else {
				wantFailed = 1
			}
			if st.Received != 1 || st.Done != wantDone || st.Failed != wantFailed || st.Errors != 0 {
				t.Errorf("Stats() = %+v, want Received 1, Done %d, Failed %d, Errors 0", st, wantDone, wantFailed)
			}
		})
	}
}

// TestWorkerDuplicateDelivery: a redelivery finds the output the first
// delivery stored and answers with it, without classifying again.
func TestWorkerDuplicateDelivery(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	req, body := h.submit(t, "test_01.jpg", []byte("face of Ann"))
	first, second := h.requests.push(body), h.requests.pushDelivery(body, 2)
	h.runUntilIdle(t)

	if n := h.classifyCalls.Load(); n != 1 {
		t.Errorf("classifier calls = %d, want 1", n)
	}
	if n := h.store.PutCount(elastiq.OutputKey(req.ID)); n != 1 {
		t.Errorf("output puts = %d, want 1", n)
	}
	sent, err := h.responses.sentResults()
	if err != nil || len(sent) != 2 {
		t.Fatalf("responses = %v, %v; want 2", sent, err)
	}
	for i, r := range sent {
		if r.ID != req.ID || r.Label != "Ann" {
			t.Errorf("response %d = %s %q, want %s %q", i, r.ID, r.Label, req.ID, "Ann")
		}
	}
	if sent[0].FinishedAt != sent[1].FinishedAt {
		t.Errorf("responses FinishedAt %v, %v: want the stored result reused", sent[0].FinishedAt, sent[1].FinishedAt)
	}
	// In either order: a slot frees before its delete, so the second
	// delivery may be deleted first.
	if got := h.requests.deletedReceipts(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values([]string{first, second}))) {
		t.Errorf("deleted = %q, want %q and %q", got, first, second)
	}
	if st := h.worker.Stats(); st.Duplicates != 1 || st.Done != 2 {
		t.Errorf("Stats() = %+v, want Duplicates 1, Done 2", st)
	}
}

// TestWorkerReplyTo: a request that names its web instance's own queue is
// answered there, not on the shared response queue; one whose queue is gone
// (its instance stopped) is still finished and deleted, its result in
// output/ for any other instance to find.
func TestWorkerReplyTo(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	const mine, gone, closed = "https://sqs.example/1/web-a", "https://sqs.example/1/web-b", "https://sqs.example/1/web-c"
	h.replies[mine] = newFakeQueue()
	h.replies[closed] = newFakeQueue()
	h.replies[closed].sendErr = fmt.Errorf("send: %w", elastiq.ErrNotFound) // deleted after it was opened
	var ids []elastiq.RequestID
	for _, to := range []string{mine, gone, closed} {
		req, _ := h.submit(t, "test_01.jpg", []byte("face of Ann"))
		req.ReplyTo = to
		body, err := elastiq.EncodeRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		h.requests.push(body)
		ids = append(ids, req.ID)
	}
	h.runUntilIdle(t)

	if sent, err := h.replies[mine].sentResults(); err != nil || len(sent) != 1 || sent[0].ID != ids[0] || sent[0].Label != "Ann" {
		t.Errorf("results on %s = %+v, %v; want %s labelled Ann", mine, sent, err, ids[0])
	}
	if sent, err := h.responses.sentResults(); err != nil || len(sent) != 0 {
		t.Errorf("results on the shared response queue = %+v, %v; want none", sent, err)
	}
	if n := len(h.requests.deletedReceipts()); n != 3 {
		t.Errorf("requests deleted = %d, want 3 (a gone reply queue is no reason to redo one)", n)
	}
	for _, id := range ids {
		if _, err := h.store.Get(t.Context(), elastiq.OutputKey(id)); err != nil {
			t.Errorf("output/%s: %v, want the result", id, err)
		}
	}
	if st := h.worker.Stats(); st.Done != 3 || st.Errors != 0 {
		t.Errorf("Stats() = %+v, want Done 3, Errors 0", st)
	}
}

// TestWorkerWithoutResponseQueue: a worker of the load-balanced layout has
// no shared response queue; a request that names no queue of its own is
// still finished, its result in output/ alone.
func TestWorkerWithoutResponseQueue(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	cfg := DefaultConfig("w-replies")
	cfg.IdleTimeout = 200 * time.Millisecond
	w, err := New(cfg, Deps{Requests: h.requests, Store: h.store, Classifier: classifierFunc(labelByContent),
		ReplyQueues: func(url string) (elastiq.Queue, error) {
			return nil, fmt.Errorf("open %s: %w", url, elastiq.ErrNotFound)
		}})
	if err != nil {
		t.Fatalf("New without Responses but with ReplyQueues: %v", err)
	}
	h.worker = w
	req, body := h.submit(t, "test_01.jpg", []byte("face of Ann"))
	h.requests.push(body)
	h.runUntilIdle(t)
	if n := len(h.requests.deletedReceipts()); n != 1 {
		t.Errorf("requests deleted = %d, want 1", n)
	}
	if _, err := h.store.Get(t.Context(), elastiq.OutputKey(req.ID)); err != nil {
		t.Errorf("output/%s: %v, want the result", req.ID, err)
	}
}

// TestWorkerFirstDeliveryReadsNoOutput: a first delivery does not look for
// a stored output (there is none to reuse, and the read is a call per
// request), so the same request sent twice is classified twice; both
// answers carry its label.
func TestWorkerFirstDeliveryReadsNoOutput(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	req, body := h.submit(t, "test_01.jpg", []byte("face of Ann"))
	h.requests.push(body)
	h.requests.push(body)
	h.runUntilIdle(t)

	if n := h.classifyCalls.Load(); n != 2 {
		t.Errorf("classifier calls = %d, want 2", n)
	}
	if n := h.store.GetCount(elastiq.OutputKey(req.ID)); n != 0 {
		t.Errorf("output reads = %d, want 0", n)
	}
	sent, err := h.responses.sentResults()
	if err != nil || len(sent) != 2 || sent[0].Label != "Ann" || sent[1].Label != "Ann" {
		t.Errorf("responses = %v, %v; want 2 labelled Ann", sent, err)
	}
}

func TestWorkerHeartbeatDuringSlowClassify(t *testing.T) {
	const visibility = 100 * time.Millisecond
	var h *harness
	slow := func(ctx context.Context, image []byte) (string, error) {
		// Classify until the worker has extended visibility twice.
		deadline := time.Now().Add(testTimeout)
		for len(h.requests.visibilityCalls()) < 2 {
			if time.Now().After(deadline) {
				return "", errors.New("no heartbeat")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return "Slow", nil
	}
	h = newHarness(t, slow, func(c *Config) { c.VisibilityTimeout = visibility })
	_, body := h.submit(t, "slow.jpg", []byte("face of Slow"))
	receipt := h.requests.push(body)
	h.runUntilIdle(t)

	calls := h.requests.visibilityCalls()
	if len(calls) < 2 {
		t.Fatalf("ChangeVisibility calls = %d, want >= 2", len(calls))
	}
	for i, c := range calls {
		if c != (visibilityCall{receipt: receipt, timeout: visibility}) {
			t.Errorf("ChangeVisibility call %d = (%q, %v), want (%q, %v)", i, c.receipt, c.timeout, receipt, visibility)
		}
	}
	sent, err := h.responses.sentResults()
	if err != nil || len(sent) != 1 || sent[0].Label != "Slow" {
		t.Errorf("responses = %v, %v; want one labelled Slow", sent, err)
	}
	if got := h.requests.deletedReceipts(); !slices.Equal(got, []string{receipt}) {
		t.Errorf("deleted = %q, want [%q]", got, receipt)
	}
}

func TestWorkerIdleSelfStop(t *testing.T) {
	const idle = 150 * time.Millisecond
	h := newHarness(t, labelByContent, func(c *Config) { c.IdleTimeout = idle })
	h.runUntilIdle(t)

	h.requests.mu.Lock()
	waits := slices.Clone(h.requests.waits)
	h.requests.mu.Unlock()
	if len(waits) == 0 {
		t.Fatal("Receive was never called")
	}
	for i, w := range waits {
		if w <= 0 || w > idle {
			t.Errorf("Receive wait %d = %v, want in (0, %v] (never past the idle timeout)", i, w, idle)
		}
	}
}

func TestWorkerCancelMidMessage(t *testing.T) {
	started := make(chan struct{})
	h := newHarness(t, blockingClassifier(started), nil)
	req, body := h.submit(t, "test_02.jpg", []byte("face of Bob"))
	receipt := h.requests.push(body)

	stop := elastiqtest.Start(t, "Run", h.worker.Run)
	defer stop()
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("classifier never called")
	}
	stop()

	if got := h.requests.deletedReceipts(); len(got) != 0 {
		t.Errorf("deleted = %q, want none", got)
	}
	if sent, _ := h.responses.sentResults(); len(sent) != 0 {
		t.Errorf("responses = %v, want none", sent)
	}
	if _, err := h.store.Get(t.Context(), elastiq.OutputKey(req.ID)); !errors.Is(err, elastiq.ErrNotFound) {
		t.Errorf("output after cancel: err = %v, want ErrNotFound", err)
	}
	if got := h.requests.visibilityCalls(); !slices.Contains(got, visibilityCall{receipt: receipt, timeout: 0}) {
		t.Errorf("ChangeVisibility calls = %v, want a release (%q, 0)", got, receipt)
	}
}

// TestWorkerTransientPutErrorThenRedelivery: with no StoreRetry, an
// output that cannot be written leaves its message for redelivery.
func TestWorkerTransientPutErrorThenRedelivery(t *testing.T) {
	h := newHarness(t, labelByContent, func(c *Config) { c.StoreRetry = 0 })
	req, body := h.submit(t, "test_03.jpg", []byte("face of Eve"))
	h.store.SetPutErr(errors.New("disk full"))
	h.requests.push(body)
	h.runUntilIdle(t)

	if got := h.requests.deletedReceipts(); len(got) != 0 {
		t.Errorf("deleted after failed put = %q, want none", got)
	}
	if sent, _ := h.responses.sentResults(); len(sent) != 0 {
		t.Errorf("responses after failed put = %v, want none", sent)
	}
	if st := h.worker.Stats(); st.Errors != 1 || st.Done != 0 {
		t.Errorf("Stats() = %+v, want Errors 1, Done 0", st)
	}

	// The queue delivers the message again once the store has recovered.
	h.store.SetPutErr(nil)
	receipt := h.requests.push(body)
	h.runUntilIdle(t)
	if got := h.requests.deletedReceipts(); !slices.Equal(got, []string{receipt}) {
		t.Errorf("deleted after redelivery = %q, want [%q]", got, receipt)
	}
	if sent, _ := h.responses.sentResults(); len(sent) != 1 || sent[0].ID != req.ID || sent[0].Label != "Eve" {
		t.Errorf("responses after redelivery = %v, want one for %s labelled Eve", sent, req.ID)
	}
}

// TestWorkerHoldsThroughStoreOutage: a store that fails for a while (a
// full disk) is retried while the worker holds the message, so the request
// is answered on its first delivery: the outage is not the image's fault
// and must not count towards the dead-letter limit.
func TestWorkerHoldsThroughStoreOutage(t *testing.T) {
	h := newHarness(t, labelByContent, func(c *Config) { c.StoreRetry = time.Minute })
	req, body := h.submit(t, "test_03.jpg", []byte("face of Eve"))
	h.store.SetPutErr(errors.New("disk full"))
	receipt := h.requests.push(body)
	go func() {
		time.Sleep(500 * time.Millisecond)
		h.store.SetPutErr(nil)
	}()
	h.runUntilIdle(t)
	if got := h.requests.deletedReceipts(); !slices.Equal(got, []string{receipt}) {
		t.Errorf("deleted = %q, want [%q]: answered on its first delivery", got, receipt)
	}
	if sent, _ := h.responses.sentResults(); len(sent) != 1 || sent[0].ID != req.ID || sent[0].Label != "Eve" || sent[0].Deliveries != 1 {
		t.Errorf("responses = %+v, want one for %s labelled Eve on delivery 1", sent, req.ID)
	}
	if st := h.worker.Stats(); st.Errors != 0 || st.Done != 1 {
		t.Errorf("Stats() = %+v, want Errors 0, Done 1", st)
	}
}

func TestWorkerReceiveErrorsRetried(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	h.requests.receiveErrs = 3
	_, body := h.submit(t, "test_04.jpg", []byte("face of Kim"))
	receipt := h.requests.push(body)
	h.runUntilIdle(t)
	if got := h.requests.deletedReceipts(); !slices.Equal(got, []string{receipt}) {
		t.Errorf("deleted = %q, want [%q]", got, receipt)
	}
	if st := h.worker.Stats(); st.Errors != 3 || st.Done != 1 {
		t.Errorf("Stats() = %+v, want Errors 3, Done 1", st)
	}
}

func TestWorkerUndecodableMessageDeleted(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	receipt := h.requests.push([]byte("not json"))
	h.runUntilIdle(t)
	if got := h.requests.deletedReceipts(); !slices.Equal(got, []string{receipt}) {
		t.Errorf("deleted = %q, want [%q]", got, receipt)
	}
	if sent, _ := h.responses.sentResults(); len(sent) != 0 {
		t.Errorf("responses = %v, want none", sent)
	}
	if st := h.worker.Stats(); st.Undecodable != 1 || h.classifyCalls.Load() != 0 {
		t.Errorf("Stats() = %+v, classifier calls %d; want Undecodable 1, no classifier call", st, h.classifyCalls.Load())
	}
}

func TestWorkerConcurrency(t *testing.T) {
	const n = 3
	var active, peak atomic.Int64
	together := func(ctx context.Context, image []byte) (string, error) {
		cur := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
		}
		// Wait until all n classifications run at once.
		deadline := time.Now().Add(testTimeout)
		for peak.Load() < n {
			if time.Now().After(deadline) {
				return "", errors.New("never ran concurrently")
			}
			time.Sleep(5 * time.Millisecond)
		}
		return labelByContent(ctx, image)
	}
	h := newHarness(t, together, func(c *Config) { c.Concurrency = n; c.BatchSize = 10 })
	for i := range n {
		_, body := h.submit(t, fmt.Sprintf("c%d.jpg", i), []byte(fmt.Sprintf("face of P%d", i)))
		h.requests.push(body)
	}
	h.runUntilIdle(t)
	if p := peak.Load(); p != n {
		t.Errorf("peak concurrent classifications = %d, want %d", p, n)
	}
	if st := h.worker.Stats(); st.Done != n {
		t.Errorf("Stats().Done = %d, want %d", st.Done, n)
	}
}

func TestWorkerRunTwiceConcurrently(t *testing.T) {
	h := newHarness(t, labelByContent, func(c *Config) { c.IdleTimeout = 0 })
	stop := elastiqtest.Start(t, "Run", h.worker.Run)
	defer stop()
	elastiqtest.Eventually(t, "first Run to poll", func() bool {
		h.requests.mu.Lock()
		defer h.requests.mu.Unlock()
		return len(h.requests.waits) > 0
	})
	if err := h.worker.Run(t.Context()); err == nil {
		t.Error("second concurrent Run() = nil, want an error")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "default", edit: func(*Config) {}},
		{name: "never idle", edit: func(c *Config) { c.IdleTimeout = 0 }},
		{name: "no name", edit: func(c *Config) { c.Name = "" }, wantErr: "Name"},
		{name: "zero visibility", edit: func(c *Config) { c.VisibilityTimeout = 0 }, wantErr: "VisibilityTimeout"},
		{name: "negative idle", edit: func(c *Config) { c.IdleTimeout = -time.Second }, wantErr: "IdleTimeout"},
		{name: "zero concurrency", edit: func(c *Config) { c.Concurrency = 0 }, wantErr: "Concurrency"},
		{name: "zero wait", edit: func(c *Config) { c.ReceiveWait = 0 }, wantErr: "ReceiveWait"},
		{name: "wait over 20s", edit: func(c *Config) { c.ReceiveWait = 21 * time.Second }, wantErr: "ReceiveWait"},
		{name: "batch 0", edit: func(c *Config) { c.BatchSize = 0 }, wantErr: "BatchSize"},
		{name: "batch 11", edit: func(c *Config) { c.BatchSize = 11 }, wantErr: "BatchSize"},
		{name: "zero op timeout", edit: func(c *Config) { c.OpTimeout = 0 }, wantErr: "OpTimeout"},
		{name: "backoff above max", edit: func(c *Config) { c.ErrorBackoff = time.Minute }, wantErr: "ErrorBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig("w")
			tt.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}

func TestNewRequiresDeps(t *testing.T) {
	q, s := newFakeQueue(), elastiqtest.NewStore()
	c := classifierFunc(labelByContent)
	tests := []struct {
		name string
		deps Deps
	}{
		{name: "no requests", deps: Deps{Responses: q, Store: s, Classifier: c}},
		{name: "no responses", deps: Deps{Requests: q, Store: s, Classifier: c}},
		{name: "no store", deps: Deps{Requests: q, Responses: q, Classifier: c}},
		{name: "no classifier", deps: Deps{Requests: q, Responses: q, Store: s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(DefaultConfig("w"), tt.deps); err == nil {
				t.Error("New() error = nil, want an error")
			}
		})
	}
}

// BenchmarkWorker measures the worker's own per-message overhead: decode,
// two store reads, one write, one send and one delete over in-memory doubles,
// with a classifier that answers at once.
func BenchmarkWorker(b *testing.B) {
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			requests, responses, store := newFakeQueue(), newFakeQueue(), elastiqtest.NewStore()
			cfg := DefaultConfig("bench")
			cfg.Concurrency, cfg.BatchSize, cfg.IdleTimeout = conc, 10, 0
			w, err := New(cfg, Deps{
				Requests: requests, Responses: responses, Store: store,
				Classifier: classifierFunc(func(context.Context, []byte) (string, error) { return "Paul", nil }),
			})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for range b.N {
				req := elastiq.Request{ID: elastiq.NewRequestID(now), FileName: "x.jpg", SubmittedAt: now}
				req.InputKey = elastiq.InputKey(req.ID)
				if err := store.Put(b.Context(), req.InputKey, elastiq.Object{Body: []byte("img")}); err != nil {
					b.Fatal(err)
				}
				body, _ := elastiq.EncodeRequest(req)
				requests.ready = append(requests.ready, elastiq.Message{ID: string(req.ID), Body: body, ReceiptHandle: string(req.ID)})
			}
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			requests.onDelete = func(n int) {
				if n == b.N {
					cancel()
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := w.Run(ctx); !errors.Is(err, context.Canceled) {
				b.Fatalf("Run() = %v, want context.Canceled", err)
			}
			b.StopTimer()
			if st := w.Stats(); st.Done != int64(b.N) {
				b.Fatalf("Done = %d, want %d", st.Done, b.N)
			}
		})
	}
}

// TestWorkerInlineImage: an image that came in the request is classified
// without reading input/.
func TestWorkerInlineImage(t *testing.T) {
	h := newHarness(t, labelByContent, nil)
	req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "inline.jpg", SubmittedAt: time.Now(),
		Image: []byte("face of Ann")}
	req.InputKey = elastiq.InputKey(req.ID) // not stored: the worker must not need it
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	h.requests.push(body)
	h.runUntilIdle(t)
	sent, err := h.responses.sentResults()
	if err != nil || len(sent) != 1 || sent[0].Label != "Ann" || sent[0].Status != elastiq.StatusDone || sent[0].Deliveries != 1 {
		t.Fatalf("responses = %+v, %v; want one done, labelled Ann, on its first delivery", sent, err)
	}
	if n := h.store.GetCount(req.InputKey); n != 0 {
		t.Errorf("input reads = %d, want 0", n)
	}
}
