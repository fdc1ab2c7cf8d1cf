package web

import (
	"context"
	"fmt"
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

	stop := consumeDeadLetters(t, Deps{Responses: responses, DeadLetters: dead, Store: store})
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
	stop()
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

// TestDeadLettersReplyToTheirInstance: a dead letter's failed result goes
// to the response queue of the web instance that accepted the request; one
// whose instance is gone (its queue with it) is answered in output/ alone.
func TestDeadLettersReplyToTheirInstance(t *testing.T) {
	dead, mine, other := memqueue.New(memqueue.Config{}), memqueue.New(memqueue.Config{}), memqueue.New(memqueue.Config{})
	t.Cleanup(func() { dead.Close(); mine.Close(); other.Close() })
	const mineURL, otherURL, goneURL = "https://sqs.test/1/web-a", "https://sqs.test/1/web-b", "https://sqs.test/1/web-gone"
	store := elastiqtest.NewStore()
	var ids []elastiq.RequestID
	for _, to := range []string{otherURL, goneURL} {
		r := elastiq.Request{ID: elastiq.NewRequestID(time.Now()), FileName: "test_01.jpg", ReplyTo: to}
		b, err := elastiq.EncodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := dead.Send(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	stop := consumeDeadLetters(t, Deps{Responses: mine, ReplyTo: mineURL, DeadLetters: dead, Store: store,
		ReplyQueues: func(url string) (elastiq.Queue, error) {
			if url == otherURL {
				return other, nil
			}
			return nil, fmt.Errorf("open %s: %w", url, elastiq.ErrNotFound)
		}})
	elastiqtest.Eventually(t, "both dead letters answered", func() bool {
		st, err := dead.Stats(t.Context())
		return err == nil && st == (elastiq.QueueStats{})
	})
	stop()
	msgs, err := other.Receive(t.Context(), 10, 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("results on the other instance's queue = %d, %v; want 1", len(msgs), err)
	}
	if res, err := elastiq.DecodeResult(msgs[0].Body); err != nil || res.ID != ids[0] || res.Status != elastiq.StatusFailed {
		t.Errorf("result on the other instance's queue = %+v, %v; want %s failed", res, err, ids[0])
	}
	if st, err := mine.Stats(t.Context()); err != nil || st != (elastiq.QueueStats{}) {
		t.Errorf("this instance's queue = %+v, %v; want nothing sent there", st, err)
	}
	for _, id := range ids {
		if _, err := store.Get(t.Context(), elastiq.OutputKey(id)); err != nil {
			t.Errorf("output/%s: %v, want the failed result", id, err)
		}
	}
}

// consumeDeadLetters runs a Server's dead-letter consumer on deps (a fake
// request queue and cache added) until the returned stop is called.
func consumeDeadLetters(t *testing.T, deps Deps) (stop func()) {
	t.Helper()
	cfg := testConfig()
	cfg.ReceiveWait = 50 * time.Millisecond
	deps.Requests, deps.Cache = newFakeQueue(), newFakeCache()
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.consumeDeadLetters(ctx)
	}()
	return func() { cancel(); <-done }
}
