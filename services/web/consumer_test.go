package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

func sendResult(t *testing.T, q *fakeQueue, res elastiq.Result) {
	t.Helper()
	b, err := elastiq.EncodeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestDuplicateAndBadResponses: the first result for an ID wins, later ones
// and undecodable messages are deleted, and the consumer carries on.
func TestDuplicateAndBadResponses(t *testing.T) {
	faces, _ := loadFaces(t)
	h := newHarness(t, testConfig(), nil, nil)
	a := h.submit(t, "file", faces[0])
	first := elastiq.Result{ID: a.ID, FileName: faces[0].name, Status: elastiq.StatusDone, Label: "first", SubmittedAt: time.Now()}
	second := first
	second.Label = "second"

	sendResult(t, h.responses, first)
	sendResult(t, h.responses, second)
	for _, body := range []string{"garbage", `{"id":"test_00.jpg","status":"done"}`} {
		if err := h.responses.Send(context.Background(), []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	elastiqtest.Eventually(t, "all four responses deleted", func() bool { _, deleted := h.responses.counts(); return deleted == 4 })

	if rec := h.recognition(t, a.StatusURL); rec.Label != "first" {
		t.Errorf("GET after a duplicate = %+v, want label first", rec)
	}
	cached, err := h.cache.Get(context.Background(), ResultCacheKey(a.ID))
	if res, derr := elastiq.DecodeResult(cached); err != nil || derr != nil || res.Label != "first" {
		t.Errorf("cached result = %q (%v, %v), want label first", cached, err, derr)
	}
	for outcome, want := range map[string]float64{outcomeDone: 1, outcomeDuplicate: 1, outcomeUndecodable: 2} {
		if got := testutil.ToFloat64(h.srv.metrics.responses.WithLabelValues(outcome)); got != want {
			t.Errorf("responses{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}

	// Still consuming.
	b := h.submit(t, "file", faces[1])
	sendResult(t, h.responses, elastiq.Result{ID: b.ID, Status: elastiq.StatusDone, Label: "later"})
	if rec := h.recognition(t, b.StatusURL+"?wait=30s"); rec.Label != "later" {
		t.Errorf("GET after bad messages = %+v, want label later", rec)
	}
}

// TestCacheSetFailure: a result is still delivered when the cache fails.
func TestCacheSetFailure(t *testing.T) {
	faces, labels := loadFaces(t)
	h := newHarness(t, testConfig(), nil, labels)
	h.cache.set(func(c *fakeCache) { c.setErr = errors.New("cache down") })
	h.worker.start(t, 1)
	f := faces[1]
	if r := h.upload(t, "/", "myfile", f.name, f.data); r.status != http.StatusOK || r.body != f.label {
		t.Errorf("POST / with the cache down = %d %q, want 200 %q", r.status, r.body, f.label)
	}
	elastiqtest.Eventually(t, "the response deleted", func() bool { _, deleted := h.responses.counts(); return deleted == 1 })
}

// TestResultCachedWithTTL: the consumer caches a result with the CacheTTL.
func TestResultCachedWithTTL(t *testing.T) {
	cfg := testConfig()
	cfg.CacheTTL = 7 * time.Minute
	h := newHarness(t, cfg, nil, nil)
	id := elastiq.NewRequestID(time.Now())
	sendResult(t, h.responses, elastiq.Result{ID: id, Status: elastiq.StatusDone, Label: "Paul"})
	key := ResultCacheKey(id)
	elastiqtest.Eventually(t, "the result cached", func() bool {
		h.cache.mu.Lock()
		defer h.cache.mu.Unlock()
		return h.cache.values[key] != nil
	})
	h.cache.mu.Lock()
	defer h.cache.mu.Unlock()
	if ttl := h.cache.ttls[key]; ttl != cfg.CacheTTL {
		t.Errorf("cache TTL of %s = %v, want %v", key, ttl, cfg.CacheTTL)
	}
}

// TestReceiveErrorsRetried: the consumer backs off and retries when the
// response queue fails.
func TestReceiveErrorsRetried(t *testing.T) {
	faces, _ := loadFaces(t)
	h := newHarness(t, testConfig(), nil, nil)
	a := h.submit(t, "file", faces[0])
	h.responses.set(func(q *fakeQueue) { q.receiveErr = 3 })
	sendResult(t, h.responses, elastiq.Result{ID: a.ID, Status: elastiq.StatusDone, Label: "Paul"})
	if rec := h.recognition(t, a.StatusURL+"?wait=30s"); rec.Label != "Paul" {
		t.Errorf("GET after receive errors = %+v, want label Paul", rec)
	}
	h.responses.set(func(q *fakeQueue) {
		if q.receiveErr != 0 {
			t.Errorf("%d receive failures left, want all 3 hit", q.receiveErr)
		}
	})
}

func TestServeTwice(t *testing.T) {
	h := newHarness(t, testConfig(), nil, nil) // runs Serve
	elastiqtest.Eventually(t, "Serve to start", h.srv.running.Load)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Serve(context.Background(), ln); err == nil {
		t.Errorf("second Serve = nil, want an error")
	}
}
