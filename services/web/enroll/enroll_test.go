package enroll

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
)

// fakeGallery is a test double of the web tier's enrolment route: 201 for
// a photo, 400 for one whose bytes say "noface", 503 while down[path] > 0.
type fakeGallery struct {
	mu    sync.Mutex
	down  map[string]int // file name -> 503s left
	posts map[string]int // subject/file -> uploads
	query []string
}

func (g *fakeGallery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f, h, err := r.FormFile("file")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	data := make([]byte, 64)
	n, _ := f.Read(data)
	subject := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/subjects/"), "/faces")
	g.mu.Lock()
	g.posts[subject+"/"+h.Filename]++
	g.query = append(g.query, r.URL.RawQuery)
	down := g.down[h.Filename]
	if down > 0 {
		g.down[h.Filename]--
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case down > 0:
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"error": "try again"})
	case string(data[:n]) == "noface":
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": h.Filename + " not enrolled: no face found in the image"})
	default:
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": elastiq.NewRequestID(time.Now()), "subject": subject})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRun enrols a folder against the double: every photo once, a refusal
// with its reason, a retried outage, a bad subject name refused without a
// call, and a second run that sends only what the first could not.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	for path, content := range map[string]string{
		"Amy/1.jpg": "amy", "Amy/2.JPEG": "amy too", "Bob/1.png": "bob", "Cat/face.jpg": "noface",
		"Dan/1.jpg": "dan", "bad name/1.jpg": "x", "Amy/notes.txt": "not a photo", ".hidden/1.jpg": "x",
	} {
		writeFile(t, filepath.Join(dir, path), content)
	}
	g := &fakeGallery{down: map[string]int{"1.png": 2, "1.jpg": 0}, posts: map[string]int{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	var progress strings.Builder
	o := Options{URL: srv.URL, Token: "tok", Dir: dir, State: filepath.Join(t.TempDir(), "state"),
		Concurrency: 3, Attempts: 3, Largest: true, Progress: &progress}

	g.down["1.jpg"] = 100 // Amy/1, Dan/1 and the bad name's: down for the whole first run
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Photos: 6, Enrolled: 2, Refused: 2, Failed: 2}
	if rep.Photos != want.Photos || rep.Enrolled != want.Enrolled || rep.Refused != want.Refused || rep.Failed != want.Failed {
		t.Errorf("first run = %+v, want photos 6, enrolled 2 (Amy/2, Bob/1 after two 503s), refused 2, failed 2", rep)
	}
	if len(rep.Refusals) != 2 || !strings.HasPrefix(rep.Refusals[0], "Cat/face.jpg: face.jpg not enrolled: no face found") ||
		!strings.HasPrefix(rep.Refusals[1], "bad name/1.jpg: subject name") {
		t.Errorf("refusals = %q", rep.Refusals)
	}
	if g.posts["Bob/1.png"] != 3 || g.posts["bad name/1.jpg"] != 0 || g.posts["Amy/1.jpg"] != 3 {
		t.Errorf("uploads = %v; want Bob/1.png 3 (two 503s), Amy/1.jpg 3 (every attempt), none for the bad name", g.posts)
	}
	if !strings.Contains(progress.String(), "4/6") && !strings.Contains(progress.String(), "6/6") {
		t.Errorf("progress = %q, want a line with the count", progress.String())
	}

	// The outage is over: a second run sends Amy/1 and Dan/1 only.
	g.mu.Lock()
	g.down["1.jpg"] = 0
	clear(g.posts)
	g.mu.Unlock()
	rep, err = Run(context.Background(), o)
	if err != nil || rep.Enrolled != 2 || rep.Skipped != 4 || rep.Failed != 0 {
		t.Errorf("second run = %+v, %v; want 2 enrolled, 4 skipped", rep, err)
	}
	if len(g.posts) != 2 || g.posts["Amy/1.jpg"] != 1 || g.posts["Dan/1.jpg"] != 1 {
		t.Errorf("second run's uploads = %v, want Amy/1.jpg and Dan/1.jpg once", g.posts)
	}
	for _, q := range g.query {
		if q != "face=largest" {
			t.Fatalf("query %q, want face=largest", q)
		}
	}
	// With -retry-refused, the refused photo is sent again.
	o.RetryRefused = true
	if rep, err = Run(context.Background(), o); err != nil || rep.Refused != 2 || rep.Skipped != 4 {
		t.Errorf("run with RetryRefused = %+v, %v; want the 2 refused sent again", rep, err)
	}
}
