package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// harness is a Server on fake backends, serving on loopback.
type harness struct {
	srv       *Server
	url       string
	requests  *fakeQueue
	responses *fakeQueue
	store     *elastiqtest.Store
	cache     *fakeCache
	worker    *fakeWorker
}

// testConfig is DefaultConfig with a short receive wait, so that tests end
// quickly; waits that a test does not exercise stay generous.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ReceiveWait = 200 * time.Millisecond
	return cfg
}

// newHarness serves a Server with fleet (if not nil) and labels for the
// fake worker; opts change its Deps before New.
func newHarness(t testing.TB, cfg Config, fleet InstanceLister, labels map[[32]byte]string, opts ...func(*Deps)) *harness {
	t.Helper()
	h := &harness{
		requests:  newFakeQueue(),
		responses: newFakeQueue(),
		store:     elastiqtest.NewStore(),
		cache:     newFakeCache(),
	}
	h.worker = &fakeWorker{requests: h.requests, responses: h.responses, store: h.store, labels: labels}
	deps := Deps{Requests: h.requests, Responses: h.responses, Store: h.store, Cache: h.cache}
	if fleet != nil {
		deps.Fleet = fleet
	}
	for _, o := range opts {
		o(&deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New(...) error: %v", err)
	}
	h.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v, want nil", err)
		}
	})
	return h
}

// face is one image of the CSE546 workload with its expected label.
type face struct {
	name  string // test_00.jpg
	label string
	data  []byte
}

// loadFaces reads the CSE546 workload bundled in the repository.
func loadFaces(t testing.TB) ([]face, map[[32]byte]string) {
	t.Helper()
	var faces []face
	labels := make(map[[32]byte]string)
	for _, img := range elastiqtest.Workload(t) {
		faces = append(faces, face{name: img.Name, label: img.Label, data: img.Data})
		labels[sha256.Sum256(img.Data)] = img.Label
	}
	return faces, labels
}

// distinctFaces makes n small PNGs that all differ, labelled person-NN, so
// that a bare-label answer identifies the image it belongs to.
func distinctFaces(t testing.TB, n int) ([]face, map[[32]byte]string) {
	t.Helper()
	var faces []face
	labels := make(map[[32]byte]string)
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 8, 8))
		img.SetGray(i%8, i/8%8, color.Gray{Y: uint8(1 + i)})
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatalf("encode png: %v", err)
		}
		f := face{name: fmt.Sprintf("gen_%02d.png", i), label: fmt.Sprintf("person-%02d", i), data: buf.Bytes()}
		faces = append(faces, f)
		labels[sha256.Sum256(f.data)] = f.label
	}
	return faces, labels
}

// multipartBody is a form with one file part. Writing to a bytes.Buffer
// cannot fail, so neither can it.
func multipartBody(field, fileName string, data []byte) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, fileName)
	if err == nil {
		_, err = fw.Write(data)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		panic(fmt.Sprintf("build multipart body: %v", err))
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// reply is an HTTP answer read in full.
type reply struct {
	status int
	header http.Header
	body   string
}

// send does an HTTP request; safe to call from any goroutine.
func (h *harness) send(method, path, contentType string, body []byte) (reply, error) {
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("read %s %s: %w", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// tryUpload posts a one-file form; safe to call from any goroutine.
func (h *harness) tryUpload(path, field, fileName string, data []byte) (reply, error) {
	body, ct := multipartBody(field, fileName, data)
	return h.send(http.MethodPost, path, ct, body)
}

func (h *harness) upload(t testing.TB, path, field, fileName string, data []byte) reply {
	t.Helper()
	r, err := h.tryUpload(path, field, fileName, data)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (h *harness) get(t testing.TB, path string) reply {
	t.Helper()
	r, err := h.send(http.MethodGet, path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// submit uploads to /v1/recognitions and returns the accepted ID.
func (h *harness) submit(t testing.TB, field string, f face) Accepted {
	t.Helper()
	r := h.upload(t, "/v1/recognitions", field, f.name, f.data)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /v1/recognitions = %d %q, want 202", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc == "" {
		t.Errorf("POST /v1/recognitions Location header is empty, want the status path")
	}
	var a Accepted
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("decode accepted %q: %v", r.body, err)
	}
	return a
}

// recognition GETs a status path and decodes it, expecting 200.
func (h *harness) recognition(t testing.TB, path string) Recognition {
	t.Helper()
	rec, err := decodeRecognition(h.get(t, path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return rec
}

// concurrently runs f(i) for i in [0, n) at once and waits for all.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

func decodeRecognition(r reply) (Recognition, error) {
	var rec Recognition
	if r.status != http.StatusOK {
		return rec, fmt.Errorf("status %d %q, want 200", r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), &rec); err != nil {
		return rec, fmt.Errorf("decode recognition %q: %w", r.body, err)
	}
	return rec, nil
}

// decodeJSONError reads a /v1 error answer: JSON {"error": ...}.
func decodeJSONError(r reply) (string, error) {
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		return "", fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == nil {
		return "", fmt.Errorf("body %q is not {\"error\": ...}", r.body)
	}
	return *e.Error, nil
}
