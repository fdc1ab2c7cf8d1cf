package web

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/gif"
	_ "image/jpeg" // for the truncated JPEG header check
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// pngHeader is the start of a PNG whose header declares w×h pixels: enough
// for image.DecodeConfig, with no pixel data at all.
func pngHeader(w, h uint32) []byte {
	var ihdr bytes.Buffer
	ihdr.WriteString("IHDR")
	_ = binary.Write(&ihdr, binary.BigEndian, w)
	_ = binary.Write(&ihdr, binary.BigEndian, h)
	ihdr.Write([]byte{8, 2, 0, 0, 0}) // 8-bit RGB, no interlace
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	_ = binary.Write(&b, binary.BigEndian, uint32(ihdr.Len()-4))
	b.Write(ihdr.Bytes())
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr.Bytes()))
	return b.Bytes()
}

func gifImage(t *testing.T) []byte {
	var b bytes.Buffer
	if err := gif.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 4)), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// twoPartForm is a form with a text field, then a file.
func twoPartForm(otherValue string, field, fileName string, data []byte) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("other", otherValue)
	fw, _ := mw.CreateFormFile(field, fileName)
	_, _ = fw.Write(data)
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// TestBadUploads checks every refused upload on both upload routes: its
// status, its message in the route's format, and that nothing was stored
// or sent.
func TestBadUploads(t *testing.T) {
	faces, _ := loadFaces(t)
	jpg := faces[0].data
	truncated := jpg[:len(jpg)/2]
	bomb := elastiqtest.DecodeBomb(t, 7071, 7071) // 50 MP, within MaxImagePixels
	if _, _, err := image.DecodeConfig(bytes.NewReader(truncated)); err != nil {
		t.Fatalf("the truncated JPEG's header must still decode for this case to test the full decode: %v", err)
	}
	const limit = 1024
	if len(jpg) <= limit {
		t.Fatalf("test image is %d bytes, want more than the test limit %d", len(jpg), limit)
	}
	form := func(field, name string, data []byte) func() ([]byte, string) {
		return func() ([]byte, string) { return multipartBody(field, name, data) }
	}
	tests := []struct {
		name       string
		body       func() ([]byte, string)
		maxUpload  int64
		wantStatus int
		wantMsg    map[string]string // by path; "" for both
	}{
		{name: "missing field", body: form("picture", "test_00.jpg", jpg), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{
				"/":                `missing form file field "myfile" (or inputFile)`,
				"/v1/recognitions": `missing form file field "file" (or myfile, inputFile)`,
			}},
		{name: "empty file", body: form("myfile", "test_00.jpg", nil), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": `empty file "test_00.jpg" in form field "myfile"`}},
		{name: "file over the limit", body: form("myfile", "test_00.jpg", jpg), maxUpload: limit,
			wantStatus: http.StatusRequestEntityTooLarge, wantMsg: map[string]string{"": "upload larger than the limit of 1024 bytes"}},
		{name: "body over the limit", body: form("myfile", "big.jpg", bytes.Repeat([]byte{0xff}, 200<<10)), maxUpload: limit,
			wantStatus: http.StatusRequestEntityTooLarge, wantMsg: map[string]string{"": "upload larger than the limit"}},
		{name: "not multipart", body: func() ([]byte, string) { return []byte(`{"image":"..."}`), "application/json" },
			wantStatus: http.StatusBadRequest, wantMsg: map[string]string{"": "want a multipart/form-data upload"}},
		{name: "malformed multipart", body: func() ([]byte, string) {
			b, ct := multipartBody("myfile", "test_00.jpg", jpg)
			return b[:len(b)/2], ct
		}, wantStatus: http.StatusBadRequest, wantMsg: map[string]string{"": "malformed multipart body"}},
		{name: "not an image", body: form("myfile", "notes.jpg", []byte("hello, world")), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "notes.jpg is not a decodable JPEG or PNG image"}},
		{name: "gif", body: form("myfile", "anim.gif", gifImage(t)), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "anim.gif is not a decodable JPEG or PNG image"}},
		{name: "truncated jpeg", body: form("myfile", "test_00.jpg", truncated), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "test_00.jpg is not a decodable JPEG or PNG image"}},
		{name: "header only png", body: form("myfile", "tiny.png", pngHeader(64, 64)), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "tiny.png is not a decodable JPEG or PNG image"}},
		{name: "absurd width", body: form("myfile", "wide.png", pngHeader(30000, 10)), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "wide.png declares 30000x10 pixels"}},
		{name: "absurd area", body: form("myfile", "huge.png", pngHeader(10000, 6000)), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "huge.png declares 10000x6000 pixels"}},
		{name: "decode bomb", body: form("myfile", "bomb.png", bomb), wantStatus: http.StatusBadRequest,
			wantMsg: map[string]string{"": "bomb.png (7071x7071 16-bit RGBA PNG) needs 524 MiB to decode; the limit is 512 MiB"}},
	}
	for _, tt := range tests {
		for _, path := range []string{"/", "/v1/recognitions"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				cfg := testConfig()
				if tt.maxUpload > 0 {
					cfg.MaxUploadBytes = tt.maxUpload
				}
				h := newHarness(t, cfg, nil, nil)
				body, ct := tt.body()
				r, err := h.send(http.MethodPost, path, ct, body)
				if err != nil {
					t.Fatal(err)
				}
				want, ok := tt.wantMsg[path]
				if !ok {
					want = tt.wantMsg[""]
				}
				checkErrorReply(t, "POST "+path, path != "/", r, tt.wantStatus, want)
				if sent, _ := h.requests.counts(); sent != 0 || h.store.Puts() != 0 {
					t.Errorf("after POST %s: %d requests sent, %d objects stored; want none", path, sent, h.store.Puts())
				}
			})
		}
	}
}

// TestStreamedBodyOverLimit sends a body of unknown length (chunked) whose
// first, non-file part is too big: the body cap must stop it.
func TestStreamedBodyOverLimit(t *testing.T) {
	faces, _ := loadFaces(t)
	cfg := testConfig()
	cfg.MaxUploadBytes = 4096
	h := newHarness(t, cfg, nil, nil)
	body, ct := twoPartForm(strings.Repeat("x", 1<<20), "myfile", faces[0].name, faces[0].data)
	req := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(bytes.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST / with a 1 MiB field = %d %q, want 413", rec.Code, rec.Body.String())
	}
	if sent, _ := h.requests.counts(); sent != 0 {
		t.Errorf("requests sent = %d, want 0", sent)
	}
}

// TestOtherPartsSkipped: small fields before the file are skipped.
func TestOtherPartsSkipped(t *testing.T) {
	faces, labels := loadFaces(t)
	h := newHarness(t, testConfig(), nil, labels)
	h.worker.start(t, 1)
	body, ct := twoPartForm("hello", "inputFile", "dir/"+faces[4].name, faces[4].data)
	r, err := h.send(http.MethodPost, "/", ct, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "test_04:" + faces[4].label; r.status != http.StatusOK || r.body != want {
		t.Errorf("POST / = %d %q, want 200 %q", r.status, r.body, want)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	id := "0000000000000000000000000a"
	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
		jsonError    bool
	}{
		{method: http.MethodGet, path: "/", wantStatus: http.StatusMethodNotAllowed, wantAllow: "POST"},
		{method: http.MethodPut, path: "/", wantStatus: http.StatusMethodNotAllowed, wantAllow: "POST"},
		{method: http.MethodGet, path: "/v1/recognitions", wantStatus: http.StatusMethodNotAllowed, wantAllow: "POST", jsonError: true},
		{method: http.MethodDelete, path: "/v1/recognitions/" + id, wantStatus: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD", jsonError: true},
		{method: http.MethodPost, path: "/healthz", wantStatus: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD"},
		{method: http.MethodGet, path: "/nope", wantStatus: http.StatusNotFound},
	}
	h := newHarness(t, testConfig(), nil, nil)
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r, err := h.send(tt.method, tt.path, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != tt.wantStatus || r.header.Get("Allow") != tt.wantAllow {
				t.Errorf("%s %s = %d Allow %q, want %d Allow %q", tt.method, tt.path, r.status, r.header.Get("Allow"), tt.wantStatus, tt.wantAllow)
			}
			if tt.jsonError {
				if _, err := decodeJSONError(r); err != nil {
					t.Errorf("%s %s: %v", tt.method, tt.path, err)
				}
			}
		})
	}
}

// TestBackendFailures: when the store or the queue fails, the upload is
// answered 503 and is not reported as accepted.
func TestBackendFailures(t *testing.T) {
	faces, _ := loadFaces(t)
	tests := []struct {
		name     string
		breakIt  func(h *harness)
		wantMsg  string
		wantSent int
	}{
		{name: "store fails", wantMsg: "could not store the upload, so it was not accepted; try again",
			breakIt: func(h *harness) { h.store.SetPutErr(errors.New("disk full")) }},
		{name: "queue fails", wantMsg: "could not queue the request, so it was not accepted; try again",
			breakIt: func(h *harness) { h.requests.set(func(q *fakeQueue) { q.sendErr = errors.New("queue gone") }) }},
	}
	for _, tt := range tests {
		for _, path := range []string{"/", "/v1/recognitions"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				h := newHarness(t, testConfig(), nil, nil)
				tt.breakIt(h)
				r := h.upload(t, path, "myfile", faces[0].name, faces[0].data)
				checkErrorReply(t, "POST "+path, path != "/", r, http.StatusServiceUnavailable, tt.wantMsg)
				// The ID it was given, for the client to quote and on
				// the error's log line.
				if _, err := elastiq.ParseRequestID(r.header.Get("X-Request-Id")); err != nil {
					t.Errorf("POST %s X-Request-Id = %q, want the ID the request was given: %v", path, r.header.Get("X-Request-Id"), err)
				}
				for _, internal := range []string{"disk full", "queue gone"} {
					if strings.Contains(r.body, internal) {
						t.Errorf("POST %s = %q leaks the internal error %q", path, r.body, internal)
					}
				}
				if sent, _ := h.requests.counts(); sent != 0 {
					t.Errorf("requests sent = %d, want 0", sent)
				}
				if n := h.srv.hub.waiters(); n != 0 {
					t.Errorf("waiters left = %d, want 0", n)
				}
				if keys, _ := h.store.List(t.Context(), elastiq.InputPrefix); len(keys) != 0 {
					t.Errorf("inputs kept = %v, want none (a refused upload must not be recovered later)", keys)
				}
			})
		}
	}
}

// checkErrorReply checks an error answer: status, and the message in plain
// text or in JSON {"error": ...}.
func checkErrorReply(t *testing.T, what string, jsonError bool, r reply, wantStatus int, wantMsg string) {
	t.Helper()
	msg := r.body
	if jsonError {
		var err error
		if msg, err = decodeJSONError(r); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	} else if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("%s Content-Type = %q, want text/plain", what, ct)
	}
	if r.status != wantStatus || !strings.Contains(msg, wantMsg) {
		t.Errorf("%s = %d %q, want %d with %q", what, r.status, msg, wantStatus, wantMsg)
	}
}

// TestFileNames: a name longer than MaxFileName is refused before anything
// is stored; control characters and invalid UTF-8 in a name are stored and
// echoed back as "_", and the plain-text answer is marked nosniff.
func TestFileNames(t *testing.T) {
	faces, labels := loadFaces(t)
	h := newHarness(t, testConfig(), nil, labels)
	h.worker.start(t, 1)
	f := faces[0]

	long := strings.Repeat("n", MaxFileName-3) + "x.jpg"
	r := h.upload(t, "/", "inputFile", long, f.data)
	checkErrorReply(t, "POST / with a long name", false, r, http.StatusBadRequest, "file name of")
	if sent, _ := h.requests.counts(); sent != 0 {
		t.Fatalf("requests sent = %d, want 0", sent)
	}

	for _, tt := range []struct{ name, want string }{
		{"tab\there.jpg", "tab_here"},
		{"bad\xffutf8.jpg", "bad_utf8"},
		{"Zoë.jpg", "Zoë"},
		// RFC 2231's encoded form carries any byte: an escape sequence.
		{"filename*=UTF-8''ok%1B%5B31mred.jpg", "ok_[31mred"},
		{"filename*=UTF-8''line%0Abreak.jpg", "line_break"},
	} {
		var r reply
		if encoded, ok := strings.CutPrefix(tt.name, "filename*="); ok {
			body := "--b\r\nContent-Disposition: form-data; name=\"inputFile\"; filename*=" + encoded +
				"\r\nContent-Type: image/jpeg\r\n\r\n" + string(f.data) + "\r\n--b--\r\n"
			var err error
			if r, err = h.send(http.MethodPost, "/", "multipart/form-data; boundary=b", []byte(body)); err != nil {
				t.Fatal(err)
			}
		} else {
			r = h.upload(t, "/", "inputFile", tt.name, f.data)
		}
		if r.status != http.StatusOK || r.body != tt.want+":"+f.label {
			t.Errorf("POST / inputFile %q = %d %q, want 200 %q", tt.name, r.status, r.body, tt.want+":"+f.label)
		}
		if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("POST / inputFile %q: X-Content-Type-Options = %q, want nosniff", tt.name, got)
		}
	}
}

// TestFailedRecognitionIsNotAnError: a recognition that fails on the
// client's image (no face found) is logged at INFO, a server failure at
// ERROR, so that one client cannot fill the log with errors.
func TestFailedRecognitionIsNotAnError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fail(errFailed, "could not recognise x.jpg: no face found"), "level=INFO msg=\"recognition failed\""},
		{failCause(errUnavailable, "could not store", errors.New("disk full")), "level=ERROR msg=\"request failed\""},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodPost, "/", nil), log, plainErrors, tt.err)
		if !strings.Contains(buf.String(), tt.want) {
			t.Errorf("writeError(%v) logged %q, want %s", tt.err, buf.String(), tt.want)
		}
	}
}
