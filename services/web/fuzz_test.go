package web

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzUpload feeds arbitrary multipart bodies to the upload path (reading
// the form, checking the image header): it must answer every one with an
// upload or a client error, never panic, hang or read past its limits.
// make test runs it for a fixed time; its corpus is in testdata/fuzz.
func FuzzUpload(f *testing.F) {
	faces, _ := loadFaces(f)
	for _, field := range []string{"myfile", "file"} {
		body, ct := multipartBody(field, faces[0].name, faces[0].data)
		f.Add(body, ct)
	}
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"myfile\"; filename*=UTF-8''a%1B.jpg\r\n\r\nxx\r\n--b--\r\n"),
		"multipart/form-data; boundary=b")
	f.Add(pngHeader(1<<20, 1<<20), "multipart/form-data; boundary=b")
	limits := imageLimits{maxSide: 20_000, maxPixels: 50_000_000, maxDecode: 512 << 20}
	const maxBytes = 1 << 20
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		u, err := readUpload(w, r, maxBytes, []string{"myfile", "file"}, "missing")
		if err != nil {
			if status := statusOf(err); status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
				t.Fatalf("readUpload error %v answers %d, want 400 or 413", err, status)
			}
			return
		}
		if len(u.body) == 0 || len(u.body) > maxBytes {
			t.Fatalf("upload of %d bytes, want 1 to %d", len(u.body), maxBytes)
		}
		if err := limits.check(&u); err != nil && statusOf(err) != http.StatusBadRequest {
			t.Fatalf("image check error %v answers %d, want 400", err, statusOf(err))
		}
	})
}
