package embedded

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/elastiq/elastiq/services/elastiq"
	"github.com/elastiq/elastiq/services/elastiq/diskstore"
	"github.com/elastiq/elastiq/services/elastiq/elastiqtest"
)

// TestExpire: the objects of requests older than the cutoff go, the newer
// ones and keys that are no request's stay.
func TestExpire(t *testing.T) {
	ctx := context.Background()
	store, err := diskstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	old, fresh := elastiq.NewRequestID(now.Add(-2*time.Hour)), elastiq.NewRequestID(now.Add(-time.Minute))
	keys := []string{"input/healthz-probe"}
	for _, id := range []elastiq.RequestID{old, fresh} {
		keys = append(keys, elastiq.InputKey(id), elastiq.SecondInputKey(id), elastiq.OutputKey(id))
	}
	for _, k := range keys {
		if err := store.Put(ctx, k, elastiq.Object{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := expire(ctx, store, now.Add(-time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("expire = %d, %v; want 3 (the old request's input, second image and output)", n, err)
	}
	var left []string
	for _, p := range []string{elastiq.InputPrefix, elastiq.OutputPrefix} {
		l, err := store.List(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, l...)
	}
	want := []string{"input/healthz-probe", elastiq.InputKey(fresh), elastiq.SecondInputKey(fresh), elastiq.OutputKey(fresh)}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %q, want %q", left, want)
	}
}

// TestCompactWhenWasteful: no compaction while the dead bytes are fewer
// than the live ones; once they are more, a compaction gives them back.
func TestCompactWhenWasteful(t *testing.T) {
	ctx := context.Background()
	store, err := diskstore.Open(t.TempDir(), diskstore.WithSegmentSize(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	body := bytes.Repeat([]byte("x"), 16<<10)
	var ids []elastiq.RequestID
	for range 200 { // 3.2 MB
		id := elastiq.NewRequestID(time.Now())
		ids = append(ids, id)
		if err := store.Put(ctx, elastiq.OutputKey(id), elastiq.Object{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids[:80] {
		store.Delete(ctx, elastiq.OutputKey(id))
	}
	if done, err := compactWhenWasteful(ctx, store); done || err != nil {
		t.Fatalf("compactWhenWasteful with 40%% dead = %v, %v; want false", done, err)
	}
	for _, id := range ids[80:180] {
		store.Delete(ctx, elastiq.OutputKey(id))
	}
	before := store.Stats().Bytes
	if done, err := compactWhenWasteful(ctx, store); !done || err != nil {
		t.Fatalf("compactWhenWasteful with 90%% dead = %v, %v; want true", done, err)
	}
	if after := store.Stats(); after.Bytes > before/5 || after.Keys != 20 {
		t.Errorf("after compaction: %d bytes (from %d), %d keys; want under a fifth, 20 keys", after.Bytes, before, after.Keys)
	}
}

// TestRetention: a request's objects are gone from the running stack once
// it is older than Retention, and its result is then 404.
func TestRetention(t *testing.T) {
	imgs := loadWorkload(t)
	cfg := testConfig(t)
	cfg.Retention = 2 * time.Second
	cfg.Web.CacheTTL, cfg.Web.ResultRetention = time.Second, time.Second // the web tier's copies
	h := start(t, cfg, newContentClassifier(imgs), nil)
	id := h.submit(imgs[0])
	if r := h.await(id); r.Label != imgs[0].label {
		t.Fatalf("%s = %+v, want %s", imgs[0].name, r, imgs[0].label)
	}
	elastiqtest.Eventually(t, "the request's objects expired", func() bool {
		_, inErr := h.s.Store.Head(context.Background(), elastiq.InputKey(id))
		_, outErr := h.s.Store.Head(context.Background(), elastiq.OutputKey(id))
		return inErr != nil && outErr != nil
	})
	resp, err := h.client.Get(h.url + "/v1/recognitions/" + string(id))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET an expired request = %s, want 404", resp.Status)
	}
}
