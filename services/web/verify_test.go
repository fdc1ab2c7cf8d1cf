package web

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"testing"

	"github.com/elastiq/elastiq/services/elastiq"
)

// pairBody is a multipart form with a file in each of the given fields.
func pairBody(t *testing.T, files map[string]face) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for field, f := range files {
		fw, err := mw.CreateFormFile(field, f.name)
		if err == nil {
			_, err = fw.Write(f.data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// TestVerify: POST /v1/verify answers same or different once a worker has
// compared the two images; GET shows the verification; a form without both
// files, or with a bad threshold, is refused with nothing stored; the
// request's metadata lets recovery run it again as a verification.
func TestVerify(t *testing.T) {
	faces, labels := loadFaces(t)
	h := newHarness(t, testConfig(), nil, labels)
	h.worker.start(t, 1)
	var paul, paulAgain, bob face
	for _, f := range faces {
		switch {
		case f.label == "Paul" && paul.data == nil:
			paul = f
		case f.label == "Paul" && paulAgain.data == nil:
			paulAgain = f
		case f.label == "Bob" && bob.data == nil:
			bob = f
		}
	}
	for _, tt := range []struct {
		name          string
		first, second face
		same          bool
	}{
		{"same person", paul, paulAgain, true},
		{"different people", paul, bob, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := pairBody(t, map[string]face{"first": tt.first, "second": tt.second})
			r, err := h.send(http.MethodPost, "/v1/verify", ct, body)
			if err != nil {
				t.Fatal(err)
			}
			var v Verified
			if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &v) != nil {
				t.Fatalf("POST /v1/verify = %d %q, want 200 with JSON", r.status, r.body)
			}
			if v.Same != tt.same || v.ID == "" || v.StatusURL != StatusPath(v.ID) {
				t.Errorf("POST /v1/verify = %+v, want same %v with its id and status URL", v, tt.same)
			}
			rec := h.recognition(t, StatusPath(v.ID))
			if rec.Verification == nil || rec.Verification.Same != tt.same || rec.Label != map[bool]string{true: "same", false: "different"}[tt.same] {
				t.Errorf("GET %s = %+v, want the verification", StatusPath(v.ID), rec)
			}
			obj, err := h.store.Head(t.Context(), elastiq.InputKey(v.ID))
			if err != nil {
				t.Fatal(err)
			}
			req, err := elastiq.RequestFromInput(elastiq.InputKey(v.ID), obj)
			if err != nil || req.Kind != elastiq.KindVerify || req.SecondKey != elastiq.SecondInputKey(v.ID) {
				t.Errorf("request from the stored input = %+v, %v; want a verification with its second key", req, err)
			}
		})
	}

	sentBefore, _ := h.requests.counts()
	one, ct := pairBody(t, map[string]face{"first": paul})
	for _, tt := range []struct {
		name, path, ct string
		body           []byte
		want           string
	}{
		{"one file", "/v1/verify", ct, one, `want two form file fields, "first" and "second"`},
		{"bad threshold", "/v1/verify?threshold=2", ct, one, "threshold"},
	} {
		r, err := h.send(http.MethodPost, tt.path, tt.ct, tt.body)
		if err != nil {
			t.Fatal(err)
		}
		checkErrorReply(t, tt.name, true, r, http.StatusBadRequest, tt.want)
	}
	if sent, _ := h.requests.counts(); sent != sentBefore {
		t.Errorf("requests sent after refused verifications = %d, want %d", sent, sentBefore)
	}
	if r := h.get(t, "/v1/verify"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/verify = %d, want 405", r.status)
	}
}
