package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/elastiq/memqueue"
)

func requestBody(t *testing.T, id elastiq.RequestID) []byte {
	t.Helper()
	b, err := elastiq.EncodeRequest(elastiq.Request{ID: id, InputKey: elastiq.InputKey(id)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReceiveJournal: counts survive a reopen (a restart), a torn line is
// skipped, a finished request is forgotten, Keep drops what Recover did not
// send again, and the file stays small however many requests pass.
func TestReceiveJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "receives.log")
	j, err := openReceiveJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	q := memqueue.New(memqueue.Config{})
	defer q.Close()
	jq := journaledQueue{Queue: q, journal: j, onError: func(err error) { t.Error(err) }}
	poison, done, waiting := elastiq.NewRequestID(time.Now()), elastiq.NewRequestID(time.Now()), elastiq.NewRequestID(time.Now())
	for _, id := range []elastiq.RequestID{poison, done, waiting} {
		if err := q.Send(ctx, requestBody(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := jq.Receive(ctx, 10, 0)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("Receive = %d messages, %v", len(msgs), err)
	}
	if err := jq.Delete(ctx, msgs[1].ReceiptHandle); err != nil { // "done" finishes
		t.Fatal(err)
	}
	if err := jq.ChangeVisibility(ctx, msgs[0].ReceiptHandle, 0); err != nil {
		t.Fatal(err)
	}
	again, err := jq.Receive(ctx, 1, 0) // "poison" a second time
	if err != nil || len(again) != 1 || again[0].ReceiveCount != 2 {
		t.Fatalf("second Receive = %+v, %v", again, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s 9\n%s", waiting, poison[:10]) // and a torn line, as after a crash mid-write
	f.Close()

	j, err = openReceiveJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	// (A finished request may be counted until Keep: Recover never asks
	// for it, since it has an output.)
	for id, want := range map[elastiq.RequestID]int{poison: 2, waiting: 9, elastiq.NewRequestID(time.Now()): 0} {
		if got := j.Count(id); got != want {
			t.Errorf("after reopening, Count(%s) = %d, want %d", id, got, want)
		}
	}
	if err := j.Keep([]elastiq.RequestID{poison}); err != nil {
		t.Fatal(err)
	}
	if j.Count(poison) != 2 || j.Count(waiting) != 0 || j.Count(done) != 0 {
		t.Errorf("after Keep(poison): poison %d, waiting %d, done %d; want 2, 0, 0", j.Count(poison), j.Count(waiting), j.Count(done))
	}

	// 100,000 requests delivered and finished: the file is rewritten as it
	// grows, and holds only the unfinished one in the end.
	jq.journal = j
	for i := range 100_000 {
		id := elastiq.NewRequestID(time.Now())
		if err := q.Send(ctx, requestBody(t, id)); err != nil {
			t.Fatal(err)
		}
		m, err := jq.Receive(ctx, 1, 0)
		if err != nil || len(m) != 1 {
			t.Fatalf("Receive %d: %v", i, err)
		}
		if err := jq.Delete(ctx, m[0].ReceiptHandle); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 2*minJournalRewrite {
		t.Errorf("journal is %d bytes after 100,000 finished requests, want at most %d", st.Size(), 2*minJournalRewrite)
	}
	if len(j.counts) != 1 || len(j.handles) != 0 || len(j.latest) != 0 {
		t.Errorf("journal remembers %d counts, %d handles, %d latest; want 1 (poison), 0, 0", len(j.counts), len(j.handles), len(j.latest))
	}
}

// TestRestartKeepsReceiveCounts: a request whose every delivery dies with
// its process (here: the stack stopped while the classifier hangs on it)
// is not delivered again after MaxReceives deliveries spread over
// restarts: it goes to the dead-letter queue and is answered failed, and the
// stack goes on serving.
func TestRestartKeepsReceiveCounts(t *testing.T) {
	imgs := loadWorkload(t)
	cfg := testConfig(t)
	cfg.MaxReceives = 2
	cfg.WorkerGrace = 100 * time.Millisecond
	c := newContentClassifier(imgs)
	c.hook = func(ctx context.Context, n int64) error { <-ctx.Done(); return ctx.Err() }
	var id elastiq.RequestID
	for life := 1; life <= cfg.MaxReceives; life++ {
		h := start(t, cfg, c, nil)
		if life == 1 {
			id = h.submit(imgs[0])
		}
		elastiqtest.Eventually(t, "the request delivered", func() bool { return h.s.journal.Count(id) == life })
		if err := h.stop(); err != nil {
			t.Fatal(err)
		}
	}
	c.hook = nil
	h := start(t, cfg, c, nil)
	r := h.await(id)
	if r.Status != elastiq.StatusFailed || r.Error == "" {
		t.Fatalf("after %d deliveries over restarts, the request answers %q %q, want failed with a reason", cfg.MaxReceives, r.Status, r.Error)
	}
	if got := c.calls.Load(); got != int64(cfg.MaxReceives) {
		t.Errorf("classifier called %d times, want %d (none after the last restart)", got, cfg.MaxReceives)
	}
	if r := h.await(h.submit(imgs[1])); r.Label != imgs[1].label {
		t.Errorf("after the dead letter, %s = %+v, want %s", imgs[1].name, r, imgs[1].label)
	}
}
