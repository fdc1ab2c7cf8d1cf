package embedded

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestMetricsOfEveryTier: the embedded program's /metrics carries the web
// tier's, the scaler's and the workers' metrics, one registry for all.
func TestMetricsOfEveryTier(t *testing.T) {
	imgs := loadWorkload(t)
	h := start(t, testConfig(t), newContentClassifier(imgs), nil)
	for i := range 3 {
		if r := h.await(h.submit(imgs[i])); r.Status != elastiq.StatusDone {
			t.Fatalf("request %d = %+v, want done", i, r)
		}
	}
	resp, err := h.client.Get(h.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	done := 0.0
	for _, m := range fams["elastiq_worker_messages_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" && l.GetValue() == "done" {
				done = m.GetCounter().GetValue()
			}
		}
	}
	if done != 3 {
		t.Errorf("elastiq_worker_messages_total{outcome=done} = %v, want 3", done)
	}
	for _, name := range []string{"elastiq_scaler_evaluations_total", "elastiq_web_http_requests_total", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("no %s on /metrics", name)
		}
	}
	if n := fams["elastiq_scaler_nudged_requests_total"].GetMetric(); len(n) != 1 || n[0].GetCounter().GetValue() != 3 {
		t.Errorf("elastiq_scaler_nudged_requests_total = %v, want 3", n)
	}
}

// TestFollowOneRequest: one grep of a request's ID through the logs tells
// its story: accepted by the web tier, handled by a worker, its result
// received.
func TestFollowOneRequest(t *testing.T) {
	imgs := loadWorkload(t)
	h := start(t, testConfig(t), newContentClassifier(imgs), nil)
	id := h.submit(imgs[0])
	if r := h.await(id); r.Status != elastiq.StatusDone {
		t.Fatalf("GET %s = %+v, want done", id, r)
	}
	// The worker logs after it deletes the message, which may be after
	// the answer: wait for the story to be complete.
	wants := []string{`msg="request accepted"`, `msg="request started"`, `msg="request handled"`, `msg="result received"`}
	story := func() []string {
		var lines []string
		for _, line := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(line, string(id)) {
				lines = append(lines, line)
			}
		}
		return lines
	}
	complete := func() bool {
		lines := story()
		for _, want := range wants {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(elastiqtest.Timeout)
	for !complete() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !complete() {
		t.Errorf("want lines %q with id %s; the lines with it:\n%s", wants, id, strings.Join(story(), "\n"))
	}
}
