package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/web/enroll"
)

// startProgram runs the program with args and returns its URL and a stop
// function that waits for it to return.
func startProgram(t *testing.T, args []string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, &stdout, &stderr) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run() = %v, want nil; stderr:\n%s", err, stderr.String())
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-done:
			t.Fatalf("run() = %v before serving; stderr:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if m := servingRE.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 2m; stderr:\n%s", stderr.String())
		}
	}
}

// TestRunGallery: a person who is not in the folder's gallery is enrolled
// through the API with one photo; another photo of them, sent after the
// 201, is named; the enrolment survives a restart; after DELETE the photo
// is no longer named.
func TestRunGallery(t *testing.T) {
	models := elastiqtest.ModelDir(t, "fr_feature.onnx")
	root := elastiqtest.RepoRoot(t)
	lfw := filepath.Join(root, "datasets", "lfw-sample")
	data := t.TempDir()
	args := []string{"elastiq", "-addr", "127.0.0.1:0", "-data", data, "-models", models,
		"-gallery", elastiqtest.CSE546(t), "-gallery-cache", filepath.Join(data, "cache"), "-log-level", "warn",
		"-admin-token", "tok"}
	client := &http.Client{Timeout: 2 * time.Minute}
	query := filepath.Join(lfw, "queries", "Colin_Powell_0002.jpg")
	name := func(url string) string {
		t.Helper()
		got, code, err := upload(client, url+"/", "myfile", query)
		if err != nil || code != http.StatusOK {
			t.Fatalf("POST / %s = %d %q, %v", filepath.Base(query), code, got, err)
		}
		return got
	}
	admin := func(method, url string, body io.Reader, contentType string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer tok")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	url, stop := startProgram(t, args)
	if got := name(url); got == "Colin_Powell" {
		t.Fatalf("before the enrolment, %s = %q", filepath.Base(query), got)
	}
	photo, err := os.ReadFile(filepath.Join(lfw, "gallery", "Colin_Powell", "Colin_Powell_0001.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "Colin_Powell_0001.jpg")
	fw.Write(photo)
	mw.Close()
	if code, got := admin(http.MethodPost, url+"/v1/subjects/Colin_Powell/faces", &body, mw.FormDataContentType()); code != http.StatusCreated {
		t.Fatalf("enrol = %d %q, want 201", code, got)
	}
	if got := name(url); got != "Colin_Powell" {
		t.Errorf("after the enrolment, %s = %q, want Colin_Powell", filepath.Base(query), got)
	}
	if code, got := admin(http.MethodGet, url+"/v1/subjects", nil, ""); code != http.StatusOK ||
		!strings.Contains(got, `{"name":"Colin_Powell","faces":1}`) || !strings.Contains(got, `{"name":"Paul","faces":`) {
		t.Errorf("GET /v1/subjects = %d %q, want Colin_Powell with one face and the seeded CSE546 people", code, got)
	}
	stop()

	url, _ = startProgram(t, args)
	if got := name(url); got != "Colin_Powell" {
		t.Errorf("after a restart, %s = %q, want Colin_Powell", filepath.Base(query), got)
	}
	if code, got := admin(http.MethodDelete, url+"/v1/subjects/Colin_Powell", nil, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE = %d %q, want 204", code, got)
	}
	if got := name(url); got == "Colin_Powell" {
		t.Errorf("after DELETE, %s = %q", filepath.Base(query), got)
	}

	// The bulk path: the LFW sample's gallery (107 people, one photo each)
	// through the API, then its queries of those people.
	rep, err := enroll.Run(t.Context(), enroll.Options{URL: url, Token: "tok", Dir: filepath.Join(lfw, "gallery"),
		State: filepath.Join(t.TempDir(), "state"), Largest: true, Concurrency: 4})
	if err != nil || rep.Photos != 107 || rep.Enrolled < 105 || rep.Failed != 0 {
		t.Fatalf("enrol the LFW gallery = %+v, %v; want 107 photos, at least 105 enrolled", rep, err)
	}
	f, err := os.Open(filepath.Join(lfw, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	right, total := 0, 0
	for _, row := range rows[1:] { // Image,Results
		if row[1] == "Unknown" {
			continue
		}
		total++
		got, code, err := upload(client, url+"/", "myfile", filepath.Join(lfw, "queries", row[0]+".jpg"))
		if err == nil && code == http.StatusOK && got == row[1] {
			right++
		}
	}
	t.Logf("LFW sample enrolled through the API (%d of 107 photos): %d of %d other photos named right", rep.Enrolled, right, total)
	if total != 224 || right < 210 {
		t.Errorf("%d of %d LFW queries named right, want at least 210 of 224 (make eval: 217)", right, total)
	}
}
