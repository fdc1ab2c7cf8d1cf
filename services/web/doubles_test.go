package web

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// Test doubles of the backends, in memory. The real embedded backends live
// in services/elastiq/...; these are small enough to read at a glance and
// let tests inject failures. The object store double is the shared
// elastiqtest.Store.

var (
	_ elastiq.Queue  = (*fakeQueue)(nil)
	_ elastiq.Cache  = (*fakeCache)(nil)
	_ InstanceLister = (*fakeFleet)(nil)
)

// fakeQueue is a test double of elastiq.Queue: a FIFO with receipt handles
// and long polling. It never redelivers on a visibility timeout (the web
// tier does not rely on it); ChangeVisibility to zero requeues.
type fakeQueue struct {
	mu         sync.Mutex
	visible    []elastiq.Message
	inFlight   map[string]elastiq.Message
	wake       chan struct{} // closed and replaced on each Send
	seq        int
	sent       int
	deleted    int
	sendErr    error
	statsErr   error
	receiveErr int // the next receiveErr Receive calls fail
}

func newFakeQueue() *fakeQueue {
	return &fakeQueue{inFlight: make(map[string]elastiq.Message), wake: make(chan struct{})}
}

func (q *fakeQueue) Send(ctx context.Context, body []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sendErr != nil {
		return q.sendErr
	}
	q.seq++
	q.visible = append(q.visible, elastiq.Message{ID: fmt.Sprintf("m%d", q.seq), Body: slices.Clone(body)})
	q.sent++
	close(q.wake)
	q.wake = make(chan struct{})
	return nil
}

func (q *fakeQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]elastiq.Message, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		q.mu.Lock()
		if q.receiveErr > 0 {
			q.receiveErr--
			q.mu.Unlock()
			return nil, fmt.Errorf("fake receive failure")
		}
		if len(q.visible) > 0 {
			n := min(max, len(q.visible))
			out := make([]elastiq.Message, n)
			for i, m := range q.visible[:n] {
				q.seq++
				m.ReceiptHandle = fmt.Sprintf("r%d", q.seq)
				m.ReceiveCount++
				q.inFlight[m.ReceiptHandle] = m
				out[i] = m
			}
			q.visible = q.visible[n:]
			q.mu.Unlock()
			return out, nil
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, nil
		case <-wake:
		}
	}
}

func (q *fakeQueue) Delete(ctx context.Context, receiptHandle string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.inFlight[receiptHandle]; !ok {
		return fmt.Errorf("delete %s: %w", receiptHandle, elastiq.ErrInvalidReceipt)
	}
	delete(q.inFlight, receiptHandle)
	q.deleted++
	return nil
}

func (q *fakeQueue) ChangeVisibility(ctx context.Context, receiptHandle string, timeout time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	m, ok := q.inFlight[receiptHandle]
	if !ok {
		return fmt.Errorf("change visibility %s: %w", receiptHandle, elastiq.ErrInvalidReceipt)
	}
	if timeout == 0 {
		delete(q.inFlight, receiptHandle)
		q.visible = append(q.visible, m)
		close(q.wake)
		q.wake = make(chan struct{})
	}
	return nil
}

func (q *fakeQueue) Stats(ctx context.Context) (elastiq.QueueStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.statsErr != nil {
		return elastiq.QueueStats{}, q.statsErr
	}
	return elastiq.QueueStats{Visible: len(q.visible), InFlight: len(q.inFlight)}, nil
}

// counts returns how many messages were sent and deleted.
func (q *fakeQueue) counts() (sent, deleted int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.sent, q.deleted
}

func (q *fakeQueue) set(f func(q *fakeQueue)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f(q)
}

// fakeCache is a test double of elastiq.Cache: a map that ignores TTLs.
type fakeCache struct {
	mu     sync.Mutex
	values map[string][]byte
	ttls   map[string]time.Duration
	setErr error
	getErr error
}

func newFakeCache() *fakeCache {
	return &fakeCache{values: make(map[string][]byte), ttls: make(map[string]time.Duration)}
}

func (c *fakeCache) Get(ctx context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.getErr != nil {
		return nil, c.getErr
	}
	v, ok := c.values[key]
	if !ok {
		return nil, fmt.Errorf("cache get %s: %w", key, elastiq.ErrNotFound)
	}
	return slices.Clone(v), nil
}

func (c *fakeCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.setErr != nil {
		return c.setErr
	}
	c.values[key] = slices.Clone(value)
	c.ttls[key] = ttl
	return nil
}

func (c *fakeCache) set(f func(c *fakeCache)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// fakeFleet is a test double of the fleet as the web tier sees it: a list.
type fakeFleet struct {
	mu        sync.Mutex
	instances []elastiq.Instance
	listErr   error
}

func (f *fakeFleet) List(ctx context.Context) ([]elastiq.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.instances), f.listErr
}

func (f *fakeFleet) setListErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
}

// fakeWorker stands in for the worker tier: it receives requests, reads each
// input, labels it by the SHA-256 of its content (an unknown image gives a
// failed result, "no face found"), writes output/<id>, sends the result and
// deletes the request, as the real worker does, without a classifier.
type fakeWorker struct {
	requests, responses *fakeQueue
	store               *elastiqtest.Store
	labels              map[[32]byte]string
	// replies are the web instances' own response queues by URL, for
	// requests that name one; a URL not there is a queue that is gone.
	replies map[string]*fakeQueue

	mu        sync.Mutex
	revisions []elastiq.RequestID // each request's GalleryRevision, in order
}

// lastRevision is the GalleryRevision of the last request handled.
func (w *fakeWorker) lastRevision() elastiq.RequestID {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.revisions) == 0 {
		return ""
	}
	return w.revisions[len(w.revisions)-1]
}

func (w *fakeWorker) run(ctx context.Context, name string) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		default:
		}
		msgs, err := w.requests.Receive(ctx, 10, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, m := range msgs {
			if err := w.handle(ctx, name, m); err != nil {
				return err
			}
		}
	}
}

func (w *fakeWorker) handle(ctx context.Context, name string, m elastiq.Message) error {
	req, err := elastiq.DecodeRequest(m.Body)
	if err != nil {
		return err
	}
	in, err := w.store.Get(ctx, req.InputKey)
	if err != nil {
		return err
	}
	started := time.Now()
	res := elastiq.Result{
		ID: req.ID, FileName: req.FileName, Worker: name,
		SubmittedAt: req.SubmittedAt, StartedAt: started, FinishedAt: time.Now(), Classify: time.Millisecond,
	}
	w.mu.Lock()
	w.revisions = append(w.revisions, req.GalleryRevision)
	w.mu.Unlock()
	label, ok := w.labels[sha256.Sum256(in.Body)]
	switch {
	case !ok && req.Kind == elastiq.KindEnroll:
		res.Status, res.Error = elastiq.StatusFailed, "cannot enrol: no face found in the image"
	case !ok:
		res.Status, res.Error = elastiq.StatusFailed, "no face found"
	case req.Kind == elastiq.KindEnroll:
		// As a worker does: the face stored under its subject.
		if err := w.store.Put(ctx, elastiq.FaceKey(req.Subject, req.ID), elastiq.Object{Body: elastiq.EncodeEmbedding([]float32{1})}); err != nil {
			return err
		}
		res.Status, res.Label = elastiq.StatusDone, req.Subject
		res.Enrolled = &elastiq.Enrolled{Subject: req.Subject, FaceID: req.ID, Box: elastiq.Box{X2: 64, Y2: 64}, Score: 0.99}
	case req.Kind == elastiq.KindVerify:
		// Same person when both images carry the same label.
		second, err := w.store.Get(ctx, req.SecondKey)
		if err != nil {
			return err
		}
		other, ok := w.labels[sha256.Sum256(second.Body)]
		if !ok {
			res.Status, res.Error = elastiq.StatusFailed, "second image: no face found"
			break
		}
		v := elastiq.Verification{Threshold: 0.4, Similarity: 0.1, Same: label == other}
		res.Status, res.Label, res.Verification = elastiq.StatusDone, "different", &v
		if v.Same {
			v.Similarity, res.Label = 0.9, "same"
		}
	default:
		res.Status, res.Label = elastiq.StatusDone, label
	}
	b, err := elastiq.EncodeResult(res)
	if err != nil {
		return err
	}
	if err := w.store.Put(ctx, elastiq.OutputKey(req.ID), elastiq.Object{Body: b, ContentType: "application/json"}); err != nil {
		return err
	}
	to := w.responses
	if req.ReplyTo != "" {
		to = w.replies[req.ReplyTo]
	}
	if to != nil {
		if err := to.Send(ctx, b); err != nil {
			return err
		}
	}
	return w.requests.Delete(ctx, m.ReceiptHandle)
}

// start runs n worker goroutines until the test ends.
func (w *fakeWorker) start(tb testing.TB, n int) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := w.run(ctx, fmt.Sprintf("fake-worker-%d", i)); err != nil {
				tb.Errorf("fake worker: %v", err)
			}
		})
	}
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}
