package web

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestStoreHealth: after an upload cannot be stored (a full disk), /healthz
// answers 503 naming the store and elastiq_web_store_up is 0; once the
// store works again, /healthz's own probe sees it, and the probe leaves
// nothing behind.
func TestStoreHealth(t *testing.T) {
	faces, _ := loadFaces(t)
	h := newHarness(t, testConfig(), nil, nil)
	if r := h.get(t, "/healthz"); r.status != http.StatusOK {
		t.Fatalf("GET /healthz = %d %q, want 200", r.status, r.body)
	}
	h.store.SetPutErr(errors.New("no space left on device"))
	if r := h.upload(t, "/v1/recognitions", "file", faces[0].name, faces[0].data); r.status != http.StatusServiceUnavailable {
		t.Fatalf("upload with the store full = %d, want 503", r.status)
	}
	r := h.get(t, "/healthz")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "object store") || !strings.Contains(r.body, "no space left") {
		t.Errorf("GET /healthz with the store full = %d %q, want 503 naming the store and the reason", r.status, r.body)
	}
	if got := scrape(t, h)["elastiq_web_store_up{}"]; got != 0 {
		t.Errorf("elastiq_web_store_up = %v, want 0", got)
	}

	h.store.SetPutErr(nil)
	elastiqtest.Eventually(t, "/healthz ok once the store works", func() bool {
		time.Sleep(100 * time.Millisecond)
		return h.get(t, "/healthz").status == http.StatusOK
	})
	if got := scrape(t, h)["elastiq_web_store_up{}"]; got != 1 {
		t.Errorf("elastiq_web_store_up = %v, want 1", got)
	}
	if keys, _ := h.store.List(t.Context(), elastiq.InputPrefix); len(keys) != 0 {
		t.Errorf("inputs after the probes = %v, want none", keys)
	}
}
