package worker

import (
	"context"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/memqueue"
)

// TestWorkerKilledMidMessageOverMemqueue runs two workers in turn over the
// embedded queue (real receipts and visibility): the first is cancelled while
// classifying, and the second still answers the request and deletes it.
func TestWorkerKilledMidMessageOverMemqueue(t *testing.T) {
	requests := memqueue.New(memqueue.Config{VisibilityTimeout: time.Minute})
	responses := memqueue.New(memqueue.Config{})
	t.Cleanup(func() { requests.Close(); responses.Close() })
	store := elastiqtest.NewStore()

	newWorker := func(name string, c classifierFunc) *Worker {
		cfg := DefaultConfig(name)
		cfg.IdleTimeout = 200 * time.Millisecond
		w, err := New(cfg, Deps{Requests: requests, Responses: responses, Store: store, Classifier: c})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return w
	}

	req := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "test_05.jpg", SubmittedAt: time.Now()}
	req.InputKey = elastiq.InputKey(req.ID)
	if err := store.Put(t.Context(), req.InputKey, elastiq.Object{Body: []byte("face of Zoe")}); err != nil {
		t.Fatal(err)
	}
	body, err := elastiq.EncodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := requests.Send(t.Context(), body); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	first := newWorker("first", blockingClassifier(started))
	stopFirst := elastiqtest.Start(t, "first Run", first.Run)
	defer stopFirst()
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("first worker never classified")
	}
	stopFirst()

	// The first worker released the message, so the second gets it well
	// before the one-minute visibility timeout.
	second := newWorker("second", labelByContent)
	runCtx, runCancel := context.WithTimeout(t.Context(), testTimeout)
	defer runCancel()
	if err := second.Run(runCtx); err != nil {
		t.Fatalf("second Run() = %v, want nil", err)
	}
	msgs, err := responses.Receive(t.Context(), 10, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("responses = %d messages, %v; want 1", len(msgs), err)
	}
	res, err := elastiq.DecodeResult(msgs[0].Body)
	if err != nil || res.ID != req.ID || res.Label != "Zoe" || res.Worker != "second" {
		t.Errorf("response = %+v, %v; want %s labelled Zoe by second", res, err, req.ID)
	}
	if st, err := requests.Stats(t.Context()); err != nil || st != (elastiq.QueueStats{}) {
		t.Errorf("request queue Stats() = %+v, %v; want empty (message deleted)", st, err)
	}
	if st := second.Stats(); st.Received != 1 || st.Done != 1 {
		t.Errorf("second Stats() = %+v, want Received 1, Done 1", st)
	}
}
