package main

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
	"github.com/elastiq/elastiq/services/scaler/policy"
)

// lockedBuffer is an io.Writer safe for the concurrent writes of a running
// program and the reads of the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingRE = regexp.MustCompile(`serving on (http://[0-9.:]+)`)

// TestRunClassicWorkload runs the program as `make run` does, with the real
// face model, and sends the course's workload with both of its contracts:
// 100 images at once, every answer the label of its own image.
func TestRunClassicWorkload(t *testing.T) {
	models := elastiqtest.ModelDir(t, "fr_feature.onnx")
	dataset := elastiqtest.CSE546(t)
	labels := map[string]string{}
	for _, img := range elastiqtest.Workload(t) {
		labels[strings.TrimSuffix(img.Name, ".jpg")] = img.Label
	}

	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr lockedBuffer
	data := t.TempDir()
	args := []string{"elastiq", "-addr", "127.0.0.1:0", "-data", data, "-models", models,
		"-gallery", dataset, "-gallery-cache", filepath.Join(data, "cache"), "-log-level", "warn"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, &stdout, &stderr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run() = %v, want nil; stderr:\n%s", err, stderr.String())
		}
	}()

	var url string
	deadline := time.Now().Add(2 * time.Minute)
	for url == "" {
		select {
		case err := <-done:
			t.Fatalf("run() = %v before serving; stderr:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if m := servingRE.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 2m; stderr:\n%s", stderr.String())
		}
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 2 * time.Minute}
	for _, field := range []string{"myfile", "inputFile"} {
		var wg sync.WaitGroup
		for name, label := range labels {
			wg.Go(func() {
				want := label
				if field == "inputFile" {
					want = name + ":" + label
				}
				got, code, err := upload(client, url+"/", field, filepath.Join(dataset, "face_images_100", name+".jpg"))
				if err != nil || code != http.StatusOK || got != want {
					t.Errorf("POST / %s=%s.jpg = %d %q, %v; want 200 %q", field, name, code, got, err, want)
				}
			})
		}
		wg.Wait()
	}
}

func upload(client *http.Client, url, field, path string) (string, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile(field, filepath.Base(path))
	if err != nil {
		return "", 0, err
	}
	fw.Write(data)
	mw.Close()
	resp, err := client.Post(url, mw.FormDataContentType(), &body)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

func TestParse(t *testing.T) {
	env := elastiqtest.Env
	t.Run("defaults", func(t *testing.T) {
		o, err := parse([]string{"elastiq"}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.addr != "127.0.0.1:8080" || o.stack.Policy.Max != 19 || o.classify.Backend != "face" {
			t.Errorf("parse() = addr %q, max %d, backend %q; want 127.0.0.1:8080, 19, face",
				o.addr, o.stack.Policy.Max, o.classify.Backend)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parse([]string{"elastiq"}, env(map[string]string{
			"ELASTIQ_ADDR": "127.0.0.1:9999", "ELASTIQ_BOOT_DELAY": "3s", "ELASTIQ_MAX_WORKERS": "4",
		}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.addr != "127.0.0.1:9999" || o.stack.BootDelay != 3*time.Second || o.stack.Policy.Max != 4 {
			t.Errorf("parse() = addr %q, boot %v, max %d; want 127.0.0.1:9999, 3s, 4", o.addr, o.stack.BootDelay, o.stack.Policy.Max)
		}
	})
	t.Run("flag wins over environment", func(t *testing.T) {
		o, err := parse([]string{"elastiq", "-max-workers", "7"}, env(map[string]string{"ELASTIQ_MAX_WORKERS": "4"}), io.Discard)
		if err != nil || o.stack.Policy.Max != 7 {
			t.Errorf("parse() max = %d, %v; want 7", o.stack.Policy.Max, err)
		}
	})
	t.Run("policy flags", func(t *testing.T) {
		o, err := parse([]string{"elastiq", "-policy", "classic", "-max-workers", "5", "-terminate-after", "30s"}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.New(o.stack.Policy)
		c, _ := p.(policy.Classic)
		if err != nil || p.Name() != "classic" || c.Config().Max != 5 || c.Config().TerminateAfter != 30*time.Second {
			t.Errorf("parse() = policy %v (%v), classic %+v; want classic, 5, 30s", p, err, c.Config())
		}
	})
	t.Run("decode budget", func(t *testing.T) {
		// The web tier refuses what the workers' budget could never hold.
		o, err := parse([]string{"elastiq", "-decode-budget", "100000000"}, env(nil), io.Discard)
		if err != nil || o.classify.DecodeBudget != 100_000_000 || o.stack.Web.MaxDecodeBytes != 100_000_000 {
			t.Errorf("parse() = decode budget %d, web max %d, %v; want both 100000000",
				o.classify.DecodeBudget, o.stack.Web.MaxDecodeBytes, err)
		}
	})
	t.Run("exec command", func(t *testing.T) {
		o, err := parse([]string{"elastiq", "-classifier", "exec", "-exec-command", "python3 face_recognition.py {}"}, env(nil), io.Discard)
		if err != nil || strings.Join(o.classify.Command, "|") != "python3|face_recognition.py|{}" {
			t.Errorf("parse() command = %q, %v; want python3 face_recognition.py {}", o.classify.Command, err)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "exec without command", args: []string{"-classifier", "exec"}},
		{name: "unknown backend", args: []string{"-classifier", "magic"}},
		{name: "bad duration", args: []string{"-boot-delay", "soon"}},
		{name: "bad environment", env: map[string]string{"ELASTIQ_MAX_WORKERS": "many"}},
		{name: "zero workers", args: []string{"-max-workers", "0"}},
		{name: "unknown policy", args: []string{"-policy", "magic"}},
		{name: "stray argument", args: []string{"serve"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse(append([]string{"elastiq"}, tt.args...), env(tt.env), io.Discard); err == nil {
				t.Errorf("parse(%q) = nil error, want an error", tt.args)
			}
		})
	}
}
