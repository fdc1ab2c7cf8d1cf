package web

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// TestInstancesWithOwnQueues: web instances behind a load balancer share
// the request queue, the store and the cache, and each has its own response
// queue, named in every request it sends. Each one's waiting clients get
// their results from its own queue; any instance answers GET for any
// request, also with ?wait= (from the cache the owner fills, or from
// output/ when the owner is gone).
func TestInstancesWithOwnQueues(t *testing.T) {
	faces, labels := loadFaces(t)
	const queueA, queueB, queueGone = "https://sqs.test/1/web-a", "https://sqs.test/1/web-b", "https://sqs.test/1/web-gone"
	a := newHarness(t, testConfig(), nil, labels, func(d *Deps) { d.ReplyTo = queueA })
	shared := func(replyTo string, own *fakeQueue) func(*Deps) {
		return func(d *Deps) {
			d.Requests, d.Store, d.Cache, d.Responses, d.ReplyTo = a.requests, a.store, a.cache, own, replyTo
		}
	}
	ownB, ownGone := newFakeQueue(), newFakeQueue()
	b := newHarness(t, testConfig(), nil, labels, shared(queueB, ownB))
	gone := newHarness(t, testConfig(), nil, labels, shared(queueGone, ownGone))
	a.worker.replies = map[string]*fakeQueue{queueA: a.responses, queueB: ownB}

	// Accepted while no worker runs: one for each instance's clients,
	// each then awaited on another instance, which has to find it without
	// its queue.
	onA, onB, onGone := a.submit(t, "file", faces[0]), b.submit(t, "file", faces[1]), gone.submit(t, "file", faces[2])
	type awaited struct {
		name string
		r    reply
		f    face
	}
	results := make(chan awaited, 3)
	for _, c := range []struct {
		name     string
		on       *harness
		accepted Accepted
		f        face
	}{
		{"A's request on B", b, onA, faces[0]},
		{"B's request on A", a, onB, faces[1]},
		{"a gone instance's request on B", b, onGone, faces[2]},
	} {
		go func() {
			r, err := c.on.send(http.MethodGet, "/v1/recognitions/"+string(c.accepted.ID)+"?wait=20s", "", nil)
			if err != nil {
				t.Error(err)
			}
			results <- awaited{c.name, r, c.f}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the waits under way, pending
	a.worker.start(t, 2)
	for range 3 {
		c := <-results
		var res Recognition
		if err := json.Unmarshal([]byte(c.r.body), &res); err != nil || c.r.status != http.StatusOK || res.Status != elastiq.StatusDone || res.Label != c.f.label {
			t.Errorf("GET ?wait= of %s = %d %q, want done %q", c.name, c.r.status, c.r.body, c.f.label)
		}
	}
	for _, c := range []struct {
		name string
		h    *harness
		f    face
	}{{"A", a, faces[3]}, {"B", b, faces[4]}} {
		if r := c.h.upload(t, "/", "myfile", c.f.name, c.f.data); r.status != http.StatusOK || r.body != c.f.label {
			t.Errorf("POST / on %s = %d %q, want 200 %q", c.name, r.status, r.body, c.f.label)
		}
	}
	// Each result went to the queue of the instance that accepted it.
	for _, c := range []struct {
		name string
		q    *fakeQueue
		want int
	}{{"A's queue", a.responses, 2}, {"B's queue", ownB, 2}, {"the gone instance's queue", ownGone, 0}, {"B's unused default", b.responses, 0}} {
		if sent, _ := c.q.counts(); sent != c.want {
			t.Errorf("results sent to %s = %d, want %d", c.name, sent, c.want)
		}
	}
}

// TestForeignWaitTimesOutPending: GET ?wait= of another instance's request
// that has no result yet answers pending, with its file name, after the
// wait.
func TestForeignWaitTimesOutPending(t *testing.T) {
	faces, labels := loadFaces(t)
	a := newHarness(t, testConfig(), nil, labels, func(d *Deps) { d.ReplyTo = "https://sqs.test/1/web-a" })
	b := newHarness(t, testConfig(), nil, labels, func(d *Deps) {
		d.Requests, d.Store, d.Cache, d.ReplyTo = a.requests, a.store, a.cache, "https://sqs.test/1/web-b"
	})
	accepted := a.submit(t, "file", faces[0]) // no worker runs
	start := time.Now()
	var res Recognition
	r := b.get(t, "/v1/recognitions/"+string(accepted.ID)+"?wait=1s")
	if err := json.Unmarshal([]byte(r.body), &res); err != nil || res.Status != elastiq.StatusPending || res.FileName != faces[0].name {
		t.Errorf("GET ?wait=1s of A's request on B = %d %q, want pending %s", r.status, r.body, faces[0].name)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("GET ?wait=1s answered after %v, want the whole wait", took)
	}
}

// TestGalleryRevisionShared: with web instances side by side, a gallery
// change through one is announced by the requests sent through another
// after its answer, through the cache they share, so the workers answer
// them with the change in.
func TestGalleryRevisionShared(t *testing.T) {
	faces, labels := loadFaces(t)
	cfg := testConfig()
	cfg.AdminToken = testToken
	a := newHarness(t, cfg, nil, labels, func(d *Deps) { d.ReplyTo = "https://sqs.test/1/web-a" })
	ownB := newFakeQueue()
	b := newHarness(t, cfg, nil, labels, func(d *Deps) {
		d.Requests, d.Store, d.Cache, d.Responses, d.ReplyTo = a.requests, a.store, a.cache, ownB, "https://sqs.test/1/web-b"
	})
	a.worker.replies = map[string]*fakeQueue{"https://sqs.test/1/web-a": a.responses, "https://sqs.test/1/web-b": ownB}
	a.worker.start(t, 1)

	body, ct := multipartBody("file", faces[0].name, faces[0].data)
	if r := a.adminSend(t, http.MethodPost, "/v1/subjects/Zed/faces", ct, body); r.status != http.StatusCreated {
		t.Fatalf("enrol on A = %d %q, want 201", r.status, r.body)
	}
	enrolled := a.srv.revision.get()
	if r := b.upload(t, "/", "myfile", faces[1].name, faces[1].data); r.status != http.StatusOK {
		t.Fatalf("POST / on B = %d %q", r.status, r.body)
	}
	if got := a.worker.lastRevision(); got < enrolled {
		t.Errorf("B's request after A's enrolment carried revision %s, want at least A's %s", got, enrolled)
	}
	// And a change through B is later still.
	if r := b.adminSend(t, http.MethodDelete, "/v1/subjects/Zed", "", nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE on B = %d %q", r.status, r.body)
	}
	if got := b.srv.revision.get(); got <= enrolled {
		t.Errorf("B's revision after its change = %s, want later than A's %s", got, enrolled)
	}
}
