package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestRecognizeContracts sends 100 concurrent POST / requests for each of the
// course's client contracts and checks every answer is its own image's.
var serverTimingRE = regexp.MustCompile(`^total;dur=[0-9]+\.[0-9]{3}, classify;dur=[0-9]+\.[0-9]{3}$`)

func TestRecognizeContracts(t *testing.T) {
	cse546, cse546Labels := loadFaces(t)
	distinct, distinctLabels := distinctFaces(t, 100)
	tests := []struct {
		name   string
		field  string
		faces  []face
		labels map[[32]byte]string
		want   func(f face) string
	}{
		{name: "myfile answers the bare label", field: "myfile", faces: cse546, labels: cse546Labels,
			want: func(f face) string { return f.label }},
		{name: "inputFile answers name:label", field: "inputFile", faces: cse546, labels: cse546Labels,
			want: func(f face) string { return strings.TrimSuffix(f.name, ".jpg") + ":" + f.label }},
		// The CSE546 set has only 10 distinct images; 100 distinct ones
		// show that bare labels are not mixed up between requests.
		{name: "myfile with 100 distinct images", field: "myfile", faces: distinct, labels: distinctLabels,
			want: func(f face) string { return f.label }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig(), nil, tt.labels)
			h.worker.start(t, 4)
			concurrently(len(tt.faces), func(i int) {
				f := tt.faces[i]
				r, err := h.tryUpload("/", tt.field, f.name, f.data)
				if err != nil {
					t.Error(err)
					return
				}
				if r.status != http.StatusOK || r.body != tt.want(f) {
					t.Errorf("POST / %s=%s = %d %q, want 200 %q", tt.field, f.name, r.status, r.body, tt.want(f))
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("POST / %s=%s Content-Type = %q, want text/plain", tt.field, f.name, ct)
				}
				if st := r.header.Get("Server-Timing"); !serverTimingRE.MatchString(st) {
					t.Errorf("POST / %s=%s Server-Timing = %q, want total and classify durations", tt.field, f.name, st)
				}
			})
			if sent, _ := h.requests.counts(); sent != len(tt.faces) {
				t.Errorf("requests sent = %d, want %d", sent, len(tt.faces))
			}
		})
	}
}

func TestSubmitAndGet(t *testing.T) {
	faces, labels := loadFaces(t)
	for _, field := range []string{"file", "myfile", "inputFile"} {
		t.Run(field, func(t *testing.T) {
			h := newHarness(t, testConfig(), nil, labels)
			f := faces[3]
			a := h.submit(t, field, f)
			if want := StatusPath(a.ID); a.StatusURL != want {
				t.Errorf("status_url = %q, want %q", a.StatusURL, want)
			}

			// No worker yet: pending, with what the input records.
			rec := h.recognition(t, a.StatusURL)
			if rec.Status != elastiq.StatusPending || rec.FileName != f.name || rec.Timings.SubmittedAt.IsZero() {
				t.Errorf("GET before work = %+v, want pending %s with submitted_at", rec, f.name)
			}
			obj, err := h.store.Head(context.Background(), elastiq.InputKey(a.ID))
			if err != nil || obj.ContentType != "image/jpeg" || obj.Metadata[elastiq.MetaFileName] != f.name {
				t.Errorf("stored input = %+v, %v; want image/jpeg named %s", obj, err, f.name)
			}

			h.worker.start(t, 1)
			rec = h.recognition(t, a.StatusURL+"?wait=30s")
			if rec.Status != elastiq.StatusDone || rec.Label != f.label || rec.Worker == "" {
				t.Fatalf("GET ?wait=30s = %+v, want done %s by a worker", rec, f.label)
			}
			tm := rec.Timings
			if tm.StartedAt.IsZero() || tm.FinishedAt.IsZero() || tm.QueueMS == nil || tm.ClassifyMS == nil || tm.TotalMS == nil {
				t.Errorf("timings = %+v, want all set", tm)
			} else if *tm.ClassifyMS != 1 {
				t.Errorf("classify_ms = %v, want 1", *tm.ClassifyMS)
			}
		})
	}
}

// TestGetWaitWakes checks that a long poll returns the moment the result
// arrives, well before its wait ends.
func TestGetWaitWakes(t *testing.T) {
	faces, labels := loadFaces(t)
	h := newHarness(t, testConfig(), nil, labels)
	a := h.submit(t, "file", faces[0])
	got := make(chan Recognition, 1)
	go func() {
		r, err := h.send(http.MethodGet, a.StatusURL+"?wait=60s", "", nil)
		if err != nil {
			t.Error(err)
		}
		rec, err := decodeRecognition(r)
		if err != nil {
			t.Error(err)
		}
		got <- rec
	}()
	elastiqtest.Eventually(t, "the GET to wait", func() bool { return h.srv.hub.waiters() == 1 })
	h.worker.start(t, 1)
	select {
	case rec := <-got:
		if rec.Status != elastiq.StatusDone || rec.Label != faces[0].label {
			t.Errorf("GET ?wait=60s = %+v, want done %s", rec, faces[0].label)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("GET ?wait=60s still waiting 30s after the result was sent")
	}
}

func TestGetLookupOrder(t *testing.T) {
	ctx := context.Background()
	id := elastiq.NewRequestID(time.Now())
	result := elastiq.Result{ID: id, FileName: "test_07.jpg", Status: elastiq.StatusDone, Label: "Bill",
		SubmittedAt: time.Now().Add(-time.Second), StartedAt: time.Now(), FinishedAt: time.Now()}
	encoded, err := elastiq.EncodeResult(result)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("output only, backfills the cache", func(t *testing.T) {
		h := newHarness(t, testConfig(), nil, nil)
		if err := h.store.Put(ctx, elastiq.OutputKey(id), elastiq.Object{Body: encoded}); err != nil {
			t.Fatal(err)
		}
		rec := h.recognition(t, StatusPath(id))
		if rec.Status != elastiq.StatusDone || rec.Label != "Bill" || rec.FileName != "test_07.jpg" {
			t.Errorf("GET = %+v, want done Bill for test_07.jpg", rec)
		}
		cached, err := h.cache.Get(ctx, ResultCacheKey(id))
		if err != nil || string(cached) != string(encoded) {
			t.Errorf("cache after GET = %q, %v; want the result", cached, err)
		}
	})
	t.Run("cache only", func(t *testing.T) {
		h := newHarness(t, testConfig(), nil, nil)
		if err := h.cache.Set(ctx, ResultCacheKey(id), encoded, time.Hour); err != nil {
			t.Fatal(err)
		}
		if rec := h.recognition(t, StatusPath(id)); rec.Label != "Bill" {
			t.Errorf("GET = %+v, want Bill", rec)
		}
	})
	t.Run("cache failing falls back to output", func(t *testing.T) {
		h := newHarness(t, testConfig(), nil, nil)
		if err := h.store.Put(ctx, elastiq.OutputKey(id), elastiq.Object{Body: encoded}); err != nil {
			t.Fatal(err)
		}
		h.cache.set(func(c *fakeCache) { c.getErr, c.setErr = errors.New("cache down"), errors.New("cache down") })
		if rec := h.recognition(t, StatusPath(id)); rec.Label != "Bill" {
			t.Errorf("GET = %+v, want Bill", rec)
		}
	})
	t.Run("cached result of another id is ignored", func(t *testing.T) {
		h := newHarness(t, testConfig(), nil, nil)
		other := elastiq.NewRequestID(time.Now())
		if err := h.cache.Set(ctx, ResultCacheKey(other), encoded, time.Hour); err != nil {
			t.Fatal(err)
		}
		if r := h.get(t, StatusPath(other)); r.status != http.StatusNotFound {
			t.Errorf("GET %s with a cached result of %s = %d %q, want 404", other, id, r.status, r.body)
		}
	})

	errorCases := []struct {
		name       string
		path       string
		setup      func(h *harness)
		wantStatus int
		wantMsg    string
	}{
		{name: "unknown id", path: StatusPath(id), wantStatus: http.StatusNotFound, wantMsg: "no recognition request " + string(id)},
		{name: "malformed id", path: "/v1/recognitions/test_00.jpg", wantStatus: http.StatusBadRequest, wantMsg: "malformed request id"},
		{name: "bad wait", path: StatusPath(id) + "?wait=soon", wantStatus: http.StatusBadRequest, wantMsg: "wait"},
		{name: "negative wait", path: StatusPath(id) + "?wait=-1s", wantStatus: http.StatusBadRequest, wantMsg: "wait"},
		{name: "store down", path: StatusPath(id), wantStatus: http.StatusServiceUnavailable, wantMsg: "could not read the result store",
			setup: func(h *harness) { h.store.SetGetErr(errors.New("disk on fire")) }},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testConfig(), nil, nil)
			if tt.setup != nil {
				tt.setup(h)
			}
			r := h.get(t, tt.path)
			msg, err := decodeJSONError(r)
			if r.status != tt.wantStatus || err != nil || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("GET %s = %d %q (%v), want %d with JSON error containing %q", tt.path, r.status, r.body, err, tt.wantStatus, tt.wantMsg)
			}
			if strings.Contains(r.body, "disk on fire") {
				t.Errorf("GET %s = %q leaks the internal error", tt.path, r.body)
			}
		})
	}
}

// TestSyncTimeout: a request not answered within SyncTimeout gets 504 with
// its ID and status URL, and its result can still be fetched.
func TestSyncTimeout(t *testing.T) {
	faces, labels := loadFaces(t)
	cfg := testConfig()
	cfg.SyncTimeout = 200 * time.Millisecond
	h := newHarness(t, cfg, nil, labels)
	f := faces[5]
	r := h.upload(t, "/", "inputFile", f.name, f.data)
	id := elastiq.RequestID(r.header.Get("X-Request-Id"))
	if r.status != http.StatusGatewayTimeout || id == "" ||
		!strings.Contains(r.body, string(id)) || !strings.Contains(r.body, StatusPath(id)) {
		t.Fatalf("POST / with no worker = %d %q (id %q), want 504 naming the id and %s", r.status, r.body, id, StatusPath(id))
	}
	if h.srv.hub.waiters() != 0 {
		t.Errorf("waiters after 504 = %d, want 0", h.srv.hub.waiters())
	}
	h.worker.start(t, 1)
	rec := h.recognition(t, StatusPath(id)+"?wait=30s")
	if rec.Status != elastiq.StatusDone || rec.Label != f.label {
		t.Errorf("GET after 504 = %+v, want done %s", rec, f.label)
	}
}

// TestFailedResult: a classification failure answers 500 on POST / with the
// worker's reason, and "failed" on GET.
func TestFailedResult(t *testing.T) {
	faces, _ := loadFaces(t)
	h := newHarness(t, testConfig(), nil, map[[32]byte]string{}) // the worker knows no face
	h.worker.start(t, 1)
	f := faces[0]
	r := h.upload(t, "/", "myfile", f.name, f.data)
	id := r.header.Get("X-Request-Id")
	want := "could not recognise test_00.jpg (request " + id + "): no face found"
	if r.status != http.StatusInternalServerError || !strings.Contains(r.body, want) {
		t.Errorf("POST / = %d %q, want 500 containing %q", r.status, r.body, want)
	}
	rec := h.recognition(t, StatusPath(elastiq.RequestID(id)))
	if rec.Status != elastiq.StatusFailed || rec.Error != "no face found" || rec.Label != "" {
		t.Errorf("GET = %+v, want failed with error %q", rec, "no face found")
	}
}

// TestClientDisconnect: a client that leaves stops waiting, and its request
// still completes and can be fetched.
func TestClientDisconnect(t *testing.T) {
	faces, labels := loadFaces(t)
	h := newHarness(t, testConfig(), nil, labels)
	f := faces[2]
	body, ct := multipartBody("myfile", f.name, f.data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		h.srv.ServeHTTP(rec, req)
		close(done)
	}()
	elastiqtest.Eventually(t, "the request to be sent", func() bool { sent, _ := h.requests.counts(); return sent == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ServeHTTP still waiting 30s after the client went away")
	}
	if rec.Code != statusClientClosed {
		t.Errorf("status after disconnect = %d, want %d", rec.Code, statusClientClosed)
	}
	id := elastiq.RequestID(rec.Header().Get("X-Request-Id"))
	h.worker.start(t, 1)
	got := h.recognition(t, StatusPath(id)+"?wait=30s")
	if got.Status != elastiq.StatusDone || got.Label != f.label {
		t.Errorf("GET after disconnect = %+v, want done %s", got, f.label)
	}
}

func TestHealthz(t *testing.T) {
	h := newHarness(t, testConfig(), nil, nil)
	if r := h.get(t, "/healthz"); r.status != http.StatusOK || r.body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", r.status, r.body)
	}
}

func TestNewRejects(t *testing.T) {
	q, s, c := newFakeQueue(), elastiqtest.NewStore(), newFakeCache()
	bad := DefaultConfig()
	bad.SyncTimeout = 0
	tests := []struct {
		name string
		cfg  Config
		deps Deps
	}{
		{name: "invalid config", cfg: bad, deps: Deps{Requests: q, Responses: q, Store: s, Cache: c}},
		{name: "no request queue", cfg: DefaultConfig(), deps: Deps{Responses: q, Store: s, Cache: c}},
		{name: "no response queue", cfg: DefaultConfig(), deps: Deps{Requests: q, Store: s, Cache: c}},
		{name: "no store", cfg: DefaultConfig(), deps: Deps{Requests: q, Responses: q, Cache: c}},
		{name: "no cache", cfg: DefaultConfig(), deps: Deps{Requests: q, Responses: q, Store: s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, tt.deps); err == nil {
				t.Errorf("New(%s) = nil error, want an error", tt.name)
			}
		})
	}
}
