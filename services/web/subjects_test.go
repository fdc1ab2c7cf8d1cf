package web

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

const testToken = "test-admin-token"

// adminSend is send with the admin token.
func (h *harness) adminSend(t *testing.T, method, path, contentType string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func decodeJSON[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("%q: %v", r.body, err)
	}
	return v
}

// TestSubjects walks the gallery's API on the fake backends: enrol (201,
// then 400 without a face), list with pages, one subject, delete a face and
// a subject, and the revision every later request carries.
func TestSubjects(t *testing.T) {
	faces, labels := loadFaces(t)
	cfg := testConfig()
	cfg.AdminToken = testToken
	h := newHarness(t, cfg, nil, labels)
	h.worker.start(t, 1)

	enrol := func(name string, f face) reply {
		t.Helper()
		body, ct := multipartBody("file", f.name, f.data)
		return h.adminSend(t, http.MethodPost, "/v1/subjects/"+name+"/faces", ct, body)
	}
	before := h.srv.revision.get()
	r := enrol("Zed", faces[0])
	if r.status != http.StatusCreated {
		t.Fatalf("enrol = %d %q, want 201", r.status, r.body)
	}
	e := decodeJSON[EnrolledFace](t, r)
	if e.Subject != "Zed" || e.ID == "" || r.header.Get("Location") != "/v1/subjects/Zed/faces/"+string(e.ID) {
		t.Errorf("enrol = %+v, Location %q", e, r.header.Get("Location"))
	}
	if _, err := h.store.Get(t.Context(), elastiq.FaceKey("Zed", e.ID)); err != nil {
		t.Errorf("the enrolled face is not stored: %v", err)
	}
	// A recognition sent after the 201 carries a revision newer than any
	// before the enrolment.
	h.submit(t, "file", faces[1])
	elastiqtest.Eventually(t, "the recognition handled with a newer revision", func() bool { return h.worker.lastRevision() > before })

	if r := enrol("Zed", face{name: "blank.png", data: blankPNG(t)}); r.status != http.StatusBadRequest ||
		!strings.Contains(r.body, "blank.png not enrolled: no face found in the image") {
		t.Errorf("enrol without a face = %d %q, want 400 with the reason", r.status, r.body)
	}
	for _, name := range []string{"Amy", "Bob", "Cat"} {
		if r := enrol(name, faces[2]); r.status != http.StatusCreated {
			t.Fatalf("enrol %s = %d %q", name, r.status, r.body)
		}
	}
	enrol("Amy", faces[3])

	page := decodeJSON[Subjects](t, h.adminSend(t, http.MethodGet, "/v1/subjects?limit=2", "", nil))
	if len(page.Subjects) != 2 || page.Subjects[0] != (Subject{Name: "Amy", Faces: 2}) || page.Subjects[1].Name != "Bob" || page.Next != "Bob" {
		t.Errorf("first page = %+v, want Amy (2 faces), Bob; next Bob", page)
	}
	page = decodeJSON[Subjects](t, h.adminSend(t, http.MethodGet, "/v1/subjects?limit=2&after=Bob", "", nil))
	if len(page.Subjects) != 2 || page.Subjects[0].Name != "Cat" || page.Subjects[1].Name != "Zed" || page.Next != "" {
		t.Errorf("second page = %+v, want Cat, Zed and no next", page)
	}
	d := decodeJSON[SubjectDetail](t, h.adminSend(t, http.MethodGet, "/v1/subjects/Amy", "", nil))
	if d.Name != "Amy" || len(d.Faces) != 2 || d.Faces[0].EnrolledAt.IsZero() || d.Faces[0].ID > d.Faces[1].ID {
		t.Errorf("GET /v1/subjects/Amy = %+v, want two faces, oldest first, with their times", d)
	}

	before = h.srv.revision.get()
	if r := h.adminSend(t, http.MethodDelete, "/v1/subjects/Amy/faces/"+string(d.Faces[0].ID), "", nil); r.status != http.StatusNoContent {
		t.Errorf("DELETE a face = %d %q, want 204", r.status, r.body)
	}
	if after := h.srv.revision.get(); after <= before {
		t.Errorf("the revision did not move on with a deletion: %s, then %s", before, after)
	}
	if r := h.adminSend(t, http.MethodDelete, "/v1/subjects/Amy/faces/"+string(d.Faces[0].ID), "", nil); r.status != http.StatusNotFound {
		t.Errorf("DELETE the face again = %d %q, want 404", r.status, r.body)
	}
	if r := h.adminSend(t, http.MethodDelete, "/v1/subjects/Bob", "", nil); r.status != http.StatusNoContent {
		t.Errorf("DELETE a subject = %d %q, want 204", r.status, r.body)
	}
	for path, want := range map[string]int{
		"/v1/subjects/Bob":      http.StatusNotFound,
		"/v1/subjects/no%20one": http.StatusBadRequest,
		"/v1/subjects/Amy":      http.StatusOK,
		"/v1/subjects?limit=0":  http.StatusBadRequest,
	} {
		if r := h.adminSend(t, http.MethodGet, path, "", nil); r.status != want {
			t.Errorf("GET %s = %d %q, want %d", path, r.status, r.body, want)
		}
	}
	if keys, _ := h.store.List(t.Context(), elastiq.GalleryFacesPrefix); len(keys) != 3 {
		t.Errorf("faces left: %q, want Amy's second, Cat's and Zed's", keys)
	}
}

// TestSubjectsNeedTheToken: the gallery's routes answer 401 without the
// right token, 403 when no token is configured; recognition stays open.
func TestSubjectsNeedTheToken(t *testing.T) {
	faces, labels := loadFaces(t)
	cfg := testConfig()
	cfg.AdminToken = testToken
	h := newHarness(t, cfg, nil, labels)
	h.worker.start(t, 1)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + testToken, testToken} {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/subjects", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET /v1/subjects with Authorization %q = %d (WWW-Authenticate %q), want 401, Bearer", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if r := h.upload(t, "/", "myfile", faces[0].name, faces[0].data); r.status != http.StatusOK {
		t.Errorf("POST / without a token = %d, want 200", r.status)
	}

	off := newHarness(t, testConfig(), nil, labels)
	if r := off.adminSend(t, http.MethodGet, "/v1/subjects", "", nil); r.status != http.StatusForbidden || !strings.Contains(r.body, "-admin-token") {
		t.Errorf("GET /v1/subjects with no token configured = %d %q, want 403 naming -admin-token", r.status, r.body)
	}
	if keys, _ := off.store.List(t.Context(), elastiq.GalleryFacesPrefix); len(keys) != 0 {
		t.Errorf("faces stored: %q", keys)
	}
}

// blankPNG is a valid image the fake worker finds no face in.
func blankPNG(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 16, 16))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRevisionBump: every change gets a revision later than the one before,
// also within one millisecond (where IDs compare by their random part).
func TestRevisionBump(t *testing.T) {
	var r revision
	now := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	prev := r.get()
	for i := range 1000 {
		r.bump(now) // the same instant every time
		if got := r.get(); got <= prev {
			t.Fatalf("bump %d: revision %s, not after %s", i, got, prev)
		}
		prev = r.get()
	}
}
