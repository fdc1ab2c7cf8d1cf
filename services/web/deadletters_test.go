package web

import (
	"context"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/memqueue"
)

// TestDeadLettersAnsweredAsFailed: a request that reached the dead-letter
// queue is answered as failed, unless a result was stored meanwhile, which is
// then sent as it is.
func TestDeadLettersAnsweredAsFailed(t *testing.T) {
	dead := memqueue.New(memqueue.Config{})
	responses := memqueue.New(memqueue.Config{})
	t.Cleanup(func() { dead.Close(); responses.Close() })
	store := elastiqtest.NewStore()

	failing := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "test_01.jpg"}
	finished := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "test_02.jpg"}
	stored := elastiq.Result{ID: finished.ID, FileName: finished.FileName, Status: elastiq.StatusDone, Label: "Bob"}
	body, err := elastiq.EncodeResult(stored)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(t.Context(), elastiq.OutputKey(finished.ID), elastiq.Object{Body: body}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []elastiq.Request{failing, finished} {
		b, err := elastiq.EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := dead.Send(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}

	cfg := testConfig()
	cfg.ReceiveWait = 50 * time.Millisecond
	srv, err := New(cfg, Deps{Requests: newFakeQueue(), Responses: responses, DeadLetters: dead, Store: store, Cache: newFakeCache()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.consumeDeadLetters(ctx)
	}()
	got := map[elastiq.RequestID]elastiq.Result{}
	deadline := time.Now().Add(elastiqtest.Timeout)
	for len(got) < 2 && time.Now().Before(deadline) {
		msgs, err := responses.Receive(t.Context(), 10, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			res, err := elastiq.DecodeResult(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			got[res.ID] = res
		}
	}
	cancel()
	<-done
	if r := got[failing.ID]; r.Status != elastiq.StatusFailed || r.Error == "" {
		t.Errorf("response for the dead request = %+v, want failed with an error", r)
	}
	if r := got[finished.ID]; r.Status != elastiq.StatusDone || r.Label != "Bob" {
		t.Errorf("response for the finished request = %+v, want the stored result", r)
	}
	if _, err := store.Get(t.Context(), elastiq.OutputKey(failing.ID)); err != nil {
		t.Errorf("output of the dead request: %v, want the failed result stored", err)
	}
	if st, err := dead.Stats(t.Context()); err != nil || st != (elastiq.QueueStats{}) {
		t.Errorf("dead-letter queue = %+v, %v; want empty", st, err)
	}
}
